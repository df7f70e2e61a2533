import { LRUCache } from 'lru-cache';
import type { Clock } from '../core/clock.js';
import { cacheIdOfHex, hexOfCacheId, type KeyHasher } from '../core/key-hash.js';
import type { KeyRecord } from '../core/record.js';
import { StoreUnavailableError, type Store } from '../core/store/store.js';
import { withGen, type CompiledKey } from './compiled-key.js';

/** Cached answer for a hash the store does not know, read in cache generation `gen`. */
export interface Missing {
  readonly missing: true;
  readonly gen: number;
}
/** A cached answer; each carries the cache generation it was read in. */
export type CacheEntry = CompiledKey | Missing;

export function isMissing(entry: CacheEntry): entry is Missing {
  return 'missing' in entry;
}

export interface KeyCacheOptions {
  max: number;
  ttlMs: number;
  negativeTtlMs: number;
  clock: Clock;
}

/**
 * Cache id (the lookup id as 32 latin1 characters, KeyHasher.cacheId) → compiled key, in
 * front of the store. `get` is synchronous so that a hit never awaits; `load` fills a miss,
 * sharing one store read among concurrent callers (lru-cache's fetch). Misses are cached for
 * `negativeTtlMs`. When the store fails, a stale entry is served rather than refusing a key
 * that was valid a moment ago.
 *
 * When the store says changes may have been missed (its change feed reconnected), every entry
 * becomes suspect at once: the generation moves on, and an entry of an older generation is
 * read again on its next use, but kept to serve while the store cannot answer. Flushing the
 * cache instead would turn every key into a 503 while the store is still coming back.
 */
export class KeyCache {
  /**
   * Keyed by the cache id; the value is the compiled key itself, stamped with its generation
   * (no wrapper object: at a million keys, every byte of an entry is a megabyte).
   */
  readonly #lru: LRUCache<string, CacheEntry, string>;
  #gen = 0;
  #hits = 0;
  #misses = 0;

  constructor(store: Store, hasher: KeyHasher, compile: (rec: KeyRecord, gen: number) => CompiledKey, options: KeyCacheOptions) {
    this.#lru = new LRUCache<string, CacheEntry, string>({
      max: options.max,
      ttl: options.ttlMs,
      perf: options.clock,
      // Read the injected clock on every check: a cached reading would let an entry outlive
      // its TTL by up to the resolution, and makes the clock un-drivable in tests.
      ttlResolution: 0,
      updateAgeOnGet: false,
      noDeleteOnStaleGet: true,
      fetchMethod: async (id, stale, { options: fetchOptions, context: key }) => {
        // What is read now is as old as this generation: a reconnect meanwhile makes it suspect.
        const gen = this.#gen;
        try {
          let rec = await store.getKeyByHash(hexOfCacheId(id));
          let fallback = false;
          if (!rec) {
            for (const older of hasher.fallbacks(key)) {
              rec = await store.getKeyByHash(older);
              if (rec) {
                fallback = true;
                break;
              }
            }
          }
          if (!rec) {
            fetchOptions.ttl = options.negativeTtlMs;
            return Object.freeze({ missing: true as const, gen });
          }
          // Invalidations name the stored hash, not this one: keep such entries briefly.
          if (fallback) fetchOptions.ttl = options.negativeTtlMs;
          const entry = compile(rec, gen);
          if (entry.gen !== gen) throw new Error('KeyCache: compile must stamp the generation it is given');
          return entry;
        } catch (err) {
          if (stale !== undefined && !isMissing(stale)) {
            // Served while the store is away; asked again after negativeTtlMs, or at once
            // when it reconnects (the generation moves on).
            fetchOptions.ttl = options.negativeTtlMs;
            return withGen(stale, gen);
          }
          throw new StoreUnavailableError('key store unreachable', { cause: err });
        }
      },
    });
    store.onKeyChange((hash) => {
      if (hash === null) this.#gen++;
      else this.#lru.delete(cacheIdOfHex(hash));
    });
  }

  /** A fresh entry for a cache id (KeyHasher.cacheId), or undefined when the store must be asked. Never awaits. */
  get(id: string): CacheEntry | undefined {
    const entry = this.#lru.get(id);
    if (entry === undefined || entry.gen !== this.#gen) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    return entry;
  }

  /** Reads the key of cache id `id` (KeyHasher.cacheId of `key`) from the store. */
  async load(id: string, key: string): Promise<CacheEntry> {
    // A fetch is aborted when its entry is invalidated meanwhile; ask again for the new state.
    for (let attempt = 0; ; attempt++) {
      try {
        // Forced: an entry of an older generation is fresh by its TTL but must be read again.
        const entry = await this.#lru.fetch(id, { context: key, forceRefresh: true });
        if (entry !== undefined) return entry;
      } catch (err) {
        if (err instanceof StoreUnavailableError || attempt >= 2) throw err;
      }
      if (attempt >= 2) throw new StoreUnavailableError('key lookup did not settle');
    }
  }

  get size(): number {
    return this.#lru.size;
  }

  get stats(): { hits: number; misses: number } {
    return { hits: this.#hits, misses: this.#misses };
  }
}
