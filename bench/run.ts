import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { get as getTls } from 'node:https';
import { connect as connectTls } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { generateKey } from '../core/key-format.js';
import { nginxConfig } from './peers/nginx.js';
import { freePort, have, install, procStat, selfSignedCert } from './lib.js';

/**
 * Proxy benchmark: the same wrk load, in one invocation, against
 *   direct            the upstream itself
 *   nginx             nginx as a plain reverse proxy, keep-alive pool to the upstream, 1 worker
 *   nginx-keys        nginx doing Keygate's job: a static key map (401 otherwise), the credential
 *                     dropped, limit_req per key; 1 worker
 *   floor             the least a Node proxy does: undici Pool.stream with the headers passed through
 *                     as parsed, nothing else (not a correct proxy: the cost of Node's HTTP alone)
 *   bare              a Node proxy made of Keygate's forwarding code alone
 *   fastify           @fastify/http-proxy, bare
 *   express           express + http-proxy-middleware, bare
 *   express-gateway   express-gateway with its key-auth and rate-limit policies (the Node peer
 *                     doing the same job), when it installs and runs
 *   keygate-checks    Keygate, full enforcement on an LRU hit (file store), metrics and usage off
 *   keygate-rules     the same with 5,000 route rules, the request matching only the last
 *   keygate           the same with Prometheus metrics and usage recording on, as in production
 *   redis             Keygate on Redis: the key in a RedisStore, the rate limit in Redis's shared
 *                     token buckets (leases of 50 tokens), metrics and usage to Redis
 *   redis-lease1      the same with leases of 1 token: a Redis round trip on every request
 *   nginx-2w          plain nginx with 2 worker processes, not pinned
 *   keygate-2w        the keygate CLI with `workers: 2` (node:cluster; the redis store, which more
 *                     than one worker needs), not pinned
 *   keygate-verify    Keygate's verify API (POST /v1/keys/verify on the status listener, as
 *                     production: metrics and usage on): verifications per second, not proxied
 *                     requests; the same checks, tokens and usage event per call
 *   nginx-auth        nginx proxying to the upstream after an auth_request to Keygate's GET /auth
 *                     (docs/integrations/nginx.md, cut to what a let-through needs), both pinned to
 *                     CPU 0; CPU µs/req counts nginx and Keygate
 *   nginx-tls         plain nginx on a TLS listener (HTTP/2 offered by ALPN too), loaded by wrk over
 *                     TLS: HTTP/1.1, keep-alive, so each connection's handshake is paid once a run
 *   keygate-tls       `keygate` on a TLS listener (HTTP/2 offered by ALPN, the default), wrk over
 *                     TLS: HTTP/1.1
 *   nginx-h2          nginx-tls loaded by h2load: HTTP/2 over TLS, `--h2-streams` streams in flight
 *                     on each connection (connections / streams connections, so as many requests in
 *                     flight as wrk's rows have)
 *   keygate-h2        keygate-tls loaded by h2load: HTTP/2 over TLS through the same pipeline
 *                     The TLS rows share a self-signed EC P-256 certificate made at start in a temp
 *                     dir (openssl); their ratios are taken against the nginx row of the same
 *                     protocol (keygate-tls / nginx-tls, keygate-h2 / nginx-h2).
 * Targets run interleaved, round after round, so drift hits all alike, after a warm-up of each;
 * each measured round of a row follows `--rewarm` seconds of the same load, unmeasured: between
 * two of its rounds a row sits idle while every other row runs (a minute and more), and a Node
 * process that comes back from idle runs slower for a while (V8's memory reducer shrinks its
 * heap; bench/after-idle.ts measures that on its own). The re-warm makes the rows compare as
 * they run under steady traffic; `--rewarm 0` measures them straight after the idle spell.
 * Medians are reported with ratios to the direct upstream and to plain nginx. Besides requests
 * per second, the CPU time the serving processes (a target and every process under it) spent
 * per request is read from /proc: when the proxy is not the only bottleneck (wrk and the
 * upstream share one core), it is the steadier measure. With taskset, one-worker proxies get
 * CPU 0 and wrk, the upstream and redis-server share CPU 1; the two-worker rows may use both
 * CPUs (sharing CPU 1 with the load). Missing tools (wrk, redis-server, nginx) are installed
 * with apt-get (h2load: nghttp2-client). Then latency at half load: each wrk connection pauses between requests
 * (bench/paced.lua) so that together they offer half of Keygate's peak, against the upstream,
 * nginx, the bare proxy and Keygate, and the p99 each adds over the upstream is reported.
 * Writes bench/results/proxy.json.
 *
 *   npm run bench -- [--duration 5] [--rounds 3] [--warmup 2] [--rewarm 1] [--connections 50] [--h2-streams 10] [--idle 20] [--only keygate,nginx]
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '2' },
    rewarm: { type: 'string', default: '1' },
    'h2-streams': { type: 'string', default: '10' },
    idle: { type: 'string', default: '20' },
    only: { type: 'string' },
  },
});
const duration = Math.max(1, Math.min(60, Number(values.duration)));
const rounds = Math.max(1, Math.min(10, Number(values.rounds)));
const connections = Math.max(1, Math.min(1000, Number(values.connections)));
const warmup = Math.max(0, Math.min(30, Number(values.warmup)));
const rewarm = Math.max(0, Math.min(30, Number(values.rewarm)));
const idleSeconds = Math.max(0, Math.min(120, Number(values.idle)));
/** h2load: streams in flight on each connection, over connections / streams connections. */
const h2Streams = Math.max(1, Math.min(100, Math.floor(Number(values['h2-streams']))));
const h2Connections = Math.max(1, Math.round(connections / h2Streams));

type Placement = 'one' | 'two';
interface RowSpec {
  id: string;
  name: string;
  /** `one`: pinned to CPU 0 (one worker); `two`: two workers, free to use both CPUs. */
  cpus: Placement;
  needs?: 'nginx' | 'redis';
  /** `tls`: a TLS listener, loaded by wrk over TLS (HTTP/1.1); `h2`: the same listener, loaded by h2load (HTTP/2). */
  tls?: 'tls' | 'h2';
  /** The nginx row the CPU and req/s ratios of the table take (default: plain nginx with as many workers). */
  baseline?: string;
}
const ROWS: RowSpec[] = [
  { id: 'direct', name: 'direct upstream', cpus: 'one' },
  { id: 'nginx', name: 'nginx plain proxy', cpus: 'one', needs: 'nginx' },
  { id: 'nginx-keys', name: 'nginx, key map + limit_req', cpus: 'one', needs: 'nginx' },
  { id: 'floor', name: 'Node floor: undici Pool.stream, nothing else (not a correct proxy)', cpus: 'one' },
  { id: 'bare', name: 'bare Node proxy (Keygate forwarding)', cpus: 'one' },
  { id: 'fastify', name: '@fastify/http-proxy', cpus: 'one' },
  { id: 'express', name: 'express + http-proxy-middleware', cpus: 'one' },
  { id: 'express-gateway', name: 'express-gateway, key-auth + rate-limit', cpus: 'one' },
  { id: 'keygate-checks', name: 'keygate, checks only (metrics, usage off)', cpus: 'one' },
  { id: 'keygate-rules', name: 'keygate, checks only, 5,000 route rules (the last matches)', cpus: 'one' },
  { id: 'keygate', name: 'keygate, full enforcement', cpus: 'one' },
  { id: 'redis', name: 'keygate on Redis', cpus: 'one', needs: 'redis' },
  { id: 'redis-lease1', name: 'keygate on Redis, lease 1', cpus: 'one', needs: 'redis' },
  { id: 'nginx-2w', name: 'nginx plain proxy, 2 workers', cpus: 'two', needs: 'nginx' },
  { id: 'keygate-2w', name: 'keygate CLI, 2 workers (Redis)', cpus: 'two', needs: 'redis' },
  { id: 'keygate-verify', name: 'keygate verify API, POST /v1/keys/verify (verifications)', cpus: 'one' },
  { id: 'nginx-auth', name: 'nginx + auth_request to keygate GET /auth', cpus: 'one', needs: 'nginx' },
  { id: 'nginx-tls', name: 'nginx plain proxy, TLS, HTTP/1.1', cpus: 'one', needs: 'nginx', tls: 'tls', baseline: 'nginx-tls' },
  { id: 'keygate-tls', name: 'keygate, full enforcement, TLS, HTTP/1.1', cpus: 'one', tls: 'tls', baseline: 'nginx-tls' },
  { id: 'nginx-h2', name: 'nginx plain proxy, TLS, HTTP/2', cpus: 'one', needs: 'nginx', tls: 'h2', baseline: 'nginx-h2' },
  { id: 'keygate-h2', name: 'keygate, full enforcement, TLS, HTTP/2', cpus: 'one', tls: 'h2', baseline: 'nginx-h2' },
];
const only = values.only?.split(',').map((s) => s.trim()).filter((s) => s !== '');
for (const id of only ?? []) {
  if (!ROWS.some((r) => r.id === id)) {
    process.stderr.write(`--only: no row ${id}; rows: ${ROWS.map((r) => r.id).join(', ')}\n`);
    process.exit(2);
  }
}
const selected = ROWS.filter((r) => only === undefined || only.includes(r.id));

// nginx is under /usr/sbin, which a non-login shell may lack.
process.env.PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const notes: string[] = [];
install('wrk', 'wrk');
if (selected.some((r) => r.tls === 'h2')) install('h2load', 'nghttp2-client');
if (selected.some((r) => r.tls !== undefined)) install('openssl', 'openssl');
if (selected.some((r) => r.needs === 'redis')) install('redis-server', 'redis-server');
if (selected.some((r) => r.needs === 'nginx')) {
  // Without nginx the nginx rows fail to start and say so in the notes; the rest still runs.
  try {
    install('nginx', 'nginx');
  } catch (err) {
    notes.push(`nginx could not be installed: ${(err as Error).message.split('\n')[0]}`);
  }
}

const pin = have('taskset');
/** Every process started here leads its own process group; the groups are killed on exit. */
const children: ChildProcess[] = [];
/**
 * Every temp dir of this run (file stores, configs, nginx prefixes) is made under one, which
 * the children learn from KEYGATE_BENCH_TMP and which is removed on exit.
 */
const runDir = mkdtempSync(join(tmpdir(), 'keygate-bench-run-'));
process.env.KEYGATE_BENCH_TMP = runDir;
process.on('exit', () => {
  for (const c of children) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(runDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
/** The TLS rows' certificate and key, made for this run (removed with runDir). */
const cert = selected.some((r) => r.tls !== undefined) ? selfSignedCert(mkdtempSync(join(runDir, 'tls-'))) : null;


/** The command line for `cmd`, pinned to `cpus` when taskset exists ('0,1': not pinned). */
function placed(cpus: string, cmd: string[]): string[] {
  return pin && cpus !== '0,1' ? ['taskset', '-c', cpus, ...cmd] : cmd;
}

/** Spawns `cmd` as the leader of a new process group; a command that cannot start exits with 127. */
function spawnGroup(cmd: string[], stdout: 'pipe' | 'ignore'): ChildProcess {
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', stdout, 'pipe'], detached: true });
  child.once('error', (err) => {
    child.stderr?.emit('data', Buffer.from(err.message));
    child.emit('exit', 127, null);
  });
  children.push(child);
  return child;
}

/** The last lines a child wrote to stderr, for the notes when it fails. */
function tail(child: ChildProcess): () => string {
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err = (err + c.toString()).slice(-2_000);
  });
  return () => err.trim().split('\n').slice(-3).join(' / ');
}

/** Starts a Node script; resolves with what follows `ready` on the first line that starts with it. */
async function startNode(cpus: string, args: string[]): Promise<{ pid: number; line: string }> {
  const child = spawnGroup(placed(cpus, [process.execPath, ...args]), 'pipe');
  const stderr = tail(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`did not start in 30 s ${stderr()}`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const line = out.split('\n').find((l) => l.startsWith('ready'));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve({ pid: child.pid!, line: line.slice(6).trim() });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}: ${stderr()}`));
    });
  });
}

/** GET's status, or 0 when nothing answers (https: the certificate is not verified). */
function status(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const onResponse = (res: import('node:http').IncomingMessage) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    };
    const req = url.startsWith('https:')
      ? getTls(url, { headers, agent: false, timeout: 2_000, rejectUnauthorized: false }, onResponse)
      : get(url, { headers, agent: false, timeout: 2_000 }, onResponse);
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

/**
 * What a TLS client with OpenSSL's default suites and no ALPN (as wrk is) negotiates with
 * 127.0.0.1:`port`: protocol, cipher, and the application protocol (none: HTTP/1.1).
 */
function tlsProbe(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTls({ host: '127.0.0.1', port, rejectUnauthorized: false, timeout: 2_000 }, () => {
      const out = `${socket.getProtocol() ?? '?'}, ${socket.getCipher().name}, ALPN ${socket.alpnProtocol || 'none'}`;
      socket.end();
      resolve(out);
    });
    socket.on('error', (err) => resolve(`probe failed: ${err.message}`));
    socket.on('timeout', () => socket.destroy(new Error('timed out')));
  });
}

async function startNginx(
  cpus: string,
  kind: 'plain' | 'keys' | 'auth',
  workers: number,
  upstream: string,
  key: string,
  auth?: string,
  tls?: { cert: string; key: string },
): Promise<{ pid: number; port: number }> {
  const port = await freePort();
  const { prefix, conf } = nginxConfig({ kind, workers, port, upstream, key, ...(auth === undefined ? {} : { auth }), ...(tls === undefined ? {} : { tls }) });
  const child = spawnGroup(placed(cpus, ['nginx', '-p', prefix, '-c', conf, '-g', 'daemon off;']), 'ignore');
  const stderr = tail(child);
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? 1));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && exited === null) {
    if ((await status(`${tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}/bench`, { authorization: `Bearer ${key}` })) === 200) return { pid: child.pid!, port };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(exited === null ? `nginx did not answer 200 in 10 s (${prefix}/error.log)` : `nginx exited with ${exited}: ${stderr()}`);
}

/** User + system CPU seconds of a process and all its descendants so far (Linux /proc). */
function cpuSeconds(root: number): number {
  const stats = new Map<number, { ppid: number; cpu: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      stats.set(Number(d), procStat(Number(d)));
    } catch {
      // gone meanwhile
    }
  }
  let total = 0;
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    total += stats.get(pid)?.cpu ?? 0;
    for (const [child, s] of stats) if (s.ppid === pid) queue.push(child);
  }
  return total;
}

/** redis-server on a free loopback port, no persistence, pinned with wrk and the upstream. */
async function startRedis(): Promise<{ pid: number; url: string; client: Redis }> {
  const port = await freePort();
  const child = spawnGroup(placed('1', ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']), 'ignore');
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
  /** CPU time the serving processes spent per request, in microseconds. */
  cpuUs: number;
  requests: number;
  /** wrk's socket errors (connect, read, write, timeout). */
  errors: number;
  /** The round it was taken in (0: warm-up). */
  round?: number;
  /** Redis Lua scripts (round trips) per request (redis rows only). */
  redisScripts?: number;
  /** redis-server CPU time per request, in microseconds (redis rows only). */
  redisCpuUs?: number;
  /** What h2load negotiated (h2 rows): protocol, cipher, key exchange, application protocol. */
  tls?: string;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

/** A wrk script and its arguments (after `--`). */
interface WrkScript {
  file: string;
  args: string[];
}

/** CPU seconds of every process in `pids` and their descendants. */
const cpuOf = (pids: readonly number[]) => pids.reduce((n, p) => n + cpuSeconds(p), 0);

function wrk(url: string, seconds: number, headers: string[], pids: number | readonly number[], pacedMs?: number, script?: WrkScript): Sample {
  const serving = typeof pids === 'number' ? [pids] : pids;
  const cpuBefore = cpuOf(serving);
  const run = pacedMs === undefined ? script : { file: 'bench/paced.lua', args: [String(pacedMs)] };
  const args = [
    '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...(run === undefined ? [] : ['-s', run.file]), ...headers.flatMap((h) => ['-H', h]), url,
    ...(run === undefined ? [] : ['--', ...run.args]),
  ];
  const cmd = placed('1', ['wrk', ...args]);
  const out = execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const cpu = cpuOf(serving) - cpuBefore;
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) throw new Error(`${non2xx[1]} non-2xx responses; the target is misconfigured`);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99: toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    cpuUs: (cpu * 1e6) / requests,
    requests,
    errors: socket ? socket.slice(1).reduce((n, x) => n + Number(x), 0) : 0,
  };
}

/**
 * h2load against one target, HTTP/2 over TLS: `h2Connections` connections with `h2Streams`
 * streams in flight on each, one thread, for `seconds`; the same sample as wrk's. h2load
 * reports no percentiles, so p50 and p99 come from its per-request log (time from a request's
 * start to the end of its response, as wrk's latency). Refuses a run that did not speak h2.
 * h2load offers TLS 1.3 suites in an order of its own (AES-128-GCM first): it is given
 * OpenSSL's default order, which wrk offers, so that nginx (which takes the client's choice)
 * and Node (which takes its own) settle on the same suite as each other and as wrk's rows.
 * A connection quiet for 5 s is closed (h2load counts its requests as timed out, which the
 * notes report): without it h2load waits on such a connection for ever after the duration,
 * as it did at times here with 50 connections of one stream against Keygate on a host with a
 * load average of 15 (its remaining connections held unacknowledged bytes both ways).
 */
const OPENSSL_TLS13_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';
function h2load(url: string, seconds: number, headers: string[], pids: readonly number[]): Sample {
  const log = join(runDir, `h2load-${process.hrtime.bigint()}.tsv`);
  const cpuBefore = cpuOf(pids);
  const args = ['-t1', `-c${h2Connections}`, `-m${h2Streams}`, `-D${seconds}`, `--log-file=${log}`, `--tls13-ciphers=${OPENSSL_TLS13_SUITES}`, '--connection-inactivity-timeout=5', ...headers.flatMap((h) => ['-H', h]), url];
  const cmd = placed('1', ['h2load', ...args]);
  const out = execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const cpu = cpuOf(pids) - cpuBefore;
  const alpn = /Application protocol: (\S+)/.exec(out)?.[1];
  if (alpn !== 'h2') throw new Error(`h2load negotiated ${alpn ?? 'no application protocol'}, not h2`);
  const counts = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (counts === null || codes === null) throw new Error(`h2load printed no request counts: ${out.slice(-300)}`);
  const non2xx = Number(codes[2]) + Number(codes[3]) + Number(codes[4]);
  if (non2xx > 0) throw new Error(`${non2xx} non-2xx responses; the target is misconfigured`);
  const latencies = readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => Number(l.split('\t')[2]) / 1000)
    .sort((a, b) => a - b);
  rmSync(log, { force: true });
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  const requests = Number(counts[3]);
  return {
    rps: Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1]),
    p50: at(0.5),
    p99: at(0.99),
    cpuUs: (cpu * 1e6) / requests,
    requests,
    errors: Number(counts[5]) + Number(counts[6]) + Number(counts[7]),
    tls: ['TLS Protocol', 'Cipher', 'Server Temp Key', 'Application protocol'].map((k) => new RegExp(`${k}: (.+)`).exec(out)?.[1]?.trim() ?? '?').join(', '),
  };
}

interface Target extends RowSpec {
  url: string;
  headers: string[];
  pid: number;
  /** Other processes that serve the row (nginx-auth: Keygate), counted in its CPU per request. */
  also?: number[];
  script?: WrkScript;
}

/** wrk against one target; for a redis target, also what redis-server did meanwhile. */
async function measure(t: Target, seconds: number): Promise<Sample> {
  if (t.tls === 'h2') return h2load(t.url, seconds, t.headers, [t.pid, ...(t.also ?? [])]);
  if (t.needs !== 'redis' || redis === null) return wrk(t.url, seconds, t.headers, [t.pid, ...(t.also ?? [])], undefined, t.script);
  const scriptsBefore = await redisScripts(redis.client);
  const cpuBefore = cpuSeconds(redis.pid);
  const s = wrk(t.url, seconds, t.headers, t.pid);
  s.redisCpuUs = ((cpuSeconds(redis.pid) - cpuBefore) * 1e6) / s.requests;
  s.redisScripts = ((await redisScripts(redis.client)) - scriptsBefore) / s.requests;
  return s;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const perRow = warmup + rounds * (rewarm + duration);
process.stderr.write(
  `plan: ${selected.length} rows (${selected.map((r) => r.id).join(', ')}); wrk -t1 -c${connections}, ` +
    `warm-up ${warmup} s each, then ${rounds} interleaved rounds of ${duration} s, each after ${rewarm} s of re-warm; about ${Math.ceil((selected.length * perRow) / 60)} min ` +
    `plus start-up${pin ? '; one-worker proxies pinned to CPU 0, wrk, the upstream and redis-server to CPU 1, two-worker rows not pinned' : '; taskset missing: nothing pinned'}\n`,
);

const upstreamPort = await freePort();
const up = await startNode('1', ['--import=tsx', 'bench/upstream.ts', String(upstreamPort)]);
const upstream = `http://127.0.0.1:${upstreamPort}`;
const redis = selected.some((r) => r.needs === 'redis') ? await startRedis() : null;
// Every target gets the same request bytes: Keygate's keys all have this length, and the
// targets that check no key (or nginx's map) get this one.
const benchKey = generateKey('gw', 'live');
const bearer = (key: string) => [`Authorization: Bearer ${key}`];

async function startRow(r: RowSpec): Promise<Target> {
  const cpus = r.cpus === 'one' ? '0' : '0,1';
  const node = async (script: string, ...args: string[]) => {
    const port = await freePort();
    const { pid, line } = await startNode(cpus, ['--import=tsx', script, ...args.map((a) => (a === 'PORT' ? String(port) : a))]);
    return { pid, line, url: `http://127.0.0.1:${port}/bench` };
  };
  const target = (t: { pid: number; url: string }, headers: string[]): Target => ({ ...r, pid: t.pid, url: t.url, headers });
  switch (r.id) {
    case 'direct':
      return target({ pid: up.pid, url: `${upstream}/bench` }, bearer(benchKey));
    case 'nginx':
    case 'nginx-keys':
    case 'nginx-2w': {
      const n = await startNginx(cpus, r.id === 'nginx-keys' ? 'keys' : 'plain', r.cpus === 'one' ? 1 : 2, upstream, benchKey);
      return target({ pid: n.pid, url: `http://127.0.0.1:${n.port}/bench` }, bearer(benchKey));
    }
    case 'floor':
      return target(await node('bench/peers/node-floor.ts', 'PORT', upstream), bearer(benchKey));
    case 'fastify':
      return target(await node('bench/peers/fastify.ts', 'PORT', upstream), bearer(benchKey));
    case 'express':
      return target(await node('bench/peers/express-hpm.ts', 'PORT', upstream), bearer(benchKey));
    case 'express-gateway': {
      const t = await node('bench/peers/express-gateway.ts', 'PORT', upstream);
      return target(t, [`Authorization: ${t.line}`]);
    }
    case 'keygate-verify': {
      const port = await freePort();
      const { pid, line } = await startNode(cpus, ['--import=tsx', 'bench/target.ts', 'verify', String(port), upstream]);
      return { ...r, pid, url: `http://127.0.0.1:${port}/v1/keys/verify`, headers: [], script: { file: 'bench/verify.lua', args: [line] } };
    }
    case 'nginx-auth': {
      const port = await freePort();
      const keygate = await startNode(cpus, ['--import=tsx', 'bench/target.ts', 'verify', String(port), upstream]);
      const n = await startNginx(cpus, 'auth', 1, upstream, keygate.line, `127.0.0.1:${port}`);
      return { ...target({ pid: n.pid, url: `http://127.0.0.1:${n.port}/bench` }, bearer(keygate.line)), also: [keygate.pid] };
    }
    case 'nginx-tls':
    case 'nginx-h2': {
      const n = await startNginx(cpus, 'plain', 1, upstream, benchKey, undefined, cert!);
      return target({ pid: n.pid, url: `https://127.0.0.1:${n.port}/bench` }, bearer(benchKey));
    }
    case 'keygate-tls':
    case 'keygate-h2': {
      const t = await node('bench/target.ts', 'gateway-tls', 'PORT', upstream, cert!.cert, cert!.key);
      return target({ pid: t.pid, url: t.url.replace(/^http:/, 'https:') }, bearer(t.line));
    }
    case 'keygate-2w': {
      const t = await node('bench/target.ts', 'redis-workers', 'PORT', upstream, redis!.url, '2');
      return target(t, bearer(t.line));
    }
    default: {
      const kind = { bare: 'bare', 'keygate-checks': 'gateway-bare-checks', 'keygate-rules': 'gateway-rules', keygate: 'gateway', redis: 'redis', 'redis-lease1': 'redis' }[r.id]!;
      const extra = r.needs === 'redis' ? [redis!.url, ...(r.id === 'redis-lease1' ? ['1'] : [])] : [];
      const t = await node('bench/target.ts', kind, 'PORT', upstream, ...extra);
      return target(t, bearer(r.id === 'bare' ? benchKey : t.line));
    }
  }
}

let targets: Target[] = [];
for (const r of selected) {
  try {
    targets.push(await startRow(r));
  } catch (err) {
    notes.push(`${r.name} (${r.id}) did not start and is not in the table: ${(err as Error).message}`);
    process.stderr.write(`${r.id}: did not start: ${(err as Error).message}\n`);
  }
}

/**
 * What each TLS row negotiated, for the notes: wrk's rows probed once with a client like wrk
 * (OpenSSL's default suites, no ALPN), h2load's as h2load printed it.
 */
const negotiated = new Map<string, string>();
for (const t of targets) if (t.tls === 'tls') negotiated.set(t.id, await tlsProbe(Number(new URL(t.url).port)));

/** A target whose load run fails leaves the run, with a note, rather than ending it. */
async function attempt(t: Target, seconds: number): Promise<Sample | null> {
  try {
    const s = await measure(t, seconds);
    if (s.tls !== undefined && !negotiated.has(t.id)) negotiated.set(t.id, s.tls);
    if (s.errors > 0) notes.push(`${t.name}: ${t.tls === 'h2' ? 'h2load counted' : 'wrk counted'} ${s.errors} ${t.tls === 'h2' ? 'failed, errored or timed-out requests' : 'socket errors'} in one run`);
    return s;
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    notes.push(`${t.name} (${t.id}) failed under load and is not in the table: ${msg}`);
    process.stderr.write(`${t.id}: failed under load: ${msg}\n`);
    targets = targets.filter((x) => x !== t);
    return null;
  }
}

for (const t of [...targets]) if (warmup > 0) await attempt(t, warmup);
const samples = new Map<string, Sample[]>(targets.map((t) => [t.id, []]));
for (let r = 0; r < rounds; r++) {
  for (const t of [...targets]) {
    if (rewarm > 0 && (await attempt(t, rewarm)) === null) continue;
    const s = await attempt(t, duration);
    if (s === null) continue;
    s.round = r + 1;
    samples.get(t.id)!.push(s);
    const extra = s.redisScripts === undefined ? '' : `; ${s.redisScripts.toFixed(3)} Redis scripts/req, ${s.redisCpuUs!.toFixed(1)} redis-server CPU us/req`;
    process.stderr.write(`round ${r + 1} ${t.id}: ${s.rps.toFixed(0)} req/s p50 ${s.p50} ms p99 ${s.p99} ms ${s.cpuUs.toFixed(1)} CPU us/req${extra}\n`);
  }
}

/**
 * Latency at half load (issue 6: p99 added over the direct upstream under 1 ms at half of peak
 * load): the same wrk connections, each pausing between a response and its next request so
 * that all together offer half the requests per second Keygate (full enforcement) reached
 * above, against the upstream, plain nginx, the bare proxy and Keygate, interleaved, `rounds`
 * rounds, each after `--rewarm` seconds at the same pace. wrk's latency runs from a request's
 * write to its response, pauses excluded.
 */
interface PacedRow {
  id: string;
  target: string;
  offered_rps: number;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  runs: { rps: number; p50_ms: number; p99_ms: number }[];
}
const paced: PacedRow[] = [];
const keygateRuns = samples.get('keygate') ?? [];
const pacedIds = ['direct', 'nginx', 'floor', 'bare', 'keygate'];
const pacedTargets = targets.filter((t) => pacedIds.includes(t.id));
const offered = keygateRuns.length > 0 ? median(keygateRuns.map((x) => x.rps)) / 2 : 0;
if (offered > 0 && pacedTargets.some((t) => t.id === 'direct')) {
  const intervalMs = (1000 * connections) / offered;
  process.stderr.write(`half load: ${offered.toFixed(0)} req/s offered (each connection pausing ~${intervalMs.toFixed(1)} ms)\n`);
  const runs = new Map<string, Sample[]>(pacedTargets.map((t) => [t.id, []]));
  for (let r = 0; r < rounds; r++) {
    for (const t of pacedTargets) {
      try {
        if (rewarm > 0) wrk(t.url, rewarm, t.headers, t.pid, intervalMs);
        const s = wrk(t.url, duration, t.headers, t.pid, intervalMs);
        runs.get(t.id)!.push(s);
        process.stderr.write(`half load, round ${r + 1} ${t.id}: ${s.rps.toFixed(0)} req/s p50 ${s.p50} ms p99 ${s.p99} ms\n`);
      } catch (err) {
        notes.push(`${t.name}: a half-load run failed: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }
  for (const t of pacedTargets) {
    const s = runs.get(t.id)!;
    if (s.length === 0) continue;
    paced.push({
      id: t.id,
      target: t.name,
      offered_rps: offered,
      rps: median(s.map((x) => x.rps)),
      p50_ms: median(s.map((x) => x.p50)),
      p99_ms: median(s.map((x) => x.p99)),
      runs: s.map((x) => ({ rps: x.rps, p50_ms: x.p50, p99_ms: x.p99 })),
    });
  }
}

/**
 * After idle (issue 23: the first second after 20 s without traffic at least 0.9× the warm
 * rate): for the floor and Keygate (full enforcement), `rounds` times each, the target is left
 * without traffic for `--idle` seconds, then loaded for one second (the first second), then
 * for `--duration` seconds more (warm). Each cycle's ratio is its first second's req/s over its
 * own warm req/s; the median of the cycles is reported. `--idle 0` skips it.
 */
interface IdleRow {
  id: string;
  target: string;
  idle_s: number;
  first_second_rps: number;
  warm_rps: number;
  ratio: number;
  runs: { first_second_rps: number; first_second_cpu_us: number; warm_rps: number; warm_cpu_us: number }[];
}
const afterIdle: IdleRow[] = [];
const idleTargets = idleSeconds === 0 ? [] : targets.filter((t) => t.id === 'floor' || t.id === 'keygate');
if (idleTargets.length > 0) {
  process.stderr.write(`after idle: ${idleTargets.map((t) => t.id).join(', ')}, ${rounds} cycles of ${idleSeconds} s idle, 1 s, ${duration} s\n`);
  const cycles = new Map<string, IdleRow['runs']>(idleTargets.map((t) => [t.id, []]));
  for (let r = 0; r < rounds; r++) {
    // Every target's idle spell runs at once; then each is loaded in turn, the first second
    // straight away (the later ones wait the seconds the earlier take, idle all the same).
    await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
    const firsts = new Map<string, Sample>();
    for (const t of idleTargets) {
      try {
        firsts.set(t.id, wrk(t.url, 1, t.headers, t.pid));
      } catch (err) {
        notes.push(`${t.name}: an after-idle run failed: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    for (const t of idleTargets) {
      const first = firsts.get(t.id);
      if (first === undefined) continue;
      try {
        const warm = wrk(t.url, duration, t.headers, t.pid);
        cycles.get(t.id)!.push({ first_second_rps: first.rps, first_second_cpu_us: first.cpuUs, warm_rps: warm.rps, warm_cpu_us: warm.cpuUs });
        process.stderr.write(`after idle, cycle ${r + 1} ${t.id}: first second ${first.rps.toFixed(0)} req/s, warm ${warm.rps.toFixed(0)} req/s (${(first.rps / warm.rps).toFixed(3)}×)\n`);
      } catch (err) {
        notes.push(`${t.name}: an after-idle run failed: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }
  for (const t of idleTargets) {
    const c = cycles.get(t.id)!;
    if (c.length === 0) continue;
    afterIdle.push({
      id: t.id,
      target: t.name,
      idle_s: idleSeconds,
      first_second_rps: median(c.map((x) => x.first_second_rps)),
      warm_rps: median(c.map((x) => x.warm_rps)),
      ratio: median(c.map((x) => x.first_second_rps / x.warm_rps)),
      runs: c,
    });
  }
}

const rows = targets.map((t) => {
  const s = samples.get(t.id)!;
  const redisRow = t.needs === 'redis';
  return {
    id: t.id,
    target: t.name,
    cpus: !pin ? 'any' : t.id === 'direct' ? 'CPU 1, with wrk' : t.cpus === 'one' ? 'CPU 0' : 'both',
    /** The nginx row of the same shape: as many workers, and for TLS rows the same protocol. */
    baseline: t.baseline ?? (t.cpus === 'two' ? 'nginx-2w' : 'nginx'),
    rps: median(s.map((x) => x.rps)),
    p50_ms: median(s.map((x) => x.p50)),
    p99_ms: median(s.map((x) => x.p99)),
    cpu_us: median(s.map((x) => x.cpuUs)),
    runs: s.map((x) => ({ rps: x.rps, p50_ms: x.p50, p99_ms: x.p99, cpu_us: x.cpuUs })),
    redis_scripts_per_req: redisRow ? median(s.map((x) => x.redisScripts!)) : null,
    redis_cpu_us: redisRow ? median(s.map((x) => x.redisCpuUs!)) : null,
  };
});
const byId = (id: string) => rows.find((r) => r.id === id);
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? null : a / b);
const direct = byId('direct');
const nginx = byId('nginx');
const table = rows.map((r) => {
  const same = byId(r.baseline);
  return {
    ...r,
    vs_direct: ratio(r.rps, direct?.rps),
    vs_nginx: ratio(r.rps, nginx?.rps),
    /**
     * Against the nginx row named by `baseline`: as many workers as this row has (2-worker rows:
     * nginx-2w), and for TLS rows the same protocol (nginx-tls, nginx-h2).
     */
    vs_nginx_same_workers: ratio(r.rps, same?.rps),
    cpu_vs_nginx: ratio(r.cpu_us, same?.cpu_us),
  };
});

const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
const opt = (v: number | null, digits: number) => (v === null ? '–' : v.toFixed(digits));
console.log(line(['target', 'CPUs', 'req/s', 'p50 ms', 'p99 ms', '× direct', '× nginx', '× nginx alike', 'CPU µs/req', 'CPU × nginx alike']));
console.log(line(['---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
for (const r of table) {
  console.log(
    line([
      r.target, r.cpus, r.rps.toFixed(0), r.p50_ms.toFixed(2), r.p99_ms.toFixed(2), opt(r.vs_direct, 2), opt(r.vs_nginx, 2),
      opt(r.vs_nginx_same_workers, 2), r.cpu_us.toFixed(1), opt(r.cpu_vs_nginx, 2),
    ]),
  );
}

const pacedDirect = paced.find((p) => p.id === 'direct');
if (paced.length > 0 && pacedDirect !== undefined) {
  console.log(`\nAt half load: ${offered.toFixed(0)} req/s offered (half of Keygate's median above), medians of ${rounds} runs\n`);
  console.log(line(['target', 'req/s served', 'p50 ms', 'p99 ms', 'p50 added over direct ms', 'p99 added over direct ms']));
  console.log(line(['---', '---:', '---:', '---:', '---:', '---:']));
  for (const p of paced) {
    console.log(line([p.target, p.rps.toFixed(0), p.p50_ms.toFixed(2), p.p99_ms.toFixed(2), (p.p50_ms - pacedDirect.p50_ms).toFixed(2), (p.p99_ms - pacedDirect.p99_ms).toFixed(2)]));
  }
}

if (afterIdle.length > 0) {
  console.log(`\nAfter ${idleSeconds} s idle: the first second against the same process warm, medians of ${rounds} cycles\n`);
  console.log(line(['target', 'first second req/s', 'warm req/s', 'first / warm (median of cycles)']));
  console.log(line(['---', '---:', '---:', '---:']));
  for (const a of afterIdle) console.log(line([a.target, a.first_second_rps.toFixed(0), a.warm_rps.toFixed(0), a.ratio.toFixed(3)]));
}

/**
 * Headline ratios: the targets of issues 5 and 6. Besides the ratio of the medians, the median
 * of the ratios within each round: the two runs of a round are seconds apart, so drift in
 * the machine's load (other work on a shared host) cancels out of those.
 */
const headline: Record<string, { ratio: number | null; paired_ratio: number | null; cpu_ratio: number | null; paired_cpu_ratio: number | null; target: string | null; met: boolean | null }> = {};
/** `atLeast` null: a ratio reported with no target. */
const check = (name: string, a: string, b: string, atLeast: number | null, what: string) => {
  const x = byId(a);
  const y = byId(b);
  const rps = ratio(x?.rps, y?.rps);
  const cpu = ratio(y?.cpu_us, x?.cpu_us);
  const sa = samples.get(a) ?? [];
  const sb = samples.get(b) ?? [];
  const pairs = sa.flatMap((p) => sb.filter((q) => q.round === p.round).map((q) => [p, q] as const));
  const pairedRps = pairs.length === 0 ? null : median(pairs.map(([p, q]) => p.rps / q.rps));
  const pairedCpu = pairs.length === 0 ? null : median(pairs.map(([p, q]) => q.cpuUs / p.cpuUs));
  const met = rps === null || atLeast === null ? null : rps >= atLeast;
  headline[name] = { ratio: rps, paired_ratio: pairedRps, cpu_ratio: cpu, paired_cpu_ratio: pairedCpu, target: atLeast === null ? null : `≥ ${atLeast}`, met };
  return rps === null
    ? `- ${what}: not measured (needs rows ${a} and ${b}).`
    : `- ${what}: ${rps.toFixed(3)}× the req/s${atLeast === null ? '' : ` (target ≥ ${atLeast}: ${met ? 'met' : 'NOT met'})`}; ` +
        `median of the per-round ratios ${pairedRps!.toFixed(3)}×; by CPU per request ${cpu!.toFixed(3)}× (per round ${pairedCpu!.toFixed(3)}×).`;
};
const lines = [
  check('metrics_usage_cost', 'keygate', 'keygate-checks', 0.9, 'Metrics and usage recording (keygate / keygate-checks, issue 5: cost at most 10%)'),
  check('route_rules_cost', 'keygate-rules', 'keygate-checks', 0.95, 'Route matching with 5,000 rules / with one (keygate-rules / keygate-checks, issue 15: within 5%)'),
  check('enforcement_cost', 'keygate', 'bare', 0.95, 'Keygate full enforcement / the bare proxy of its forwarding code (issue 6: cost at most 5%)'),
  check('keygate_vs_nginx', 'keygate', 'nginx', 0.7, 'Keygate full enforcement / plain nginx, 1 worker each (issue 6)'),
  check('keygate_2w_vs_nginx_2w', 'keygate-2w', 'nginx-2w', 0.7, 'Keygate CLI, 2 workers on Redis / plain nginx, 2 workers (issue 6)'),
  check('keygate_tls_vs_nginx_tls', 'keygate-tls', 'nginx-tls', null, 'Keygate full enforcement / plain nginx, both TLS, HTTP/1.1 (wrk), 1 worker each (issue 22)'),
  check('keygate_h2_vs_nginx_h2', 'keygate-h2', 'nginx-h2', null, `Keygate full enforcement / plain nginx, both TLS, HTTP/2 (h2load, ${h2Connections} connections × ${h2Streams} streams), 1 worker each (issue 22)`),
  check('tls_cost_keygate', 'keygate-tls', 'keygate', null, 'What TLS costs Keygate: keygate-tls / keygate, HTTP/1.1 both'),
  check('tls_cost_nginx', 'nginx-tls', 'nginx', null, 'What TLS costs nginx: nginx-tls / nginx, HTTP/1.1 both'),
  check('bare_vs_floor', 'bare', 'floor', 0.95, "Keygate's bare forwarding / the Node floor (issue 23)"),
  check('keygate_vs_floor', 'keygate', 'floor', 0.92, 'Keygate full enforcement / the Node floor (issue 23)'),
];
{
  const k = afterIdle.find((a) => a.id === 'keygate');
  headline['after_idle'] = { ratio: k?.ratio ?? null, paired_ratio: null, cpu_ratio: null, paired_cpu_ratio: null, target: '≥ 0.9', met: k === undefined ? null : k.ratio >= 0.9 };
  lines.push(
    k === undefined
      ? '- The first second after idle / warm (issue 23): not measured (needs row keygate and --idle above 0).'
      : `- Keygate's first second after ${idleSeconds} s idle / its warm rate (issue 23): ${k.ratio.toFixed(3)}× (target ≥ 0.9: ${k.ratio >= 0.9 ? 'met' : 'NOT met'}); cycles ${k.runs.map((x) => (x.first_second_rps / x.warm_rps).toFixed(3)).join(', ')}` +
          `${afterIdle.some((a) => a.id === 'floor') ? `; the floor's ${afterIdle.find((a) => a.id === 'floor')!.ratio.toFixed(3)}×` : ''}.`,
  );
}
{
  const k = byId('keygate');
  const peers = ['fastify', 'express', 'express-gateway'].map(byId).filter((r) => r !== undefined);
  if (k !== undefined && peers.length > 0) {
    const best = peers.reduce((a, b) => (b.rps > a.rps ? b : a));
    const ahead = peers.every((p) => k.rps > p.rps);
    headline['ahead_of_node_peers'] = { ratio: k.rps / best.rps, paired_ratio: null, cpu_ratio: best.cpu_us / k.cpu_us, paired_cpu_ratio: null, target: '> 1 against each', met: ahead };
    lines.push(`- Keygate full enforcement against the fastest Node peer (${best.target}): ${(k.rps / best.rps).toFixed(3)}× the req/s, ${(best.cpu_us / k.cpu_us).toFixed(3)}× by CPU (issue 6: ahead of every Node peer: ${ahead ? 'met' : 'NOT met'}).`);
  }
}
const floor = byId('floor');
if (floor !== undefined && nginx !== undefined) {
  const k = byId('keygate');
  lines.push(
    `- The Node floor (undici Pool.stream alone) reaches ${(floor.rps / nginx.rps).toFixed(3)}× plain nginx's req/s and ${(nginx.cpu_us / floor.cpu_us).toFixed(3)}× by CPU per request: ` +
      `no Node proxy on this machine can do better${k === undefined ? '' : `; Keygate, full enforcement, is ${(k.rps / floor.rps).toFixed(3)}× the floor's req/s (${(floor.cpu_us / k.cpu_us).toFixed(3)}× by CPU)`}.`,
  );
}
const pacedKeygate = paced.find((p) => p.id === 'keygate');
const addedP99 = pacedKeygate !== undefined && pacedDirect !== undefined ? pacedKeygate.p99_ms - pacedDirect.p99_ms : null;
const latencyHeadline = { offered_rps: offered || null, p99_added_ms: addedP99, target: '< 1 ms', met: addedP99 === null ? null : addedP99 < 1 };
const pacedFloor = paced.find((p) => p.id === 'floor');
const overFloorP99 = pacedKeygate !== undefined && pacedFloor !== undefined ? pacedKeygate.p99_ms - pacedFloor.p99_ms : null;
const floorLatencyHeadline = { p99_over_floor_ms: overFloorP99, target: '≤ 0.5 ms', met: overFloorP99 === null ? null : overFloorP99 <= 0.5 };
lines.push(
  overFloorP99 === null
    ? '- p99 at half load over the Node floor (issue 23): not measured (needs rows direct, floor and keygate).'
    : `- Keygate's p99 at half load over the Node floor's (issue 23): ${overFloorP99.toFixed(2)} ms (target ≤ 0.5 ms: ${overFloorP99 <= 0.5 ? 'met' : 'NOT met'}).`,
);
lines.push(
  addedP99 === null
    ? '- p99 added over the direct upstream at half load (issue 6): not measured (needs rows direct and keygate).'
    : `- p99 added over the direct upstream at half load (issue 6), ${offered.toFixed(0)} req/s offered: ${addedP99.toFixed(2)} ms (target < 1 ms: ${addedP99 < 1 ? 'met' : 'NOT met'}).`,
);
const file = byId('keygate');
const vsFile = (id: string) => {
  const r = byId(id);
  return r === undefined || file === undefined
    ? 'not measured'
    : `${(r.rps / file.rps).toFixed(2)}× the req/s, ${(r.cpu_us / file.cpu_us).toFixed(2)}× the gateway CPU per request, p50 ${(r.p50_ms / file.p50_ms).toFixed(2)}×`;
};
const versions: Record<string, string> = { node: process.version };
for (const p of ['fastify', '@fastify/http-proxy', 'express', 'http-proxy-middleware', 'express-gateway']) {
  try {
    versions[p] = (JSON.parse(readFileSync(`bench/node_modules/${p}/package.json`, 'utf8')) as { version: string }).version;
  } catch {
    versions[p] = 'not installed';
  }
}
try {
  versions['nginx'] = execFileSync('sh', ['-c', 'nginx -v 2>&1'], { encoding: 'utf8' }).trim().replace(/^nginx version: nginx\//, '');
} catch {
  versions['nginx'] = 'not installed';
}
if (targets.some((t) => t.tls !== undefined)) {
  versions['node openssl'] = process.versions.openssl;
  try {
    versions['nginx openssl'] = /built with (OpenSSL [^\s]+)/.exec(execFileSync('sh', ['-c', 'nginx -V 2>&1'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    versions['nginx openssl'] = 'not installed';
  }
  try {
    versions['wrk'] = execFileSync('sh', ['-c', 'wrk -v 2>&1 | head -1'], { encoding: 'utf8' }).trim();
  } catch {
    versions['wrk'] = '?';
  }
  if (targets.some((t) => t.tls === 'h2')) {
    try {
      versions['h2load'] = execFileSync('h2load', ['--version'], { encoding: 'utf8' }).trim();
    } catch {
      versions['h2load'] = 'not installed';
    }
  }
}
const fixed = [
  `Ratios are of medians. "× nginx" is against plain nginx with 1 worker; "alike" against the nginx row of the same shape: as many workers as the row has (2-worker rows: nginx-2w), and for TLS rows the same protocol (nginx-tls, nginx-h2).`,
  `Headers: every row gets \`Authorization: Bearer <key>\` of one length (Keygate's own key, else a bench key in Keygate's format, which nginx-keys' map holds among 999 others); express-gateway gets its own \`apiKey <keyId>:<keySecret>\`.`,
  pin
    ? 'One-worker rows: the proxy pinned to CPU 0; wrk, the upstream and redis-server share CPU 1, so a fast proxy can be held back by the load generator (nginx runs below 100% of its core): compare fast rows by CPU µs per request too. Two-worker rows are not pinned: the proxy may use both cores, and shares CPU 1 with wrk and the upstream; their ratio to each other is the figure, not their req/s against the one-worker rows.'
    : 'taskset is missing: nothing is pinned.',
  'CPU µs/req counts the target process and all its descendants (nginx master and workers; the cluster primary, which also runs the admin plane, and its workers); for nginx-auth, nginx and the Keygate it asks.',
  'keygate-verify counts verifications (POST /v1/keys/verify of the bench key for GET /bench, answered 200 with the verdict as JSON), not proxied requests: no upstream is involved. nginx-auth is a proxied request plus its auth subrequest to Keygate\'s GET /auth over a keep-alive pool, with the identity headers copied upstream.',
  `express + http-proxy-middleware uses a keep-alive agent to the upstream (its default opens a connection per request); @fastify/http-proxy pools with undici by default.`,
  `"${file?.target ?? 'keygate, full enforcement'}" is production: Prometheus metrics on and every request handed to a UsageRecorder that flushes to the file store each second (as \`keygate --role all\`); "keygate, checks only" is the same gateway with metrics.enabled false and no usage sink.`,
  `Keygate on Redis: the key in a RedisStore (an LRU hit after the first request), the rate limit in Redis's shared token buckets, usage batches written to Redis. The plan (1e9/s) never refuses, yet every request spends a token leased from Redis: leases are 2% of the capacity, at most 50, so one Lua script per 50 requests (0.020 scripts/req; the usage batches add one a second). Against the file-store row: ${vsFile('redis')}.`,
  `Keygate on Redis, lease 1: a Redis round trip on every request, the upper bound of the shared limiter's price (one hot key on one gateway is bounded by about 1 / RTT requests per second). Against the file-store row: ${vsFile('redis-lease1')}.`,
  `keygate-2w is \`keygate --role all\` with workers: 2: the primary runs the admin plane, each worker a gateway with its own usage recorder writing to Redis (more than one worker needs the redis store).`,
  ...(targets.some((t) => t.tls !== undefined)
    ? [
        `TLS rows: Keygate (the full-enforcement target on a TLS listener) and nginx (plain proxy, \`listen ssl http2\`) share a self-signed EC P-256 certificate made for the run; both offer h2 and http/1.1 by ALPN. The -tls rows are loaded by wrk over TLS (no ALPN: HTTP/1.1, keep-alive: ${connections} handshakes a run, amortised over its requests); the -h2 rows by h2load, HTTP/2 with ${h2Connections} connections × ${h2Streams} streams in flight (\`--h2-streams\`), as many requests in flight as wrk's ${connections} connections. h2load reports no percentiles: p50 and p99 come from its per-request log. wrk and h2load are different clients, so compare an h2 row with the other h2 row, not with the HTTP/1.1 rows, by req/s; CPU µs per request of the server is comparable across them. Upstreams stay HTTP/1.1 without TLS.`,
        ...[...negotiated].map(([id, what]) => `${id} negotiated: ${what}${targets.find((t) => t.id === id)?.tls === 'tls' ? ' (probed with a client like wrk)' : ' (as h2load printed)'}.`),
      ]
    : []),
  ...(targets.some((t) => t.id === 'express-gateway')
    ? [`express-gateway ${versions['express-gateway']} installed and ran on Node ${process.version}: its database is the in-memory Redis emulation (\`emulate: true\`, no redis-server), its consumer and key-auth credential are created at each start, and its rate limit (per consumer, never refusing) has \`delayMs: 0\`.`]
    : []),
];
const out = [...lines, ...fixed.map((n) => `- ${n}`), ...notes.map((n) => `- ${n}`)];
console.log(`\nNotes:\n${out.join('\n')}`);
console.log(`\nVersions: ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/proxy.json',
  JSON.stringify(
    {
      when: new Date().toISOString(),
      command: `npm run bench --${process.argv.slice(2).map((a) => ` ${a}`).join('')}`,
      duration, rounds, warmup, rewarm, connections, pinned: pin, versions, headline: { ...headline, p99_added_at_half_load: latencyHeadline, p99_over_floor_at_half_load: floorLatencyHeadline }, rows: table, half_load: paced, after_idle: afterIdle, notes: [...fixed, ...notes],
    },
    null,
    2,
  ),
);
process.exit(0);
