import { parseArgs } from 'node:util';
import { systemClock } from '../../core/clock.js';
import { generateKey } from '../../core/key-format.js';
import { KeyHasher, ownCacheId } from '../../core/key-hash.js';
import { compilePolicy, LocalLimiter, newRateState } from '../../core/limiter.js';
import { parseCidr } from '../../core/ip.js';
import type { KeyRecord } from '../../core/record.js';
import type { Store } from '../../core/store/store.js';
import { compileKey } from '../../gateway/compiled-key.js';
import { KeyCache } from '../../gateway/key-cache.js';
import { keyRecord } from '../../test/lib/records.js';

/**
 * Where the memory of N cached keys goes: V8 heap bytes per key (after a full GC) of each part
 * a gateway on the file store holds, built one after the other in one process, each measured
 * as the heap it adds:
 *   - the file store's records (JSON-parsed as its replay does, in its two Maps by id and hash);
 *   - the key cache (gateway/key-cache.ts, filled through KeyCache.load as requests fill it:
 *     its 64-byte table rows, gateway/key-table.ts, and a pointer a key), and, apart, for
 *     comparison: an empty KeyCache, what a cache of objects held a key (the cache id as a
 *     string of its own, the compiled key object), and what a Set (apis, scopes) and a parsed
 *     allowlist would cost each key if they were not shared between keys that have equal ones;
 *   - a token bucket per key (core/limiter.ts LocalLimiter), as after every key made a request.
 * Keys are like bench/target.ts's: scope `read`, API `bench`, allowlist 127.0.0.0/8. Bytes are
 * V8 heap plus ArrayBuffers (the key table's rows are an ArrayBuffer); the parts built as an array of N (the indented rows) include that
 * array's 8 bytes per key.
 *
 *   node --expose-gc --max-old-space-size=8192 --import=tsx bench/scaling/cache-memory.ts [--keys 1000000] [--json]
 */
const { values } = parseArgs({ options: { keys: { type: 'string', default: '1000000' }, json: { type: 'boolean', default: false } } });
const n = Number(values.keys);
if (!Number.isInteger(n) || n < 1000 || n > 2_000_000) throw new Error('--keys: 1,000 to 2,000,000');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

/** V8 heap in use plus ArrayBuffer memory (lru-cache's typed arrays live outside the heap). */
function heap(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
const rows: { part: string; bytes_per_key: number; note: string }[] = [];
/** What the measured parts built, kept reachable to the end so that later deltas stay clean. */
const keepAlive: unknown[] = [];
/** Heap bytes per key that `build` leaves reachable (it must keep what it builds in `keep`). */
function measure<T>(part: string, note: string, build: () => T): T {
  const before = heap();
  const kept = build();
  keepAlive.push(kept);
  rows.push({ part, bytes_per_key: (heap() - before) / n, note });
  return kept;
}

const hasher = new KeyHasher(null);
const plans = new Map([['default', compilePolicy('default', { limit: 1_000_000_000, window_seconds: 1, burst: null })]]);
const now = Date.now();
const keys: string[] = new Array(n);
for (let i = 0; i < n; i++) keys[i] = generateKey('gw', 'live');
const rssStart = process.memoryUsage().rss;

const store = measure('file store: records, by id and by hash', 'one JSON-parsed KeyRecord (about 40 fields, usage and meta objects) and two Map entries', () => {
  const byId = new Map<string, KeyRecord>();
  const byHash = new Map<string, KeyRecord>();
  for (let i = 0; i < n; i += 10_000) {
    const chunk = [];
    for (let j = i; j < Math.min(n, i + 10_000); j++) {
      chunk.push(keyRecord(keys[j]!, hasher, now, { name: `scaling ${j}`, scopes: ['read'], apis: ['bench'], ip_allowlist: ['127.0.0.0/8'], version: 1 }));
    }
    // As the journal replay builds them: parsed from a commit's line.
    for (const rec of JSON.parse(JSON.stringify(chunk)) as KeyRecord[]) {
      byId.set(rec.id, rec);
      byHash.set(rec.hash, rec);
    }
  }
  return { byId, byHash };
});
const records = [...store.byId.values()];
const stub = { getKeyByHash: async (h: string) => store.byHash.get(h) ?? null, onKeyChange: () => () => {} } as unknown as Store;

{
  const before = heap();
  const cache = new KeyCache(stub, hasher, (rec, gen) => compileKey(rec, plans, gen), { max: n, ttlMs: 86_400_000, negativeMax: 10_000, negativeTtlMs: 5_000, clock: systemClock });
  for (let i = 0; i < n; i += 1000) {
    const batch: Promise<unknown>[] = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) batch.push(cache.load(hasher.cacheId(keys[j]!), keys[j]!));
    await Promise.all(batch);
  }
  if (cache.size !== n) throw new Error(`cache holds ${cache.size} of ${n}`);
  rows.push({ part: 'key cache, filled (total)', bytes_per_key: (heap() - before) / n, note: 'KeyCache with max = N, every key loaded as a request loads it' });
  keepAlive.push(cache);
}
measure('  an empty KeyCache with max = N', 'its 64-byte rows for max reserved at once: counted here as ArrayBuffer bytes, resident only as rows are written', () =>
  new KeyCache(stub, hasher, (rec, gen) => compileKey(rec, plans, gen), { max: n, ttlMs: 86_400_000, negativeMax: 10_000, negativeTtlMs: 5_000, clock: systemClock }),
);
measure('  cache ids as strings (not kept since gateway/key-table.ts)', 'the first 16 digest bytes as a latin1 string of its own, as lru-cache kept them', () => keys.map((k) => ownCacheId(hasher.cacheId(k))));
measure('  compiled keys as objects (not kept since gateway/key-table.ts)', 'the object (id, times, application, generation) and a pointer to its Grant, shared with equal keys', () => records.map((r) => compileKey(r, plans)));
measure('    of which a one-element Set (× 2 per key: apis, scopes)', 'JSSet and its OrderedHashSet table', () => records.map(() => new Set(['read'])));
measure('    of which the parsed allowlist', 'an array of one [ipaddr.IPv4, bits] tuple, the IPv4 its octets array', () =>
  records.map((r) => {
    const out = [];
    for (const c of r.ip_allowlist!) out.push(parseCidr(c)!);
    return out;
  }),
);
measure('token buckets, one per key (LocalLimiter)', 'a Map entry and a { tokens, last, policy } object; swept once full again', () => {
  const limiter = new LocalLimiter(() => now, 3_600_000);
  const out = newRateState();
  for (const r of records) limiter.take(r.id, plans.get('default')!, now, out);
  limiter.close();
  return limiter;
});

const total = process.memoryUsage();
const fmt = (v: number) => v.toFixed(0);
if (values.json) {
  console.log(JSON.stringify({ keys: n, rows, rss_end: total.rss, heap_end: total.heapUsed, rss_start: rssStart }));
} else {
  console.log(`\nHeap (+ ArrayBuffer) bytes per key, ${n.toLocaleString('en-US')} keys (after full GCs; rows built as an array include its 8 B/key)\n`);
  console.log('| part | bytes/key | MB for all keys | what |');
  console.log('| --- | ---: | ---: | --- |');
  for (const r of rows) console.log(`| ${r.part} | ${fmt(r.bytes_per_key)} | ${fmt((r.bytes_per_key * n) / 1024 / 1024)} | ${r.note} |`);
}
process.exit(0);
