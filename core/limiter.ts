import type { RateLimitSpec } from './record.js';

/** A rate-limit policy compiled once: from a plan, a key's own limit, or a route rule. */
export interface LimitPolicy {
  readonly name: string;
  readonly limit: number;
  readonly windowSeconds: number;
  /** Bucket size: `burst`, or `limit` when no burst is set. */
  readonly capacity: number;
  readonly tokensPerMs: number;
  /** This policy's item in the `RateLimit-Policy` header, built once. */
  readonly header: string;
}

export function compilePolicy(name: string, spec: RateLimitSpec): LimitPolicy {
  const capacity = spec.burst ?? spec.limit;
  return Object.freeze({
    name,
    limit: spec.limit,
    windowSeconds: spec.window_seconds,
    capacity,
    tokensPerMs: spec.limit / (spec.window_seconds * 1000),
    header: `"${name}";q=${spec.limit};w=${Math.ceil(spec.window_seconds)}`,
  });
}

/** What one decision leaves for the response headers; written into a caller-owned object. */
export interface RateState {
  allowed: boolean;
  /** Whole tokens left. */
  remaining: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
  /** Seconds until one token is available (at least 1); meaningful when refused. */
  retryAfter: number;
}

export function newRateState(): RateState {
  return { allowed: true, remaining: 0, resetSeconds: 0, retryAfter: 1 };
}

interface Bucket {
  tokens: number;
  last: number;
  policy: LimitPolicy;
}

/**
 * In-process token buckets. A bucket starts full, refills continuously at `limit` tokens per
 * window up to its capacity, and spends one token per admitted request. Full buckets are
 * indistinguishable from absent ones, so a sweep drops them to bound memory.
 */
export class LocalLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #sweep: NodeJS.Timeout;
  readonly #now: () => number;

  constructor(now: () => number, sweepIntervalMs = 60_000) {
    this.#now = now;
    this.#sweep = setInterval(() => this.sweep(), sweepIntervalMs);
    this.#sweep.unref();
  }

  /** Spends one token when there is one. */
  take(id: string, policy: LimitPolicy, now: number, out: RateState): boolean {
    return this.#decide(id, policy, now, out, true);
  }

  /** Reports the bucket without spending; true when a token is there to take. */
  peek(id: string, policy: LimitPolicy, now: number, out: RateState): boolean {
    return this.#decide(id, policy, now, out, false);
  }

  #decide(id: string, policy: LimitPolicy, now: number, out: RateState, spend: boolean): boolean {
    let bucket = this.#buckets.get(id);
    let tokens: number;
    if (bucket === undefined) {
      tokens = policy.capacity;
    } else {
      const elapsed = now - bucket.last;
      tokens = elapsed > 0 ? Math.min(policy.capacity, bucket.tokens + elapsed * policy.tokensPerMs) : bucket.tokens;
      if (tokens > policy.capacity) tokens = policy.capacity;
    }
    const allowed = tokens >= 1;
    if (spend) {
      if (allowed) tokens -= 1;
      if (bucket === undefined) {
        bucket = { tokens, last: now, policy };
        this.#buckets.set(id, bucket);
      } else {
        bucket.tokens = tokens;
        bucket.last = now;
        bucket.policy = policy;
      }
    }
    out.allowed = allowed;
    out.remaining = Math.floor(tokens);
    out.resetSeconds = Math.ceil((policy.capacity - tokens) / policy.tokensPerMs / 1000);
    out.retryAfter = allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / policy.tokensPerMs / 1000));
    return allowed;
  }

  /** Drops buckets that have refilled completely under the policy they were last used with. */
  sweep(): void {
    const now = this.#now();
    for (const [id, b] of this.#buckets) {
      if (b.tokens + (now - b.last) * b.policy.tokensPerMs >= b.policy.capacity) this.#buckets.delete(id);
    }
  }

  get size(): number {
    return this.#buckets.size;
  }

  close(): void {
    clearInterval(this.#sweep);
  }
}
