import '../../bin/tune-v8.js'; // first: V8 flags set before the rest loads (bin/v8-flags.ts)
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { parseConfig } from '../../config/load.js';
import { LocalLimiter } from '../../core/limiter.js';
import { Logger } from '../../core/log.js';
import { createGateway, hasherFor, type Gateway } from '../../gateway/server.js';
import { openBenchStore, sqlitePath } from './store.js';

/**
 * A gateway process on an existing store, for bench/scaling.ts: full enforcement as in
 * bench/target.ts (scope, API list, allowlist, token buckets on a plan that never refuses:
 * in process on a file store and on SQLite, Redis's shared buckets on Redis), with a key cache
 * that holds every key of the store and keeps it for a day. STORE is a file store's directory,
 * `sqlite:PATH` or `redis://HOST:PORT#PREFIX` (store.ts); on SQLite and Redis the process holds
 * no key records, only its cache (and on SQLite the database's page cache).
 *
 *   node --expose-gc --import=tsx bench/scaling/target.ts STORE PORT UPSTREAM CACHE_MAX
 *
 * Prints `ready {json}` once listening, with the time since the process started (Node's
 * performance.timeOrigin), of which the store's open (the journal replay on a file store) and module loading.
 * On a `mem` line on stdin it runs a full GC (when --expose-gc is given) and prints `mem {json}`:
 * process.memoryUsage(), V8 heap statistics (and per heap space), /proc VmRSS (and its anonymous
 * and file-backed parts) and VmHWM, the cache's size and hit/miss counters, and the token buckets
 * alive; `mem nogc` prints the same without the GC. A full GC changes how V8 sizes the heap
 * from then on, so a reading taken before the load uses `mem nogc`, as nothing forces a GC
 * on a production gateway.
 */
const modulesMs = performance.now();
const [dir, portArg, upstream, maxArg] = process.argv.slice(2);
const cacheMax = Number(maxArg);
if (!dir || !upstream || !Number.isInteger(cacheMax) || cacheMax < 1) throw new Error('usage: target.ts STORE PORT UPSTREAM CACHE_MAX');
const onRedis = dir.startsWith('redis://');
// The config names the store as the process opens it; on Redis that makes the rate limit take
// Redis's shared buckets, as in production.
const store = onRedis
  ? { type: 'redis', url: dir.slice(0, dir.indexOf('#')), prefix: dir.slice(dir.indexOf('#') + 1) }
  : dir.startsWith('sqlite:')
    ? { type: 'sqlite', path: sqlitePath(dir) }
    : { type: 'file', path: dir };
const config = parseConfig({
  store,
  listeners: [{ port: Number(portArg), host: '127.0.0.1', environment: 'production' }],
  keys: { cache: { max: cacheMax, ttl_seconds: 86_400, negative_ttl_seconds: 5 } },
  plans: { default: { limit: 1_000_000_000, window_seconds: 1 } },
  scopes: { catalog: ['read'] },
  apis: [{ name: 'bench', path_prefix: '/', upstream, routes: [{ method: 'GET', path: '/*', scopes: ['read'] }] }],
  admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
  log: { level: 'error' },
});
function procStatus(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

let gateway: Gateway | undefined;
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line !== 'mem' && line !== 'mem nogc') return;
  const gc = line === 'mem' ? (globalThis as { gc?: () => void }).gc : undefined;
  if (gc) gc();
  const mem = process.memoryUsage();
  const heap = getHeapStatistics();
  if (gateway === undefined) return;
  const { keys, limiter } = gateway.runtime;
  process.stdout.write(
    `mem ${JSON.stringify({
      gc: gc !== undefined,
      rss: mem.rss,
      heap_used: mem.heapUsed,
      heap_total: mem.heapTotal,
      external: mem.external,
      array_buffers: mem.arrayBuffers,
      heap_limit: heap.heap_size_limit,
      vm_rss: procStatus('VmRSS'),
      rss_anon: procStatus('RssAnon'),
      rss_file: procStatus('RssFile'),
      vm_hwm: procStatus('VmHWM'),
      cache_size: keys.size,
      cache_hits: keys.stats.hits,
      cache_misses: keys.stats.misses,
      buckets: limiter instanceof LocalLimiter ? limiter.size : null,
      spaces: Object.fromEntries(getHeapSpaceStatistics().map((sp) => [sp.space_name, { size: sp.space_size, used: sp.space_used_size }])),
    })}\n`,
  );
});
const open0 = performance.now();
const opened = await openBenchStore(dir);
const storeOpenMs = performance.now() - open0;
gateway = createGateway(config, { store: opened, log: new Logger({ level: 'error' }), hasher: hasherFor(config) });
await gateway.listen();
process.stdout.write(
  `ready ${JSON.stringify({ ready_ms: performance.now(), modules_ms: modulesMs, store_open_ms: storeOpenMs })}\n`,
);

process.on('SIGINT', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
