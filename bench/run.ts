import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';

/**
 * Proxy benchmark: the same wrk load, in one invocation, against
 *   direct   the upstream itself
 *   bare     a proxy made of Keygate's forwarding code alone
 *   gateway  Keygate with full enforcement (scopes, API list, allowlist, rate limit) on an LRU hit
 *   redis    the same with the key in a RedisStore and the rate limit in Redis's shared token
 *            buckets, twice: leases of 50 tokens (the default for a big bucket), and leases of
 *            1 token (a Redis round trip on every request)
 * Targets run interleaved, round after round, so drift hits all alike; medians are reported
 * with ratios to the direct upstream and to the bare proxy. Besides requests per second, the
 * CPU time the serving process spent per request is read from /proc: when the proxy is not
 * the only bottleneck (wrk and the upstream share one core), it is the steadier measure. With taskset, the proxy gets CPU 0
 * and wrk, the upstream and redis-server share CPU 1. The redis-server this starts (on a free
 * loopback port, no persistence) is killed on exit; for the redis rows, the Redis commands and
 * redis-server CPU time per request are reported too.
 *
 *   npm run bench -- [--duration 5] [--rounds 3] [--connections 50]
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '2' },
  },
});
const duration = Math.min(60, Number(values.duration));
const rounds = Math.min(10, Number(values.rounds));
const connections = Math.min(1000, Number(values.connections));
const warmup = Math.min(30, Number(values.warmup));

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (!have('wrk')) {
  process.stderr.write('wrk not found; installing it (apt-get install -y wrk)\n');
  execFileSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq wrk'], { stdio: 'inherit' });
}
if (!have('redis-server')) {
  process.stderr.write('redis-server not found; installing it (apt-get install -y redis-server)\n');
  execFileSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq redis-server'], { stdio: 'inherit' });
}
const pin = have('taskset');
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** User + system CPU seconds a process has used so far (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function start(cpu: number, args: string[]): Promise<{ pid: number; line: string }> {
  const cmd = pin ? ['taskset', '-c', String(cpu), process.execPath, ...args] : [process.execPath, ...args];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start in 20 s`)), 20_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const line = out.split('\n').find((l) => l.startsWith('ready'));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve({ pid: child.pid!, line: line.slice(6).trim() });
      }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

/** redis-server on a free loopback port, no persistence, pinned with wrk and the upstream. */
async function startRedis(): Promise<{ pid: number; url: string; client: Redis }> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const cmd = pin ? ['taskset', '-c', '1', 'redis-server', ...args] : ['redis-server', ...args];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return { pid: child.pid!, url, client };
    } catch {
      client.disconnect();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('redis-server did not answer PING in 10 s');
}

/**
 * Lua scripts (EVAL, EVALSHA) redis-server has run so far: one per round trip of the limiter
 * or the store. (commandstats also counts the commands a script calls, so all commands would
 * count a token-bucket decision five times.)
 */
async function redisScripts(client: Redis): Promise<number> {
  let n = 0;
  for (const m of (await client.info('commandstats')).matchAll(/^cmdstat_(eval|evalsha):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  /** CPU time the serving process spent per request, in microseconds. */
  cpuUs: number;
  requests: number;
  /** Redis Lua scripts (round trips) per request (redis rows only). */
  redisScripts?: number;
  /** redis-server CPU time per request, in microseconds (redis rows only). */
  redisCpuUs?: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

function wrk(url: string, seconds: number, headers: string[], pid: number): Sample {
  const cpuBefore = cpuSeconds(pid);
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const cmd = pin ? ['taskset', '-c', '1', 'wrk', ...args] : ['wrk', ...args];
  const out = execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) throw new Error(`${url}: ${non2xx[1]} non-2xx responses; the target is misconfigured`);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99: toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    cpuUs: ((cpuSeconds(pid) - cpuBefore) * 1e6) / requests,
    requests,
  };
}

/** wrk against one target; for a redis target, also what redis-server did meanwhile. */
async function measure(t: Target, seconds: number): Promise<Sample> {
  if (!t.redis) return wrk(t.url, seconds, t.headers, t.pid);
  const scriptsBefore = await redisScripts(redis.client);
  const cpuBefore = cpuSeconds(redis.pid);
  const s = wrk(t.url, seconds, t.headers, t.pid);
  s.redisCpuUs = ((cpuSeconds(redis.pid) - cpuBefore) * 1e6) / s.requests;
  s.redisScripts = ((await redisScripts(redis.client)) - scriptsBefore) / s.requests;
  return s;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const upstreamPort = await freePort();
const up = await start(1, ['--import=tsx', 'bench/upstream.ts', String(upstreamPort)]);
const upstream = `http://127.0.0.1:${upstreamPort}`;
const redis = await startRedis();
interface Target {
  name: string;
  url: string;
  headers: string[];
  pid: number;
  redis: boolean;
}
const targets: Target[] = [{ name: 'direct upstream', url: `${upstream}/bench`, headers: [], pid: up.pid, redis: false }];
const FILE_ROW = 'keygate, full enforcement';
const REDIS_ROW = 'keygate on Redis (shared rate limit)';
const REDIS_1_ROW = 'keygate on Redis, lease 1 (Redis per request)';
const kinds = [
  { name: 'bare proxy (forwarding only)', args: ['bare'] },
  { name: FILE_ROW, args: ['gateway'] },
  { name: REDIS_ROW, args: ['redis'], redis: true },
  { name: REDIS_1_ROW, args: ['redis'], lease: '1', redis: true },
];
for (const k of kinds) {
  const port = await freePort();
  const args = [...k.args, String(port), upstream, ...(k.redis ? [redis.url] : []), ...(k.lease ? [k.lease] : [])];
  const { pid, line: key } = await start(0, ['--import=tsx', 'bench/target.ts', ...args]);
  targets.push({ name: k.name, url: `http://127.0.0.1:${port}/bench`, headers: [`Authorization: Bearer ${key}`], pid, redis: k.redis === true });
}
// Every target gets the same request bytes: keys all have the same length; the upstream
// gets one too (the bare proxy's, which it forwards without looking at it).
targets[0]!.headers = targets[1]!.headers;

process.stderr.write(`warm-up ${warmup} s each; ${rounds} rounds of ${duration} s, ${connections} connections${pin ? ', pinned' : ''}\n`);
for (const t of targets) await measure(t, warmup);
const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
for (let r = 0; r < rounds; r++) {
  for (const t of targets) {
    const s = await measure(t, duration);
    samples.get(t.name)!.push(s);
    const extra = s.redisScripts === undefined ? '' : `; ${s.redisScripts.toFixed(3)} Redis scripts/req, ${s.redisCpuUs!.toFixed(1)} redis-server CPU us/req`;
    process.stderr.write(`round ${r + 1} ${t.name}: ${s.rps.toFixed(0)} req/s p50 ${s.p50} ms p99 ${s.p99} ms ${s.cpuUs.toFixed(1)} CPU us/req${extra}\n`);
  }
}

const rows = targets.map((t) => {
  const s = samples.get(t.name)!;
  return {
    target: t.name,
    rps: median(s.map((x) => x.rps)),
    p50_ms: median(s.map((x) => x.p50)),
    p99_ms: median(s.map((x) => x.p99)),
    cpu_us: median(s.map((x) => x.cpuUs)),
    redis_scripts_per_req: t.redis ? median(s.map((x) => x.redisScripts!)) : null,
    redis_cpu_us: t.redis ? median(s.map((x) => x.redisCpuUs!)) : null,
  };
});
const direct = rows[0]!.rps;
const bare = rows[1]!.rps;
const bareCpu = rows[1]!.cpu_us;
const table = rows.map((r) => ({ ...r, vs_direct: r.rps / direct, vs_bare: r.rps / bare, cpu_vs_bare: r.cpu_us / bareCpu }));
const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
const opt = (v: number | null, digits: number) => (v === null ? '–' : v.toFixed(digits));
console.log(line(['target', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'req/s × direct', 'req/s × bare', 'CPU × bare', 'Redis scripts/req', 'redis-server CPU µs/req']));
console.log(line(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
for (const r of table) {
  console.log(
    line([
      r.target, r.rps.toFixed(0), r.p50_ms.toFixed(2), r.p99_ms.toFixed(2), r.cpu_us.toFixed(1), r.vs_direct.toFixed(2), r.vs_bare.toFixed(2),
      r.cpu_vs_bare.toFixed(2), opt(r.redis_scripts_per_req, 3), opt(r.redis_cpu_us, 1),
    ]),
  );
}
const file = table.find((r) => r.target === FILE_ROW)!;
const vsFile = (name: string) => {
  const r = table.find((x) => x.target === name)!;
  return `${(r.rps / file.rps).toFixed(2)}× the req/s, ${(r.cpu_us / file.cpu_us).toFixed(2)}× the gateway CPU per request, p50 ${(r.p50_ms / file.p50_ms).toFixed(2)}×`;
};
console.log(`
Notes:
- "${FILE_ROW}": the file store and in-process token buckets (one gateway's own limit).
- "${REDIS_ROW}": the key in a RedisStore (looked up once, then an LRU hit like the file-store
  row; Redis pub/sub would drop it on a change) and the rate limit in Redis's shared token buckets.
  The plan (1e9 per second) never refuses, yet every request spends a token leased from Redis:
  leases are 2% of the capacity, at most 50, so by design one Redis round trip (a Lua script) per
  50 requests: 0.020 scripts/req (more would mean concurrent refills each took a lease of their
  own). Against the file-store row: ${vsFile(REDIS_ROW)}.
- "${REDIS_1_ROW}": the same with rate_limiter.lease_max 1, a Redis round trip on every request:
  the upper bound of the shared limiter's price. A gateway makes one round trip per bucket at a
  time (waiting requests share it), so one hot key on one gateway is bounded by the Redis round
  trip here (about 1 / RTT requests per second); buckets small enough to lease 1 token by
  default (capacity under 100) have limits far below that. Against the file-store row:
  ${vsFile(REDIS_1_ROW)}.
- redis-server runs on loopback${pin ? ' on CPU 1, beside wrk and the upstream (the gateways have CPU 0)' : ''}, so its CPU
  time competes with the load generator: in production it is on another host. "Redis scripts/req"
  counts the EVAL/EVALSHA calls redis-server ran during the run; "redis-server CPU µs/req" is its
  user + system time over the run divided by the requests served.`);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/proxy.json',
  JSON.stringify({ when: new Date().toISOString(), duration, rounds, connections, pinned: pin, redis: redis.url, rows: table }, null, 2),
);
process.exit(0);
