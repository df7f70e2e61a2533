/**
 * The error catalogue: every error code either plane answers with, its HTTP status and
 * default message. README.md lists the same table; a test keeps the two in step.
 */
export const ERRORS = {
  bad_request: { status: 400, message: 'Bad request.' },
  validation_failed: { status: 400, message: 'The request is not valid. See details.' },
  missing_token: { status: 401, message: 'API key required. Send it as "Authorization: Bearer <key>".' },
  invalid_token: { status: 401, message: 'Invalid API key.' },
  unauthorized: { status: 401, message: 'Admin token required. Send it as "Authorization: Bearer <token>".' },
  api_not_allowed: { status: 403, message: 'This API key is not authorized for this API.' },
  ip_not_allowed: { status: 403, message: 'Requests from this IP address are not allowed for this API key.' },
  insufficient_permissions: { status: 403, message: 'Insufficient permissions. Update key permissions in settings.' },
  forbidden: { status: 403, message: 'This admin token may not do that.' },
  route_not_found: { status: 404, message: 'No API is served at this path.' },
  not_found: { status: 404, message: 'Not found.' },
  method_not_allowed: { status: 405, message: 'Method not allowed.' },
  request_timeout: { status: 408, message: 'The request was not received in time.' },
  conflict: { status: 409, message: 'The request conflicts with the current state.' },
  already_revoked: { status: 409, message: 'This key is already revoked.' },
  payload_too_large: { status: 413, message: 'Request body too large.' },
  unsupported_media_type: { status: 415, message: 'Send a JSON body with content-type: application/json.' },
  rate_limit_exceeded: { status: 429, message: 'Rate limit exceeded.' },
  concurrency_limit_exceeded: { status: 429, message: 'Too many requests in flight for this API key. Wait for one to finish.' },
  too_many_connections: { status: 429, message: 'Too many open connections from this address. Reuse or close connections.' },
  too_many_invalid_keys: { status: 429, message: 'Too many invalid API keys from this address. Try again later.' },
  internal_error: { status: 500, message: 'Internal error.' },
  bad_gateway: { status: 502, message: 'The upstream service could not be reached or sent a bad response.' },
  service_unavailable: { status: 503, message: 'Service temporarily unavailable. Retry shortly.' },
  gateway_timeout: { status: 504, message: 'The upstream service did not answer in time.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** A client's `X-Request-Id` that is kept as the request's id (either plane); anything else is replaced. */
export const REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

/** Reasons that qualify `invalid_token`, with the message each one renders. */
export const INVALID_TOKEN_REASONS = {
  malformed: 'API key is malformed.',
  not_found: 'API key not found.',
  expired: 'API key expired.',
  revoked: 'API key revoked.',
  suspended: 'API key suspended.',
  pending: 'API key is not active yet.',
  wrong_environment: 'API key belongs to another environment.',
} as const;

export type InvalidTokenReason = keyof typeof INVALID_TOKEN_REASONS;

/** The JSON body both planes send for an error. */
export interface ErrorBody {
  error: ErrorCode;
  reason?: string;
  message: string;
  request_id: string;
  [extra: string]: unknown;
}

/** An error the admin plane raises from a handler; rendered in one place. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly extra: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message?: string, extra?: Record<string, unknown>) {
    super(message ?? ERRORS[code].message);
    this.code = code;
    this.status = ERRORS[code].status;
    this.extra = extra;
  }
}
