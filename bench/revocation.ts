import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildConnector, Client } from 'undici';
import { freePort, install, socketOwners, treeCpu } from './lib.js';

/**
 * Revocation propagation across the gateway processes that share one store. Two shapes:
 *
 *   processes (default)  an admin process and two gateway processes (the keygate CLI,
 *                        bench/cli.ts, each its own OS process with its own config file and
 *                        `--role`), on Redis (`--store redis`, the default: one redis-server of
 *                        this run) or on one SQLite database file (`--store sqlite`); each gateway
 *                        polled on a keep-alive connection of its own.
 *   workers (`--workers N`)  ONE keygate process, `--role all` with `workers: N`: the admin plane
 *                        in the primary, N gateway workers (node:cluster) sharing one listener.
 *                        A client cannot pick the worker it talks to, so `--connections` (default
 *                        2 a worker) keep-alive connections are opened and each is traced to the
 *                        worker holding it (bench/lib.ts socketOwners: the socket's inode in
 *                        /proc/net/tcp found among each worker's open fds); more are opened until
 *                        every worker holds at least one, and the assignment is checked again
 *                        before every revoke. Results are reported per worker.
 *
 * Each iteration creates a key through the admin API, warms it on every polled connection (200,
 * then an LRU hit, in every gateway process), revokes it through the admin API and polls every
 * connection, one request after another, until it answers 401 (at most --poll-ms) and a request
 * sent after the revoke's answer has been answered.
 *
 *   revoke answer     revoke response received − t0, t0 taken just before the revoke is sent
 *   propagation       first 401 received − t0
 *   after response    first 401 received − revoke response received (≤ 0: the gateway refused
 *                     the key before the admin's answer was even read)
 *   lag after answer  0 when the first request sent after the revoke's answer was refused, else
 *                     the time from the answer to the sending of the first refused request (the
 *                     target is 0 ms: refused from the next request)
 *   refused at once   share of polls whose first request sent after the answer was refused;
 *                     "every worker" is the share of iterations where that held on every
 *                     connection, so on every gateway process
 *
 *   npm run bench:revocation -- [--store redis|sqlite] [--workers N] [--connections C]
 *                               [--iterations 200] [--time-limit 120] [--poll-ms 2000]
 */
const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'redis' },
    workers: { type: 'string', default: '0' },
    connections: { type: 'string' },
    iterations: { type: 'string', default: '200' },
    'time-limit': { type: 'string', default: '120' },
    'poll-ms': { type: 'string', default: '2000' },
  },
});
if (values.store !== 'redis' && values.store !== 'sqlite') throw new Error('--store: redis or sqlite');
const onRedis = values.store === 'redis';
const workers = Number(values.workers);
if (!Number.isInteger(workers) || workers < 0 || workers === 1 || workers > 16) throw new Error('--workers: 2 to 16 (0: separate gateway processes)');
const connectionsWanted = Math.max(workers, Math.min(64, Number(values.connections ?? workers * 2)));
const iterations = Math.max(1, Math.min(10_000, Number(values.iterations)));
const timeLimitMs = Math.max(1, Math.min(600, Number(values['time-limit']))) * 1000;
const pollMs = Math.max(10, Math.min(10_000, Number(values['poll-ms'])));

if (onRedis) install('redis-server', 'redis-server');

const dir = mkdtempSync(join(tmpdir(), 'keygate-revocation-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  children.forEach((c) => c.kill('SIGKILL'));
  rmSync(dir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));


/** A child process; its stdout is dropped unless `out`, its stderr shown. */
function launch(name: string, cmd: string, args: string[], out = false): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', out ? 'inherit' : 'ignore', 'inherit'] });
  children.push(child);
  child.once('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`${name} exited (${code ?? signal}) during the benchmark\n`);
      process.exit(1);
    }
  });
  return child;
}
let stopping = false;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `probe` resolves true, at most 30 s. */
async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${what} did not come up in 30 s`);
}

async function status(url: string, path: string, headers: Record<string, string> = {}): Promise<number> {
  const c = new Client(url);
  try {
    const res = await c.request({ path, method: 'GET', headers });
    await res.body.dump();
    return res.statusCode;
  } finally {
    await c.close();
  }
}

// --- the processes ---------------------------------------------------------------------------
let store: Record<string, unknown>;
let storeName: string;
if (onRedis) {
  const redisPort = await freePort();
  launch('redis-server', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  store = { type: 'redis', url: redisUrl, prefix: 'revbench' };
  storeName = 'Redis';
  await until('redis-server', async () => {
    const { Redis } = await import('ioredis');
    const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      return (await r.ping()) === 'PONG';
    } finally {
      r.disconnect();
    }
  });
} else {
  // One database file that every process opens (the store's defaults: a 2 ms poll of the
  // change feed, a 500 ms bound on the wait for every process's confirmation).
  store = { type: 'sqlite', path: join(dir, 'keygate.db') };
  storeName = 'SQLite';
}

const upstreamPort = await freePort();
launch('upstream', process.execPath, ['--import=tsx', 'bench/upstream.ts', String(upstreamPort)]);
const upstream = `http://127.0.0.1:${upstreamPort}`;

const ADMIN_TOKEN = 'bench-revocation-admin-token-0123456789';
const adminPort = await freePort();
function configFile(name: string, listenerPort: number, extra: Record<string, unknown> = {}): string {
  // JSON is YAML: a config file bin/main.ts reads like any other.
  const config = {
    ...extra,
    listeners: [{ port: listenerPort, host: '127.0.0.1', environment: 'production' }],
    plans: { default: { limit: 1_000_000_000, window_seconds: 1 } },
    scopes: { catalog: ['read'] },
    apis: [{ name: 'bench', path_prefix: '/', upstream, routes: [{ method: 'GET', path: '/*', scopes: ['read'] }] }],
    admin: { port: adminPort, host: '127.0.0.1', tokens: [{ name: 'bench', token: ADMIN_TOKEN, role: 'admin' }] },
    store,
    log: { level: 'warn' },
  };
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}
const main = (name: string, config: string, role: string) =>
  launch(name, process.execPath, ['--import=tsx', 'bench/cli.ts', '--config', config, '--role', role], true);

await until('upstream', async () => (await status(upstream, '/')) === 200);
const adminUrl = `http://127.0.0.1:${adminPort}`;
/** The gateway listeners: two processes' own, or the one the workers share. */
let listeners: { name: string; port: number }[];
let primary: ChildProcess | null = null;
if (workers === 0) {
  // The admin first: on SQLite it creates the database the gateways then open.
  main('admin', configFile('admin', await freePort()), 'admin');
  await until('admin', async () => (await status(adminUrl, '/healthz')) === 200);
  listeners = [];
  for (let i = 0; i < 2; i++) {
    const name = `gateway ${String.fromCharCode(65 + i)}`;
    const port = await freePort();
    main(name, configFile(`gateway-${i}`, port), 'gateway');
    listeners.push({ name, port });
  }
} else {
  const port = await freePort();
  primary = main('keygate', configFile('keygate', port, { workers }), 'all');
  listeners = [{ name: 'keygate', port }];
  // The admin plane listens once every worker is ready.
  await until('admin', async () => (await status(adminUrl, '/healthz')) === 200);
}
// Without a key, a listening gateway answers 401.
for (const l of listeners) await until(l.name, async () => (await status(`http://127.0.0.1:${l.port}`, '/bench')) === 401);

// --- the connections ------------------------------------------------------------------------
const connector = buildConnector({});

/** One keep-alive connection to a gateway listener, with the local port it is on (to trace it to a worker). */
class Connection {
  readonly client: Client;
  readonly port: number;
  localPort = 0;
  connects = 0;
  /** The gateway process that holds it: a listener's name, or `worker N` (pid). */
  holder = '';

  constructor(port: number) {
    this.port = port;
    this.client = new Client(`http://127.0.0.1:${port}`, {
      connect: (opts, cb) =>
        connector(opts, (...args) => {
          const socket = args[1];
          if (socket) {
            this.localPort = socket.localPort ?? 0;
            this.connects++;
          }
          cb(...args);
        }),
    });
  }
}

/** GET /bench with `key` (none: answered 401 by any listening gateway). */
async function get(c: Connection, key: string | null): Promise<number> {
  const res = await c.client.request({ path: '/bench', method: 'GET', headers: key === null ? {} : { authorization: `Bearer ${key}` } });
  await res.body.dump();
  return res.statusCode;
}

/** The cluster's workers, in pid order, and a name for each. */
function workerNames(): Map<number, string> {
  const pids = [...treeCpu(primary!.pid!).keys()].filter((p) => p !== primary!.pid).sort((a, b) => a - b);
  return new Map(pids.map((p, i) => [p, `worker ${i + 1} (pid ${p})`]));
}

/** Sets each connection's holder: its listener's process, or the worker whose fds hold its socket. */
function trace(conns: Connection[]): void {
  if (primary === null) return;
  const names = workerNames();
  const owners = socketOwners(conns[0]!.port, [...names.keys()]);
  for (const c of conns) {
    const pid = owners.get(c.localPort);
    if (pid === undefined) throw new Error(`no worker holds the connection from local port ${c.localPort}`);
    c.holder = names.get(pid)!;
  }
}

const conns: Connection[] = [];
if (workers === 0) {
  for (const l of listeners) {
    const c = new Connection(l.port);
    c.holder = l.name;
    conns.push(c);
  }
} else {
  // Connections until every worker holds one, at least `--connections` of them (at most 64).
  const port = listeners[0]!.port;
  for (;;) {
    const c = new Connection(port);
    if ((await get(c, null)) !== 401) throw new Error('a connection was not answered 401 without a key');
    conns.push(c);
    trace(conns);
    const held = new Set(conns.map((x) => x.holder));
    if (conns.length >= connectionsWanted && held.size === workerNames().size) break;
    if (conns.length >= 64) throw new Error(`64 connections reached only ${held.size} of ${workerNames().size} workers`);
  }
}
const holders = [...new Set(conns.map((c) => c.holder))].sort();
process.stderr.write(
  `${storeName}, ${workers === 0 ? 'an admin process and two gateway processes' : `one process with ${workers} workers`}; ` +
    `${conns.length} polled connections: ${holders.map((h) => `${h} ${conns.filter((c) => c.holder === h).length}`).join(', ')}\n`,
);

// --- the measurement ------------------------------------------------------------------------
const admin = new Client(adminUrl);
const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

async function adminPost(path: string, body: unknown): Promise<{ status: number; body: any; at: number }> {
  const res = await admin.request({ path, method: 'POST', headers: adminHeaders, body: JSON.stringify(body) });
  const at = performance.now();
  return { status: res.statusCode, body: await res.body.json(), at };
}

interface PollSample {
  /** The gateway process polled: a listener's name, or the worker holding the connection. */
  holder: string;
  /** First 401 received − t0 (ms); null when none came within the poll bound. */
  propagation: number | null;
  /** First 401 received − revoke response received (ms). */
  afterResponse: number | null;
  /** Whether the first request sent after the revoke response arrived was refused. */
  refusedAtOnce: boolean | null;
  /** 0 when refusedAtOnce, else the sending of the first refused request − the response (ms). */
  lagAfterAnswer: number | null;
  /** Requests sent before the first 401. */
  requestsBefore401: number;
  /** Requests sent after the revoke response and answered 200 (must be 0). */
  servedAfterAnswer: number;
  /** A 200 after a 401 (a revoked key served again). */
  flapped: boolean;
}

interface Iteration {
  revokeMs: number;
  polls: PollSample[];
}

const state = { responseAt: Number.NaN };

/** Polls one connection until it has refused the key and a request sent after the revoke response was answered. */
async function poll(c: Connection, key: string, t0: number): Promise<PollSample> {
  const deadline = t0 + pollMs;
  let first401: number | null = null;
  let requestsBefore401 = 0;
  let refusedAtOnce: boolean | null = null;
  let lagAfterAnswer: number | null = null;
  let servedAfterAnswer = 0;
  let flapped = false;
  while (performance.now() < deadline) {
    const sent = performance.now();
    const code = await get(c, key);
    const received = performance.now();
    const afterAnswer = sent >= state.responseAt;
    if (code === 401) {
      first401 ??= received;
      if (afterAnswer && lagAfterAnswer === null) lagAfterAnswer = servedAfterAnswer === 0 ? 0 : sent - state.responseAt;
    } else if (code === 200) {
      if (first401 === null) requestsBefore401++;
      else flapped = true;
      if (afterAnswer) servedAfterAnswer++;
    } else {
      throw new Error(`gateway answered ${code} while polling`);
    }
    if (refusedAtOnce === null && afterAnswer) refusedAtOnce = code === 401;
    if (first401 !== null && lagAfterAnswer !== null) break;
  }
  return {
    holder: c.holder,
    propagation: first401 === null ? null : first401 - t0,
    afterResponse: first401 === null || Number.isNaN(state.responseAt) ? null : first401 - state.responseAt,
    refusedAtOnce,
    lagAfterAnswer,
    requestsBefore401,
    servedAfterAnswer,
    flapped,
  };
}

const results: Iteration[] = [];
let reconnects = 0;
const started = performance.now();
for (let i = 0; i < iterations && performance.now() - started < timeLimitMs; i++) {
  const created = await adminPost('/v1/keys', { name: `revocation-${i}`, environment: 'production', scopes: ['read'], apis: ['bench'] });
  if (created.status !== 201) throw new Error(`create answered ${created.status}: ${JSON.stringify(created.body)}`);
  const { id, key } = created.body as { id: string; key: string };
  // Twice on each connection: the first fills that process's LRU from the store, the second is the cached path.
  const connects = conns.reduce((n, c) => n + c.connects, 0);
  for (const c of conns) {
    for (let w = 0; w < 2; w++) {
      const code = await get(c, key);
      if (code !== 200) throw new Error(`warming ${id} answered ${code}`);
    }
  }
  // A connection the gateway closed and undici opened again may be held by another worker now.
  if (conns.reduce((n, c) => n + c.connects, 0) !== connects || i === 0) {
    reconnects += i === 0 ? 0 : 1;
    trace(conns);
    if (new Set(conns.map((c) => c.holder)).size !== holders.length) throw new Error('after a reconnection, some worker holds no polled connection');
  }
  state.responseAt = Number.NaN;
  const t0 = performance.now();
  const revoke = adminPost(`/v1/keys/${id}/revoke`, {}).then((r) => {
    state.responseAt = r.at;
    if (r.status !== 200) throw new Error(`revoke answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r;
  });
  const [r, ...polls] = await Promise.all([revoke, ...conns.map((c) => poll(c, key, t0))]);
  results.push({ revokeMs: r.at - t0, polls });
}
const elapsed = (performance.now() - started) / 1000;
stopping = true;

// --- the report -----------------------------------------------------------------------------
const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
};
const dist = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 0.5), p99: pct(xs, 0.99), max: pct(xs, 1) });
const some = <T>(xs: (T | null)[]) => xs.filter((x): x is T => x !== null);
function summary(ss: PollSample[]) {
  const judged = ss.filter((s) => s.refusedAtOnce !== null);
  return {
    polls: ss.length,
    propagation_ms: dist(some(ss.map((s) => s.propagation))),
    after_response_ms: dist(some(ss.map((s) => s.afterResponse))),
    lag_after_answer_ms: dist(some(ss.map((s) => s.lagAfterAnswer))),
    refused_at_once_share: judged.filter((s) => s.refusedAtOnce).length / judged.length,
    served_after_answer: ss.reduce((n, s) => n + s.servedAfterAnswer, 0),
    timeouts: ss.filter((s) => s.propagation === null || s.lagAfterAnswer === null).length,
    flaps: ss.filter((s) => s.flapped).length,
    served_after_t0: dist(ss.map((s) => s.requestsBefore401)),
  };
}
const rows = [
  ...holders.map((h) => ({ gateway: h, ...summary(results.flatMap((r) => r.polls.filter((p) => p.holder === h))) })),
  { gateway: workers === 0 ? 'both' : `all ${holders.length} workers`, ...summary(results.flatMap((r) => r.polls)) },
];
/** Iterations in which every polled connection, so every gateway process, refused its first request after the answer. */
const everyWorker = results.filter((r) => r.polls.every((p) => p.refusedAtOnce === true)).length / results.length;
/** Per iteration, the worst lag after the answer over every process. */
const worstLag = dist(results.map((r) => Math.max(...r.polls.map((p) => p.lagAfterAnswer ?? Number.POSITIVE_INFINITY))));
const revoke = dist(results.map((r) => r.revokeMs));
const f = (v: number) => (Number.isNaN(v) ? '–' : v.toFixed(2));
const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
const shape = workers === 0 ? 'an admin process and two gateway processes' : `one keygate process, admin plane in the primary, ${workers} gateway workers sharing the listener`;
console.log(
  `${storeName}, ${shape}: ${results.length} iterations in ${elapsed.toFixed(1)} s, ${conns.length} polled connections` +
    `${reconnects > 0 ? ` (${reconnects} iterations re-traced after a reconnection)` : ''}\n` +
    `revoke answer (sent → answer received): p50 ${f(revoke.p50)} ms, p99 ${f(revoke.p99)} ms, max ${f(revoke.max)} ms\n` +
    `every gateway process refused the first request after the answer: ${(everyWorker * 100).toFixed(1)}% of iterations; ` +
    `worst lag after the answer over all of them: p50 ${f(worstLag.p50)} ms, p99 ${f(worstLag.p99)} ms, max ${f(worstLag.max)} ms\n`,
);
console.log(line(['gateway', 'polls', 'propagation p50 ms', 'p99 ms', 'max ms', 'after response p50 ms', 'p99 ms', 'max ms', 'lag after answer p99 ms', 'max ms', 'refused at once', 'served after answer', '200s after t0 p50 / max', 'timeouts', 'flaps']));
console.log(line(['---', ...Array(14).fill('---:')]));
for (const r of rows) {
  console.log(
    line([
      r.gateway,
      String(r.polls),
      f(r.propagation_ms.p50), f(r.propagation_ms.p99), f(r.propagation_ms.max),
      f(r.after_response_ms.p50), f(r.after_response_ms.p99), f(r.after_response_ms.max),
      f(r.lag_after_answer_ms.p99), f(r.lag_after_answer_ms.max),
      `${(r.refused_at_once_share * 100).toFixed(1)}%`,
      String(r.served_after_answer),
      `${r.served_after_t0.p50} / ${r.served_after_t0.max}`,
      String(r.timeouts), String(r.flaps),
    ]),
  );
}
console.log(`
revoke answer: the admin's revoke response received − t0 (just before it was sent).
propagation: first 401 received − t0. after response: first 401 received − revoke response
  received; ≤ 0 when the gateway already refused the key before the admin's answer was read.
lag after answer: 0 when the first request sent after the revoke's answer was refused, else the
  time from the answer to the sending of the first refused request.
refused at once: the first request sent after the revoke response arrived was already 401.
served after answer: requests sent after the revoke response and still answered 200 (must be 0).
200s after t0: requests served after t0 (while the revoke was in flight).
timeouts: no 401, or none after the answer, within ${pollMs} ms. flaps: a 200 after a 401 (must be 0).
${workers === 0 ? '' : 'Each connection was traced to the worker whose open fds hold its socket (/proc); every worker held at least one.\n'}Every process is on this one machine (${onRedis ? 'redis-server, ' : ''}upstream, admin, gateways, this client).`);
mkdirSync('bench/results', { recursive: true });
const out = `bench/results/revocation${onRedis ? '' : '-sqlite'}${workers === 0 ? '' : `-${workers}w`}.json`;
writeFileSync(
  out,
  JSON.stringify(
    { when: new Date().toISOString(), store: values.store, workers, connections: conns.length, iterations: results.length, elapsed_s: elapsed, poll_ms: pollMs, revoke_ms: revoke, every_worker_refused_at_once: everyWorker, worst_lag_after_answer_ms: worstLag, rows, samples: results },
    null,
    2,
  ),
);
console.log(`written to ${out}`);
await Promise.allSettled([admin.close(), ...conns.map((c) => c.client.close())]);
process.exit(0);
