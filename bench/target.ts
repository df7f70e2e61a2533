import '../bin/tune-v8.js'; // first: V8 flags set before the rest loads (bin/v8-flags.ts)
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeyService } from '../admin/keys.js';
import { recorderOptions, UsageRecorder } from '../admin/usage.js';
import { parseConfig } from '../config/load.js';
import { systemClock } from '../core/clock.js';
import { Logger } from '../core/log.js';
import { observedStore, ProcessMetrics } from '../core/metrics.js';
import { FileStore } from '../core/store/file-store.js';
import { RedisStore } from '../core/store/redis-store.js';
import { RequestContext } from '../gateway/context.js';
import { createGateway, hasherFor } from '../gateway/server.js';
import { buildRuntime } from '../gateway/runtime.js';
import { compileKey } from '../gateway/compiled-key.js';
import { createForwardStage } from '../gateway/stages/forward.js';
import { createOpsServer } from '../gateway/ops.js';
import { listenOn } from '../core/listen.js';
import { freePort } from './lib.js';

/**
 * One benchmark target in its own process: `bare` (the gateway's forwarding code with no
 * checks: it strips the credential, sets a request id and the identity and forwarding headers
 * as the gateway does), `gateway` (full enforcement: scopes, API list, allowlist and rate
 * limit on an LRU hit, file store, in-process token buckets; with Prometheus metrics and usage
 * recording on, as `keygate --role all` runs: the store timed into the process metrics, and
 * every request handed to a UsageRecorder that flushes to the store each
 * `usage.flush_interval_ms`), `gateway-bare-checks` (the same enforcement with
 * `metrics.enabled: false` and no usage sink: the checks alone), `gateway-rules` (the same with
 * 5,000 route rules, the request matching only the last) or `redis` (the enforcement and
 * the metrics and usage recording of `gateway`, with the key in a RedisStore, the rate limit in
 * Redis's shared token buckets and usage batches written to Redis). `redis-workers` is the CLI
 * itself (bench/cli.ts, `--role all`, `workers: N` gateway workers on node:cluster, the redis
 * store: more than one worker needs it) with the `redis` kind's configuration and key; this
 * process writes the config and the key, starts the CLI as its child and waits until both
 * planes answer. Prints `ready <key>` once listening.
 *
 *   target.ts bare|gateway|gateway-bare-checks|gateway-rules PORT UPSTREAM
 *   target.ts redis PORT UPSTREAM [REDIS_URL] [LEASE_MAX]   (REDIS_URL defaults to $KEYGATE_BENCH_REDIS_URL)
 *   target.ts redis-workers PORT UPSTREAM REDIS_URL WORKERS
 *
 * The plan (1e9 requests per second) never refuses, but it is a real bucket: with the redis
 * kind, every request spends a token leased from Redis. The default lease is 2% of the
 * capacity, at most `rate_limiter.lease_max` (50): one Redis round trip per 50 requests.
 * LEASE_MAX 1 makes it one round trip per request. `verify` is `gateway` with its status
 * listener on PORT answering the verify API (POST /v1/keys/verify, GET /auth) to loopback callers.
 *
 *   target.ts verify PORT UPSTREAM
 *
 * `gateway-tls` is `gateway` on a TLS listener with the certificate and key at CERT and KEY
 * (PEM paths), HTTP/2 offered by ALPN beside HTTP/1.1 (the listener's defaults).
 *
 *   target.ts gateway-tls PORT UPSTREAM CERT KEY
 */
const [kind, portArg, upstream, redisArg, leaseArg] = process.argv.slice(2);
if (!['bare', 'gateway', 'gateway-bare-checks', 'gateway-rules', 'redis', 'redis-workers', 'verify', 'gateway-tls'].includes(kind!)) throw new Error(`unknown target ${kind}`);
const port = Number(portArg);
const workers = kind === 'redis-workers';
const onRedis = kind === 'redis' || workers;
/** `gateway-tls`: the listener's certificate and key (argv). */
const tls = kind === 'gateway-tls' ? { cert: redisArg, key: leaseArg } : null;
if (tls !== null && (!tls.cert || !tls.key)) throw new Error('the gateway-tls target needs CERT and KEY paths');
/** Metrics and usage recording on the hot path, as in production. */
const production = kind === 'gateway' || kind === 'gateway-tls' || kind === 'verify' || onRedis;
/** `verify`: PORT is the status listener's, with the verify API (loopback callers, no token); the proxy listens elsewhere. */
const verifying = kind === 'verify';
const redisUrl = onRedis ? redisArg || process.env.KEYGATE_BENCH_REDIS_URL : undefined;
if (onRedis && !redisUrl) throw new Error(`the ${kind} target needs a redis:// URL (argv or KEYGATE_BENCH_REDIS_URL)`);
// Each target process gets its own key space, so two redis targets on one server share nothing.
const prefix = `bench${process.pid}`;
// `gateway-rules`: 5,000 rules, of which only the last matches the benchmark's GET /bench.
const manyRules = [
  ...Array.from({ length: 4_999 }, (_, i) => ({ method: 'GET', path: `/bench/r${i}/:id`, scopes: ['read'] })),
  { method: 'GET', path: '/*', scopes: ['read'] },
];
const raw = {
  ...(workers ? { role: 'all', workers: Number(leaseArg) } : {}),
  listeners: [{ port: verifying ? await freePort() : port, host: '127.0.0.1', environment: 'production', ...(tls === null ? {} : { tls }) }],
  ...(verifying ? { status_listener: { port, host: '127.0.0.1', verify: { enabled: true } } } : {}),
  plans: { default: { limit: 1_000_000_000, window_seconds: 1 } },
  ...(onRedis
    ? {
        store: { type: 'redis', url: redisUrl, prefix },
        ...(leaseArg && !workers ? { rate_limiter: { lease_max: Number(leaseArg) } } : {}),
      }
    : {}),
  scopes: { catalog: ['read'] },
  apis: [{ name: 'bench', path_prefix: '/', upstream, routes: kind === 'gateway-rules' ? manyRules : [{ method: 'GET', path: '/*', scopes: ['read'] }] }],
  admin: { ...(workers ? { port: await freePort() } : {}), tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
  metrics: { enabled: production },
  log: { level: 'error' },
};
const config = parseConfig(raw);
const log = new Logger({ level: 'error' });
const opened =
  onRedis
    ? await RedisStore.open({ url: redisUrl, prefix, commandTimeoutMs: 500, connectTimeoutMs: 5_000 })
    : await FileStore.open({ dir: mkdtempSync(join(process.env.KEYGATE_BENCH_TMP ?? tmpdir(), 'keygate-bench-')) });
// bin/main.ts times every store operation into the process metrics.
const store = production && !workers ? observedStore(opened, new ProcessMetrics()) : opened;
const hasher = hasherFor(config);
const keys = new KeyService(config, store, systemClock, hasher);
const { key, record } = await keys.create(
  {
    name: 'bench', description: null, environment: 'production', scopes: ['read'], apis: ['bench'], plan: null,
    rate_limit: null, ip_allowlist: ['127.0.0.0/8'], expires_at: null, not_before: null, meta: {}, application: null, policy: null,
  },
  { name: 'bench', role: 'admin', tenant: null, ip: '127.0.0.1', request_id: 'bench' },
);

if (workers) {
  await store.close();
  const file = join(mkdtempSync(join(process.env.KEYGATE_BENCH_TMP ?? tmpdir(), 'keygate-bench-cli-')), 'gateway.yaml');
  writeFileSync(file, JSON.stringify(raw));
  const cli = spawn(process.execPath, ['--import=tsx', fileURLToPath(new URL('./cli.ts', import.meta.url)), '--config', file], { stdio: ['ignore', 'ignore', 'inherit'] });
  cli.once('exit', (code) => process.exit(code ?? 1));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => cli.kill(sig));
  // The admin plane listens once every worker is ready; then the gateway must serve the key.
  const deadline = Date.now() + 30_000;
  while ((await status(`http://127.0.0.1:${config.admin.port}/healthz`)) !== 200 || (await status(`http://127.0.0.1:${port}/bench`, key)) !== 200) {
    if (Date.now() > deadline) throw new Error('the keygate CLI did not answer in 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
} else if (production) {
  // As bin/main.ts wires `--role all`: the admin plane's recorder (here without its listener)
  // takes every finished request in process, and the metrics read its counts.
  const recorder = new UsageRecorder(store, log, recorderOptions(config.usage));
  recorder.start();
  const gateway = createGateway(config, { store, log, hasher, sinks: [(e) => recorder.add(e)] });
  gateway.runtime.metrics!.usageFrom(() => ({ shipped: recorder.stored, retried: recorder.retried, dropped: recorder.dropped }));
  await gateway.listen();
  if (verifying) await listenOn(createOpsServer(gateway.runtime, () => false), port, '127.0.0.1');
} else if (kind === 'gateway-bare-checks' || kind === 'gateway-rules') {
  await createGateway(config, { store, log, hasher }).listen();
} else {
  const rt = buildRuntime(config, { clock: systemClock, log, store, hasher });
  const forward = createForwardStage(rt);
  const compiled = compileKey(record, rt.plans);
  const api = rt.apis[0]!;
  const listener = { environment: 'production' };
  createServer((req, res) => {
    const ctx = new RequestContext(req, res, null, null, listener, performance.now());
    const url = req.url!;
    const q = url.indexOf('?');
    ctx.path = q === -1 ? url : url.slice(0, q);
    ctx.query = q === -1 ? '' : url.slice(q);
    ctx.peer = '127.0.0.1';
    ctx.requestId = randomUUID();
    ctx.api = api;
    ctx.key = compiled;
    res.on('close', () => forward.settle(ctx));
    forward.forward(ctx);
  }).listen(port, '127.0.0.1');
}
process.stdout.write(`ready ${key}\n`);
// A clean exit on SIGINT lets `--cpu-prof` write its profile.
if (!workers) process.on('SIGINT', () => process.exit(0));


/** The status of a GET (0 when it cannot connect). */
function status(url: string, bearer?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get(url, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {}, agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}
