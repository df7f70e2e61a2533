import { randomFillSync } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Config } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import type { RequestContext, Stage, StageResult } from './context.js';
import { OtlpExporter, type FinishedSpan } from './otlp-exporter.js';
import { RequestTrace } from './request-trace.js';

/*
 * Distributed tracing (docs/operations.md, Tracing): W3C Trace Context
 * (https://www.w3.org/TR/trace-context/) read from the client or started, Keygate's span sent
 * upstream as the parent, and one span per request exported over OTLP/HTTP. Nothing here runs
 * when `tracing.enabled` is false: the pipeline then has no trace stage, `ctx.trace` stays null,
 * and `traceparent`/`tracestate` reach the upstream as the client sent them, like any header.
 */

export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';
/** What Keygate passes on of a client's tracestate (the W3C spec asks for at least 512). */
export const TRACESTATE_MAX_CHARS = 512;
const TRACESTATE_MAX_MEMBERS = 32;
/** A member longer than this goes first when tracestate must be cut (W3C, §3.3.1.5). */
const TRACESTATE_LONG_MEMBER = 128;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** A client's traceparent, split; null when it is not valid. */
export interface ParentContext {
  traceId: string;
  parentId: string;
  sampled: boolean;
}

/** The four fields of a traceparent, lower-case hex; what follows is judged by the version. */
const TRACEPARENT_FIELDS = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}/;

/**
 * Parses a traceparent strictly (W3C Trace Context §3.2): `version-traceid-parentid-flags`,
 * lower-case hex only, neither id all zeros, version `ff` invalid. Version 00 is exactly 55
 * characters. A later version is read as the spec says (§3.2.4): its first four fields as
 * version 00's, then either the end or a `-`. Two traceparent headers arrive joined by a comma
 * and fail here too, as the spec asks.
 */
export function parseTraceparent(value: string | string[] | undefined): ParentContext | null {
  if (typeof value !== 'string' || value.length < 55 || !TRACEPARENT_FIELDS.test(value)) return null;
  if (value.startsWith('00')) {
    if (value.length !== 55) return null;
  } else if (value.startsWith('ff') || (value.length > 55 && value.charCodeAt(55) !== 45)) return null;
  const traceId = value.slice(3, 35);
  const parentId = value.slice(36, 52);
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return null;
  // The sampled flag is the flags' lowest bit: that of their last hex digit.
  const c = value.charCodeAt(54);
  return { traceId, parentId, sampled: ((c <= 57 ? c - 48 : c - 87) & 1) === 1 };
}

/** One tracestate list-member (W3C §3.3.1.3): a simple or multi-tenant key, `=`, a value. */
const MEMBER = String.raw`(?:[a-z][a-z0-9_*/-]{0,255}|[a-z0-9][a-z0-9_*/-]{0,240}@[a-z][a-z0-9_*/-]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]`;
const TRACESTATE_MEMBER = new RegExp(`^${MEMBER}$`);
/** A whole tracestate as most clients send it: members, commas, no spaces (the fast path). */
const TRACESTATE_PLAIN = new RegExp(`^${MEMBER}(?:,${MEMBER}){0,${TRACESTATE_MAX_MEMBERS - 1}}$`);

/**
 * The client's tracestate as Keygate passes it on: null when absent, empty, of more than 32
 * members or holding one that is not valid (the spec lets a vendor drop a tracestate it cannot
 * parse whole); over TRACESTATE_MAX_CHARS it is cut as W3C §3.3.1.5 says: members over 128
 * characters first, then from the end.
 */
export function boundTraceState(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  if (typeof value === 'string' && value.length <= TRACESTATE_MAX_CHARS && TRACESTATE_PLAIN.test(value)) return value;
  const joined = Array.isArray(value) ? value.join(',') : value;
  if (joined.length > 8 * 1024) return null;
  const members: string[] = [];
  for (const part of joined.split(',')) {
    const m = part.trim();
    if (m === '') continue;
    if (!TRACESTATE_MEMBER.test(m) || members.length === TRACESTATE_MAX_MEMBERS) return null;
    members.push(m);
  }
  if (members.length === 0) return null;
  let out = members.join(',');
  if (out.length <= TRACESTATE_MAX_CHARS) return out;
  const kept = members.filter((m) => m.length <= TRACESTATE_LONG_MEMBER);
  out = kept.join(',');
  while (out.length > TRACESTATE_MAX_CHARS) {
    kept.pop();
    out = kept.join(',');
  }
  return out === '' ? null : out;
}

/**
 * Random ids, hex, from a buffer of CSPRNG bytes refilled when used up: one randomFillSync per
 * 170 requests rather than one call per id.
 */
const pool = Buffer.allocUnsafe(4096);
let poolAt = pool.length;
function randomHex(bytes: number, zero: string): string {
  for (;;) {
    if (poolAt + bytes > pool.length) {
      randomFillSync(pool);
      poolAt = 0;
    }
    const s = pool.toString('hex', poolAt, poolAt + bytes);
    poolAt += bytes;
    if (s !== zero) return s;
  }
}

/** A new span id (8 random bytes, never all zeros). */
export function newSpanId(): string {
  return randomHex(8, ZERO_SPAN);
}

/** A new trace id (16 random bytes, never all zeros). */
export function newTraceId(): string {
  return randomHex(16, ZERO_TRACE);
}

/**
 * Whether a trace is sampled by `ratio` alone: the trace id's last 8 hex digits (random in
 * every trace id, W3C §3.2.2.3) read as a fraction of 2^32. Every process with the same ratio
 * decides the same way for one trace.
 */
export function ratioSampled(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  return parseInt(traceId.slice(24), 16) < ratio * 0x1_0000_0000;
}

type TracingConfig = Config['tracing'];

/**
 * Starts each request's trace and ends its span. Owns the exporter (null when spans are not
 * exported: `tracing.otlp` is null), so it is closed with the gateway.
 */
export class Tracer {
  readonly #ratio: number;
  readonly #parentBased: boolean;
  readonly exporter: OtlpExporter | null;

  constructor(config: TracingConfig, log: Logger) {
    this.#ratio = config.sample_ratio;
    this.#parentBased = config.parent_based;
    const otlp = config.otlp;
    this.exporter =
      otlp === null
        ? null
        : new OtlpExporter(
            {
              endpoint: otlp.endpoint,
              headers: otlp.headers,
              timeoutMs: otlp.timeout_ms,
              maxQueueSpans: otlp.max_queue_spans,
              maxBatchSpans: otlp.max_batch_spans,
              flushIntervalMs: otlp.flush_interval_ms,
              serviceName: config.service_name,
            },
            log,
          );
  }

  /**
   * The request's trace: the client's, when its traceparent is valid, with a new span of
   * Keygate's under the client's; else a new trace (and the client's tracestate, which belongs
   * to the trace it came with, is dropped).
   */
  start(headers: IncomingHttpHeaders): RequestTrace {
    const parent = parseTraceparent(headers[TRACEPARENT]);
    if (parent === null) {
      const traceId = newTraceId();
      return new RequestTrace(traceId, newSpanId(), null, ratioSampled(traceId, this.#ratio), null);
    }
    const sampled = this.#parentBased ? parent.sampled : ratioSampled(parent.traceId, this.#ratio);
    return new RequestTrace(parent.traceId, newSpanId(), parent.parentId, sampled, boundTraceState(headers[TRACESTATE]));
  }

  /** Ends the request's span (the record stage, once the response is over): queued for export when sampled. */
  end(ctx: RequestContext, trace: RequestTrace): void {
    const exporter = this.exporter;
    if (exporter === null || !trace.sampled) return;
    const key = ctx.key;
    const span: FinishedSpan = {
      traceId: trace.traceId,
      spanId: trace.spanId,
      parentId: trace.parentId,
      traceState: trace.traceState,
      method: ctx.req.method ?? 'GET',
      route: ctx.route?.template ?? null,
      path: ctx.path === '' ? null : ctx.path,
      startedAt: ctx.startedAt,
      endedAt: performance.now(),
      // As the record stage counts it: no response started means the client left first.
      status: ctx.status === 0 ? 499 : ctx.status,
      outcome: ctx.status === 0 ? 'client_closed_request' : ctx.outcome,
      reason: ctx.reason,
      requestId: ctx.requestId,
      keyId: key?.id ?? null,
      application: key?.application ?? null,
      api: ctx.api?.name ?? null,
      environment: ctx.listener.environment,
      clientIp: ctx.clientIp,
      resolveMs: trace.resolveMs,
      rateLimitMs: trace.rateLimitMs,
      upstreamStartedAt: ctx.upstreamStartedAt,
      upstreamMs: ctx.upstreamMs,
    };
    exporter.add(span);
  }

  close(): Promise<void> {
    return this.exporter?.close() ?? Promise.resolve();
  }
}

/** The first stage when tracing is on: the request's trace, before anything can refuse it. */
export function createTraceStage(tracer: Tracer): Stage {
  return function trace(ctx: RequestContext): undefined {
    ctx.trace = tracer.start(ctx.req.headers);
    return undefined;
  };
}

/**
 * A stage whose time the request's span reports (`resolve` or `rate_limit`), waiting or not.
 * The pipeline wraps stages only when tracing is on, so with it off they run as they are.
 */
export function timed(stage: Stage, which: 'resolve' | 'rate_limit'): Stage {
  const done = (ctx: RequestContext, t0: number) => {
    const trace = ctx.trace;
    if (trace === null) return;
    if (which === 'resolve') trace.resolveMs = performance.now() - t0;
    else trace.rateLimitMs = performance.now() - t0;
  };
  return function timedStage(ctx: RequestContext) {
    const t0 = performance.now();
    const result = stage(ctx);
    if (!(result instanceof Promise)) {
      done(ctx, t0);
      return result;
    }
    return result.then((r: StageResult) => {
      done(ctx, t0);
      return r;
    });
  };
}

/** Adds the trace's headers to the upstream's (upstream-request.ts, which dropped the client's). */
export function pushTraceHeaders(out: string[], trace: RequestTrace): void {
  out.push(TRACEPARENT, trace.traceparent);
  if (trace.traceState !== null) out.push(TRACESTATE, trace.traceState);
}
