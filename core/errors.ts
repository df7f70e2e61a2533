/**
 * The error catalogue: every error code either plane answers with, its HTTP status and
 * default message. The message is written for whoever reads the body: on the gateway the key
 * holder, who has no settings page and can change nothing but the request (so it says what to
 * do, or whom to ask: the API's owner); on the admin plane the caller holding an admin token.
 * Where a refusal knows more (the missing scopes, the address seen), its message says so.
 * docs/errors.md has a section per code (anchored by the code) that every body links to as
 * `doc_url`, and README.md lists the same table; tests keep all three in step.
 */
export const ERRORS = {
  bad_request: { status: 400, message: 'The request is malformed; fix it before sending it again.' },
  validation_failed: { status: 400, message: 'The request is not valid; each entry of details names a field and what is wrong with it.' },
  missing_token: { status: 401, message: 'This request needs an API key. Send it as "Authorization: Bearer <key>".' },
  invalid_token: { status: 401, message: 'This API key is not valid; check that you copied it whole, or ask the API\'s owner for a key.' },
  unauthorized: { status: 401, message: 'This call needs an admin token. Send it as "Authorization: Bearer <token>".' },
  api_not_allowed: { status: 403, message: 'This API key may not call this API; ask the API\'s owner to allow it.' },
  ip_not_allowed: { status: 403, message: 'This API key may not be used from this address; ask the API\'s owner to allow it.' },
  insufficient_permissions: { status: 403, message: 'This API key lacks a scope this request needs; ask the API\'s owner to grant it.' },
  forbidden: { status: 403, message: 'This admin token\'s role may not do this; use a token of a role that may.' },
  route_not_found: { status: 404, message: 'No API is served at this path; check the URL against the API\'s documentation.' },
  not_found: { status: 404, message: 'Nothing exists at this path or with this id.' },
  method_not_allowed: { status: 405, message: 'This path does not answer this method; the Allow header lists the ones it does.' },
  request_timeout: { status: 408, message: 'The request did not arrive in time and the connection is closed; send it again.' },
  conflict: { status: 409, message: 'The request conflicts with the current state; read the resource again, then retry.' },
  already_revoked: { status: 409, message: 'This key is already revoked.' },
  payload_too_large: { status: 413, message: 'The request body is larger than this endpoint accepts; send a smaller one.' },
  unsupported_media_type: { status: 415, message: 'Send a JSON body with content-type: application/json.' },
  config_invalid: { status: 422, message: 'The configuration file was not applied: each entry of details names a problem in it; the running configuration is kept.' },
  rate_limit_exceeded: { status: 429, message: 'This API key\'s rate limit is used up; retry after the seconds in Retry-After.' },
  quota_exceeded: { status: 429, message: 'This API key\'s quota is used up; retry when it refills (Retry-After), or ask the API\'s owner for more.' },
  concurrency_limit_exceeded: { status: 429, message: 'This API key has too many requests in flight to this API; wait for one to finish, then retry.' },
  too_many_connections: { status: 429, message: 'Too many open connections from this address; reuse connections and close idle ones.' },
  too_many_invalid_keys: { status: 429, message: 'Too many invalid API keys came from this address; retry later, with a valid key.' },
  too_many_sign_ins: { status: 429, message: 'Too many failed sign-ins came from this address; wait the seconds in Retry-After, then try again.' },
  internal_error: { status: 500, message: 'An internal error occurred; retry, and if it persists, report it with the request_id.' },
  bad_gateway: { status: 502, message: 'The service behind this API could not be reached or sent a bad response; retry shortly.' },
  service_unavailable: { status: 503, message: 'The service is temporarily unavailable; retry shortly.' },
  gateway_timeout: { status: 504, message: 'The service behind this API did not answer in time; retry shortly.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** A client's `X-Request-Id` that is kept as the request's id (either plane); anything else is replaced. */
export const REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

/**
 * Reasons that qualify `invalid_token`, with the message each one renders. They are also the
 * close reason of a WebSocket whose key stops working, which RFC 6455 §5.5 caps at 123 bytes.
 */
export const INVALID_TOKEN_REASONS = {
  malformed: 'This is not a well-formed API key; check that you copied it whole.',
  not_found: 'This API key does not exist; check that you copied it whole, or ask the API\'s owner for a key.',
  expired: 'This API key has expired; ask the API\'s owner for a new one.',
  revoked: 'This API key has been revoked; ask the API\'s owner for a new one.',
  suspended: 'This API key is suspended; ask the API\'s owner to reactivate it.',
  pending: 'This API key is not active yet; it works from the start time its owner set.',
  wrong_environment: 'This API key belongs to another environment; use a key made for this one.',
} as const;

export type InvalidTokenReason = keyof typeof INVALID_TOKEN_REASONS;

/**
 * Where `doc_url` points when `errors.doc_base_url` is not set: docs/errors.md, relative to
 * the repository's root, as the project has no site of its own to link to.
 */
export const DEFAULT_DOC_BASE_URL = 'docs/errors.md';

/** Each code's `doc_url`: the base URL with the code as its anchor; built once per config. */
export function errorDocUrls(base: string): Readonly<Record<ErrorCode, string>> {
  const urls = {} as Record<ErrorCode, string>;
  for (const code of Object.keys(ERRORS) as ErrorCode[]) urls[code] = `${base}#${code}`;
  return Object.freeze(urls);
}

/** `record`'s values as JSON text, for bodies written as text (gateway/respond.ts). */
export function asJson<K extends string>(record: Readonly<Record<K, string>>): Readonly<Record<K, string>> {
  const out = {} as Record<K, string>;
  for (const k of Object.keys(record) as K[]) out[k] = JSON.stringify(record[k]);
  return Object.freeze(out);
}

/** The JSON body both planes send for an error. */
export interface ErrorBody {
  error: ErrorCode;
  reason?: string;
  message: string;
  doc_url: string;
  request_id: string;
  [extra: string]: unknown;
}

/** An error the admin plane raises from a handler; rendered in one place. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly extra: Record<string, unknown> | undefined;
  /** Response headers the error needs (a 401's WWW-Authenticate). */
  readonly headers: Readonly<Record<string, string>> | undefined;
  constructor(code: ErrorCode, message?: string, extra?: Record<string, unknown>, headers?: Readonly<Record<string, string>>) {
    super(message ?? ERRORS[code].message);
    this.code = code;
    this.status = ERRORS[code].status;
    this.extra = extra;
    this.headers = headers;
  }
}
