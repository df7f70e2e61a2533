import type { RequestContext } from './context.js';
import { withoutQueryParam } from './query-credential.js';
import type { Runtime } from './runtime.js';
import type { UsageEvent } from './usage-event.js';

/** The longest user agent logged; the rest is cut (a client chooses its length). */
export const USER_AGENT_MAX = 256;

/** Writes one access-log line for a finished request (the record stage calls it). */
export type AccessLog = (event: UsageEvent, ctx: RequestContext) => void;

/**
 * The access log (`log.access`): one JSON line per request, the usage event's fields plus what
 * only an operator reading logs needs: the path as sent, the user agent, the listener. Never a
 * key: the credential's query parameter is removed from the path, and a key shape found in it
 * once percent-escapes are read is redacted (the logger redacts plain ones in every field).
 * Latencies are rounded to the microsecond. docs/observability/README.md lists the fields.
 */
export function createAccessLog(rt: Runtime): AccessLog | null {
  if (!rt.config.log.access) return null;
  const log = rt.log;
  const { query_param: param, prefix } = rt.config.keys;
  const keyShape = new RegExp(`${prefix}_[a-z]+_[0-9A-Za-z]{40,}`, 'g');
  return (e, ctx) => {
    const trace = ctx.trace;
    log.info('request', {
      ...e,
      time: new Date(e.time).toISOString(),
      route: e.route ?? ctx.api?.unlistedTemplate ?? null,
      latency_ms: micros(e.latency_ms),
      upstream_ms: e.upstream_ms === null ? null : micros(e.upstream_ms),
      client_ip: redacted(e.client_ip, keyShape),
      path: loggedPath(ctx.req.url ?? '', param, keyShape),
      user_agent: userAgent(ctx.req.headers['user-agent'], keyShape),
      listener: ctx.listener.address ?? null,
      // With tracing on, the line names its span, so a log line and its trace find each other.
      ...(trace === null ? undefined : { trace_id: trace.traceId, span_id: trace.spanId }),
    });
  };
}

/** Milliseconds rounded to the microsecond, printed without float noise (88.776, not 88.77631800000017). */
export function micros(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** The user agent, cut to USER_AGENT_MAX; keys are redacted before the cut, which could leave part of one unrecognised. */
function userAgent(ua: string | undefined, keyShape: RegExp): string | null {
  if (ua === undefined) return null;
  return redacted(ua, keyShape).slice(0, USER_AGENT_MAX);
}

/**
 * The request target as the client sent it, less every spelling of the credential parameter
 * (as the forward stage removes it), then through `redacted`.
 */
export function loggedPath(url: string, param: string | null, keyShape: RegExp): string {
  const q = url.indexOf('?');
  return redacted(param === null || q === -1 ? url : url.slice(0, q) + withoutQueryParam(url.slice(q), param), keyShape);
}

/**
 * `text` with every key in it redacted, including a key that shows only once percent-escapes
 * are decoded, however many times it was escaped (`gw%5Flive%5F…`, `gw%25255F…`): the logger's
 * own guard matches plain key shapes only. Such a text is logged decoded, its keys redacted;
 * any other is logged as sent.
 */
export function redacted(text: string, keyShape: RegExp): string {
  let decoded = text;
  // Until nothing changes: each round that changes the text shortens it, so this ends.
  while (decoded.includes('%')) {
    const next = decoded.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    if (next === decoded) break;
    decoded = next;
  }
  keyShape.lastIndex = 0;
  if (keyShape.test(decoded)) return decoded.replace(keyShape, '[redacted]');
  return text;
}
