import t, { type Test } from 'tap';
import { request } from 'undici';
import { RedisStore } from '../core/store/redis-store.js';
import { generateKey } from '../core/key-format.js';
import { listenOn } from '../core/listen.js';
import { createOpsServer } from '../gateway/ops.js';
import { RedisServer, waitUntil } from './lib/redis.js';
import { bearer, call, startStack, type Stack } from './lib/stack.js';

// The gateway and admin plane on a real redis-server that the tests kill (a crash), pause
// (a hung server) and start again, while requests keep coming.

// With an append-only file synced on every write, as production Redis should run: a restart
// keeps every acknowledged write.
const server = await RedisServer.start(['--appendonly', 'yes', '--appendfsync', 'always']);
t.teardown(() => server.stop());
let n = 0;

async function redisStack(t: Test): Promise<Stack> {
  const prefix = `outage${n++}`;
  const stack = await startStack({
    openStore: () => RedisStore.open({ url: server.url, prefix, commandTimeoutMs: 200, connectTimeoutMs: 2000 }),
    overrides: () => ({
      store: { type: 'redis', url: server.url, prefix, command_timeout_ms: 200 },
      plans: {
        default: { limit: 100_000, window_seconds: 60, on_store_failure: 'local' },
        // Small buckets lease one token at a time: no leased token outlives the warm-up.
        closed: { limit: 10, window_seconds: 60, on_store_failure: 'closed' },
        open: { limit: 2, window_seconds: 60, on_store_failure: 'open' },
        local: { limit: 2, window_seconds: 60, on_store_failure: 'local' },
      },
    }),
  });
  t.teardown(async () => {
    await server.restart();
    await stack.close();
  });
  return stack;
}

const get = (stack: Stack, key: string) => call(`${stack.gw.production}/v1/emails/list`, { headers: bearer(key) });

t.test('Redis killed: cached keys pass, uncached get 503, each plan follows on_store_failure, admin writes 503; all recovers without a restart', async (t) => {
  const stack = await redisStack(t);
  const ops = createOpsServer(stack.gateway.runtime, () => false);
  const opsUrl = (await listenOn(ops, 0, '127.0.0.1')).url;
  t.teardown(() => ops.close());
  t.equal(stack.gateway.runtime.limiter.shared, true, 'the redis store brings the shared limiter');

  const closed = await stack.createKey({ plan: 'closed' });
  const open = await stack.createKey({ plan: 'open' });
  const local = await stack.createKey({ plan: 'local' });
  const plain = await stack.createKey();
  const uncached = await stack.createKey();
  for (const k of [closed, open, local, plain]) t.equal((await get(stack, k.key)).status, 200, 'warm');
  t.same((await (await request(`${opsUrl}/readyz`)).body.json()) as object, { status: 'ready', store: { kind: 'redis', reachable: true }, rate_limiter: 'shared', cached_keys: 4 });

  await server.kill();
  await waitUntil(() => !stack.store.available, 'the store to notice');

  const c = await get(stack, closed.key);
  t.equal(c.status, 503, 'closed: refused while the limiter cannot ask Redis');
  t.equal(c.body.error, 'service_unavailable');
  t.match(c.body.message, /Rate limiting is unavailable/);

  const openStatuses = [];
  for (let i = 0; i < 4; i++) openStatuses.push((await get(stack, open.key)).status);
  t.same(openStatuses, [200, 200, 200, 200], 'open: admitted beyond its limit of 2');

  const localStatuses = [];
  for (let i = 0; i < 3; i++) localStatuses.push((await get(stack, local.key)).status);
  t.same(localStatuses, [200, 200, 429], 'local: counted in this process, full bucket of 2 then 429');

  t.equal((await get(stack, plain.key)).status, 200, 'a cached key keeps working');
  for (const key of [uncached.key, generateKey('gw', 'live')]) {
    const r = await get(stack, key);
    t.equal(r.status, 503, 'an uncached key (known or not) is 503, never 401');
    t.equal(r.body.error, 'service_unavailable');
    t.match(r.body.message, /key store is unreachable/);
  }

  const created = await stack.adminCall('POST', '/v1/keys', { name: 'during outage' });
  t.equal(created.status, 503, 'an admin write fails');
  t.equal(created.body.error, 'service_unavailable');
  t.match(created.body.message, /nothing was changed/);
  t.equal((await stack.adminCall('POST', `/v1/keys/${plain.id}/revoke`)).status, 503);
  t.equal((await stack.adminCall('GET', '/v1/keys')).status, 503, 'admin reads too');
  t.equal((await request(`${stack.adminUrl}/readyz`)).statusCode, 503, 'the admin plane is not ready');
  const health = (await (await request(`${opsUrl}/readyz`)).body.json()) as Record<string, unknown>;
  t.equal(health['status'], 'degraded', 'the gateway reports degraded mode');
  t.same(health['store'], { kind: 'redis', reachable: false });
  t.equal(health['rate_limiter'], 'fallback');
  t.match(await (await request(`${opsUrl}/metrics`)).body.text(), /^keygate_degraded 1$/m, 'and says so in a metric');

  await server.restart();
  await waitUntil(() => stack.store.available, 'the store to reconnect');
  t.equal((await get(stack, uncached.key)).status, 200, 'the uncached key now loads');
  t.equal((await get(stack, closed.key)).status, 200, 'the closed plan admits again');
  t.equal((await get(stack, local.key)).status, 200, 'the local plan counts in Redis again (a fresh bucket there)');
  const after = await stack.createKey({ name: 'after outage' });
  t.equal((await get(stack, after.key)).status, 200, 'admin writes work again');
  t.equal((await stack.adminCall('POST', `/v1/keys/${plain.id}/revoke`)).status, 200);
  await waitUntil(async () => (await get(stack, plain.key)).status === 401, 'the revocation to reach the gateway', 2000);
  t.equal((await request(`${stack.adminUrl}/readyz`)).statusCode, 200, 'the admin plane is ready again');
  t.equal(((await (await request(`${opsUrl}/readyz`)).body.json()) as Record<string, unknown>)['status'], 'ready', 'the gateway too');
  t.match(await (await request(`${opsUrl}/metrics`)).body.text(), /^keygate_degraded 0$/m);
});

t.test('a revocation missed while the subscriber was away is not missed: a reconnect drops the cache', async (t) => {
  const stack = await redisStack(t);
  const k = await stack.createKey();
  t.equal((await get(stack, k.key)).status, 200, 'cached');
  // Revoke through another connection while this process's subscriber cannot hear it.
  const other = await RedisStore.open({ url: server.url, prefix: `outage${n - 1}`, commandTimeoutMs: 1000, connectTimeoutMs: 2000 });
  t.teardown(() => other.close());
  await server.kill();
  await server.restart();
  await waitUntil(() => other.available, 'the second connection');
  const rec = (await other.getKey(k.id))!;
  await other.putKey({ ...rec, revoked_at: stack.clock.now(), revoked_reason: 'test' }, rec.version);
  await waitUntil(() => stack.store.available, 'the store to reconnect');
  await waitUntil(async () => (await get(stack, k.key)).status === 401, 'the cache to be dropped after the reconnect', 3000);
  t.pass('the revoked key is refused after the reconnect');
});

t.test('Redis hung (SIGSTOP): nothing hangs; calls fail within the command timeout, then recover', async (t) => {
  const stack = await redisStack(t);
  const cached = await stack.createKey();
  const uncached = await stack.createKey();
  t.equal((await get(stack, cached.key)).status, 200);
  server.pause();
  t.teardown(() => server.resume());

  let began = performance.now();
  const u = await get(stack, uncached.key);
  t.equal(u.status, 503, 'an uncached key: 503 once the lookup times out');
  t.ok(performance.now() - began < 2000, 'answered within the timeout, not hung');

  began = performance.now();
  t.equal((await get(stack, cached.key)).status, 200, 'a cached key passes on the local fallback');
  t.ok(performance.now() - began < 2000);

  began = performance.now();
  const w = await stack.adminCall('POST', '/v1/keys', { name: 'during a hang' });
  t.equal(w.status, 503, 'an admin write fails');
  t.match(w.body.message, /may still be applied, whole or not at all/, 'and says its outcome is unknown');
  t.ok(performance.now() - began < 2000);

  server.resume();
  await waitUntil(async () => (await get(stack, uncached.key)).status === 200, 'the store to answer again', 5000);
  t.equal((await get(stack, cached.key)).status, 200);
});

t.test('mid-load: Redis killed and restarted under traffic; every request answered, 503 only for uncached keys', async (t) => {
  const stack = await redisStack(t);
  const cached = await stack.createKey();
  t.equal((await get(stack, cached.key)).status, 200);
  // Fresh keys, each used once: uncached whenever it is used.
  const fresh: string[] = [];
  for (let i = 0; i < 250; i++) fresh.push((await stack.createKey({ name: `fresh ${i}` })).key);

  const results: { kind: 'cached' | 'fresh'; status: number | string; phase: string }[] = [];
  let phase = 'up';
  let stop = false;
  const deadline = Date.now() + 15_000;
  const send = async (kind: 'cached' | 'fresh', key: string) => {
    const seenIn = phase;
    try {
      const res = await request(`${stack.gw.production}/v1/emails/list`, { headers: bearer(key), headersTimeout: 3000, bodyTimeout: 3000 });
      await res.body.dump();
      results.push({ kind, status: res.statusCode, phase: seenIn });
    } catch (err) {
      results.push({ kind, status: (err as Error).message, phase: seenIn });
    }
  };
  const cachedLoop = async () => {
    for (let i = 0; i < 5000 && !stop && Date.now() < deadline; i++) await send('cached', cached.key);
  };
  // One never-used key every 10 ms or so, through every phase.
  const freshLoop = async () => {
    for (const key of fresh) {
      if (stop || Date.now() >= deadline) break;
      await send('fresh', key);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const load = Promise.all([cachedLoop(), cachedLoop(), cachedLoop(), freshLoop()]);
  await new Promise((r) => setTimeout(r, 300));
  phase = 'down';
  await server.kill();
  await new Promise((r) => setTimeout(r, 700));
  phase = 'restarting';
  await server.restart();
  await waitUntil(() => stack.store.available, 'the store to reconnect');
  phase = 'up again';
  await new Promise((r) => setTimeout(r, 400));
  stop = true;
  await load;

  const failed = results.filter((r) => typeof r.status !== 'number');
  t.same(failed, [], 'no request failed or hung');
  const cachedStatuses = new Set(results.filter((r) => r.kind === 'cached').map((r) => r.status));
  t.same([...cachedStatuses], [200], 'the cached key always passed');
  const freshStatuses = new Set(results.filter((r) => r.kind === 'fresh').map((r) => r.status));
  t.ok([...freshStatuses].every((s) => s === 200 || s === 503), `uncached keys: only 200 or 503 (${[...freshStatuses].join(', ')})`);
  t.ok(results.some((r) => r.kind === 'fresh' && r.phase === 'down' && r.status === 503), 'uncached keys were refused with 503 while Redis was down');
  t.ok(results.some((r) => r.kind === 'fresh' && r.phase === 'up again' && r.status === 200), 'and pass again after it came back');
  t.ok(results.length > 100, `traffic ran throughout (${results.length} requests)`);
});
