import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, have, install, pinned, procStat } from './lib.js';

/**
 * Scaling: the gateway with 1,000, 100,000 and 1,000,000 keys in its store, each request
 * carrying a key picked at random among all N (so the key cache is exercised, not one hot
 * entry). For each N:
 *   1. seed a new file store with N keys (bench/scaling/seed.ts: the store's own commits, 10,000
 *      keys each) and write the plaintext keys to a file; timed;
 *   2. start a gateway process on it (bench/scaling/target.ts compiled with tsconfig.bench.json,
 *      as the keygate CLI runs compiled code; key cache max = N, TTL a day):
 *      the time from spawn to listening is the cold start, most of it the journal replay;
 *   3. first pass: every key once, in file order (wrk + bench/scaling/sequential.lua), so every
 *      request is a cache miss: a store lookup and a compile;
 *   4. the process's memory with all N keys cached (RSS from /proc, V8 heap after a full GC),
 *      right after that pass and again after `--idle` seconds without load;
 *   5. warm passes, once every N has its gateway up: wrk + bench/scaling/random.lua, a random key
 *      per request, `rounds` rounds of `duration` seconds after a warm-up, the N interleaved in
 *      each round (as bench/run.ts does); median req/s, p50, p99, gateway CPU per request, and
 *      their ratios to the smallest N.
 * For the largest N, the cold start is measured again on `cold-starts` fresh processes, then on
 * a store filled as the admin API fills it (each key with its audit entry and `created` event)
 * whose journal is long enough (over 1,000 lines) that the store rewrites it on every open, as
 * a store that has compacted itself while ingesting usage does; and
 * bench/scaling/cache-memory.ts breaks the memory per key down (store record, cache entry and
 * its parts, token bucket, candidates for a smaller entry) in a process of its own.
 * Like bench/run.ts: the gateway is pinned to CPU 0, wrk and the upstream to CPU 1 (when
 * taskset is there); wrk is installed with apt-get when missing. Only loopback is used.
 * With `--store redis` the keys are in a Redis store instead (a redis-server of this run, pinned
 * with wrk; installed with apt-get when missing): the gateway process then holds no key records,
 * only its cache, which is the memory a production gateway needs for N cached keys, and the
 * rate limit takes Redis's shared buckets. The journal rewrite (history) is a file-store matter
 * and is skipped there.
 * `--node-flags` starts every gateway process with those Node/V8 flags (for instance
 * `--node-flags=--heap-growing-percent=25`, a smaller old generation for more GC work).
 * Prints a table per measure and writes bench/results/scaling.json (scaling-redis.json).
 *
 *   npm run bench:scaling -- [--sizes 1000,100000,1000000] [--duration 10] [--rounds 5]
 *                            [--warmup 3] [--connections 50] [--cold-starts 3] [--idle 20] [--keep] [--skip-breakdown]
 *                            [--skip-history] [--store file|redis] [--node-flags=...]
 */
const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,100000,1000000' },
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    'cold-starts': { type: 'string', default: '3' },
    idle: { type: 'string', default: '20' },
    keep: { type: 'boolean', default: false },
    'skip-breakdown': { type: 'boolean', default: false },
    'skip-history': { type: 'boolean', default: false },
    store: { type: 'string', default: 'file' },
    'node-flags': { type: 'string', default: '' },
  },
});
if (values.store !== 'file' && values.store !== 'redis') throw new Error('--store: file or redis');
const onRedis = values.store === 'redis';
const sizes = values.sizes.split(',').map(Number).sort((a, b) => a - b);
if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 2_000_000)) throw new Error('--sizes: integers from 1 to 2,000,000');
const duration = Math.min(60, Math.max(1, Number(values.duration)));
const rounds = Math.min(10, Math.max(1, Number(values.rounds)));
const warmup = Math.min(30, Math.max(0, Number(values.warmup)));
const connections = Math.min(1000, Math.max(1, Number(values.connections)));
const coldStarts = Math.min(10, Math.max(1, Number(values['cold-starts'])));
const idleSeconds = Math.min(120, Math.max(0, Number(values.idle)));
const nodeFlags = values['node-flags'].split(' ').filter((f) => f !== '');
const SEED_TIMEOUT_MS = 10 * 60_000;
const READY_TIMEOUT_MS = 5 * 60_000;
/** The first pass's -d bound: generous for the miss path at 1,000 req/s, at most 15 minutes. */
const firstPassSeconds = (n: number) => Math.min(900, Math.max(30, Math.ceil(n / 1000)));

install('wrk', 'wrk');
// The gateway process runs compiled JavaScript, as `keygate` does: under tsx, its loader thread
// would add about 40 MB to the RSS being measured.
const TARGET_JS = 'dist-bench/bench/scaling/target.js';
execFileSync(process.execPath, [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', 'tsconfig.bench.json'], { stdio: 'inherit' });
if (onRedis) install('redis-server', 'redis-server');
const pin = have('taskset');
const children = new Set<ChildProcess>();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
const log = (msg: string) => process.stderr.write(`${msg}\n`);


const cpuSeconds = (pid: number) => procStat(pid).cpu;

/** A child process whose stdout is read line by line; `next(prefix)` waits for a line. */
class Proc {
  readonly child: ChildProcess;
  readonly #lines: string[] = [];
  readonly #waiters: { prefix: string; resolve: (line: string) => void }[] = [];
  #buf = '';
  readonly exited: Promise<number | null>;

  constructor(cmd: string[], onLine?: (line: string) => void, stdin: 'ignore' | 'pipe' = 'ignore') {
    this.child = spawn(cmd[0]!, cmd.slice(1), { stdio: [stdin, 'pipe', 'inherit'] });
    children.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code) => {
        children.delete(this.child);
        resolve(code);
      }),
    );
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.#buf += chunk;
      let nl: number;
      while ((nl = this.#buf.indexOf('\n')) !== -1) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        onLine?.(line);
        const w = this.#waiters.findIndex((x) => line.startsWith(x.prefix));
        if (w === -1) this.#lines.push(line);
        else this.#waiters.splice(w, 1)[0]!.resolve(line);
      }
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  next(prefix: string, timeoutMs: number): Promise<string> {
    const i = this.#lines.findIndex((l) => l.startsWith(prefix));
    if (i !== -1) return Promise.resolve(this.#lines.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${prefix}" line in ${timeoutMs} ms`)), timeoutMs);
      this.exited.then((code) => reject(new Error(`process exited (${code}) before a "${prefix}" line`)));
      this.#waiters.push({
        prefix,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }

  /** Everything printed, for a process that is waited to the end. */
  get output(): string {
    return [...this.#lines, this.#buf].join('\n');
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

interface Mem {
  gc: boolean;
  rss: number;
  heap_used: number;
  heap_total: number;
  external: number;
  array_buffers: number;
  heap_limit: number;
  vm_rss: number;
  /** VmRSS's anonymous part (heaps, stacks) and file-backed part (the node binary and libraries). */
  rss_anon: number;
  rss_file: number;
  vm_hwm: number;
  cache_size: number;
  cache_hits: number;
  cache_misses: number;
  buckets: number | null;
  /** V8 heap spaces: bytes committed (size) and in use. */
  spaces: Record<string, { size: number; used: number }>;
}

interface Ready {
  /** Spawn to the `ready` line, seen from here. */
  wall_ms: number;
  /** Process start (performance.timeOrigin) to listening, seen from the process. */
  ready_ms: number;
  modules_ms: number;
  store_open_ms: number;
}

class Target extends Proc {
  readonly port: number;

  private constructor(cmd: string[], port: number) {
    super(cmd, undefined, 'pipe');
    this.port = port;
  }

  static async start(dir: string, upstream: string, cacheMax: number): Promise<{ target: Target; ready: Ready }> {
    const port = await freePort();
    const t0 = performance.now();
    const target = new Target(
      pinned(0, [process.execPath, '--expose-gc', ...nodeFlags, TARGET_JS, dir, String(port), upstream, String(cacheMax)]),
      port,
    );
    const line = await target.next('ready ', READY_TIMEOUT_MS);
    const wall = performance.now() - t0;
    return { target, ready: { wall_ms: wall, ...(JSON.parse(line.slice(6)) as Omit<Ready, 'wall_ms'>) } };
  }

  /** Memory after a full GC (without one when `gc` is false), and the cache's counters. */
  async mem(gc = true): Promise<Mem> {
    this.child.stdin!.write(gc ? 'mem\n' : 'mem nogc\n');
    return JSON.parse((await this.next('mem ', 120_000)).slice(4)) as Mem;
  }
}

interface Sample {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  requests: number;
  seconds: number;
  /** CPU time the gateway process spent per request, in microseconds. */
  cpu_us: number;
  errors: string | null;
}

function toMs(v: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec((v ?? '').trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n;
}

/**
 * One wrk run with a script and the keys file; `untilDone` stops it (SIGINT, on which wrk
 * reports) when the script prints `pass done`, with `seconds` as the bound either way.
 */
async function wrk(script: string, target: Target, keysFile: string, seconds: number, untilDone = false): Promise<Sample> {
  const cpu0 = cpuSeconds(target.pid);
  const url = `http://127.0.0.1:${target.port}/bench`;
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '--latency', '-s', script, url, '--', keysFile];
  const run: Proc = new Proc(pinned(1, ['wrk', ...args]), (line) => {
    if (untilDone && line === 'pass done') run.child.kill('SIGINT');
  });
  const killer = setTimeout(() => run.child.kill('SIGKILL'), (seconds + 120) * 1000);
  const code = await run.exited;
  clearTimeout(killer);
  const out = run.output;
  if (code !== 0) throw new Error(`wrk exited with ${code}:\n${out}`);
  const done = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  if (!done) throw new Error(`unexpected wrk output:\n${out}`);
  const requests = Number(done[1]);
  const elapsed = toMs(`${done[2]}${done[3]}`) / 1000;
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1];
  const socket = /Socket errors: (.*)/.exec(out)?.[1];
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50_ms: toMs(/\s50%\s+(\S+)/.exec(out)?.[1]),
    p99_ms: toMs(/\s99%\s+(\S+)/.exec(out)?.[1]),
    max_ms: toMs(/Latency\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1]),
    requests,
    seconds: elapsed,
    cpu_us: ((cpuSeconds(target.pid) - cpu0) * 1e6) / requests,
    errors: non2xx || socket ? [non2xx ? `${non2xx} non-2xx` : '', socket ?? ''].filter(Boolean).join('; ') : null,
  };
}

/** True once a redis-server answers PING on loopback `port`. */
function pingRedis(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1', () => sock.write('PING\r\n'));
    sock.setTimeout(1_000, () => sock.destroy());
    sock.once('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      sock.destroy();
    });
    sock.once('error', () => resolve(false));
    sock.once('close', () => resolve(false));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const MB = (b: number) => b / 1024 / 1024;

const root = mkdtempSync(join(tmpdir(), 'keygate-scaling-'));
const upstreamPort = await freePort();
const upstreamProc = new Proc(pinned(1, [process.execPath, '--import=tsx', 'bench/upstream.ts', String(upstreamPort)]));
await upstreamProc.next('ready', 30_000);
const upstream = `http://127.0.0.1:${upstreamPort}`;
let redisUrl: string | null = null;
let redisProc: Proc | null = null;
if (onRedis) {
  const port = await freePort();
  redisProc = new Proc(pinned(1, ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']));
  redisUrl = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (!(await pingRedis(port))) {
    if (Date.now() > deadline) throw new Error('redis-server did not answer in 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}
/** Where N keys are kept: a file store's directory, or a prefix of this run's Redis. */
const storeOf = (name: string) => (redisUrl !== null ? `${redisUrl}#scaling-${name}` : join(root, `store-${name}`));
const random = 'bench/scaling/random.lua';
const sequential = 'bench/scaling/sequential.lua';

type Seed = { keys: number; commits: number; history: boolean; generate_ms: number; commit_ms: number; total_ms: number; journal_bytes: number };

async function seedStore(dir: string, n: number, keysFile: string, extra: string[] = []): Promise<Seed> {
  const seeder = new Proc([process.execPath, '--import=tsx', 'bench/scaling/seed.ts', dir, String(n), keysFile, ...extra]);
  const timer = setTimeout(() => seeder.child.kill('SIGKILL'), SEED_TIMEOUT_MS);
  const seedLine = await seeder.next('{', SEED_TIMEOUT_MS);
  await seeder.exited;
  clearTimeout(timer);
  const seed = JSON.parse(seedLine) as Seed;
  log(`seeded in ${(seed.total_ms / 1000).toFixed(1)} s (commits ${(seed.commit_ms / 1000).toFixed(1)} s), journal ${MB(seed.journal_bytes).toFixed(0)} MB`);
  return seed;
}

interface Row {
  keys: number;
  seed: Seed;
  cold_start: Ready;
  /** Further cold starts (largest N only). */
  cold_starts: Ready[];
  mem_ready: Mem;
  first_pass: Sample;
  mem_cached: Mem;
  /** `--idle` seconds later, the process left alone. */
  mem_idle: Mem;
  warm: Sample[];
  warm_hit_ratio: number;
  mem_after: Mem;
}
const rows: Row[] = [];
let history: { keys: number; seed: Seed; starts: { ready: Ready; mem: Mem }[] } | null = null;
const largest = Math.max(...sizes);
log(`data in ${root}; ${pin ? 'gateway on CPU 0, wrk and upstream on CPU 1' : 'not pinned (no taskset)'}`);
try {
  // Each N in turn: seed, start, the all-miss first pass; the targets stay up for the warm rounds.
  const live: { n: number; dir: string; keysFile: string; target: Target; row: Omit<Row, 'warm' | 'warm_hit_ratio' | 'mem_after'> }[] = [];
  for (const n of sizes) {
    const dir = storeOf(String(n));
    const keysFile = join(root, `keys-${n}.txt`);
    log(`\n== ${n.toLocaleString('en-US')} keys: seeding`);
    const seed = await seedStore(dir, n, keysFile);

    const { target, ready } = await Target.start(dir, upstream, n);
    log(`cold start ${(ready.wall_ms / 1000).toFixed(2)} s (store open ${(ready.store_open_ms / 1000).toFixed(2)} s)`);
    // No GC forced before the fill: it would set the heap's limits as no production gateway has them.
    const memReady = await target.mem(false);
    log(`ready: RSS ${MB(memReady.vm_rss).toFixed(0)} MB, heap ${MB(memReady.heap_used).toFixed(0)} MB (no GC)`);

    const first = await wrk(sequential, target, keysFile, firstPassSeconds(n), true);
    log(`first pass (all misses): ${first.requests} requests in ${first.seconds.toFixed(1)} s, ${first.rps.toFixed(0)} req/s, p99 ${first.p99_ms} ms${first.errors ? `, ${first.errors}` : ''}`);
    const memCached = await target.mem();
    log(
      `all cached (${memCached.cache_size}): RSS ${MB(memCached.vm_rss).toFixed(0)} MB (anonymous ${MB(memCached.rss_anon).toFixed(0)}, files ${MB(memCached.rss_file).toFixed(0)}), ` +
        `heap ${MB(memCached.heap_used).toFixed(0)} MB of ${MB(memCached.heap_total).toFixed(0)} MB, old space ${MB(memCached.spaces['old_space']?.used ?? 0).toFixed(0)} of ${MB(memCached.spaces['old_space']?.size ?? 0).toFixed(0)} MB, buckets ${memCached.buckets}`,
    );
    if (memCached.cache_size < n) log(`warning: only ${memCached.cache_size} of ${n} keys are cached`);
    // Right after the load the heap still holds the young generation it grew and the free
    // space the fill left between old objects; V8 gives much of it back once the process idles.
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const memIdle = await target.mem();
    log(`after ${idleSeconds} s idle: RSS ${MB(memIdle.vm_rss).toFixed(0)} MB, heap ${MB(memIdle.heap_used).toFixed(0)} MB of ${MB(memIdle.heap_total).toFixed(0)} MB`);
    live.push({ n, dir, keysFile, target, row: { keys: n, seed, cold_start: ready, cold_starts: [], mem_ready: memReady, first_pass: first, mem_cached: memCached, mem_idle: memIdle } });
  }

  // Warm rounds interleaved across the N (as bench/run.ts does), so drift and neighbours hit all alike.
  log(`\n== warm: ${warmup} s warm-up each, then ${rounds} rounds of ${duration} s, interleaved`);
  for (const l of live) if (warmup > 0) await wrk(random, l.target, l.keysFile, warmup);
  const before = new Map<number, Mem>();
  for (const l of live) before.set(l.n, await l.target.mem());
  const warm = new Map<number, Sample[]>(live.map((l) => [l.n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const l of live) {
      const s = await wrk(random, l.target, l.keysFile, duration);
      warm.get(l.n)!.push(s);
      log(`round ${r + 1}, ${l.n.toLocaleString('en-US')} keys: ${s.rps.toFixed(0)} req/s, p50 ${s.p50_ms} ms, p99 ${s.p99_ms} ms, ${s.cpu_us.toFixed(1)} CPU µs/req${s.errors ? `, ${s.errors}` : ''}`);
    }
  }
  for (const l of live) {
    const memAfter = await l.target.mem();
    const hits = memAfter.cache_hits - before.get(l.n)!.cache_hits;
    const misses = memAfter.cache_misses - before.get(l.n)!.cache_misses;
    await l.target.stop();
    rows.push({ ...l.row, warm: warm.get(l.n)!, warm_hit_ratio: hits / Math.max(1, hits + misses), mem_after: memAfter });
  }

  const big = live.find((l) => l.n === largest)!;
  for (let i = 1; i < coldStarts; i++) {
    const again = await Target.start(big.dir, upstream, largest);
    rows.find((r) => r.keys === largest)!.cold_starts.push(again.ready);
    log(`cold start again, ${largest.toLocaleString('en-US')} keys: ${(again.ready.wall_ms / 1000).toFixed(2)} s (store open ${(again.ready.store_open_ms / 1000).toFixed(2)} s)`);
    await again.target.stop();
  }
  if (!values.keep && !onRedis) for (const l of live) rmSync(l.dir, { recursive: true, force: true });
  if (!values['skip-history'] && !onRedis && largest >= 1000) {
    log(`\n== ${largest.toLocaleString('en-US')} keys with their audit entries and events, journal rewritten on open: seeding`);
    const dir = join(root, 'store-history');
    // Over 1,000 journal lines (at most 500 keys a commit), so every open replays and then compacts.
    const chunk = Math.max(1, Math.min(500, Math.floor(largest / 1001)));
    const seed = await seedStore(dir, largest, join(root, 'keys-history.txt'), ['--history', '--chunk', String(chunk)]);
    const starts: { ready: Ready; mem: Mem }[] = [];
    for (let i = 0; i < Math.min(coldStarts, 2); i++) {
      const { target, ready } = await Target.start(dir, upstream, largest);
      const mem = await target.mem();
      starts.push({ ready, mem });
      log(`cold start ${(ready.wall_ms / 1000).toFixed(2)} s (store open ${(ready.store_open_ms / 1000).toFixed(2)} s), RSS ${MB(mem.vm_rss).toFixed(0)} MB, heap ${MB(mem.heap_used).toFixed(0)} MB`);
      await target.stop();
    }
    history = { keys: largest, seed, starts };
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
} finally {
  await upstreamProc.stop();
  await redisProc?.stop();
  if (!values.keep) rmSync(root, { recursive: true, force: true });
}
interface Breakdown {
  keys: number;
  rows: { part: string; bytes_per_key: number; note: string }[];
}
let breakdown: Breakdown | null = null;
if (!values['skip-breakdown'] && largest >= 1000) {
  log(`\n== memory per key, ${largest.toLocaleString('en-US')} keys (bench/scaling/cache-memory.ts)`);
  const args = ['--expose-gc', '--max-old-space-size=12288', '--import=tsx', 'bench/scaling/cache-memory.ts', '--keys', String(largest), '--json'];
  const run = new Proc([process.execPath, ...args]);
  breakdown = JSON.parse(await run.next('{', SEED_TIMEOUT_MS)) as Breakdown;
  await run.exited;
}

const line = (cells: (string | number)[]) => console.log(`| ${cells.join(' | ')} |`);
const f = (v: number, d = 0) => v.toFixed(d);
console.log(`\nThroughput (wrk -t1 -c${connections}; warm: median of ${rounds} × ${duration} s, a random key of N per request)\n`);
line(['keys in store', 'warm req/s', 'warm p50 ms', 'warm p99 ms', 'CPU µs/req', `req/s × ${rows[0]!.keys.toLocaleString('en-US')}`, `CPU × ${rows[0]!.keys.toLocaleString('en-US')}`, 'hit ratio', 'first pass req/s', 'first pass p99 ms', 'first pass CPU µs/req', 'first pass s']);
line(['---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']);
const baseRps = median(rows[0]!.warm.map((s) => s.rps));
const baseCpu = median(rows[0]!.warm.map((s) => s.cpu_us));
for (const r of rows) {
  const rps = median(r.warm.map((s) => s.rps));
  const cpu = median(r.warm.map((s) => s.cpu_us));
  line([
    r.keys.toLocaleString('en-US'), f(rps), f(median(r.warm.map((s) => s.p50_ms)), 2), f(median(r.warm.map((s) => s.p99_ms)), 2), f(cpu, 1),
    f(rps / baseRps, 2), f(cpu / baseCpu, 2), f(r.warm_hit_ratio, 4), f(r.first_pass.rps), f(r.first_pass.p99_ms, 2), f(r.first_pass.cpu_us, 1), f(r.first_pass.seconds, 1),
  ]);
}
console.log('\nMemory of the gateway process (RSS is /proc VmRSS; heap figures after a full GC, except at ready)\n');
line(['keys in store', 'RSS ready MB', 'RSS all cached MB', 'of which anonymous / files MB', 'heap used / committed MB', 'old space used / committed MB', `RSS ${idleSeconds} s later, idle MB`, 'heap used / committed then MB', 'token buckets then', 'peak RSS (VmHWM) MB']);
line(['---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']);
const usedOf = (m: Mem, space?: string) => {
  const { used, size } = space === undefined ? { used: m.heap_used, size: m.heap_total } : (m.spaces[space] ?? { used: 0, size: 0 });
  return `${f(MB(used))} / ${f(MB(size))}`;
};
for (const r of rows) {
  const c = r.mem_cached;
  line([
    r.keys.toLocaleString('en-US'), f(MB(r.mem_ready.vm_rss)), f(MB(c.vm_rss)), `${f(MB(c.rss_anon))} / ${f(MB(c.rss_file))}`, usedOf(c), usedOf(c, 'old_space'),
    f(MB(r.mem_idle.vm_rss)), usedOf(r.mem_idle), String(c.buckets), f(MB(r.mem_after.vm_hwm)),
  ]);
}
console.log('\nSeeding and cold start (spawn to listening; the journal is in the OS page cache, as after the seeding)\n');
line(['keys in store', 'seeding s', 'of which commits s', 'journal MB', 'cold start s', 'of which store open (replay) s', 'cold starts measured', 'cold start min–max s']);
line(['---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']);
for (const r of rows) {
  const all = [r.cold_start, ...r.cold_starts];
  line([
    r.keys.toLocaleString('en-US'), f(r.seed.total_ms / 1000, 1), f(r.seed.commit_ms / 1000, 1), f(MB(r.seed.journal_bytes)),
    f(median(all.map((c) => c.wall_ms)) / 1000, 2), f(median(all.map((c) => c.store_open_ms)) / 1000, 2), all.length,
    `${f(Math.min(...all.map((c) => c.wall_ms)) / 1000, 2)}–${f(Math.max(...all.map((c) => c.wall_ms)) / 1000, 2)}`,
  ]);
}
if (history) {
  const all = history.starts.map((x) => x.ready);
  line([
    `${history.keys.toLocaleString('en-US')} + audit + events, compacted on open`, f(history.seed.total_ms / 1000, 1), f(history.seed.commit_ms / 1000, 1),
    f(MB(history.seed.journal_bytes)), f(median(all.map((c) => c.wall_ms)) / 1000, 2), f(median(all.map((c) => c.store_open_ms)) / 1000, 2), all.length,
    `${f(Math.min(...all.map((c) => c.wall_ms)) / 1000, 2)}–${f(Math.max(...all.map((c) => c.wall_ms)) / 1000, 2)}`,
  ]);
  const m = history.starts[history.starts.length - 1]!.mem;
  console.log(`\nThat store, loaded (no key cached yet): RSS ${f(MB(m.vm_rss))} MB, heap ${f(MB(m.heap_used))} MB.`);
}
if (breakdown) {
  console.log(`\nHeap (+ ArrayBuffer) bytes per key, ${breakdown.keys.toLocaleString('en-US')} keys, part by part (bench/scaling/cache-memory.ts; rows built as an array include its 8 B/key)\n`);
  line(['part', 'bytes/key', 'MB for all keys', 'what']);
  line(['---', '---:', '---:', '---']);
  for (const p of breakdown.rows) line([p.part, f(p.bytes_per_key), f((p.bytes_per_key * breakdown.keys) / 1024 / 1024), p.note]);
}
mkdirSync('bench/results', { recursive: true });
const out = `bench/results/scaling${onRedis ? '-redis' : ''}.json`;
writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), node: process.version, node_flags: nodeFlags, store: values.store, pinned: pin, connections, duration, rounds, warmup, rows, history, breakdown }, null, 2));
console.log(`\nwritten to ${out}`);
process.exit(0);
