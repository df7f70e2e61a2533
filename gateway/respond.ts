import type { OutgoingHttpHeaders } from 'node:http';
import { ERRORS, INVALID_TOKEN_REASONS, type ErrorBody } from '../core/errors.js';
import type { LimitPolicy, RateState } from '../core/limiter.js';
import type { Denial, RequestContext } from './context.js';
import { bodyUnread, lingerOnClose } from './in-flight.js';
import type { Runtime } from './runtime.js';

function rateItem(p: LimitPolicy, s: RateState): string {
  return `"${p.name}";r=${s.remaining};t=${s.resetSeconds}`;
}

/**
 * Headers every response to an authenticated request carries: RateLimit-Policy and RateLimit
 * (draft-ietf-httpapi-ratelimit-headers-11; a request refused before the limiter ran reports
 * its buckets unspent), and Deprecation/Sunset while the key is in a rotation grace.
 */
export function setKeyHeaders(rt: Runtime, ctx: RequestContext, headers: Record<string, unknown>): void {
  const key = ctx.key;
  if (key === null) return;
  const sunset = key.life?.sunset ?? null;
  if (sunset !== null) {
    // A key replaced with a grace period: tell its holder it is going away, and when.
    headers['deprecation'] = 'true';
    headers['sunset'] = sunset;
  }
  const routePolicy = ctx.route?.policy ?? null;
  if (!ctx.rateChecked) {
    rt.limiter.peek(key.id, key.policy, ctx.now, ctx.rate);
    if (routePolicy !== null) rt.limiter.peek(`${key.id}\u0000${routePolicy.name}`, routePolicy, ctx.now, ctx.routeRate);
  }
  if (routePolicy === null) {
    headers['ratelimit-policy'] = key.policy.header;
    headers['ratelimit'] = rateItem(key.policy, ctx.rate);
  } else {
    headers['ratelimit-policy'] = `${key.policy.header}, ${routePolicy.header}`;
    headers['ratelimit'] = `${rateItem(key.policy, ctx.rate)}, ${rateItem(routePolicy, ctx.routeRate)}`;
  }
  if (rt.config.headers.legacy_rate_limit) {
    const useRoute = routePolicy !== null && ctx.routeRate.remaining < ctx.rate.remaining;
    const p = useRoute ? routePolicy : key.policy;
    const s = useRoute ? ctx.routeRate : ctx.rate;
    headers['x-ratelimit-limit'] = String(p.limit);
    headers['x-ratelimit-remaining'] = String(s.remaining);
    headers['x-ratelimit-reset'] = String(s.resetSeconds);
  }
}

/** The JSON body and headers of a refusal; both planes' bodies share this shape. */
export function renderDenial(rt: Runtime, ctx: RequestContext, denial: Denial): { status: number; headers: OutgoingHttpHeaders; body: string } {
  const def = ERRORS[denial.code];
  const reasonMessage =
    denial.reason !== undefined && denial.code === 'invalid_token'
      ? INVALID_TOKEN_REASONS[denial.reason as keyof typeof INVALID_TOKEN_REASONS]
      : undefined;
  const body: ErrorBody = { error: denial.code, message: denial.message ?? reasonMessage ?? def.message, request_id: ctx.requestId };
  if (denial.reason !== undefined) body.reason = denial.reason;
  if (denial.extra) Object.assign(body, denial.extra);
  const json = JSON.stringify(body);
  const headers: Record<string, unknown> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
    [rt.config.headers.request_id]: ctx.requestId,
  };
  if (denial.code === 'missing_token') headers['www-authenticate'] = 'Bearer realm="keygate"';
  else if (denial.code === 'invalid_token') headers['www-authenticate'] = 'Bearer realm="keygate", error="invalid_token"';
  const retryAfter = denial.extra?.['retry_after'];
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  // A body the client is still sending would otherwise be read to its end, however slowly it
  // comes, before the connection could serve another request: close it instead.
  if (ctx.res !== null && bodyUnread(ctx)) {
    headers['connection'] = 'close';
    lingerOnClose(ctx.conn);
  }
  if (denial.code !== 'invalid_token' && denial.code !== 'missing_token') setKeyHeaders(rt, ctx, headers);
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
