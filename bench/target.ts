import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyService } from '../admin/keys.js';
import { parseConfig } from '../config/load.js';
import { systemClock } from '../core/clock.js';
import { Logger } from '../core/log.js';
import { FileStore } from '../core/store/file-store.js';
import { RedisStore } from '../core/store/redis-store.js';
import { RequestContext } from '../gateway/context.js';
import { createGateway, hasherFor } from '../gateway/server.js';
import { buildRuntime } from '../gateway/runtime.js';
import { compileKey } from '../gateway/compiled-key.js';
import { createForwardStage } from '../gateway/stages/forward.js';

/**
 * One benchmark target in its own process: `bare` (the gateway's forwarding code with no
 * checks: it strips the credential, sets a request id and the identity and forwarding headers
 * as the gateway does), `gateway` (full enforcement: scopes, API list, allowlist and rate
 * limit on an LRU hit, file store, in-process token buckets) or `redis` (the same enforcement
 * with the key in a RedisStore and the rate limit in Redis's shared token buckets).
 * Prints `ready <key>` once listening.
 *
 *   target.ts bare|gateway PORT UPSTREAM
 *   target.ts redis PORT UPSTREAM [REDIS_URL] [LEASE_MAX]   (REDIS_URL defaults to $KEYGATE_BENCH_REDIS_URL)
 *
 * The plan (1e9 requests per second) never refuses, but it is a real bucket: with the redis
 * kind, every request spends a token leased from Redis. The default lease is 2% of the
 * capacity, at most `rate_limiter.lease_max` (50): one Redis round trip per 50 requests.
 * LEASE_MAX 1 makes it one round trip per request.
 */
const [kind, portArg, upstream, redisArg, leaseArg] = process.argv.slice(2);
const port = Number(portArg);
const redisUrl = redisArg || process.env.KEYGATE_BENCH_REDIS_URL;
if (kind === 'redis' && !redisUrl) throw new Error('the redis target needs a redis:// URL (argv or KEYGATE_BENCH_REDIS_URL)');
// Each target process gets its own key space, so two redis targets on one server share nothing.
const prefix = `bench${process.pid}`;
const config = parseConfig({
  listeners: [{ port, host: '127.0.0.1', environment: 'production' }],
  plans: { default: { limit: 1_000_000_000, window_seconds: 1 } },
  ...(kind === 'redis'
    ? {
        store: { type: 'redis', url: redisUrl, prefix },
        ...(leaseArg ? { rate_limiter: { lease_max: Number(leaseArg) } } : {}),
      }
    : {}),
  scopes: { catalog: ['read'] },
  apis: [{ name: 'bench', path_prefix: '/', upstream, routes: [{ method: 'GET', path: '/*', scopes: ['read'] }] }],
  admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
  log: { level: 'error' },
});
const log = new Logger({ level: 'error' });
const store =
  kind === 'redis'
    ? await RedisStore.open({ url: redisUrl, prefix, commandTimeoutMs: 500, connectTimeoutMs: 5_000 })
    : await FileStore.open({ dir: mkdtempSync(join(tmpdir(), 'keygate-bench-')) });
const hasher = hasherFor(config);
const keys = new KeyService(config, store, systemClock, hasher);
const { key, record } = await keys.create(
  {
    name: 'bench', description: null, environment: 'production', scopes: ['read'], apis: ['bench'], plan: null,
    rate_limit: null, ip_allowlist: ['127.0.0.0/8'], expires_at: null, not_before: null, meta: {}, application: null, policy: null,
  },
  { name: 'bench', role: 'admin', tenant: null, ip: '127.0.0.1', request_id: 'bench' },
);

if (kind === 'gateway' || kind === 'redis') {
  await createGateway(config, { store, log, hasher }).listen();
} else if (kind === 'bare') {
  const rt = buildRuntime(config, { clock: systemClock, log, store, hasher });
  const forward = createForwardStage(rt);
  const compiled = compileKey(record, rt.plans);
  const api = rt.apis[0]!;
  const listener = { environment: 'production' };
  createServer((req, res) => {
    const ctx = new RequestContext(req, res, null, null, listener, 0);
    const url = req.url!;
    const q = url.indexOf('?');
    ctx.path = q === -1 ? url : url.slice(0, q);
    ctx.query = q === -1 ? '' : url.slice(q);
    ctx.peer = '127.0.0.1';
    ctx.requestId = randomUUID();
    ctx.api = api;
    ctx.key = compiled;
    forward(ctx);
  }).listen(port, '127.0.0.1');
} else {
  throw new Error(`unknown target ${kind}`);
}
process.stdout.write(`ready ${key}\n`);
// A clean exit on SIGINT lets `--cpu-prof` write its profile.
process.on('SIGINT', () => process.exit(0));
