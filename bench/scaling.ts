import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, have, install, machineCpu, pinned, procStat, socketOwners, treeCpu } from './lib.js';

/**
 * Scaling: the gateway with 1,000, 100,000 and 1,000,000 keys in its store, each request
 * carrying a key picked at random among all N (so the key cache is exercised, not one hot
 * entry). For each N:
 *   1. seed a new store with N keys (bench/scaling/seed.ts: the store's own commits, 10,000
 *      keys each) and write the plaintext keys to a file; timed;
 *   2. start a gateway process on it (bench/scaling/target.ts compiled with tsconfig.bench.json,
 *      as the keygate CLI runs compiled code; key cache max = N, TTL a day):
 *      the time from spawn to listening is the cold start (on the file store, most of it the
 *      journal replay);
 *   3. first pass: every key once, in file order (wrk + bench/scaling/sequential.lua), so every
 *      request is a cache miss: a store lookup and a compile;
 *   4. the process's memory with all N keys cached (RSS from /proc, V8 heap after a full GC),
 *      right after that pass and again after `--idle` seconds without load;
 *   5. warm passes, once every N has its gateway up: wrk + bench/scaling/random.lua, a random key
 *      per request, `rounds` rounds of `duration` seconds after a warm-up, the N interleaved in
 *      each round (as bench/run.ts does), each measured run after `--rewarm` seconds of the same
 *      load; median req/s, p50, p99, gateway CPU per request, and their ratios to the smallest N.
 * For the largest N, the cold start is measured again on `cold-starts` fresh processes, then on
 * a store filled as the admin API fills it (each key with its audit entry and `created` event)
 * whose journal is long enough (over 1,000 lines) that the store rewrites it on every open, as
 * a store that has compacted itself while ingesting usage does; and
 * bench/scaling/cache-memory.ts breaks the memory per key down (store record, cache entry and
 * its parts, token bucket, candidates for a smaller entry) in a process of its own.
 * Like bench/run.ts: the gateway is pinned to CPU 0, wrk and the upstream to CPU 1 (when
 * taskset is there); wrk is installed with apt-get when missing. Only loopback is used.
 * `--store` names the stores, one or several (comma-separated): `file`, `sqlite` (a database
 * file per N, seeded through SqliteStore's commits, one transaction of 10,000 keys each) or
 * `redis` (a redis-server of this run, pinned with wrk; installed with apt-get when missing).
 * Every (store, N) gets its own gateway process and all of them take part in the same
 * interleaved warm rounds, so stores compare within one run: the tables add each row's ratio to
 * the file store's row of the same N (the median of the per-round ratios, as rounds share
 * drift) and the RSS ratio to the Redis row. On Redis the gateway process holds no key records,
 * only its cache, which is the memory a production gateway needs for N cached keys, and the
 * rate limit takes Redis's shared buckets; on SQLite it holds its cache and the database's page
 * cache, the rate limit in process as on the file store. The journal rewrite (history) is a
 * file-store matter and runs only when the file store is in the run.
 * `--workers 1,2` adds rows of the keygate CLI itself (bench/cli.ts compiled, `--role all`, the
 * sqlite store, `workers: W`; not pinned, so two workers may use both CPUs) on a database of
 * `--workers-keys` keys (default: the smallest N, small enough that the warm-up fills every
 * worker's cache), in the same rounds; for them the CPU split of each round is reported: CPU
 * cores used by the primary, each worker, wrk, the upstream, and by the rest of the machine.
 * `--data DIR` keeps the seeded file and SQLite stores (and their keys) in DIR and takes them
 * again in later runs instead of seeding anew (a million keys take minutes to seed on SQLite).
 * `--node-flags` starts every gateway process with those Node/V8 flags (for instance
 * `--node-flags=--heap-growing-percent=25`, a smaller old generation for more GC work).
 * Prints a table per measure and writes bench/results/scaling.json (for other stores
 * scaling-STORES.json: scaling-redis.json, scaling-file-sqlite-redis.json).
 *
 *   npm run bench:scaling -- [--sizes 1000,100000,1000000] [--duration 10] [--rounds 5]
 *                            [--warmup 3] [--rewarm 1] [--connections 50] [--cold-starts 3] [--idle 20] [--keep] [--data DIR] [--skip-breakdown]
 *                            [--skip-history] [--store file,sqlite,redis] [--workers 1,2] [--workers-keys N]
 *                            [--node-flags=...]
 */
const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,100000,1000000' },
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '3' },
    rewarm: { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    'cold-starts': { type: 'string', default: '3' },
    idle: { type: 'string', default: '20' },
    keep: { type: 'boolean', default: false },
    data: { type: 'string' },
    'skip-breakdown': { type: 'boolean', default: false },
    'skip-history': { type: 'boolean', default: false },
    store: { type: 'string', default: 'file' },
    workers: { type: 'string', default: '' },
    'workers-keys': { type: 'string' },
    'node-flags': { type: 'string', default: '' },
  },
});
const STORES = ['file', 'sqlite', 'redis'] as const;
type StoreKind = (typeof STORES)[number];
const stores = [...new Set(values.store.split(','))] as StoreKind[];
if (stores.some((k) => !STORES.includes(k))) throw new Error('--store: file, sqlite or redis, or several of them comma-separated');
const onRedis = stores.includes('redis');
const sizes = values.sizes.split(',').map(Number).sort((a, b) => a - b);
if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 2_000_000)) throw new Error('--sizes: integers from 1 to 2,000,000');
const workerCounts = values.workers === '' ? [] : values.workers.split(',').map(Number);
if (workerCounts.some((w) => !Number.isInteger(w) || w < 1 || w > 8)) throw new Error('--workers: worker counts from 1 to 8, comma-separated');
const workersKeys = Number(values['workers-keys'] ?? sizes[0]);
if (!Number.isInteger(workersKeys) || workersKeys < 1 || workersKeys > 2_000_000) throw new Error('--workers-keys: an integer from 1 to 2,000,000');
const duration = Math.min(60, Math.max(1, Number(values.duration)));
const rounds = Math.min(10, Math.max(1, Number(values.rounds)));
const warmup = Math.min(30, Math.max(0, Number(values.warmup)));
const rewarm = Math.min(30, Math.max(0, Number(values.rewarm)));
const connections = Math.min(1000, Math.max(1, Number(values.connections)));
const coldStarts = Math.min(10, Math.max(1, Number(values['cold-starts'])));
const idleSeconds = Math.min(120, Math.max(0, Number(values.idle)));
const nodeFlags = values['node-flags'].split(' ').filter((f) => f !== '');
/** A million keys on SQLite take minutes to commit (every secondary index and the name search's trigrams). */
const SEED_TIMEOUT_MS = 40 * 60_000;
const READY_TIMEOUT_MS = 5 * 60_000;
/** The first pass's -d bound: generous for the miss path at 250 req/s (a busy shared host), at most an hour. */
const firstPassSeconds = (n: number) => Math.min(3600, Math.max(30, Math.ceil(n / 250)));

install('wrk', 'wrk');
// The gateway process runs compiled JavaScript, as `keygate` does: under tsx, its loader thread
// would add about 40 MB to the RSS being measured. The files the stores load at run time (the
// SQLite migrations, the Redis scripts) are copied beside the compiled code, as the build does.
const TARGET_JS = 'dist-bench/bench/scaling/target.js';
const CLI_JS = 'dist-bench/bench/cli.js';
execFileSync(process.execPath, [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', 'tsconfig.bench.json'], { stdio: 'inherit' });
cpSync('core', 'dist-bench/core', { recursive: true, filter: (src) => statSync(src).isDirectory() || /\.(sql|lua)$/.test(src) });
if (onRedis) install('redis-server', 'redis-server');
const pin = have('taskset');
const children = new Set<ChildProcess>();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
const log = (msg: string) => process.stderr.write(`${msg}\n`);


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

/** What a wrk run loads: one port, and the processes that serve it (their CPU is the row's CPU). */
interface Served {
  readonly port: number;
  /** CPU seconds so far of each serving process, by a name for it. */
  cpu(): Map<string, number>;
  /** Client connections each serving process holds now, by the same names (workers of one listener). */
  connections?(): Record<string, number>;
}

class Target extends Proc implements Served {
  readonly port: number;

  private constructor(cmd: string[], port: number) {
    super(cmd, undefined, 'pipe');
    this.port = port;
  }

  static async start(spec: string, upstream: string, cacheMax: number): Promise<{ target: Target; ready: Ready }> {
    const port = await freePort();
    const t0 = performance.now();
    const target = new Target(
      pinned(0, [process.execPath, '--expose-gc', ...nodeFlags, TARGET_JS, spec, String(port), upstream, String(cacheMax)]),
      port,
    );
    const line = await target.next('ready ', READY_TIMEOUT_MS);
    const wall = performance.now() - t0;
    return { target, ready: { wall_ms: wall, ...(JSON.parse(line.slice(6)) as Omit<Ready, 'wall_ms'>) } };
  }

  cpu(): Map<string, number> {
    return new Map([['gateway', procStat(this.pid).cpu]]);
  }

  /** Memory after a full GC (without one when `gc` is false), and the cache's counters. */
  async mem(gc = true): Promise<Mem> {
    this.child.stdin!.write(gc ? 'mem\n' : 'mem nogc\n');
    return JSON.parse((await this.next('mem ', 120_000)).slice(4)) as Mem;
  }
}

/**
 * The keygate CLI (compiled bench/cli.ts) with `--role all` and `workers: W` on a SQLite
 * database: with W = 1 one process serves the gateway and the admin plane; with W > 1 the
 * primary runs the admin plane and forks W gateway workers that share the listener. Not pinned.
 */
class Cli extends Proc implements Served {
  readonly port: number;
  readonly workers: number;

  private constructor(cmd: string[], port: number, workers: number) {
    super(cmd);
    this.port = port;
    this.workers = workers;
  }

  static async start(db: string, upstream: string, cacheMax: number, workers: number, key: string): Promise<{ cli: Cli; ready_ms: number }> {
    const port = await freePort();
    const adminPort = await freePort();
    const config = {
      role: 'all',
      workers,
      listeners: [{ port, host: '127.0.0.1', environment: 'production' }],
      store: { type: 'sqlite', path: db },
      keys: { cache: { max: cacheMax, ttl_seconds: 86_400, negative_ttl_seconds: 5 } },
      plans: { default: { limit: 1_000_000_000, window_seconds: 1 } },
      scopes: { catalog: ['read'] },
      apis: [{ name: 'bench', path_prefix: '/', upstream, routes: [{ method: 'GET', path: '/*', scopes: ['read'] }] }],
      admin: { port: adminPort, host: '127.0.0.1', tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
      log: { level: 'error' },
    };
    // JSON is YAML: a config file bin/main.ts reads like any other.
    const file = join(root, `cli-${workers}w.yaml`);
    writeFileSync(file, JSON.stringify(config, null, 2));
    const t0 = performance.now();
    const cli = new Cli([process.execPath, ...nodeFlags, CLI_JS, '--config', file], port, workers);
    // The admin plane listens once every worker is ready.
    const deadline = t0 + READY_TIMEOUT_MS;
    while ((await httpStatus(adminPort, '/healthz')) !== 200 || (await httpStatus(port, '/bench', key)) !== 200) {
      if (performance.now() > deadline || cli.child.exitCode !== null) throw new Error(`the keygate CLI with ${workers} workers did not answer`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { cli, ready_ms: performance.now() - t0 };
  }

  /** The primary, then each worker in pid order. */
  cpu(): Map<string, number> {
    const tree = treeCpu(this.pid);
    const out = new Map([['primary', tree.get(this.pid) ?? 0]]);
    this.#workerPids(tree).forEach((p, i) => out.set(`worker ${i + 1}`, tree.get(p)!));
    return out;
  }

  connections(): Record<string, number> {
    const tree = treeCpu(this.pid);
    const names = new Map<number, string>([[this.pid, 'primary'], ...this.#workerPids(tree).map((p, i) => [p, `worker ${i + 1}`] as [number, string])]);
    const out: Record<string, number> = {};
    for (const pid of socketOwners(this.port, [...names.keys()]).values()) out[names.get(pid)!] = (out[names.get(pid)!] ?? 0) + 1;
    return out;
  }

  #workerPids(tree: Map<number, number>): number[] {
    return [...tree.keys()].filter((p) => p !== this.pid).sort((a, b) => a - b);
  }

  /** VmRSS of the primary and each worker, bytes. */
  rss(): number[] {
    return [...treeCpu(this.pid).keys()].map((p) => {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : Number.NaN;
    });
  }
}

/** The status of GET `path` on loopback `port` (0 when nothing answers). */
function httpStatus(port: number, path: string, key?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, headers: key ? { authorization: `Bearer ${key}` } : {}, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(5_000, () => req.destroy());
    req.once('error', () => resolve(0));
  });
}

interface Sample {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  requests: number;
  seconds: number;
  /** CPU time the serving processes spent per request, in microseconds. */
  cpu_us: number;
  /**
   * CPU cores used over the run's wall time: each serving process, wrk, the upstream (and
   * redis-server), `machine` (every CPU's busy time, all processes) and `others` (the machine
   * less all of those: the neighbours on a shared host).
   */
  split: Record<string, number>;
  /** For a CLI row: the client connections each process held halfway through the run. */
  connections?: Record<string, number>;
  errors: string | null;
}

function toMs(v: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec((v ?? '').trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n;
}

const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);
/** The load side's processes: their CPU seconds so far. */
const loadCpu = (): Map<string, number> =>
  new Map([['upstream', procStat(upstreamProc.pid).cpu], ...(redisProc ? [['redis-server', procStat(redisProc.pid).cpu] as [string, number]] : [])]);

/**
 * One wrk run with a script and the keys file; `untilDone` stops it (SIGINT, on which wrk
 * reports) when the script prints `pass done`, with `seconds` as the bound either way. wrk runs
 * under a shell that prints its own /proc stat after wrk exits: the children's CPU in it is wrk's.
 */
async function wrk(script: string, target: Served, keysFile: string, seconds: number, untilDone = false): Promise<Sample> {
  const cpu0 = target.cpu();
  const load0 = loadCpu();
  const machine0 = machineCpu()[0]!;
  const t0 = performance.now();
  const url = `http://127.0.0.1:${target.port}/bench`;
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '--latency', '-s', script, url, '--', keysFile];
  const shell = 'wrk "$@"; code=$?; echo "wrk-stat $(cat /proc/$$/stat)"; exit $code';
  const run: Proc = new Proc(pinned(1, ['sh', '-c', shell, 'wrk', ...args]), (line) => {
    if (untilDone && line === 'pass done') process.kill(wrkPid(run), 'SIGINT');
  });
  const killer = setTimeout(() => run.child.kill('SIGKILL'), (seconds + 120) * 1000);
  let connectionsHeld: Record<string, number> | undefined;
  const halfway = target.connections ? setTimeout(() => (connectionsHeld = target.connections!()), (seconds * 1000) / 2) : undefined;
  const code = await run.exited;
  clearTimeout(killer);
  clearTimeout(halfway);
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = target.cpu();
  const load1 = loadCpu();
  const machine1 = machineCpu()[0]!;
  const out = run.output;
  if (code !== 0) throw new Error(`wrk exited with ${code}:\n${out}`);
  const done = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  if (!done) throw new Error(`unexpected wrk output:\n${out}`);
  const requests = Number(done[1]);
  const elapsed = toMs(`${done[2]}${done[3]}`) / 1000;
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1];
  const socket = /Socket errors: (.*)/.exec(out)?.[1];
  const stat = /wrk-stat .*?\) (.*)/.exec(out)?.[1]?.split(' ');
  const split: Record<string, number> = {};
  for (const [name, c] of cpu1) split[name] = (c - (cpu0.get(name) ?? c)) / wall;
  for (const [name, c] of load1) split[name] = (c - load0.get(name)!) / wall;
  split['wrk'] = stat ? (Number(stat[13]) + Number(stat[14])) / 100 / wall : Number.NaN;
  const ours = sum(Object.values(split));
  split['machine'] = (machine1.busy - machine0.busy) / wall;
  split['others'] = split['machine'] - ours;
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50_ms: toMs(/\s50%\s+(\S+)/.exec(out)?.[1]),
    p99_ms: toMs(/\s99%\s+(\S+)/.exec(out)?.[1]),
    max_ms: toMs(/Latency\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1]),
    requests,
    seconds: elapsed,
    cpu_us: ((sum(cpu1.values()) - sum(cpu0.values())) * 1e6) / requests,
    split,
    ...(connectionsHeld ? { connections: connectionsHeld } : {}),
    errors: non2xx || socket ? [non2xx ? `${non2xx} non-2xx` : '', socket ?? ''].filter(Boolean).join('; ') : null,
  };
}

/** The pid of the wrk under a run's shell (its one child). */
function wrkPid(run: Proc): number {
  const kids = [...treeCpu(run.pid).keys()].filter((p) => p !== run.pid);
  return kids[0] ?? run.pid;
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
/** Where seeded stores and their keys live: this run's directory, or `--data`, kept and reused. */
const dataDir = values.data ?? root;
mkdirSync(dataDir, { recursive: true });
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
/** Where N keys are kept: a file store's directory, a database file, or a prefix of this run's Redis. */
function storeOf(kind: StoreKind, name: string): string {
  if (kind === 'redis') return `${redisUrl}#scaling-${name}`;
  return kind === 'sqlite' ? `sqlite:${join(dataDir, `store-${name}.db`)}` : join(dataDir, `store-${name}`);
}
/** Removes a file store's directory or a database file (with its WAL); Redis keys go with the server. */
function removeStore(spec: string): void {
  if (spec.startsWith('redis://')) return;
  const path = spec.startsWith('sqlite:') ? spec.slice('sqlite:'.length) : spec;
  for (const p of [path, `${path}-wal`, `${path}-shm`]) rmSync(p, { recursive: true, force: true });
}
const random = 'bench/scaling/random.lua';
const sequential = 'bench/scaling/sequential.lua';

type Seed = { keys: number; commits: number; history: boolean; generate_ms: number; commit_ms: number; total_ms: number; store_bytes: number };

/**
 * A store of N keys and its keys file: seeded now, or with `--data` the one a run before seeded
 * there (its seed record beside it). A store taken again is read through once first, so that it
 * is in the OS page cache as a store just seeded is.
 */
async function seeded(kind: StoreKind, name: string, n: number): Promise<{ spec: string; keysFile: string; seed: Seed }> {
  const spec = storeOf(kind, name);
  const keysFile = join(dataDir, `keys-${kind}-${name}.txt`);
  const record = join(dataDir, `seed-${kind}-${name}.json`);
  if (values.data !== undefined && kind !== 'redis' && existsSync(record)) {
    const seed = JSON.parse(readFileSync(record, 'utf8')) as Seed;
    if (seed.keys === n) {
      log(`reusing the store seeded before in ${dataDir} (seeding took ${(seed.total_ms / 1000).toFixed(1)} s)`);
      for (const file of storeFiles(spec)) readThrough(file);
      return { spec, keysFile, seed };
    }
  }
  removeStore(spec);
  const seed = await seedStore(spec, n, keysFile);
  if (values.data !== undefined && kind !== 'redis') writeFileSync(record, JSON.stringify(seed));
  return { spec, keysFile, seed };
}

/** The files of a store spec (none on Redis). */
function storeFiles(spec: string): string[] {
  if (spec.startsWith('redis://')) return [];
  if (spec.startsWith('sqlite:')) return [spec.slice('sqlite:'.length)];
  return existsSync(spec) ? readdirSync(spec).map((f) => join(spec, f)) : [];
}

function readThrough(file: string): void {
  const buf = Buffer.allocUnsafe(16 << 20);
  const fd = openSync(file, 'r');
  try {
    while (readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    closeSync(fd);
  }
}

async function seedStore(spec: string, n: number, keysFile: string, extra: string[] = []): Promise<Seed> {
  const seeder = new Proc([process.execPath, '--import=tsx', 'bench/scaling/seed.ts', spec, String(n), keysFile, ...extra]);
  const timer = setTimeout(() => seeder.child.kill('SIGKILL'), SEED_TIMEOUT_MS);
  const seedLine = await seeder.next('{', SEED_TIMEOUT_MS);
  await seeder.exited;
  clearTimeout(timer);
  const seed = JSON.parse(seedLine) as Seed;
  log(`seeded in ${(seed.total_ms / 1000).toFixed(1)} s (commits ${(seed.commit_ms / 1000).toFixed(1)} s), ${MB(seed.store_bytes).toFixed(0)} MB on disk`);
  return seed;
}

interface Row {
  store: StoreKind;
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
interface WorkersRow {
  workers: number;
  keys: number;
  /** Spawn until the admin plane and the gateway answer. */
  ready_ms: number;
  warm: Sample[];
  /** VmRSS of the primary and each worker after the rounds. */
  rss: number[];
}
const rows: Row[] = [];
const workersRows: WorkersRow[] = [];
let history: { keys: number; seed: Seed; starts: { ready: Ready; mem: Mem }[] } | null = null;
const largest = Math.max(...sizes);
const label = (store: StoreKind, n: number) => `${store}, ${n.toLocaleString('en-US')} keys`;
log(`data in ${root}; ${pin ? 'gateway on CPU 0, wrk and upstream on CPU 1 (CLI rows not pinned)' : 'not pinned (no taskset)'}`);
try {
  // Each N in turn, each store: seed, start, the all-miss first pass; the targets stay up for the warm rounds.
  type Live = { store: StoreKind; n: number; spec: string; keysFile: string; target: Target; row: Omit<Row, 'warm' | 'warm_hit_ratio' | 'mem_after'> };
  const live: Live[] = [];
  for (const n of sizes) {
    for (const store of stores) {
      log(`\n== ${label(store, n)}: seeding`);
      const { spec, keysFile, seed } = await seeded(store, String(n), n);

      const { target, ready } = await Target.start(spec, upstream, n);
      log(`cold start ${(ready.wall_ms / 1000).toFixed(2)} s (store open ${(ready.store_open_ms / 1000).toFixed(3)} s)`);
      // No GC forced before the fill: it would set the heap's limits as no production gateway has them.
      const memReady = await target.mem(false);
      log(`ready: RSS ${MB(memReady.vm_rss).toFixed(0)} MB, heap ${MB(memReady.heap_used).toFixed(0)} MB (no GC)`);

      const first = await wrk(sequential, target, keysFile, firstPassSeconds(n), true);
      log(`first pass (all misses): ${first.requests} requests in ${first.seconds.toFixed(1)} s, ${first.rps.toFixed(0)} req/s, p99 ${first.p99_ms} ms, ${first.cpu_us.toFixed(1)} CPU µs/req${first.errors ? `, ${first.errors}` : ''}`);
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
      live.push({ store, n, spec, keysFile, target, row: { store, keys: n, seed, cold_start: ready, cold_starts: [], mem_ready: memReady, first_pass: first, mem_cached: memCached, mem_idle: memIdle } });
    }
  }

  // The CLI rows: one database of --workers-keys keys, a CLI process per worker count.
  const clis: { cli: Cli; keysFile: string; ready_ms: number }[] = [];
  if (workerCounts.length > 0) {
    log(`\n== keygate CLI rows (workers ${workerCounts.join(', ')}), ${workersKeys.toLocaleString('en-US')} keys: seeding`);
    const { spec, keysFile } = await seeded('sqlite', `workers-${workersKeys}`, workersKeys);
    const key = readFileSync(keysFile, 'utf8').slice(0, readFileSync(keysFile, 'utf8').indexOf('\n'));
    for (const w of workerCounts) {
      const { cli, ready_ms } = await Cli.start(spec.slice('sqlite:'.length), upstream, workersKeys, w, key);
      log(`CLI with ${w} worker${w === 1 ? '' : 's'} ready in ${(ready_ms / 1000).toFixed(2)} s`);
      clis.push({ cli, keysFile, ready_ms });
    }
  }

  // Warm rounds interleaved across every row (as bench/run.ts does), so drift and neighbours
  // hit all alike; each measured run follows `--rewarm` seconds of the same load, unmeasured,
  // as a row sits idle while the others run (docs/performance.md, "After idle").
  type Runner = { name: string; served: Served; keysFile: string; samples: Sample[] };
  const runners: Runner[] = [
    ...live.map((l) => ({ name: label(l.store, l.n), served: l.target, keysFile: l.keysFile, samples: [] })),
    ...clis.map((c) => ({ name: `CLI, ${c.cli.workers} worker${c.cli.workers === 1 ? '' : 's'} (sqlite, ${workersKeys.toLocaleString('en-US')} keys)`, served: c.cli, keysFile: c.keysFile, samples: [] })),
  ];
  log(`\n== warm: ${warmup} s warm-up each, then ${rounds} rounds of ${duration} s (after ${rewarm} s re-warm), interleaved`);
  for (const r of runners) if (warmup > 0) await wrk(random, r.served, r.keysFile, warmup);
  const before = new Map<Live, Mem>();
  for (const l of live) before.set(l, await l.target.mem());
  for (let round = 0; round < rounds; round++) {
    for (const r of runners) {
      if (rewarm > 0) await wrk(random, r.served, r.keysFile, rewarm);
      const s = await wrk(random, r.served, r.keysFile, duration);
      r.samples.push(s);
      const split = Object.entries(s.split).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
      const held = s.connections ? `; connections: ${Object.entries(s.connections).map(([k, v]) => `${k} ${v}`).join(', ')}` : '';
      log(`round ${round + 1}, ${r.name}: ${s.rps.toFixed(0)} req/s, p50 ${s.p50_ms} ms, p99 ${s.p99_ms} ms, ${s.cpu_us.toFixed(1)} CPU µs/req; cores: ${split}${held}${s.errors ? `; ${s.errors}` : ''}`);
    }
  }
  for (const [i, l] of live.entries()) {
    const memAfter = await l.target.mem();
    const hits = memAfter.cache_hits - before.get(l)!.cache_hits;
    const misses = memAfter.cache_misses - before.get(l)!.cache_misses;
    await l.target.stop();
    rows.push({ ...l.row, warm: runners[i]!.samples, warm_hit_ratio: hits / Math.max(1, hits + misses), mem_after: memAfter });
  }
  for (const [i, c] of clis.entries()) {
    const rss = c.cli.rss();
    await c.cli.stop();
    workersRows.push({ workers: c.cli.workers, keys: workersKeys, ready_ms: c.ready_ms, warm: runners[live.length + i]!.samples, rss });
  }

  // The stores in turn, round after round, as the warm rounds are.
  for (let i = 1; i < coldStarts; i++) {
    for (const store of stores) {
      const big = live.find((l) => l.n === largest && l.store === store)!;
      const again = await Target.start(big.spec, upstream, largest);
      rows.find((r) => r.keys === largest && r.store === store)!.cold_starts.push(again.ready);
      log(`cold start again, ${label(store, largest)}: ${(again.ready.wall_ms / 1000).toFixed(2)} s (store open ${(again.ready.store_open_ms / 1000).toFixed(3)} s)`);
      await again.target.stop();
    }
  }
  if (!values.keep && values.data === undefined) for (const l of live) removeStore(l.spec);
  if (!values['skip-history'] && stores.includes('file') && largest >= 1000) {
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
const opt = (v: number | null, d = 2) => (v === null || Number.isNaN(v) ? '–' : v.toFixed(d));
/** The median over rounds of a's value / b's value in the same round (rounds share drift). */
const perRound = (a: Sample[], b: Sample[] | undefined, of: (s: Sample) => number) =>
  b === undefined ? null : median(a.map((s, i) => of(s) / of(b[i]!)));
const rowOf = (store: StoreKind, n: number) => rows.find((r) => r.store === store && r.keys === n);
const smallest = (store: StoreKind) => rows.find((r) => r.store === store)!;
const multi = stores.length > 1;
console.log(`\nThroughput (wrk -t1 -c${connections}; warm: median of ${rounds} × ${duration} s, a random key of N per request)\n`);
line(['store', 'keys in store', 'warm req/s', 'warm p50 ms', 'warm p99 ms', 'CPU µs/req', 'req/s × smallest N', 'CPU × smallest N', ...(multi ? ['req/s × file, per round', 'CPU × file, per round'] : []), 'hit ratio', 'first pass req/s', 'first pass p99 ms', 'first pass CPU µs/req', 'first pass s']);
line(['---', ...Array(multi ? 14 : 12).fill('---:')]);
for (const r of rows) {
  const rps = median(r.warm.map((s) => s.rps));
  const cpu = median(r.warm.map((s) => s.cpu_us));
  const base = smallest(r.store);
  const file = rowOf('file', r.keys)?.warm;
  line([
    r.store, r.keys.toLocaleString('en-US'), f(rps), f(median(r.warm.map((s) => s.p50_ms)), 2), f(median(r.warm.map((s) => s.p99_ms)), 2), f(cpu, 1),
    f(rps / median(base.warm.map((s) => s.rps)), 2), f(cpu / median(base.warm.map((s) => s.cpu_us)), 2),
    ...(multi ? [opt(perRound(r.warm, file, (s) => s.rps)), opt(perRound(r.warm, file, (s) => s.cpu_us))] : []),
    f(r.warm_hit_ratio, 4), f(r.first_pass.rps), f(r.first_pass.p99_ms, 2), f(r.first_pass.cpu_us, 1), f(r.first_pass.seconds, 1),
  ]);
}
console.log('\nMemory of the gateway process (RSS is /proc VmRSS; heap figures after a full GC, except at ready)\n');
line(['store', 'keys in store', 'RSS ready MB', 'RSS all cached MB', ...(onRedis ? ['× Redis'] : []), 'of which anonymous / files MB', 'heap used / committed MB', 'old space used / committed MB', `RSS ${idleSeconds} s later, idle MB`, ...(onRedis ? ['× Redis'] : []), 'heap used / committed then MB', 'token buckets then', 'peak RSS (VmHWM) MB']);
line(['---', ...Array(onRedis ? 12 : 10).fill('---:')]);
const usedOf = (m: Mem, space?: string) => {
  const { used, size } = space === undefined ? { used: m.heap_used, size: m.heap_total } : (m.spaces[space] ?? { used: 0, size: 0 });
  return `${f(MB(used))} / ${f(MB(size))}`;
};
for (const r of rows) {
  const c = r.mem_cached;
  const redis = rowOf('redis', r.keys);
  line([
    r.store, r.keys.toLocaleString('en-US'), f(MB(r.mem_ready.vm_rss)), f(MB(c.vm_rss)), ...(onRedis ? [opt(redis ? c.vm_rss / redis.mem_cached.vm_rss : null)] : []),
    `${f(MB(c.rss_anon))} / ${f(MB(c.rss_file))}`, usedOf(c), usedOf(c, 'old_space'),
    f(MB(r.mem_idle.vm_rss)), ...(onRedis ? [opt(redis ? r.mem_idle.vm_rss / redis.mem_idle.vm_rss : null)] : []), usedOf(r.mem_idle), String(c.buckets), f(MB(r.mem_after.vm_hwm)),
  ]);
}
console.log('\nSeeding and cold start (spawn to listening; the journal or database is in the OS page cache, as after the seeding)\n');
line(['store', 'keys in store', 'seeding s', 'of which commits s', 'on disk MB', 'cold start s', 'of which store open s', 'cold starts measured', 'cold start min–max s']);
line(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']);
for (const r of rows) {
  const all = [r.cold_start, ...r.cold_starts];
  line([
    r.store, r.keys.toLocaleString('en-US'), f(r.seed.total_ms / 1000, 1), f(r.seed.commit_ms / 1000, 1), f(MB(r.seed.store_bytes)),
    f(median(all.map((c) => c.wall_ms)) / 1000, 2), f(median(all.map((c) => c.store_open_ms)) / 1000, 3), all.length,
    `${f(Math.min(...all.map((c) => c.wall_ms)) / 1000, 2)}–${f(Math.max(...all.map((c) => c.wall_ms)) / 1000, 2)}`,
  ]);
}
if (history) {
  const all = history.starts.map((x) => x.ready);
  line([
    'file', `${history.keys.toLocaleString('en-US')} + audit + events, compacted on open`, f(history.seed.total_ms / 1000, 1), f(history.seed.commit_ms / 1000, 1),
    f(MB(history.seed.store_bytes)), f(median(all.map((c) => c.wall_ms)) / 1000, 2), f(median(all.map((c) => c.store_open_ms)) / 1000, 3), all.length,
    `${f(Math.min(...all.map((c) => c.wall_ms)) / 1000, 2)}–${f(Math.max(...all.map((c) => c.wall_ms)) / 1000, 2)}`,
  ]);
  const m = history.starts[history.starts.length - 1]!.mem;
  console.log(`\nThat store, loaded (no key cached yet): RSS ${f(MB(m.vm_rss))} MB, heap ${f(MB(m.heap_used))} MB.`);
}
if (workersRows.length > 0) {
  const base = workersRows.find((w) => w.workers === 1)?.warm;
  const parts = [...new Set(workersRows.flatMap((w) => w.warm.flatMap((s) => Object.keys(s.split))))];
  const cores = (w: WorkersRow, part: string) => median(w.warm.map((s) => s.split[part] ?? 0));
  console.log(
    `\nThe keygate CLI on SQLite, ${workersKeys.toLocaleString('en-US')} keys, by workers (not pinned; wrk and the upstream on CPU 1): ` +
      `median of ${rounds} rounds; CPU in cores (CPU seconds a second of the run), medians of the rounds\n`,
  );
  line(['workers', 'req/s', 'req/s × 1 worker, per round', 'p50 ms', 'p99 ms', 'CPU µs/req (primary + workers)', ...parts, 'connections per worker, each round', 'RSS primary + workers MB']);
  line(['---:', ...Array(5 + parts.length).fill('---:'), '---', '---:']);
  for (const w of workersRows) {
    const held = w.warm.map((s) => Object.entries(s.connections ?? {}).filter(([k]) => k !== 'primary').sort().map(([, v]) => v).join('/')).join(', ');
    line([
      w.workers, f(median(w.warm.map((s) => s.rps))), opt(perRound(w.warm, base, (s) => s.rps)), f(median(w.warm.map((s) => s.p50_ms)), 2), f(median(w.warm.map((s) => s.p99_ms)), 2),
      f(median(w.warm.map((s) => s.cpu_us)), 1), ...parts.map((p) => f(cores(w, p), 2)), w.workers === 1 ? '–' : held, w.rss.map((b) => f(MB(b))).join(' + '),
    ]);
  }
  console.log(`\nmachine: every CPU's busy time (of ${machineCpu().length - 1}); others: the machine less the processes named (neighbours on a shared host).`);
}
if (breakdown) {
  console.log(`\nHeap (+ ArrayBuffer) bytes per key, ${breakdown.keys.toLocaleString('en-US')} keys, part by part (bench/scaling/cache-memory.ts; rows built as an array include its 8 B/key)\n`);
  line(['part', 'bytes/key', 'MB for all keys', 'what']);
  line(['---', '---:', '---:', '---']);
  for (const p of breakdown.rows) line([p.part, f(p.bytes_per_key), f((p.bytes_per_key * breakdown.keys) / 1024 / 1024), p.note]);
}
mkdirSync('bench/results', { recursive: true });
const out = `bench/results/scaling${stores.length === 1 && stores[0] === 'file' ? '' : `-${stores.join('-')}`}.json`;
writeFileSync(
  out,
  JSON.stringify({ when: new Date().toISOString(), node: process.version, node_flags: nodeFlags, stores, pinned: pin, connections, duration, rounds, warmup, rewarm, rows, workers: workersRows, history, breakdown }, null, 2),
);
console.log(`\nwritten to ${out}`);
process.exit(0);
