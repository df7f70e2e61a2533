import type { OutgoingHttpHeaders } from 'node:http';
import { ERRORS } from '../core/errors.js';
import { newRateState, type LimitPolicy, type RateState } from '../core/limiter.js';
import type { QuotaPolicy } from '../core/quota.js';
import type { Denial, RequestContext } from './context.js';
import { setCorsHeaders } from './cors.js';
import { closeUnderUnreadBody } from './in-flight.js';
import type { Runtime } from './runtime.js';

function rateItem(p: LimitPolicy, s: RateState): string {
  return `"${p.name}";r=${s.remaining};t=${s.resetSeconds}`;
}

/**
 * Reads the request's buckets without spending, for a request refused before the rate-limit
 * stage ran (its buckets are reported unspent).
 */
function peekUnspent(rt: Runtime, ctx: RequestContext): void {
  if (ctx.rateChecked) return;
  const key = ctx.key!;
  rt.limiter.peek(key.id, key.policy, ctx.now, ctx.rate);
  const routePolicy = ctx.route?.policy ?? null;
  if (routePolicy !== null) rt.limiter.peek(`${key.id}\u0000${routePolicy.name}`, routePolicy, ctx.now, ctx.routeRate);
}

/**
 * The application's shared bucket as the request left it, or read unspent when the request
 * was refused before it was asked; null for a key of no limited application.
 */
function appState(rt: Runtime, ctx: RequestContext): RateState | null {
  const key = ctx.key!;
  const appPolicy = key.appPolicy;
  if (appPolicy === null) return null;
  let state = ctx.appRate;
  if (state === null) rt.limiter.peek(key.application!, appPolicy, ctx.now, (state = ctx.appRate = newRateState()));
  return state;
}

/** The bucket of the request (the key's, or its route's) with fewer tokens left, and its policy. */
function tighter(rt: Runtime, ctx: RequestContext): { policy: LimitPolicy; state: RateState } {
  const routePolicy = ctx.route?.policy ?? null;
  const useRoute = routePolicy !== null && ctx.routeRate.remaining < ctx.rate.remaining;
  const pick = useRoute ? { policy: routePolicy, state: ctx.routeRate } : { policy: ctx.key!.policy, state: ctx.rate };
  const app = appState(rt, ctx);
  return app !== null && app.remaining < pick.state.remaining ? { policy: ctx.key!.appPolicy!, state: app } : pick;
}

/** The verify API's `ratelimit` (gateway/verify.ts): the tighter of the request's buckets; null without a key. */
export function rateSummary(rt: Runtime, ctx: RequestContext): { limit: number; remaining: number; reset: number } | null {
  if (ctx.key === null) return null;
  peekUnspent(rt, ctx);
  const { policy, state } = tighter(rt, ctx);
  return { limit: policy.limit, remaining: state.remaining, reset: state.resetSeconds };
}

/**
 * Headers every response to an authenticated request carries, appended to a flat name/value
 * list (as `writeHead` takes it): RateLimit-Policy and RateLimit
 * (draft-ietf-httpapi-ratelimit-headers-11; a request refused before the limiter ran reports
 * its buckets unspent), and Deprecation/Sunset while the key is in a rotation grace.
 */
export function pushKeyHeaders(rt: Runtime, ctx: RequestContext, out: string[]): void {
  const key = ctx.key;
  if (key === null) return;
  const sunset = key.life?.sunset ?? null;
  // A key replaced with a grace period: tell its holder it is going away, and when.
  if (sunset !== null) out.push('deprecation', 'true', 'sunset', sunset);
  const routePolicy = ctx.route?.policy ?? null;
  peekUnspent(rt, ctx);
  let policy = key.policy.header;
  let state = rateItem(key.policy, ctx.rate);
  if (routePolicy !== null) {
    policy += `, ${routePolicy.header}`;
    state += `, ${rateItem(routePolicy, ctx.routeRate)}`;
  }
  const app = appState(rt, ctx);
  if (app !== null) {
    policy += `, ${key.appPolicy!.header}`;
    state += `, ${rateItem(key.appPolicy!, app)}`;
  }
  if (ctx.quotaRemaining >= 0) {
    policy += `, ${key.quota!.header}`;
    state += `, ${quotaItem(key.quota!, ctx.quotaRemaining, ctx.quotaResetAt, ctx.now)}`;
  }
  if (ctx.appQuotaRemaining >= 0) {
    policy += `, ${key.appQuota!.header}`;
    state += `, ${quotaItem(key.appQuota!, ctx.appQuotaRemaining, ctx.appQuotaResetAt, ctx.now)}`;
  }
  out.push('ratelimit-policy', policy, 'ratelimit', state);
  if (rt.config.headers.legacy_rate_limit) {
    const t = tighter(rt, ctx);
    out.push('x-ratelimit-limit', String(t.policy.limit), 'x-ratelimit-remaining', String(t.state.remaining), 'x-ratelimit-reset', String(t.state.resetSeconds));
  }
}

/** pushKeyHeaders into a header object (a refusal's, the verify API's, a WebSocket handshake's). */
export function setKeyHeaders(rt: Runtime, ctx: RequestContext, headers: Record<string, unknown>): void {
  const pairs: string[] = [];
  pushKeyHeaders(rt, ctx, pairs);
  for (let i = 0; i < pairs.length; i += 2) headers[pairs[i]!] = pairs[i + 1];
}

/**
 * A quota's item of RateLimit, beside its `"quota";q=…;w=…` in RateLimit-Policy:
 * `"quota";r=…;t=…` (no `t` when it never refills); the application's is named `"app-quota"`.
 */
function quotaItem(q: QuotaPolicy, remaining: number, resetAt: number, now: number): string {
  return `"${q.name}";r=${remaining}${resetAt === 0 ? '' : `;t=${Math.max(0, Math.ceil((resetAt - now) / 1000))}`}`;
}

/**
 * The WWW-Authenticate challenge of a 401 (RFC 9110 §11.6.1 requires one). A key sent in
 * Authorization uses the Bearer scheme (RFC 6750 §3): no error code when no key came, and
 * `invalid_token` for one that did not pass. A key in a header of its own has no registered
 * scheme; `Key` names it, as Kong's key-auth does, and the body says which header to use.
 */
export const CHALLENGES = Object.freeze({
  bearerMissing: 'Bearer realm="keygate"',
  bearerInvalid: 'Bearer realm="keygate", error="invalid_token"',
  key: 'Key realm="keygate"',
});

function challenge(rt: Runtime, code: string): string {
  if (rt.config.keys.header !== 'authorization') return CHALLENGES.key;
  return code === 'missing_token' ? CHALLENGES.bearerMissing : CHALLENGES.bearerInvalid;
}

/** The JSON body (gateway/error-body.ts) and headers of a refusal. */
export function renderDenial(rt: Runtime, ctx: RequestContext, denial: Denial): { status: number; headers: OutgoingHttpHeaders; body: string } {
  const def = ERRORS[denial.code];
  const json = rt.errorBodies.render(denial, ctx.requestId);
  const headers: Record<string, unknown> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
    [rt.config.headers.request_id]: ctx.requestId,
  };
  if (ctx.listener.hsts) headers['strict-transport-security'] = ctx.listener.hsts;
  if (def.status === 401) headers['www-authenticate'] = denial.challenge ?? challenge(rt, denial.code);
  const retryAfter = denial.extra?.['retry_after'];
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  // A body the client is still sending would otherwise be read to its end, however slowly it
  // comes, before the connection could serve another request: close it instead.
  if (ctx.res !== null) closeUnderUnreadBody(ctx, headers);
  if (denial.code !== 'invalid_token' && denial.code !== 'missing_token') setKeyHeaders(rt, ctx, headers);
  // A browser app on an allowed origin can read why it was refused (docs/cors.md).
  const cors = ctx.api?.cors ?? null;
  if (cors !== null) setCorsHeaders(cors, ctx.req, headers);
  ctx.status = def.status;
  ctx.outcome = denial.code;
  ctx.reason = denial.reason ?? null;
  return { status: def.status, headers: headers as OutgoingHttpHeaders, body: json };
}

/**
 * Answers the client with a refusal, unless an answer already started or the client is gone:
 * then nothing is sent and nothing about the request changes, so its record says what the
 * client really got.
 */
export function sendDenial(rt: Runtime, ctx: RequestContext, denial: Denial): void {
  const res = ctx.res;
  if (res !== null) {
    if (res.headersSent || res.destroyed) return;
    const { status, headers, body } = renderDenial(rt, ctx, denial);
    res.writeHead(status, headers);
    res.end(ctx.req.method === 'HEAD' ? undefined : body);
    return;
  }
  const socket = ctx.socket;
  if (socket === null || socket.destroyed) return;
  const { status, headers, body } = renderDenial(rt, ctx, denial);
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nconnection: close\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${String(value)}\r\n`;
  socket.end(`${head}\r\n${body}`);
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
