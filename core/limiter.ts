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
  readonly onStoreFailure: StoreFailureMode;
  /** Upstream requests a key under this policy may have in flight per API; null: the API's share. */
  readonly maxConcurrent: number | null;
  /** `mode: shadow`: a refusal is counted and reported (`would_deny`) but the request goes on. */
  readonly shadow: boolean;
}

/** What a shared limiter does for a policy when its store cannot be asked. */
export type StoreFailureMode = 'open' | 'closed' | 'local';

export function compilePolicy(
  name: string,
  spec: RateLimitSpec,
  onStoreFailure: StoreFailureMode = 'local',
  maxConcurrent: number | null = null,
  mode: 'enforce' | 'shadow' = 'enforce',
): LimitPolicy {
  const capacity = spec.burst ?? spec.limit;
  return Object.freeze({
    name,
    onStoreFailure,
    maxConcurrent,
    shadow: mode === 'shadow',
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
  /** Refused because the shared store could not be asked and the policy fails closed. */
  unavailable: boolean;
}

export function newRateState(): RateState {
  return { allowed: true, remaining: 0, resetSeconds: 0, retryAfter: 1, unavailable: false };
}

/**
 * Token buckets by id. `take` answers synchronously whenever it can; a limiter that must ask a
 * shared store returns a promise instead, and the pipeline waits for it.
 */
export interface Limiter {
  /** Spends one token when there is one. */
  take(id: string, policy: LimitPolicy, now: number, out: RateState): boolean | Promise<boolean>;
  /** Gives back a token just taken, for a request another bucket refused. */
  refund(id: string, policy: LimitPolicy, now: number): void;
  /** Reports the bucket as far as it is known here, without spending. */
  peek(id: string, policy: LimitPolicy, now: number, out: RateState): boolean;
  /** True while the shared store is failing and policies fall back to `onStoreFailure`. */
  readonly degraded: boolean;
  /** Whether buckets are shared by every gateway (in the store) or kept in this process. */
  readonly shared: boolean;
  close(): void;
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
export class LocalLimiter implements Limiter {
  readonly degraded = false;
  readonly shared = false;
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
    out.unavailable = false;
    out.remaining = Math.floor(tokens);
    out.resetSeconds = Math.ceil((policy.capacity - tokens) / policy.tokensPerMs / 1000);
    out.retryAfter = allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / policy.tokensPerMs / 1000));
    return allowed;
  }

  refund(id: string, policy: LimitPolicy, now: number): void {
    const bucket = this.#buckets.get(id);
    if (bucket === undefined) return;
    const elapsed = now - bucket.last;
    bucket.tokens = Math.min(policy.capacity, bucket.tokens + (elapsed > 0 ? elapsed * policy.tokensPerMs : 0) + 1);
    if (elapsed > 0) bucket.last = now;
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
