import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'undici';
import { freePort, install } from './lib.js';

/**
 * Revocation propagation across gateways that share a Redis store: one redis-server, one
 * upstream, one admin process and two gateway processes (the keygate CLI, bench/cli.ts, each its
 * own OS process with its own config file and `--role`).
 * Each iteration creates a key through the admin API, warms it in both gateways (200, now an
 * LRU hit), revokes it through the admin API and polls each gateway on its own keep-alive
 * connection, one request after another, until it answers 401 (at most --poll-ms).
 *
 *   propagation     first 401 received − t0, t0 taken just before the revoke request is sent
 *   after response  first 401 received − revoke response received (≤ 0: the gateway refused the
 *                   key before the admin's answer was even read)
 *   revoked at once share of iterations where the first request sent after the revoke response
 *                   arrived was already refused (polling goes on until such a request is made)
 *
 *   npm run bench:revocation -- [--iterations 200] [--time-limit 120] [--poll-ms 2000]
 */
const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '200' },
    'time-limit': { type: 'string', default: '120' },
    'poll-ms': { type: 'string', default: '2000' },
  },
});
const iterations = Math.max(1, Math.min(10_000, Number(values.iterations)));
const timeLimitMs = Math.max(1, Math.min(600, Number(values['time-limit']))) * 1000;
const pollMs = Math.max(10, Math.min(10_000, Number(values['poll-ms'])));

install('redis-server', 'redis-server');

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

/** Waits until `probe` resolves true, at most 20 s. */
async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${what} did not come up in 20 s`);
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
const redisPort = await freePort();
launch('redis-server', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
const redisUrl = `redis://127.0.0.1:${redisPort}`;

const upstreamPort = await freePort();
launch('upstream', process.execPath, ['--import=tsx', 'bench/upstream.ts', String(upstreamPort)]);
const upstream = `http://127.0.0.1:${upstreamPort}`;

const ADMIN_TOKEN = 'bench-revocation-admin-token-0123456789';
const adminPort = await freePort();
const gatewayPorts = [await freePort(), await freePort()];
function configFile(name: string, listenerPort: number): string {
  // JSON is YAML: a config file bin/main.ts reads like any other.
  const config = {
    listeners: [{ port: listenerPort, host: '127.0.0.1', environment: 'production' }],
    plans: { default: { limit: 1_000_000_000, window_seconds: 1 } },
    scopes: { catalog: ['read'] },
    apis: [{ name: 'bench', path_prefix: '/', upstream, routes: [{ method: 'GET', path: '/*', scopes: ['read'] }] }],
    admin: { port: adminPort, host: '127.0.0.1', tokens: [{ name: 'bench', token: ADMIN_TOKEN, role: 'admin' }] },
    store: { type: 'redis', url: redisUrl, prefix: 'revbench' },
    log: { level: 'warn' },
  };
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}
const main = (name: string, config: string, role: string) =>
  launch(name, process.execPath, ['--import=tsx', 'bench/cli.ts', '--config', config, '--role', role], true);

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
await until('upstream', async () => (await status(upstream, '/')) === 200);
main('admin', configFile('admin', await freePort()), 'admin');
const gateways = gatewayPorts.map((port, i) => {
  const name = `gateway ${String.fromCharCode(65 + i)}`;
  main(name, configFile(`gateway-${i}`, port), 'gateway');
  return { name, url: `http://127.0.0.1:${port}` };
});
const adminUrl = `http://127.0.0.1:${adminPort}`;
await until('admin', async () => (await status(adminUrl, '/healthz')) === 200);
// Without a key, a listening gateway answers 401.
for (const g of gateways) await until(g.name, async () => (await status(g.url, '/bench')) === 401);

// --- the measurement ------------------------------------------------------------------------
const admin = new Client(adminUrl);
const clients = gateways.map((g) => new Client(g.url));
const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

async function adminPost(path: string, body: unknown): Promise<{ status: number; body: any; at: number }> {
  const res = await admin.request({ path, method: 'POST', headers: adminHeaders, body: JSON.stringify(body) });
  const at = performance.now();
  return { status: res.statusCode, body: await res.body.json(), at };
}

async function get(client: Client, key: string): Promise<number> {
  const res = await client.request({ path: '/bench', method: 'GET', headers: { authorization: `Bearer ${key}` } });
  await res.body.dump();
  return res.statusCode;
}

interface GatewaySample {
  /** First 401 received − t0 (ms); null when none came within the poll bound. */
  propagation: number | null;
  /** First 401 received − revoke response received (ms). */
  afterResponse: number | null;
  /** Whether the first request sent after the revoke response arrived was refused. */
  refusedAtOnce: boolean | null;
  /** Requests sent before the first 401. */
  requestsBefore401: number;
  /** A 200 after a 401 (a revoked key served again). */
  flapped: boolean;
}

interface Iteration {
  revokeMs: number;
  gateways: GatewaySample[];
}

const state = { responseAt: Number.NaN };

/** Polls one gateway until it has refused the key and a request sent after the revoke response was answered. */
async function poll(client: Client, key: string, t0: number): Promise<GatewaySample> {
  const deadline = t0 + pollMs;
  let first401: number | null = null;
  let requestsBefore401 = 0;
  let refusedAtOnce: boolean | null = null;
  let flapped = false;
  while (performance.now() < deadline) {
    const sent = performance.now();
    const code = await get(client, key);
    const received = performance.now();
    if (code === 401) {
      first401 ??= received;
    } else if (code === 200) {
      if (first401 === null) requestsBefore401++;
      else flapped = true;
    } else {
      throw new Error(`gateway answered ${code} while polling`);
    }
    if (refusedAtOnce === null && sent >= state.responseAt) refusedAtOnce = code === 401;
    if (first401 !== null && refusedAtOnce !== null) break;
  }
  return {
    propagation: first401 === null ? null : first401 - t0,
    afterResponse: first401 === null || Number.isNaN(state.responseAt) ? null : first401 - state.responseAt,
    refusedAtOnce,
    requestsBefore401,
    flapped,
  };
}

const results: Iteration[] = [];
const started = performance.now();
for (let i = 0; i < iterations && performance.now() - started < timeLimitMs; i++) {
  const created = await adminPost('/v1/keys', { name: `revocation-${i}`, environment: 'production', scopes: ['read'], apis: ['bench'] });
  if (created.status !== 201) throw new Error(`create answered ${created.status}: ${JSON.stringify(created.body)}`);
  const { id, key } = created.body as { id: string; key: string };
  // Twice each: the first fills the LRU from Redis, the second is the cached path.
  for (const c of clients) {
    for (let w = 0; w < 2; w++) {
      const code = await get(c, key);
      if (code !== 200) throw new Error(`warming ${id} answered ${code}`);
    }
  }
  state.responseAt = Number.NaN;
  const t0 = performance.now();
  const revoke = adminPost(`/v1/keys/${id}/revoke`, {}).then((r) => {
    state.responseAt = r.at;
    if (r.status !== 200) throw new Error(`revoke answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r;
  });
  const [r, ...samples] = await Promise.all([revoke, ...clients.map((c) => poll(c, key, t0))]);
  // A poller that gave up before the response arrived could not judge "at once".
  results.push({ revokeMs: r.at - t0, gateways: samples });
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
function summary(ss: GatewaySample[]) {
  const judged = ss.filter((s) => s.refusedAtOnce !== null);
  return {
    propagation_ms: dist(ss.flatMap((s) => (s.propagation === null ? [] : [s.propagation]))),
    after_response_ms: dist(ss.flatMap((s) => (s.afterResponse === null ? [] : [s.afterResponse]))),
    refused_at_once_share: judged.filter((s) => s.refusedAtOnce).length / judged.length,
    timeouts: ss.filter((s) => s.propagation === null).length,
    flaps: ss.filter((s) => s.flapped).length,
    served_after_t0: dist(ss.map((s) => s.requestsBefore401)),
  };
}
const rows = [
  ...gateways.map((g, i) => ({ gateway: g.name, ...summary(results.map((r) => r.gateways[i]!)) })),
  { gateway: 'both', ...summary(results.flatMap((r) => r.gateways)) },
];
const revoke = dist(results.map((r) => r.revokeMs));
const f = (v: number) => (Number.isNaN(v) ? '–' : v.toFixed(2));
const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
console.log(`${results.length} iterations in ${elapsed.toFixed(1)} s; revoke request (admin → Redis → answer) p50 ${f(revoke.p50)} ms, p99 ${f(revoke.p99)} ms, max ${f(revoke.max)} ms\n`);
console.log(line(['gateway', 'propagation p50 ms', 'p99 ms', 'max ms', 'after response p50 ms', 'p99 ms', 'max ms', 'refused at once', '200s after t0 p50 / max', 'timeouts', 'flaps']));
console.log(line(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
for (const r of rows) {
  console.log(
    line([
      r.gateway,
      f(r.propagation_ms.p50), f(r.propagation_ms.p99), f(r.propagation_ms.max),
      f(r.after_response_ms.p50), f(r.after_response_ms.p99), f(r.after_response_ms.max),
      `${(r.refused_at_once_share * 100).toFixed(1)}%`,
      `${r.served_after_t0.p50} / ${r.served_after_t0.max}`,
      String(r.timeouts), String(r.flaps),
    ]),
  );
}
console.log(`
propagation: first 401 received − t0 (just before the revoke request was sent).
after response: first 401 received − revoke response received; ≤ 0 when the gateway already
  refused the key before the admin's answer was read.
refused at once: the first request sent after the revoke response arrived was already 401.
200s after t0: requests the gateway still served after t0 (while the revoke was in flight).
timeouts: no 401 within ${pollMs} ms. flaps: a 200 after a 401 (must be 0).
Every process is on this one machine (redis-server, upstream, admin, two gateways, this client).`);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/revocation.json',
  JSON.stringify({ when: new Date().toISOString(), iterations: results.length, elapsed_s: elapsed, poll_ms: pollMs, revoke_ms: revoke, rows, samples: results }, null, 2),
);
await Promise.allSettled([admin.close(), ...clients.map((c) => c.close())]);
process.exit(0);
