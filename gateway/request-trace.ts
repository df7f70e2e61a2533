/*
 * A request's part in a trace, as its context carries it (gateway/context.ts). Its own file,
 * so that the context, which every stage reads, and the tracer (gateway/trace.ts), which
 * creates it and reads the context, do not import each other.
 */

/** One request's part in a trace: ids, sampling, and the stage timings its span reports. */
export class RequestTrace {
  readonly traceId: string;
  readonly spanId: string;
  /** The client's span, when it sent a valid traceparent; null when Keygate started the trace. */
  readonly parentId: string | null;
  readonly sampled: boolean;
  /** The client's tracestate, validated and bounded; null when absent or unusable. */
  readonly traceState: string | null;
  /** Milliseconds spent in resolve-key and rate-limit (-1: the stage did not run). */
  resolveMs = -1;
  rateLimitMs = -1;

  constructor(traceId: string, spanId: string, parentId: string | null, sampled: boolean, traceState: string | null) {
    this.traceId = traceId;
    this.spanId = spanId;
    this.parentId = parentId;
    this.sampled = sampled;
    this.traceState = traceState;
  }

  /** The traceparent the upstream receives: this trace, Keygate's span as its parent. */
  get traceparent(): string {
    return `00-${this.traceId}-${this.spanId}-${this.sampled ? '01' : '00'}`;
  }
}
