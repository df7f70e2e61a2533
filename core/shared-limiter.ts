import type { Limiter, LimitPolicy, LocalLimiter, RateState } from './limiter.js';

/**
 * Token buckets that every gateway process reaches: Redis (core/store/redis/buckets.ts) or a
 * SQLite file of one machine (core/store/sqlite/buckets.ts). Both refill on one clock for all
 * processes (Redis's, the machine's), so gateway clocks do not matter.
 */
export interface SharedBuckets {
  /**
   * Takes up to `want` tokens from bucket `id` (full when new; `perMs` tokens a millisecond up
   * to `capacity`): answers the tokens granted (0 when fewer than one is there) and the tokens
   * left. Rejects when the buckets cannot be asked.
   */
  take(id: string, capacity: number, perMs: number, want: number): Promise<[granted: number, left: number]>;
  /** Releases what the buckets own (not a connection they were lent). */
  close?(): void;
}

export interface SharedLimiterOptions {
  /** Tokens a gateway takes at once, as a share of the bucket's capacity (at least 1). */
  leaseFraction: number;
  leaseMax: number;
  /** Leased tokens not spent within this are forgotten (they stay spent in the shared bucket). */
  leaseTtlMs: number;
}

interface Lease {
  /** Tokens taken from the shared bucket and not yet spent here. */
  tokens: number;
  /** Tokens the shared bucket had left when this lease was taken. */
  shared: number;
  until: number;
}

/**
 * Token buckets shared by every gateway (`SharedBuckets`), exact by construction: a request is
 * admitted only with a token the shared bucket handed out, so all gateways together never admit
 * more than capacity + rate × elapsed. To keep a round trip off most requests, a gateway takes
 * a small lease of tokens at once (`leaseFraction` of the capacity, at most `leaseMax`) and
 * spends it locally; the price is that tokens leased by one gateway and not yet spent are
 * unavailable to the others for up to `leaseTtlMs`. Small buckets lease one token at a time
 * and so are exact per request. When the buckets cannot be asked, each policy's
 * `onStoreFailure` decides: admit (`open`), refuse with 503 (`closed`), or count in this
 * process (`local`).
 */
export class SharedLimiter implements Limiter {
  readonly shared = true;
  readonly #buckets: SharedBuckets;
  readonly #local: LocalLimiter;
  readonly #options: SharedLimiterOptions;
  readonly #leases = new Map<string, Lease>();
  /** Round trips in flight, by bucket; requests that find no leased token wait for these. */
  readonly #pending = new Map<string, Promise<{ granted: number; shared: number } | null>>();
  readonly #sweep: NodeJS.Timeout;
  #failedAt = Number.NEGATIVE_INFINITY;
  #failing = false;

  constructor(buckets: SharedBuckets, local: LocalLimiter, options: SharedLimiterOptions) {
    this.#buckets = buckets;
    this.#local = local;
    this.#options = options;
    this.#sweep = setInterval(() => {
      const now = performance.now();
      for (const [id, lease] of this.#leases) if (lease.until <= now) this.#leases.delete(id);
    }, options.leaseTtlMs * 4);
    this.#sweep.unref();
  }

  /** Since the last failed call, until one succeeds (or 5 s pass without one failing). */
  get degraded(): boolean {
    return this.#failing && performance.now() - this.#failedAt < 5_000;
  }

  take(id: string, policy: LimitPolicy, now: number, out: RateState): boolean | Promise<boolean> {
    const lease = this.#leases.get(id);
    if (lease !== undefined && lease.tokens >= 1 && lease.until > performance.now()) {
      lease.tokens--;
      report(out, policy, lease.shared + lease.tokens, true);
      return true;
    }
    return this.#refill(id, policy, now, out);
  }

  /**
   * Waits for a lease: one round trip per bucket at a time, however many requests wait for
   * it. When others spent the whole grant first, asks again; only an empty grant refuses.
   */
  #refill(id: string, policy: LimitPolicy, now: number, out: RateState): Promise<boolean> {
    let pending = this.#pending.get(id);
    if (pending === undefined) {
      pending = this.#ask(id, policy).finally(() => this.#pending.delete(id));
      this.#pending.set(id, pending);
    }
    return pending.then((answer) => {
      if (answer === null) return this.#fallback(id, policy, now, out);
      const lease = this.#leases.get(id);
      if (lease !== undefined && lease.tokens >= 1) {
        lease.tokens--;
        report(out, policy, lease.shared + lease.tokens, true);
        return true;
      }
      if (answer.granted === 0) {
        report(out, policy, answer.shared, false);
        return false;
      }
      return this.#refill(id, policy, now, out);
    });
  }

  /** One take from the shared bucket: adds what it grants to the lease; null when it could not be asked. */
  async #ask(id: string, policy: LimitPolicy): Promise<{ granted: number; shared: number } | null> {
    const want = Math.max(1, Math.min(this.#options.leaseMax, Math.floor(policy.capacity * this.#options.leaseFraction)));
    try {
      const [granted, shared] = await this.#buckets.take(id, policy.capacity, policy.tokensPerMs, want);
      this.#failing = false;
      const at = performance.now();
      const lease = this.#leases.get(id);
      // Tokens still leased here (a refund) are kept with the new ones.
      const kept = lease !== undefined && lease.until > at ? lease.tokens : 0;
      this.#leases.set(id, { tokens: kept + granted, shared, until: at + this.#options.leaseTtlMs });
      return { granted, shared };
    } catch {
      this.#failing = true;
      this.#failedAt = performance.now();
      return null;
    }
  }

  #fallback(id: string, policy: LimitPolicy, now: number, out: RateState): boolean {
    if (policy.onStoreFailure === 'local') return this.#local.take(id, policy, now, out);
    const open = policy.onStoreFailure === 'open';
    report(out, policy, open ? policy.capacity : 0, open);
    out.unavailable = !open;
    return open;
  }

  refund(id: string, policy: LimitPolicy, now: number): void {
    const lease = this.#leases.get(id);
    if (lease !== undefined) lease.tokens++;
    else this.#local.refund(id, policy, now);
  }

  peek(id: string, policy: LimitPolicy, _now: number, out: RateState): boolean {
    const lease = this.#leases.get(id);
    // Unknown here: reported as the last lease saw it, or full.
    report(out, policy, lease ? lease.shared + lease.tokens : policy.capacity, true);
    return true;
  }

  close(): void {
    clearInterval(this.#sweep);
    this.#local.close();
    this.#buckets.close?.();
  }
}

function report(out: RateState, policy: LimitPolicy, tokens: number, allowed: boolean): void {
  out.allowed = allowed;
  out.unavailable = false;
  out.remaining = Math.max(0, Math.floor(tokens));
  out.resetSeconds = Math.max(0, Math.ceil((policy.capacity - tokens) / policy.tokensPerMs / 1000));
  out.retryAfter = allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / policy.tokensPerMs / 1000));
}
