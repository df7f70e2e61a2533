import { LRUCache } from 'lru-cache';
import type { Clock } from '../core/clock.js';
import type { Denial, RequestContext } from './context.js';
import { DenialsByNumber } from './error-body.js';
import { clientOf } from '../core/ip.js';

export interface InvalidKeyBrakeOptions {
  /** Invalid keys one client may send within a window. */
  max: number;
  windowMs: number;
  /** Client addresses counted at once; the least recently counted is forgotten first. */
  maxAddresses: number;
  clock: Clock;
}

/**
 * The invalid-key brake (docs/architecture.md, Invalid-key brake): per client address, the
 * invalid keys within a window that starts at the first of them. Once `max` are counted, the
 * address's keys are refused until the window ends, without asking the store, unless the key is
 * in the key cache (a known key costs nothing to check, and the client behind the address may
 * hold one).
 *
 * Counted: keys of a bad shape or checksum, and well-formed keys the store does not know.
 * Revoked, expired, suspended and pending keys are not: they are keys that were issued, so
 * no amount of them comes from guessing, and after their first lookup they are cache hits;
 * counting them would let a client retrying an old key lock its neighbours' new keys out.
 *
 * An IPv6 client counts by its /64 prefix, the smallest block one subscriber is given: an
 * attacker holding one has 2^64 addresses to rotate through. The counts live in an LRU
 * bounded by `maxAddresses` whose entries expire with their window, and the count is the
 * entry itself (a number): nothing is allocated per address beyond the LRU's own slot.
 *
 * Only requests that missed the positive key cache or carried an invalid key come here; a
 * cached known key never does.
 */
export class InvalidKeyBrake {
  readonly #counts: LRUCache<string, number>;
  readonly #max: number;
  readonly #refusals = new DenialsByNumber((retryAfter) => ({
    code: 'too_many_invalid_keys',
    message: `Too many invalid API keys came from this address; try again in ${retryAfter} second${retryAfter === 1 ? '' : 's'}, with a valid key.`,
    extra: Object.freeze({ retry_after: retryAfter }),
  }));

  constructor(options: InvalidKeyBrakeOptions) {
    this.#max = options.max;
    this.#counts = new LRUCache<string, number>({
      max: options.maxAddresses,
      ttl: options.windowMs,
      perf: options.clock,
      // The injected clock read on every check, as the key cache does (gateway/key-cache.ts).
      ttlResolution: 0,
      updateAgeOnGet: false,
    });
  }

  /** The 429 for the request's client while it is braked; undefined when it may go on. */
  check(ctx: RequestContext): Denial | undefined {
    return this.#check(clientOf(ctx.clientIp));
  }

  /** Counts one invalid key of the request's client. */
  count(ctx: RequestContext): void {
    this.#count(clientOf(ctx.clientIp));
  }

  /** `denial` for an invalid key, counted; or the 429 when the client is braked already (not counted). */
  refuse(ctx: RequestContext, denial: Denial): Denial {
    const client = clientOf(ctx.clientIp);
    const braked = this.#check(client);
    if (braked !== undefined) return braked;
    this.#count(client);
    return denial;
  }

  #check(client: string): Denial | undefined {
    const count = this.#counts.get(client);
    if (count === undefined || count < this.#max) return undefined;
    const left = this.#counts.getRemainingTTL(client);
    // lru-cache keeps an entry through the very millisecond its TTL ends; the window does not.
    if (left <= 0) return undefined;
    return this.#refusals.get(Math.ceil(left / 1000));
  }

  #count(client: string): void {
    const count = this.#counts.get(client);
    // The window is the first key's: later ones add to the count, not to the window.
    if (count === undefined || this.#counts.getRemainingTTL(client) <= 0) this.#counts.set(client, 1);
    else this.#counts.set(client, count + 1, { noUpdateTTL: true });
  }
}

