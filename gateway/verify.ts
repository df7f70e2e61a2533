import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { ERRORS, REQUEST_ID, type ErrorCode } from '../core/errors.js';
import { parseAddress } from '../core/ip.js';
import type { QuotaPolicy } from '../core/quota.js';
import { issuesToDetails, type Detail } from '../core/validation.js';
import { ANSWERED, RequestContext, type Denial, type Listener } from './context.js';
import { createKeyChecks, createRunner } from './key-checks.js';
import { messageOf } from './error-body.js';
import { rateSummary, renderDenial, setKeyHeaders } from './respond.js';
import type { Runtime } from './runtime.js';
import { createClientIpStage } from './stages/client-ip.js';
import { createKeyShapeCheck, createParseKeyStage } from './stages/parse-key.js';
import { createRecordStage } from './stages/record.js';
import { createRouteMatcher } from './stages/route.js';
import { pushIdentity } from './upstream-request.js';

/** The header a caller of the verify API sends its token in. */
export const VERIFY_TOKEN_HEADER = 'x-keygate-verify-token';
/** The header `/auth` names its refusal's code in, for a proxy that keeps only headers. */
export const ERROR_HEADER = 'x-keygate-error';
/** `/auth`'s refusal body again, as a header: nginx's auth_request keeps the subrequest's headers, not its body. */
export const ERROR_BODY_HEADER = 'x-keygate-error-body';

const REWRITTEN_TARGET: Denial = Object.freeze({
  code: 'bad_request',
  message: 'The request path has empty segments (//), which the API would receive as sent: send the path without them.',
});

/** The path of a request target, without its query. */
function rawPath(uri: string): string {
  const q = uri.indexOf('?');
  return q === -1 ? uri : uri.slice(0, q);
}

const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/;

/** POST /v1/keys/verify's body (docs/verify.md). */
const verifyBody = z.strictObject({
  key: z.string().min(1).max(1024),
  api: z.string().min(1).max(64).optional(),
  method: z.string().regex(METHOD, 'must be an HTTP method').optional(),
  path: z.string().min(1).max(8192).startsWith('/', 'must start with "/"').optional(),
  host: z.string().min(1).max(255).optional(),
  ip: z
    .string()
    .max(64)
    .refine((s) => parseAddress(s) !== null, 'must be an IPv4 or IPv6 address')
    .optional(),
  scopes: z.array(z.string().min(1).max(128)).max(100).optional(),
  cost: z.number().int().min(1).max(1_000_000).optional(),
  environment: z.string().min(1).max(64).optional(),
});
type VerifyBody = z.output<typeof verifyBody>;

/** What the verify API answers, valid or not (docs/verify.md). */
export interface VerifyAnswer {
  valid: boolean;
  /** The error code a proxied request would have been refused with; null when valid. */
  code: ErrorCode | null;
  reason: string | null;
  message: string | null;
  key_id: string | null;
  environment: string | null;
  scopes: readonly string[] | null;
  application_id: string | null;
  ratelimit: { limit: number; remaining: number; reset: number } | null;
  /** The key's quota or credits after this call (docs/quotas.md): null for a key with none, or a call refused before it. */
  quota: { limit: number; remaining: number; reset: number | null } | null;
  /** The quota or credits the key's application shares, after this call, in the same shape: null for none, or a call refused before it. */
  app_quota: { limit: number; remaining: number; reset: number | null } | null;
  /**
   * Whether the key or its application has a quota or credits, counted in this call or not
   * (a store that failed open counts nothing): a caching client must not cache the answer.
   */
  metered: boolean;
  request_id: string;
  [extra: string]: unknown;
}

export interface VerifyApi {
  /** Answers POST /v1/keys/verify and GET /auth; false for any other path (the caller answers it). */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean;
}

/** A refusal of the call itself (not of the key it asks about): the error body, as the admin plane's. */
interface CallError {
  status: number;
  code: ErrorCode;
  message: string;
  details?: Detail[];
  headers?: Record<string, string>;
}

/**
 * The verify API on the status listener (docs/verify.md): `POST /v1/keys/verify` for services
 * that check keys themselves, `GET /auth` for a proxy's auth subrequest (nginx auth_request).
 * Both run the proxy's key checks (key-checks.ts) on a request context of their own: the same
 * stages, the same denials, tokens spent and one usage event recorded per call. Null when
 * `status_listener.verify.enabled` is off.
 */
/**
 * The verify token: `token`, or `token_file` read now (at start-up: a reload builds the verify
 * API again with the token read then, never re-reading the file while requests wait on it).
 */
export function readVerifyToken(rt: Runtime): string | null {
  const options = rt.config.status_listener?.verify;
  if (!options?.enabled) return null;
  const token = options.token ?? (options.token_file === null ? null : readFileSync(options.token_file, 'utf8').trim());
  if (token !== null && token.length < 16) throw new Error('status_listener.verify.token_file: the token must be at least 16 characters');
  return token;
}

export function createVerifyApi(rt: Runtime, token: string | null = readVerifyToken(rt)): VerifyApi | null {
  const options = rt.config.status_listener?.verify;
  if (!options?.enabled) return null;
  const tokenDigest = token === null ? null : digest(token);
  const environments = new Set(Object.keys(rt.config.keys.environments));
  const defaultEnvironment = options.environment ?? rt.config.listeners[0]?.environment ?? [...environments][0]!;
  const listeners = new Map<string, Listener>([...environments].map((e) => [e, { environment: e }]));
  const apisByName = new Map(rt.apis.map((a) => [a.name, a]));
  const requestIdHeader = rt.config.headers.request_id;
  const identity = rt.config.headers;
  const record = createRecordStage(rt);
  const fail = (res: ServerResponse, error: CallError) => callError(rt.docUrls, res, error);
  const refuseLeft = (req: IncomingMessage, res: ServerResponse, error: CallError) => refuseUnread(rt.docUrls, req, res, error);
  const clientIp = createClientIpStage(rt);
  const matchTarget = createRouteMatcher(rt, false);
  const runVerify = createRunner(rt, [createKeyShapeCheck(rt), ...createKeyChecks(rt, { forwarded: false })], answerVerify);
  const runAuth = createRunner(rt, [createParseKeyStage(rt), ...createKeyChecks(rt, { forwarded: false })], answerAuth);

  function answerVerify(ctx: RequestContext, denial: Denial | typeof ANSWERED | undefined): void {
    const refused = denial === ANSWERED ? undefined : denial;
    const key = ctx.key;
    ctx.status = refused === undefined ? 200 : ERRORS[refused.code].status;
    ctx.outcome = refused === undefined ? 'ok' : refused.code;
    ctx.reason = refused?.reason ?? null;
    const answer: VerifyAnswer = {
      valid: refused === undefined,
      code: refused?.code ?? null,
      reason: refused?.reason ?? null,
      message: refused === undefined ? null : messageOf(refused),
      key_id: key?.id ?? null,
      environment: key?.environment ?? null,
      scopes: key === null ? null : scopeList(key.scopes),
      application_id: key?.application ?? null,
      ratelimit: rateSummary(rt, ctx),
      quota: quotaSummary(ctx.key?.quota ?? null, ctx.quotaRemaining, ctx.quotaResetAt, ctx.now),
      app_quota: quotaSummary(ctx.key?.appQuota ?? null, ctx.appQuotaRemaining, ctx.appQuotaResetAt, ctx.now),
      metered: key !== null && (key.quota !== null || key.appQuota !== null),
      request_id: ctx.requestId,
      ...refused?.extra,
    };
    sendJson(ctx.res!, 200, answer, { [requestIdHeader]: ctx.requestId });
    record(ctx);
  }

  function answerAuth(ctx: RequestContext, denial: Denial | typeof ANSWERED | undefined): void {
    const res = ctx.res!;
    if (denial !== undefined && denial !== ANSWERED) {
      const { status, headers, body } = renderDenial(rt, ctx, denial);
      const h = headers as Record<string, string | number>;
      h[ERROR_HEADER] = denial.code;
      h[ERROR_BODY_HEADER] = asciiJson(body);
      res.writeHead(status, headers);
      res.end(body);
    } else {
      const headers: Record<string, unknown> = { [requestIdHeader]: ctx.requestId, 'cache-control': 'no-store' };
      const pairs: string[] = [];
      pushIdentity(identity, ctx.key!, pairs);
      for (let i = 0; i < pairs.length; i += 2) headers[pairs[i]!] = pairs[i + 1]!;
      setKeyHeaders(rt, ctx, headers);
      ctx.status = 204;
      res.writeHead(204, headers as Record<string, string>);
      res.end();
    }
    record(ctx);
  }

  /** A context for one call: its id, clock reading and environment (`listener`). */
  function contextFor(req: IncomingMessage, res: ServerResponse, environment: string): RequestContext {
    const ctx = new RequestContext(req, res, null, null, listeners.get(environment)!, performance.now());
    const given = req.headers[requestIdHeader];
    ctx.requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    ctx.now = rt.clock.now();
    return ctx;
  }

  /** Null when the caller may call; else why not. */
  function refuseCaller(req: IncomingMessage): CallError | null {
    if (tokenDigest === null) {
      const peer = req.socket.remoteAddress ?? '';
      if (isLoopback(peer)) return null;
      return { status: 403, code: 'forbidden', message: 'The verify API answers loopback callers only until status_listener.verify.token is set.' };
    }
    const given = req.headers[VERIFY_TOKEN_HEADER];
    if (typeof given === 'string' && timingSafeEqual(digest(given), tokenDigest)) return null;
    return {
      status: 401,
      code: 'unauthorized',
      message: 'This call needs the verify token (status_listener.verify.token). Send it as "X-Keygate-Verify-Token: <token>".',
    };
  }

  function verify(ctx: RequestContext, body: VerifyBody): void {
    ctx.method = body.method?.toUpperCase() ?? 'GET';
    if (body.ip !== undefined) ctx.clientIp = body.ip;
    else clientIp(ctx);
    let denial: Denial | undefined;
    if (body.path !== undefined) {
      denial = matchTarget(ctx, ctx.method, body.path, body.host);
      if (denial === undefined && body.api !== undefined && ctx.api!.name !== body.api) {
        denial = { code: 'route_not_found', message: `This path is not served by the ${body.api} API.` };
      }
    } else if (body.api !== undefined) {
      // No path: the API's answer to a path its rules do not list, as the proxy would give it.
      const api = apisByName.get(body.api)!;
      ctx.api = api;
      if (api.unlisted === null) {
        denial = { code: 'route_not_found', message: `The ${body.api} API serves only the routes it lists: name the request's path (and method) to check a key for it.` };
      } else ctx.required = api.unlisted;
    }
    if (body.scopes !== undefined && body.scopes.length > 0) ctx.required = [...new Set([...ctx.required, ...body.scopes])];
    ctx.cost = body.cost ?? null;
    ctx.token = body.key;
    if (denial !== undefined) answerVerify(ctx, denial);
    else runVerify(ctx);
  }

  function auth(req: IncomingMessage, res: ServerResponse): void {
    // The client's own headers reach /auth through the proxy: the environment header is read
    // only when the operator says the proxy sets it itself (verify.environment_header).
    const environment = (options!.environment_header ? header(req, 'x-keygate-environment') : undefined) ?? defaultEnvironment;
    if (!environments.has(environment)) {
      return fail(res, { status: 400, code: 'bad_request', message: `X-Keygate-Environment must be one of: ${[...environments].join(', ')}.` });
    }
    const uri = header(req, 'x-original-uri');
    const method = header(req, 'x-original-method') ?? 'GET';
    if (uri === undefined) return fail(res, { status: 400, code: 'bad_request', message: 'Send the original request target in X-Original-URI.' });
    if (!METHOD.test(method)) return fail(res, { status: 400, code: 'bad_request', message: 'X-Original-Method must be an HTTP method.' });
    const ctx = contextFor(req, res, environment);
    ctx.method = method.toUpperCase();
    clientIp(ctx);
    let denial = matchTarget(ctx, ctx.method, uri, header(req, 'x-original-host') ?? req.headers.host);
    // Keygate's proxy forwards the path it matched (empty segments dropped); behind /auth the
    // proxy in front forwards the target as sent, so one Keygate would rewrite is refused.
    if (denial === undefined && ctx.path !== rawPath(uri)) denial = REWRITTEN_TARGET;
    if (denial !== undefined) answerAuth(ctx, denial);
    else runAuth(ctx);
  }

  function readVerify(req: IncomingMessage, res: ServerResponse): void {
    const type = req.headers['content-type'];
    if (type === undefined || !/^application\/json\s*(;|$)/i.test(type)) {
      req.resume();
      return fail(res, { status: 415, code: 'unsupported_media_type', message: ERRORS.unsupported_media_type.message });
    }
    const max = options!.max_body_bytes;
    const tooLarge: CallError = { status: 413, code: 'payload_too_large', message: `The body is larger than ${max} bytes (status_listener.verify.max_body_bytes).` };
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) return refuseLeft(req, res, tooLarge);
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > max) {
        over = true;
        return refuseLeft(req, res, tooLarge);
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (over) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return fail(res, { status: 400, code: 'bad_request', message: 'The body is not valid JSON.' });
      }
      const result = verifyBody.safeParse(parsed);
      if (!result.success) return fail(res, validationFailed(issuesToDetails(result.error.issues)));
      const body = result.data;
      const details: Detail[] = [];
      if (body.api !== undefined && !apisByName.has(body.api)) details.push({ path: 'api', message: `"${body.api}" is not an API of this gateway` });
      if (body.environment !== undefined && !environments.has(body.environment)) {
        details.push({ path: 'environment', message: `must be one of: ${[...environments].join(', ')}` });
      }
      if (details.length > 0) return fail(res, validationFailed(details));
      verify(contextFor(req, res, body.environment ?? defaultEnvironment), body);
    });
  }

  return {
    handle(req, res, path) {
      const isVerify = path === '/v1/keys/verify';
      if (!isVerify && path !== '/auth') return false;
      const wanted = isVerify ? 'POST' : 'GET';
      if (req.method !== wanted && !(wanted === 'GET' && req.method === 'HEAD')) {
        req.resume();
        fail(res, { status: 405, code: 'method_not_allowed', message: `Use ${wanted}.`, headers: { allow: wanted === 'GET' ? 'GET, HEAD' : 'POST' } });
        return true;
      }
      const refused = refuseCaller(req);
      if (refused !== null) {
        if (isVerify) refuseLeft(req, res, refused);
        else fail(res, refused);
        return true;
      }
      if (isVerify) readVerify(req, res);
      else auth(req, res);
      return true;
    },
  };
}

/** A key's scope set as a list, made once per set (compiled keys with equal scopes share one). */
const scopeLists = new WeakMap<ReadonlySet<string>, readonly string[]>();
function scopeList(scopes: ReadonlySet<string>): readonly string[] {
  let list = scopeLists.get(scopes);
  if (list === undefined) scopeLists.set(scopes, (list = Object.freeze([...scopes])));
  return list;
}

function validationFailed(details: Detail[]): CallError {
  return { status: 400, code: 'validation_failed', message: ERRORS.validation_failed.message, details };
}

/** Answers a call that is refused before its body was read, closing the connection rather than reading what is left. */
function refuseUnread(docUrls: Readonly<Record<ErrorCode, string>>, req: IncomingMessage, res: ServerResponse, error: CallError): void {
  if (!req.complete) error = { ...error, headers: { ...error.headers, connection: 'close' } };
  callError(docUrls, res, error);
  req.resume();
}

function callError(docUrls: Readonly<Record<ErrorCode, string>>, res: ServerResponse, error: CallError): void {
  if (res.headersSent) return;
  const body: Record<string, unknown> = { error: error.code, message: error.message, doc_url: docUrls[error.code] };
  if (error.details !== undefined) body['details'] = error.details;
  sendJson(res, error.status, body, error.headers ?? {});
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function isLoopback(peer: string): boolean {
  return peer === '::1' || peer.startsWith('127.') || peer.startsWith('::ffff:127.');
}

/** JSON text with every non-ASCII character escaped, so it fits in a header value. */
function asciiJson(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The verify answer's `quota` and `app_quota`: `reset` is seconds to the next refill, null for credits that never refill. */
function quotaSummary(q: QuotaPolicy | null, remaining: number, resetAt: number, now: number): VerifyAnswer['quota'] {
  if (q === null || remaining < 0) return null;
  return { limit: q.quota, remaining, reset: resetAt === 0 ? null : Math.max(0, Math.ceil((resetAt - now) / 1000)) };
}
