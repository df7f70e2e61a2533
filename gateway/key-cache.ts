import { LRUCache } from 'lru-cache';
import type { Clock } from '../core/clock.js';
import { cacheIdOfHex, ownCacheId, type KeyHasher } from '../core/key-hash.js';
import type { KeyRecord } from '../core/record.js';
import { type Store } from '../core/store/store.js';
import { CompiledKey, isSharedGrant, withGen, type Grant, type KeyLife } from './compiled-key.js';
import { KeyTable } from './key-table.js';
import { StoreUnavailableError } from '../core/internal-errors.js';

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
  /** Keys the store knows, at most. */
  max: number;
  ttlMs: number;
  /** Keys the store does not know, at most: kept apart, so that no number of them evicts a known key. */
  negativeMax: number;
  negativeTtlMs: number;
  clock: Clock;
}

/** A store read in flight; `dropped` once its key changed meanwhile, so its answer is not kept. */
interface Read {
  promise: Promise<CacheEntry>;
  dropped: boolean;
}

/**
 * Cache id (the lookup id's first 16 digest bytes as latin1 characters, KeyHasher.cacheId) →
 * compiled key, in front of the store. `get` is synchronous so that a hit never awaits; `load`
 * fills a miss, sharing one store read among concurrent callers. Misses are cached for
 * `negativeTtlMs`, in an LRU of their own: a flood of distinct unknown keys only evicts other
 * unknown keys, never a known one (docs/architecture.md, Key lookup). When the store fails, a
 * stale entry is served rather than refusing a key that was valid a moment ago.
 *
 * When the store says changes may have been missed (its change feed reconnected), every entry
 * becomes suspect at once: the generation moves on, and an entry of an older generation is
 * read again on its next use, but kept to serve while the store cannot answer. Flushing the
 * cache instead would turn every key into a 503 while the store is still coming back.
 *
 * Reads in flight are shared here rather than through lru-cache's fetch(), which gives every
 * read an AbortController and a listener on its signal: loading a million keys, those were the
 * largest part of what was promoted to the old generation and died there, leaving it full of
 * holes between the cached keys (docs/performance.md, Scaling and memory).
 */
export class KeyCache {
  /**
   * Known keys by cache id, in typed arrays (gateway/key-table.ts): a row holds the key id's
   * bytes, generation and expiry; its value is what the key shares with others (a Tail).
   */
  readonly #table: KeyTable<Tail>;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  /**
   * The compiled keys last handed out, by row (a direct-mapped cache of RECENT of them): a key
   * hit again while its object is here costs no allocation. A row's slot is cleared whenever
   * the row is set again.
   */
  readonly #recent: (CompiledKey | undefined)[] = new Array<CompiledKey | undefined>(RECENT).fill(undefined);
  readonly #recentRow = new Int32Array(RECENT).fill(-1);
  /** Keys the store does not know, by cache id; one shared Missing object per generation. */
  readonly #missing: LRUCache<string, Missing>;
  readonly #reads = new Map<string, Read>();
  readonly #changed: ((id: string | null) => void)[] = [];
  readonly #store: Store;
  readonly #hasher: KeyHasher;
  #compile: (rec: KeyRecord, gen: number) => CompiledKey;
  readonly #negativeTtlMs: number;
  #gen = 0;
  #missingGen: Missing = Object.freeze({ missing: true as const, gen: 0 });
  #hits = 0;
  #misses = 0;

  constructor(store: Store, hasher: KeyHasher, compile: (rec: KeyRecord, gen: number) => CompiledKey, options: KeyCacheOptions) {
    this.#store = store;
    this.#hasher = hasher;
    this.#compile = compile;
    this.#negativeTtlMs = options.negativeTtlMs;
    // The injected clock is read on every check (as lru-cache with ttlResolution 0 did); an
    // expired entry stays until replaced: it is what a store outage serves.
    this.#table = new KeyTable<Tail>(options.max);
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs;
    this.#missing = new LRUCache<string, Missing>({
      max: options.negativeMax,
      ttl: options.negativeTtlMs,
      perf: options.clock,
      ttlResolution: 0,
      updateAgeOnGet: false,
    });
    store.onKeyChange((hash) => {
      if (hash === null) {
        this.#gen++;
        for (const listener of this.#changed) listener(null);
        return;
      }
      const id = cacheIdOfHex(hash);
      this.#table.delete(id);
      this.#missing.delete(id);
      const read = this.#reads.get(id);
      if (read !== undefined) {
        // Whatever that read returns may predate the change: its callers read again.
        read.dropped = true;
        this.#reads.delete(id);
      }
      for (const listener of this.#changed) listener(id);
    });
  }

  /**
   * Compiles keys with `compile` from now on (a configuration reload changed the plans they
   * point to): the generation moves on, so every cached key is read and compiled again on its
   * next use, as after a missed change. While the store cannot answer, an entry compiled
   * before is served as it is, old plan included, rather than refused.
   */
  recompile(compile: (rec: KeyRecord, gen: number) => CompiledKey): void {
    this.#compile = compile;
    this.#gen++;
  }

  /**
   * Calls `listener` once the cache has let go of a changed key, with its cache id, or with
   * null when changes may have been missed: a `load` made from the listener reads the store.
   */
  onChange(listener: (id: string | null) => void): void {
    this.#changed.push(listener);
  }

  /** A fresh entry for a cache id (KeyHasher.cacheId), or undefined when the store must be asked. Never awaits. */
  get(id: string): CacheEntry | undefined {
    const table = this.#table;
    const row = table.find(id);
    if (row !== -1 && !table.isStale(row, this.#clock.now())) {
      table.touch(row);
      if (table.gen(row) !== this.#gen) {
        this.#misses++;
        return undefined;
      }
      this.#hits++;
      return this.#entry(row);
    }
    const missing = this.#missing.get(id);
    if (missing === undefined || missing.gen !== this.#gen) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    return missing;
  }

  /** The compiled key of `row`: the one handed out last, or one made from the row. */
  #entry(row: number): CompiledKey {
    const r = row & (RECENT - 1);
    const recent = this.#recent[r];
    if (recent !== undefined && this.#recentRow[r] === row) return recent;
    const table = this.#table;
    const tail = table.value(row);
    const id = tail.id ?? table.keyId(row)!;
    const entry = new CompiledKey(id, tail.life, tail.grant, tail.application, table.gen(row), tail.account ?? id);
    this.#recent[r] = entry;
    this.#recentRow[r] = row;
    return entry;
  }

  /** Keeps `entry` for cache id `id`, stale after `ttl` ms; a get of it returns `entry` itself. */
  #keep(id: string, entry: CompiledKey, ttl: number): void {
    const row = this.#table.set(id, tailOf(entry), entry.id, entry.gen, this.#clock.now(), ttl);
    const r = row & (RECENT - 1);
    this.#recent[r] = entry;
    this.#recentRow[r] = row;
  }

  /** Reads the key of cache id `id` (KeyHasher.cacheId of `key`) from the store. */
  async load(id: string, key: string): Promise<CacheEntry> {
    for (let attempt = 0; attempt < 3; attempt++) {
      let read = this.#reads.get(id);
      if (read === undefined) {
        read = { promise: undefined as unknown as Promise<CacheEntry>, dropped: false };
        // Registered first: #read's `finally` unregisters it, and must find it there even if
        // the read fails before its first await.
        this.#reads.set(id, read);
        read.promise = this.#read(id, key, read);
      }
      const entry = await read.promise;
      // Otherwise the key changed while it was read: what came back may be the old state.
      if (!read.dropped) return entry;
    }
    throw new StoreUnavailableError('key lookup did not settle');
  }

  /** One store read for `id`, kept in the cache unless `read` is dropped meanwhile. */
  async #read(id: string, key: string, read: Read): Promise<CacheEntry> {
    // What is read now is as old as this generation: a reconnect meanwhile makes it suspect.
    const gen = this.#gen;
    try {
      let rec = await this.#store.getKeyByHash(this.#hasher.hash(key));
      // Invalidations name the stored hash, not this one: keep an entry found by another briefly.
      const brief = rec === null;
      if (rec === null) {
        for (const older of this.#hasher.fallbacks(key)) {
          rec = await this.#store.getKeyByHash(older);
          if (rec !== null) break;
        }
      }
      if (rec === null) {
        const missing = this.#missingOf(gen);
        // Replaces a stale known entry too: an outage must not serve a key the store no longer has.
        if (!read.dropped) {
          this.#table.delete(id);
          this.#missing.set(ownCacheId(id), missing);
        }
        return missing;
      }
      const entry = this.#compile(rec, gen);
      if (entry.gen !== gen) throw new Error('KeyCache: compile must stamp the generation it is given');
      if (!read.dropped) {
        this.#missing.delete(id);
        this.#keep(id, entry, brief ? this.#negativeTtlMs : this.#ttlMs);
      }
      return entry;
    } catch (err) {
      const row = this.#table.find(id);
      if (row === -1) throw new StoreUnavailableError('key store unreachable', { cause: err });
      // Served while the store is away; asked again after negativeTtlMs, or at once when it
      // reconnects (the generation moves on).
      const entry = withGen(this.#entry(row), gen);
      if (!read.dropped) this.#keep(id, entry, this.#negativeTtlMs);
      return entry;
    } finally {
      if (this.#reads.get(id) === read) this.#reads.delete(id);
    }
  }

  /** The Missing entry of generation `gen`: every unknown key read in it shares the one object. */
  #missingOf(gen: number): Missing {
    if (this.#missingGen.gen !== gen) this.#missingGen = Object.freeze({ missing: true as const, gen });
    return this.#missingGen;
  }

  /** Known keys cached (unknown ones are counted apart, in `negativeSize`). */
  get size(): number {
    return this.#table.size;
  }

  get negativeSize(): number {
    return this.#missing.size;
  }

  get stats(): { hits: number; misses: number } {
    return { hits: this.#hits, misses: this.#misses };
  }
}

/** Compiled keys kept at once as objects (a power of two): see KeyCache.#recent. */
const RECENT = 256;

/**
 * What a cached key holds besides its id, generation and expiry (which its table row holds).
 * Most keys (no times, their own quota account, an id the row holds) share one Tail with
 * every key of the same Grant and application; the others have one of their own.
 */
interface Tail {
  readonly grant: Grant;
  readonly application: string | null;
  readonly life: KeyLife | null;
  /** Null: the key's own id. */
  readonly account: string | null;
  /** Null: the table row holds it. */
  readonly id: string | null;
}

/** Tails shared by keys of a Grant, by application (a Grant dies with the keys that hold it). */
const sharedTails = new WeakMap<Grant, Map<string | null, Tail>>();

function tailOf(k: CompiledKey): Tail {
  const id = KeyTable.holds(k.id) ? null : k.id;
  const account = k.account === k.id ? null : k.account;
  // A key with parts of its own, or whose Grant is its own (past the grants table's bound):
  // a Tail of its own, not an entry in sharedTails for every such key.
  if (k.life !== null || account !== null || id !== null || !isSharedGrant(k.grant)) return { grant: k.grant, application: k.application, life: k.life, account, id };
  let byApp = sharedTails.get(k.grant);
  if (byApp === undefined) sharedTails.set(k.grant, (byApp = new Map()));
  let tail = byApp.get(k.application);
  if (tail === undefined) byApp.set(k.application, (tail = Object.freeze({ grant: k.grant, application: k.application, life: null, account: null, id: null })));
  return tail;
}
