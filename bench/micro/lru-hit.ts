import { parseArgs } from 'node:util';
import { LRUCache } from 'lru-cache';
import { systemClock } from '../../core/clock.js';
import { generateKey } from '../../core/key-format.js';
import { KeyHasher } from '../../core/key-hash.js';
import { compilePolicy } from '../../core/limiter.js';
import type { KeyRecord } from '../../core/record.js';
import type { Store } from '../../core/store/store.js';
import { compileKey } from '../../gateway/compiled-key.js';
import { KeyCache } from '../../gateway/key-cache.js';
import { keyRecord } from '../../test/lib/records.js';
import { measure, report, shuffled, type CaseResult } from './lib.js';

/**
 * Nanoseconds per lookup of a cached key (gateway/key-cache.ts KeyCache.get, an LRU hit) with
 * 1, 100,000 and 1,000,000 keys cached, each key looked up in random order:
 *   - KeyCache.get with the cache id string the cache was filled with (its hash code is cached
 *     in the string, and equal strings are the same object);
 *   - the resolve-key stage's work: hash the key (KeyHasher.cacheId), then KeyCache.get with that
 *     fresh string, as a request does (the Map must hash and compare its 32 characters);
 *   - lru-cache configured without a TTL, and a plain Map, for what the TTL check (a clock read
 *     per get) and the cache itself add.
 * The store is a stub Map: a hit never reaches it.
 *   node --import=tsx bench/micro/lru-hit.ts [--sizes 1,100000,1000000]
 */
const { values } = parseArgs({ options: { sizes: { type: 'string', default: '1,100000,1000000' } } });
const sizes = values.sizes.split(',').map(Number).filter((n) => Number.isInteger(n) && n >= 1 && n <= 2_000_000);

const hasher = new KeyHasher(null);
const plans = new Map([['default', compilePolicy('default', { limit: 1_000_000_000, window_seconds: 1, burst: null })]]);
const now = Date.now();
const cases: CaseResult[] = [];

for (const size of sizes) {
  const keys: string[] = [];
  const hashes: string[] = [];
  const byHash = new Map<string, KeyRecord>();
  for (let i = 0; i < size; i++) {
    const key = Buffer.from(`Bearer ${generateKey('gw', 'live')}`).toString().slice(7);
    // As bench/target.ts's key: one scope, one API, one allowlist entry.
    const rec = keyRecord(key, hasher, now, { scopes: ['read'], apis: ['bench'], ip_allowlist: ['127.0.0.0/8'] });
    keys.push(key);
    hashes.push(hasher.cacheId(key));
    byHash.set(rec.hash, rec);
  }
  const store = { getKeyByHash: async (h: string) => byHash.get(h) ?? null, onKeyChange: () => () => {} } as unknown as Store;
  const cache = new KeyCache(store, hasher, (rec, gen) => compileKey(rec, plans, gen), { max: size, ttlMs: 3_600_000, negativeMax: 10_000, negativeTtlMs: 5_000, clock: systemClock });
  for (let i = 0; i < size; i += 1000) {
    await Promise.all(hashes.slice(i, i + 1000).map((h, j) => cache.load(h, keys[i + j]!)));
  }
  const plain = new LRUCache<string, object>({ max: size });
  const map = new Map<string, object>();
  for (const h of hashes) {
    plain.set(h, cache.get(h)!);
    map.set(h, cache.get(h)!);
  }
  if (cache.size !== size) throw new Error(`cache holds ${cache.size} of ${size}`);
  // Each lookup takes the next index of a random permutation (cycled).
  const order = shuffled(size);
  let j = 0;
  const label = size === 1 ? '1 key (hot)' : `${size.toLocaleString('en-US')} keys, random`;
  cases.push(
    measure(`KeyCache.get, ${label}`, (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const e = cache.get(hashes[order[j]!]!);
        if (e !== undefined) s++;
        if (++j === size) j = 0;
      }
      return s;
    }),
    measure(`cacheId + KeyCache.get (resolve-key), ${label}`, (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const e = cache.get(hasher.cacheId(keys[order[j]!]!));
        if (e !== undefined) s++;
        if (++j === size) j = 0;
      }
      return s;
    }),
    measure(`lru-cache get, no TTL, ${label}`, (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        if (plain.get(hashes[order[j]!]!) !== undefined) s++;
        if (++j === size) j = 0;
      }
      return s;
    }),
    measure(`Map.get, ${label}`, (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        if (map.get(hashes[order[j]!]!) !== undefined) s++;
        if (++j === size) j = 0;
      }
      return s;
    }),
  );
  const { hits, misses } = cache.stats;
  if (misses !== 0) throw new Error(`${misses} lookups missed the cache (hits ${hits})`);
}
report('lru-hit: gateway/key-cache.ts KeyCache.get on a cached key', cases, [
  'Random order over a large set is dominated by memory latency: each lookup touches the Map\'s table, the key string, lru-cache\'s index arrays and the entry.',
]);
