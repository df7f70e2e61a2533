import t from 'tap';
import { Logger } from '../core/log.js';
import { RedisStore } from '../core/store/redis-store.js';
import { createGateway } from '../gateway/server.js';
import { RedisServer } from './lib/redis.js';
import { bearer, call, startStack, TENANT_A_ADMIN_TOKEN, VIEWER_TOKEN, type Stack } from './lib/stack.js';

// An application's shared limit (issue 21, docs/admin-api.md "Applications"): a request spends
// from its key's bucket and from its application's, either can refuse, RateLimit-Policy lists
// both, and the limit holds across keys and across gateways sharing one store.

const get = (url: string, key: string) => call(`${url}/v1/emails/list`, { headers: bearer(key) });

async function app(stack: Stack, body: Record<string, unknown>, token?: string): Promise<string> {
  const res = await stack.adminCall('POST', '/v1/applications', { name: 'acme', ...body }, token);
  if (res.status !== 201) throw new Error(`application create failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id;
}

t.test("keys of one application spend from its bucket; the application's refusal costs the key nothing", async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const prod = stack.gw.production!;
  const created = await stack.adminCall('POST', '/v1/applications', { name: 'acme', rate_limit: { limit: 3, window_seconds: 60 } });
  t.equal(created.status, 201);
  t.match(created.body, { plan: null, rate_limit: { limit: 3, window_seconds: 60, burst: null } }, 'the application shows its limit');
  const id = created.body.id;
  const k1 = await stack.createKey({ application: id });
  const k2 = await stack.createKey({ application: id });
  const alone = await stack.createKey();

  const first = await get(prod, k1.key);
  t.equal(first.status, 200);
  t.equal(first.headers['ratelimit-policy'], '"default";q=100;w=60, "app";q=3;w=60', 'RateLimit-Policy lists the key\'s and the application\'s');
  t.equal(first.headers['ratelimit'], '"default";r=99;t=1, "app";r=2;t=20');
  t.equal((await get(prod, k2.key)).status, 200, 'another key of the application');
  const third = await get(prod, k1.key);
  t.equal(third.status, 200);
  t.match(third.headers['ratelimit'], /"app";r=0;t=60$/, 'three spent from the shared bucket');

  const refused = await get(prod, k2.key);
  t.equal(refused.status, 429, 'the application has used up its limit, whichever key asks');
  t.match(refused.body, { error: 'rate_limit_exceeded', message: /the application this API key belongs to has used up the limit its keys share; try again in 20 seconds/ });
  t.equal(refused.headers['retry-after'], '20');
  t.equal(refused.headers['ratelimit'], '"default";r=99;t=1, "app";r=0;t=60', "the key's own token was handed back");
  t.equal((await get(prod, k1.key)).status, 429);

  const other = await get(prod, alone.key);
  t.equal(other.status, 200, 'a key of no application is not held back');
  t.equal(other.headers['ratelimit-policy'], '"default";q=100;w=60', 'and has no application item');

  stack.clock.advance(20_000);
  t.equal((await get(prod, k2.key)).status, 200, 'a token back after 60 s / 3');
  t.equal((await get(prod, k1.key)).status, 429, 'and only one');

  // The key's own limit still refuses first, with its own message.
  const big = await app(stack, { name: 'big', rate_limit: { limit: 1000, window_seconds: 60 } });
  const tiny = await stack.createKey({ application: big, plan: 'tiny' });
  t.equal((await get(prod, tiny.key)).status, 200);
  t.equal((await get(prod, tiny.key)).status, 200);
  const own = await get(prod, tiny.key);
  t.equal(own.status, 429);
  t.match(own.body, { error: 'rate_limit_exceeded', message: /this API key has used up its limit; try again/ });
  t.equal(own.headers['ratelimit'], '"tiny";r=0;t=60, "app";r=998;t=1', 'the application bucket was not asked');
});

t.test('a route limit and the application limit: a refusal by the application hands back the route token too', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const prod = stack.gw.production!;
  const id = await app(stack, { rate_limit: { limit: 1, window_seconds: 60 } });
  const k1 = await stack.createKey({ application: id });
  const k2 = await stack.createKey({ application: id });
  t.equal((await get(prod, k1.key)).status, 200, 'the one shared token');
  const res = await call(`${prod}/v1/emails/limited`, { headers: bearer(k2.key) });
  t.equal(res.status, 429);
  t.equal(res.headers['ratelimit-policy'], '"default";q=100;w=60, "emails_1";q=1;w=60, "app";q=1;w=60');
  t.equal(res.headers['ratelimit'], '"default";r=100;t=0, "emails_1";r=1;t=0, "app";r=0;t=60', "the key's and the route's tokens were handed back");
});

t.test('PATCH sets, changes and removes the shared limit on the keys it has, cached or not; audited', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const prod = stack.gw.production!;
  const id = await app(stack, {});
  const key = await stack.createKey({ application: id });
  t.equal((await get(prod, key.key)).headers['ratelimit-policy'], '"default";q=100;w=60', 'no shared limit at first');

  const set = await stack.adminCall('PATCH', `/v1/applications/${id}`, { plan: 'tiny' });
  t.equal(set.status, 200);
  t.match(set.body, { plan: 'tiny', rate_limit: null });
  const after = await get(prod, key.key);
  t.equal(after.headers['ratelimit-policy'], '"default";q=100;w=60, "app";q=2;w=60', "the cached key follows on its next request, with the plan's limit");
  t.equal((await get(prod, key.key)).status, 200);
  t.equal((await get(prod, key.key)).status, 429, "the plan's two requests, shared");

  const own = await stack.adminCall('PATCH', `/v1/applications/${id}`, { rate_limit: { limit: 5, window_seconds: 10, burst: 7 } });
  t.equal(own.status, 200);
  t.match(own.body, { plan: 'tiny', rate_limit: { limit: 5, window_seconds: 10, burst: 7 } }, 'its own limit, which wins over the plan');
  t.equal((await get(prod, key.key)).headers['ratelimit-policy'], '"default";q=100;w=60, "app";q=5;w=10');

  const regenerated = await stack.adminCall('POST', `/v1/keys/${key.id}/regenerate`, { grace_period_seconds: 0 });
  t.equal(regenerated.status, 201, JSON.stringify(regenerated.body));
  t.match((await get(prod, regenerated.body.key)).headers['ratelimit-policy'], /"app";q=5;w=10$/, 'a regenerated key keeps it');

  const cleared = await stack.adminCall('PATCH', `/v1/applications/${id}`, { plan: null, rate_limit: null });
  t.equal(cleared.status, 200);
  t.equal((await get(prod, regenerated.body.key)).headers['ratelimit-policy'], '"default";q=100;w=60', 'removed');

  const entries = (await stack.adminCall('GET', '/v1/audit?action=application.updated')).body.data;
  t.equal(entries.length, 3);
  const first = entries.find((e: any) => e.changes.plan?.to === 'tiny');
  t.same(first.changes.plan, { from: null, to: 'tiny' });
  t.same(first.changes.keys, { from: null, to: [key.id] }, 'the keys it reached');
});

t.test('refused: plan and rate_limit together, an unknown plan, a viewer, another tenant', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const both = await stack.adminCall('POST', '/v1/applications', { name: 'x', plan: 'tiny', rate_limit: { limit: 1, window_seconds: 1 } });
  t.equal(both.status, 400);
  t.match(JSON.stringify(both.body), /give plan or rate_limit, not both/);
  const unknown = await stack.adminCall('POST', '/v1/applications', { name: 'x', plan: 'gold' });
  t.equal(unknown.status, 400);
  t.match(JSON.stringify(unknown.body), /must be one of: default, tiny/);
  const bad = await stack.adminCall('POST', '/v1/applications', { name: 'x', rate_limit: { limit: -1, window_seconds: 1 } });
  t.equal(bad.status, 400);

  const id = await app(stack, {});
  t.equal((await stack.adminCall('PATCH', `/v1/applications/${id}`, { plan: 'tiny' }, VIEWER_TOKEN)).status, 403, 'a viewer may not');
  t.equal((await stack.adminCall('PATCH', `/v1/applications/${id}`, { plan: 'tiny' }, TENANT_A_ADMIN_TOKEN)).status, 404, "a tenant's admin does not see an application outside its tenant");
  t.match((await stack.adminCall('GET', `/v1/applications/${id}`)).body, { plan: null, rate_limit: null }, 'unchanged');
});

t.test('two gateways on one Redis: the application bucket is one bucket', async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const prefix = 'applimits';
  const stack = await startStack({
    openStore: () => RedisStore.open({ url: server.url, prefix, commandTimeoutMs: 1000, connectTimeoutMs: 2000 }),
    overrides: () => ({ store: { type: 'redis', url: server.url, prefix } }),
  });
  t.teardown(() => stack.close());
  const store2 = await RedisStore.open({ url: server.url, prefix, commandTimeoutMs: 1000, connectTimeoutMs: 2000 });
  const log = new Logger({ level: 'error', write: () => {}, keyPrefix: stack.config.keys.prefix });
  const second = createGateway(stack.config, { store: store2, clock: stack.clock, log, sinks: [] });
  const urls = await second.listen();
  t.teardown(async () => {
    await second.close(0);
    await store2.close();
  });
  const other = urls.find((l) => l.environment === 'production')!.url;
  t.equal(second.runtime.limiter.shared, true, 'the shared limiter');

  const id = await app(stack, { rate_limit: { limit: 4, window_seconds: 60 } });
  const k1 = await stack.createKey({ application: id });
  const k2 = await stack.createKey({ application: id });
  const codes = [];
  for (const [url, key] of [
    [stack.gw.production!, k1.key],
    [other, k2.key],
    [other, k1.key],
    [stack.gw.production!, k2.key],
    [other, k1.key],
    [stack.gw.production!, k2.key],
  ] as const) {
    codes.push((await get(url, key)).status);
  }
  t.same(codes, [200, 200, 200, 200, 429, 429], 'four across both gateways and both keys, then none');

  // Keys created at once in one application do not get in each other's way.
  const many = await Promise.all(Array.from({ length: 30 }, (_, i) => stack.adminCall('POST', '/v1/keys', { name: `burst ${i}`, application: id })));
  t.same(
    many.map((r) => r.status),
    many.map(() => 201),
    '30 concurrent creates in one application all succeed',
  );
});

t.test('a key created while its application changes gets the change: the create commit conflicts and is made again', async (t) => {
  // The key's commit is held until the application's new limit has committed: the window a
  // PATCH (which copies the limit onto the keys it finds) would otherwise miss the new key in.
  let gate: Promise<void> | null = null;
  let release = () => {};
  let arrived = () => {};
  const reached = new Promise<void>((resolve) => (arrived = resolve));
  const stack = await startStack({
    wrapStore: (inner) =>
      new Proxy(inner, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target);
          if (prop !== 'commit') return typeof value === 'function' ? value.bind(target) : value;
          return async (batch: Parameters<typeof inner.commit>[0]) => {
            const held = gate;
            if (held !== null && batch.keys?.some((k) => k.expected === 0)) {
              gate = null;
              arrived();
              await held;
            }
            return target.commit(batch);
          };
        },
      }),
  });
  t.teardown(() => stack.close());
  const id = await app(stack, {});
  gate = new Promise<void>((resolve) => (release = resolve));
  const creating = stack.createKey({ application: id });
  await reached;
  t.equal((await stack.adminCall('PATCH', `/v1/applications/${id}`, { rate_limit: { limit: 1, window_seconds: 3600 } })).status, 200, 'the limit commits first');
  release();
  const key = await creating;
  const prod = stack.gw.production!;
  t.equal((await get(prod, key.key)).status, 200);
  const second = await get(prod, key.key);
  t.equal(second.status, 429, "the new key spends from the application's new limit");
  t.match(second.headers['ratelimit-policy'], /"app";q=1;w=3600$/);
});
