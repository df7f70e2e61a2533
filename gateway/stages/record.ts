import { ERRORS } from '../../core/errors.js';
import { createAccessLog } from '../access-log.js';
import type { RequestContext } from '../context.js';
import type { Runtime, UsageEvent } from '../runtime.js';
import { upstreamFailure } from '../upstream-request.js';

/**
 * The one place a request's outcome is recorded, once its response is over, denials
 * included. Sinks (usage shipping, metrics) receive the same event; the access log receives it
 * with the request, for what only a log line shows (path, user agent, listener).
 */
export function createRecordStage(rt: Runtime): (ctx: RequestContext) => void {
  const sinks = rt.sinks;
  const access = createAccessLog(rt);
  const countryHeader = rt.config.usage.country_header;
  return function record(ctx: RequestContext): void {
    const failed = ctx.res?.errored;
    if (failed && ctx.outcome === 'ok') {
      // The upstream failed after its status went out (a reset or timeout mid-body): the client
      // saw that status, then a cut connection. Counted as the failure it was, not as a success.
      const denial = upstreamFailure(failed);
      ctx.outcome = denial.code;
      ctx.status = ERRORS[denial.code].status;
    }
    if (ctx.trace !== null) rt.tracer!.end(ctx, ctx.trace);
    if (sinks.length === 0 && access === null) return;
    const key = ctx.key;
    const event: UsageEvent = {
      time: ctx.now,
      request_id: ctx.requestId,
      key_id: key?.id ?? null,
      application: key?.application ?? null,
      environment: ctx.listener.environment,
      api: ctx.api?.name ?? null,
      method: ctx.method,
      route: ctx.route?.template ?? null,
      // A response that never started means the client left first (nginx's 499).
      status: ctx.status === 0 ? 499 : ctx.status,
      outcome: ctx.status === 0 ? 'client_closed_request' : ctx.outcome,
      reason: ctx.reason,
      latency_ms: performance.now() - ctx.startedAt,
      upstream_ms: ctx.upstreamMs < 0 ? null : ctx.upstreamMs,
      client_ip: ctx.clientIp,
      rate_limit_remaining: ctx.rateChecked ? ctx.rate.remaining : null,
      quota_remaining: ctx.quotaRemaining < 0 ? null : ctx.quotaRemaining,
      would_deny: ctx.wouldDeny,
      tenant: key?.tenant ?? null,
      bytes_in: bytesIn(ctx),
      bytes_out: ctx.conn.bytesWritten - ctx.bytesWritten0,
      country: countryHeader === null ? null : country(ctx.req.headers[countryHeader]),
    };
    for (const sink of sinks) {
      try {
        sink(event);
      } catch (err) {
        rt.log.error('usage sink failed', { err: String(err) });
      }
    }
    access?.(event, ctx);
  };
}

/** The request body's size: its Content-Length, else what the connection read after the head. */
function bytesIn(ctx: RequestContext): number {
  const length = ctx.req.headers['content-length'];
  if (length !== undefined) {
    const n = Number(length);
    if (Number.isSafeInteger(n) && n >= 0) return n;
  }
  return Math.max(0, ctx.conn.bytesRead - ctx.bytesRead0);
}

function country(value: string | string[] | undefined): string | null {
  return typeof value === 'string' && value.length === 2 && /^[A-Za-z]{2}$/.test(value) ? value.toUpperCase() : null;
}
