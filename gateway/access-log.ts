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
    log.info('request', {
      ...e,
      time: new Date(e.time).toISOString(),
      route: e.route ?? ctx.api?.unlistedTemplate ?? null,
      latency_ms: micros(e.latency_ms),
      upstream_ms: e.upstream_ms === null ? null : micros(e.upstream_ms),
      path: loggedPath(ctx.req.url ?? '', param, keyShape),
      user_agent: userAgent(ctx.req.headers['user-agent'], keyShape),
      listener: ctx.listener.address ?? null,
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
  if (ua.length <= USER_AGENT_MAX) return ua;
  return ua.replace(keyShape, '[redacted]').slice(0, USER_AGENT_MAX);
}

/**
 * The request target as the client sent it, less every spelling of the credential parameter
 * (as the forward stage removes it). A key shape that shows only once escapes are decoded
 * (`gw%5Flive%5F…`, escaped twice or more included) is not matched by the logger's guard, so such a path is logged decoded
 * with the key redacted.
 */
export function loggedPath(url: string, param: string | null, keyShape: RegExp): string {
  const q = url.indexOf('?');
  const path = param === null || q === -1 ? url : url.slice(0, q) + withoutQueryParam(url.slice(q), param);
  if (!path.includes('%')) return path;
  // Decoded until nothing changes (a few rounds at most): `%255F` is `%5F` is `_`.
  let decoded = path;
  for (let round = 0; round < 4 && decoded.includes('%'); round++) {
    const next = decoded.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    if (next === decoded) break;
    decoded = next;
  }
  keyShape.lastIndex = 0;
  return keyShape.test(decoded) ? decoded.replace(keyShape, '[redacted]') : path;
}
