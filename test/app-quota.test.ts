import { join } from 'node:path';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { listenOn } from '../core/listen.js';
import { Logger } from '../core/log.js';
import { FileStore } from '../core/store/file-store.js';
import { RedisStore } from '../core/store/redis-store.js';
import type { Store } from '../core/store/store.js';
import { createOpsServer } from '../gateway/ops.js';
import { createGateway } from '../gateway/server.js';
import { RedisServer } from './lib/redis.js';
import { bearer, call, DEV_TOKEN, startStack, TENANT_A_ADMIN_TOKEN, VIEWER_TOKEN, type Stack, type StackOptions } from './lib/stack.js';
import { waitFor } from './lib/within.js';
import { connect } from 'node:net';

// An application's shared quota (issue 21, docs/quotas.md "An application's quota"): a request
// spends from its key's balance (if any) and from its application's, either can refuse, the
// application's refusal gives the key's units back, and the balance is exact on every store.

const VERIFY_TOKEN = 'verify-token-0123456789abcdef';

async function stack(t: Test, options: StackOptions = {}): Promise<Stack> {
  const s = await startStack({
    ...options,
    overrides: (upstream) => ({ status_listener: { port: 0, verify: { enabled: true, token: VERIFY_TOKEN, timeout_ms: 1_000 } }, ...options.overrides?.(upstream) }),
  });
  t.teardown(() => s.close());
  return s;
}

const get = (url: string, key: string, path = '/v1/emails/list') => call(`${url}${path}`, { headers: bearer(key) });

async function newApp(s: Stack, body: Record<string, unknown>): Promise<string> {
  const res = await s.adminCall('POST', '/v1/applications', { name: 'acme', ...body });
  if (res.status !== 201) throw new Error(`application create failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id;
}

/** Waits for an asynchronous condition (a refund lands after the response); fails after 2 s. */
async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 2000;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`${what}: not within 2000 ms`);
    await new Promise((r) => setImmediate(r));
  }
}

function decisions(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^keygate_rate_limit_decisions_total\{decision="([a-z_]+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

const appBalance = async (s: Stack, id: string) => (await s.adminCall('GET', `/v1/applications/${id}`)).body.balance;
const keyBalance = async (s: Stack, id: string) => (await s.adminCall('GET', `/v1/keys/${id}`)).body.balance;

/** N requests at once, spread over `keys` (and over `urls`, the gateways), against an application quota of `q`. */
async function admitsExactly(t: Test, s: Stack, urls: string[], n: number, q: number): Promise<void> {
  const id = await newApp(s, { quota: { limit: q, period: 'day' } });
  const keys = await Promise.all([0, 1, 2, 3].map(() => s.createKey({ application: id })));
  const statuses = await Promise.all(Array.from({ length: n }, (_, i) => get(urls[i % urls.length]!, keys[i % keys.length]!.key).then((r) => r.status)));
  t.equal(statuses.filter((x) => x === 200).length, q, `${q} of ${n} admitted`);
  t.equal(statuses.filter((x) => x === 429).length, n - q, 'the rest refused');
  t.equal(s.upstream.seen.length, q, 'only the admitted reached the upstream');
  t.same(await appBalance(s, id), { remaining: 0, refills_at: '2026-06-02T00:00:00.000Z' }, 'the shared balance is spent, not overspent');
}

t.test('concurrent requests from several keys of one application admit exactly its quota: SQLite', async (t) => {
  const s = await stack(t);
  await admitsExactly(t, s, [s.gw['production']!], 60, 17);
});

t.test('concurrent requests from several keys of one application admit exactly its quota: file store', async (t) => {
  let dir = '';
  const s = await stack(t, {
    openStore: async () => {
      const { mkdtempSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      dir = mkdtempSync(join(tmpdir(), 'keygate-appquota-'));
      return FileStore.open({ dir });
    },
  });
  t.teardown(async () => (await import('node:fs')).rmSync(dir, { recursive: true, force: true }));
  await admitsExactly(t, s, [s.gw['production']!], 60, 17);
});

t.test('concurrent requests from several keys of one application admit exactly its quota: Redis, two gateways', async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const prefix = 'appquota';
  const open = (): Promise<Store> => RedisStore.open({ url: server.url, prefix, commandTimeoutMs: 1000, connectTimeoutMs: 2000 });
  const s = await stack(t, { openStore: open, overrides: () => ({ store: { type: 'redis', url: server.url, prefix } }) });
  const store2 = await open();
  const second = createGateway(s.config, { store: store2, clock: s.clock, log: new Logger({ level: 'error', write: () => {}, keyPrefix: s.config.keys.prefix }), sinks: [] });
  const urls = await second.listen();
  t.teardown(async () => {
    await second.close(0);
    await store2.close();
  });
  await admitsExactly(t, s, [s.gw['production']!, urls.find((l) => l.environment === 'production')!.url], 60, 17);
});

t.test("the application's quota refills with the clock, and is named app-quota in the headers", async (t) => {
  const s = await stack(t);
  const prod = s.gw['production']!;
  const created = await s.adminCall('POST', '/v1/applications', { name: 'acme', quota: { limit: 2, period: 'hour' } });
  t.equal(created.status, 201);
  t.match(created.body, { quota: { limit: 2, period: 'hour', refill: true, mode: 'enforce', refund_on: [] }, credits: null }, 'the record shows the quota');
  const id = created.body.id;
  const k1 = await s.createKey({ application: id });
  const k2 = await s.createKey({ application: id });
  const first = await get(prod, k1.key);
  t.equal(first.status, 200);
  t.equal(first.headers['ratelimit-policy'], '"default";q=100;w=60, "app-quota";q=2;w=3600', 'RateLimit-Policy lists the application quota');
  t.equal(first.headers['ratelimit'], '"default";r=99;t=1, "app-quota";r=1;t=3600');
  t.equal((await get(prod, k2.key)).status, 200, 'another key of the application spends the second unit');
  s.clock.advance(15 * 60_000);
  const refused = await get(prod, k1.key);
  t.equal(refused.status, 429);
  t.equal(refused.headers['retry-after'], '2700', 'Retry-After: until the application quota refills');
  t.match(refused.body, {
    error: 'quota_exceeded',
    retry_after: 2700,
    message: 'Quota exceeded: the application this API key belongs to has used up the quota its keys share; it refills at 2026-06-01T13:00:00.000Z, in 2700 seconds.',
  });
  t.equal(refused.headers['ratelimit'], '"default";r=100;t=0, "app-quota";r=0;t=2700', "the key's rate-limit token was handed back");
  s.clock.advance(45 * 60_000);
  t.equal((await get(prod, k2.key)).status, 200, 'the next hour: refilled');
  t.same(await appBalance(s, id), { remaining: 1, refills_at: '2026-06-01T14:00:00.000Z' });
  const alone = await s.createKey();
  t.equal((await get(prod, alone.key)).headers['ratelimit-policy'], '"default";q=100;w=60', 'a key of no application has no app-quota item');
});

t.test("the key's quota refuses first and spends nothing shared; the application's refusal gives the key's units back", async (t) => {
  const s = await stack(t);
  const prod = s.gw['production']!;
  const id = await newApp(s, { credits: { remaining: 3 } });
  const small = await s.createKey({ application: id, quota: { limit: 1, period: 'day' } });
  const big = await s.createKey({ application: id, quota: { limit: 10, period: 'day' } });

  const ok = await get(prod, small.key);
  t.equal(ok.status, 200);
  t.equal(ok.headers['ratelimit-policy'], '"default";q=100;w=60, "quota";q=1;w=86400, "app-quota";q=3', 'both quota items: the key\'s and the application\'s');
  t.equal(ok.headers['ratelimit'], '"default";r=99;t=1, "quota";r=0;t=43200, "app-quota";r=2');
  const own = await get(prod, small.key);
  t.equal(own.status, 429, "the key's own quota refuses");
  t.match(own.body.message, /^Quota exceeded: this API key has used up its quota/);
  t.equal(own.headers['ratelimit'], '"default";r=99;t=1, "quota";r=0;t=43200', 'the application was not asked');
  t.equal((await appBalance(s, id)).remaining, 2, "the key's refusal spent nothing of the application's");

  t.equal((await get(prod, big.key)).status, 200);
  t.equal((await get(prod, big.key)).status, 200, 'the last shared unit');
  const shared = await get(prod, big.key);
  t.equal(shared.status, 429, "the application's credits refuse");
  t.equal(shared.headers['retry-after'], undefined, 'credits that never refill: no Retry-After');
  t.match(shared.body, {
    error: 'quota_exceeded',
    message: "Quota exceeded: the application this API key belongs to has used up the credits its keys share, which do not refill; ask the API's owner for more.",
  });
  t.equal(shared.headers['ratelimit'], '"default";r=98;t=2, "quota";r=8;t=43200, "app-quota";r=0', "the headers show the key's unit given back");
  t.same(await keyBalance(s, big.id), { remaining: 8, refills_at: '2026-06-02T00:00:00.000Z' }, "read from the store: the key's unit is back");
  t.equal(s.upstream.seen.length, 3);

  const topped = await s.adminCall('POST', `/v1/applications/${id}/credits`, { add: 1 });
  t.equal(topped.status, 200);
  t.equal((await get(prod, big.key)).status, 200, 'a top-up of the application works at once');
  t.equal((await keyBalance(s, big.id)).remaining, 7);
});

t.test('refund on upstream 5xx applies to both balances, each as its own refund_on says', async (t) => {
  const s = await stack(t);
  const prod = s.gw['production']!;
  const refunding = await newApp(s, { quota: { limit: 5, period: 'day', refund_on: ['5xx'] } });
  const keeping = await newApp(s, { quota: { limit: 5, period: 'day' } });
  const k1 = await s.createKey({ application: refunding, quota: { limit: 5, period: 'day', refund_on: ['5xx'] } });
  const k2 = await s.createKey({ application: keeping, quota: { limit: 5, period: 'day', refund_on: ['5xx'] } });
  t.equal((await get(prod, k1.key, '/v1/dead/x')).status, 502);
  t.equal((await get(prod, k2.key, '/v1/dead/x')).status, 502);
  await until(async () => (await keyBalance(s, k1.id)).remaining === 5 && (await keyBalance(s, k2.id)).remaining === 5, 'the key units refunded');
  await until(async () => (await appBalance(s, refunding)).remaining === 5, 'the application refunded');
  t.equal((await appBalance(s, refunding)).remaining, 5, 'the 502 cost the refunding application nothing');
  t.equal((await appBalance(s, keeping)).remaining, 4, 'the other application kept the unit');
});

t.test('shadow mode on the application quota counts would-deny without refusing', async (t) => {
  const s = await stack(t);
  const prod = s.gw['production']!;
  const id = await newApp(s, { quota: { limit: 1, period: 'day', mode: 'shadow' } });
  const k = await s.createKey({ application: id });
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await get(prod, k.key)).status);
  t.same(statuses, [200, 200, 200], 'never refused');
  const last = await get(prod, k.key);
  t.match(last.headers['ratelimit'], /"app-quota";r=0;t=\d+$/, 'the headers report the balance as it is');
  await waitFor(() => s.events.length >= 4, 2000, 'four usage events');
  t.same(s.events.map((e) => e.would_deny), [null, 'quota_exceeded', 'quota_exceeded', 'quota_exceeded'], 'usage says what would have been refused');
  t.match(decisions(await s.gateway.runtime.metrics!.registry.metrics()), { allowed: 1, would_deny: 3 }, 'metrics count the would-be refusals');
  await s.admin.usage.flush();
  const usage = await s.adminCall('GET', `/v1/keys/${k.id}/usage?range=1h`);
  t.match(usage.body.rate_limit, { exceeded: 0, would_have_been_refused: 3 }, 'the key’s usage counts them');
  t.same(await appBalance(s, id), { remaining: 0, refills_at: '2026-06-02T00:00:00.000Z' }, 'spent while there was some, never below zero');
});

t.test('admin: validation, PATCH replacing and clearing the quota, the credits route audited with roles and tenants', async (t) => {
  const s = await stack(t);
  const bad = async (method: string, path: string, body: unknown) => {
    const res = await s.adminCall(method, path, body);
    t.equal(res.status, 400, `${JSON.stringify(body)}: 400`);
    t.equal(res.body.error, 'validation_failed');
    return res.body.details as { path: string; message: string }[];
  };
  t.match(await bad('POST', '/v1/applications', { name: 'x', quota: { limit: 1, period: 'day' }, credits: { remaining: 1 } }), [
    { path: 'credits', message: 'give quota or credits, not both: an application has one balance, counted one way' },
  ]);
  t.match(await bad('POST', '/v1/applications', { name: 'x', quota: { limit: 1 } }), [{ path: 'quota.period', message: /is needed to refill/ }]);
  t.match(await bad('POST', '/v1/applications', { name: 'x', quota: { limit: -1, period: 'day' } }), [{ path: 'quota.limit' }]);
  t.match(await bad('POST', '/v1/applications', { name: 'x', quota: { limit: 1, period: 'week' } }), [{ path: 'quota.period' }]);
  t.match(await bad('POST', '/v1/applications', { name: 'x', credits: { remaining: 1, refill: { amount: 1, every: 'hour' } } }), [{ path: 'credits.refill.every' }]);
  t.match(await bad('POST', '/v1/applications', { name: 'x', quota: { limit: 1, period: 'day', mode: 'dry' } }), [{ path: 'quota.mode' }]);
  t.match(await bad('POST', '/v1/applications', { name: 'x', quota: { limit: 1, period: 'day', bogus: 1 } }), [{ path: 'quota' }]);
  t.match(await bad('POST', '/v1/applications', { name: 'x', quota: { limit: 1e13, period: 'day' } }), [{ path: 'quota.limit' }], 'past 10^12: balances stay exact');
  t.match(await bad('POST', '/v1/applications', { name: 'x', quota: { limit: 1.5, period: 'day' } }), [{ path: 'quota.limit' }]);
  t.match(await bad('POST', '/v1/applications', { name: 'x', credits: { remaining: '5' } }), [{ path: 'credits.remaining' }]);
  t.match(await bad('POST', '/v1/applications', { name: 'x', quota: 'lots' }), [{ path: 'quota' }]);

  const id = await newApp(s, { name: 'metered', credits: { remaining: 5 } });
  t.match(await bad('PATCH', `/v1/applications/${id}`, { quota: { limit: 1, period: 'day' }, credits: { remaining: 1 } }), [{ path: 'credits' }]);
  const k = await s.createKey({ application: id });
  t.equal((await get(s.gw['production']!, k.key)).status, 200);
  const got = await s.adminCall('GET', `/v1/applications/${id}`);
  t.same(got.body.balance, { remaining: 4, refills_at: null }, 'GET carries the balance');
  const patched = await s.adminCall('PATCH', `/v1/applications/${id}`, { quota: { limit: 10, period: 'day' } });
  t.equal(patched.status, 200);
  t.match(patched.body, { quota: { limit: 10, period: 'day' }, credits: null, balance: { remaining: 10 } }, 'a quota replaces the credits and starts its period full');
  const first = await get(s.gw['production']!, k.key);
  t.match(first.headers['ratelimit-policy'], /"app-quota";q=10;w=86400$/, 'the keys follow the change');
  const cleared = await s.adminCall('PATCH', `/v1/applications/${id}`, { quota: null });
  t.match(cleared.body, { quota: null, credits: null, balance: null });
  t.equal((await get(s.gw['production']!, k.key)).headers['ratelimit-policy'], '"default";q=100;w=60', 'no quota: no item');
  const none = await s.adminCall('POST', `/v1/applications/${id}/credits`, { add: 1 });
  t.equal(none.status, 409);
  t.match(none.body.message, /has no quota or credits; give it one first/);
  await s.adminCall('PATCH', `/v1/applications/${id}`, { credits: { remaining: 2 } });
  t.same(await appBalance(s, id), { remaining: 9, refills_at: null }, 'the balance is kept under the application across changes of its quota');

  const set = await s.adminCall('POST', `/v1/applications/${id}/credits`, { set: 7 });
  t.equal(set.status, 200);
  t.match(set.body, { id, credits: { remaining: 2 }, balance: { remaining: 7, refills_at: null } });
  s.clock.advance(1000);
  t.equal((await s.adminCall('POST', `/v1/applications/${id}/credits`, { add: 3 })).body.balance.remaining, 10);
  const audit = await s.adminCall('GET', `/v1/audit?application=${id}&action=application.credits_changed`);
  t.match(audit.body.data, [
    { action: 'application.credits_changed', actor: 'ops', target_type: 'application', changes: { balance: { from: 7, to: 10 } } },
    { action: 'application.credits_changed', actor: 'ops', changes: { balance: { from: 9, to: 7 } } },
  ], 'each change with the balance before and after, newest first');
  t.equal(audit.body.data.length, 2);
  const updates = await s.adminCall('GET', `/v1/audit?application=${id}&action=application.updated`);
  t.ok(
    updates.body.data.some((e: any) => e.changes.quota?.from === null && e.changes.quota?.to?.limit === 10 && e.changes.credits?.from?.remaining === 5 && e.changes.credits?.to === null),
    'the quota change is audited',
  );

  t.equal((await s.adminCall('POST', `/v1/applications/${id}/credits`, { add: 1 }, VIEWER_TOKEN)).status, 403, 'a viewer may not');
  t.equal((await s.adminCall('POST', `/v1/applications/${id}/credits`, { add: 1 }, DEV_TOKEN)).status, 403, 'nor a developer: applications are the admin role’s');
  t.equal((await s.adminCall('POST', `/v1/applications/${id}/credits`, { add: 1 }, TENANT_A_ADMIN_TOKEN)).status, 404, "another tenant's admin does not see it");
  for (const body of [{}, { set: 1, add: 1 }, { add: 0 }, { set: -1 }, { add: 1.5 }, { take: 1 }]) {
    await bad('POST', `/v1/applications/${id}/credits`, body);
  }
  t.equal((await s.adminCall('POST', '/v1/applications/app_nope/credits', { add: 1 })).status, 404);
  t.equal((await appBalance(s, id)).remaining, 10, 'refused changes changed nothing');
});

t.test('the verify API spends and reports the application quota', async (t) => {
  const s = await stack(t);
  const ops = createOpsServer(s.gateway.runtime, () => false);
  const url = (await listenOn(ops, 0, '127.0.0.1')).url;
  t.teardown(() => new Promise((r) => (ops.closeAllConnections(), ops.close(r))));
  const verify = async (key: string, cost?: number) => {
    const res = await request(`${url}/v1/keys/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-keygate-verify-token': VERIFY_TOKEN },
      body: JSON.stringify({ key, ...(cost === undefined ? {} : { cost }) }),
    });
    t.equal(res.statusCode, 200);
    return (await res.body.json()) as any;
  };
  const id = await newApp(s, { quota: { limit: 5, period: 'day' } });
  const k = await s.createKey({ application: id, credits: { remaining: 10 } });
  const first = await verify(k.key, 2);
  t.match(first, { valid: true, application_id: id, quota: { limit: 10, remaining: 8, reset: null }, app_quota: { limit: 5, remaining: 3, reset: 43200 }, metered: true });
  const over = await verify(k.key, 4);
  t.match(over, { valid: false, code: 'quota_exceeded', quota: { remaining: 8 }, app_quota: { remaining: 3 }, retry_after: 43200 }, "refused by the application: the key's units are back");
  t.match(over.message, /the application this API key belongs to has used up the quota its keys share/);
  t.same(await keyBalance(s, k.id), { remaining: 8, refills_at: null }, 'read from the store');
  t.equal((await appBalance(s, id)).remaining, 3);
  const plain = await s.createKey();
  t.match(await verify(plain.key), { valid: true, quota: null, app_quota: null, metered: false }, 'a key of no application: app_quota null, not metered');
  const appOnly = await s.createKey({ application: id });
  t.match(await verify(appOnly.key), { valid: true, quota: null, metered: true }, "a key whose only quota is its application's is metered: a caching client must not cache it");
});

t.test("the store failing on the application's balance: a closed plan answers 503 and gives the key's units back; an open one lets through", async (t) => {
  const s = await stack(t, {
    overrides: () => ({ plans: { default: { limit: 100, window_seconds: 60 }, tight: { limit: 100, window_seconds: 60, on_store_failure: 'closed' } } }),
  });
  const prod = s.gw['production']!;
  const id = await newApp(s, { quota: { limit: 5, period: 'day' } });
  const closed = await s.createKey({ application: id, plan: 'tight', quota: { limit: 3, period: 'day' } });
  const open = await s.createKey({ application: id });
  const store = s.store as unknown as { quota: (account: string, ...rest: unknown[]) => Promise<unknown> };
  const real = store.quota.bind(s.store);
  store.quota = (account, ...rest) => (account.startsWith('app_') ? Promise.reject(new Error('store down')) : real(account, ...rest));
  t.teardown(() => void (store.quota = real));
  const refused = await get(prod, closed.key);
  t.equal(refused.status, 503);
  t.match(refused.body.message, /Quotas cannot be checked right now/);
  t.equal((await get(prod, open.key)).status, 200, 'local (the default): admitted uncounted');
  store.quota = real;
  t.same(await keyBalance(s, closed.id), { remaining: 3, refills_at: '2026-06-02T00:00:00.000Z' }, "the key's unit is back");
  t.equal((await appBalance(s, id)).remaining, 5, 'nothing was counted on the application');
});

t.test("a client that leaves while the application's spend is answered gets both balances' units back", async (t) => {
  const s = await stack(t);
  const id = await newApp(s, { credits: { remaining: 100 } });
  const k = await s.createKey({ application: id, credits: { remaining: 100 } });
  // The application's spend is held until the client has gone (the key's spend, first, is not).
  let held = 0;
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const store = s.store as unknown as { quota: (account: string, terms: unknown, op: string, ...rest: unknown[]) => Promise<unknown> };
  const real = store.quota.bind(s.store);
  store.quota = async (account, terms, op, ...rest) => {
    if (account === id && op === 'spend') {
      held++;
      await gate;
    }
    return real(account, terms, op, ...rest);
  };
  t.teardown(() => void (store.quota = real));
  const u = new URL(s.gw['production']!);
  const sock = connect(Number(u.port), u.hostname, () => sock.write(`GET /v1/emails/list HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${k.key}\r\n\r\n`));
  sock.on('error', () => {});
  await waitFor(() => held === 1, 2_000, "the application's spend asked");
  sock.destroy();
  // Recorded as a client that left: the key's unit, spent, comes back at once.
  await until(async () => (await keyBalance(s, k.id)).remaining === 100, "the key's unit back");
  release();
  await until(async () => (await appBalance(s, id)).remaining === 100, "the application's unit back once its spend is answered");
  t.equal((await keyBalance(s, k.id)).remaining, 100, 'and the key is not refunded twice');
});

t.test('a top-up stops at 10^12 units, the most a balance holds', async (t) => {
  const s = await stack(t);
  const id = await newApp(s, { credits: { remaining: 5 } });
  const first = await s.adminCall('POST', `/v1/applications/${id}/credits`, { add: 1e12 });
  t.equal(first.status, 200);
  t.equal(first.body.balance.remaining, 1e12, '5 + 10^12 stops at 10^12');
  const again = await s.adminCall('POST', `/v1/applications/${id}/credits`, { add: 1e12 });
  t.equal(again.body.balance.remaining, 1e12);
  const audit = await s.adminCall('GET', `/v1/audit?application=${id}&action=application.credits_changed`);
  // Both at the same instant of the stack's clock: their order in the log is not what is judged.
  const balances = (audit.body.data as { changes: { balance: { from: number; to: number } } }[]).map((e) => e.changes.balance).sort((a, b) => a.from - b.from);
  t.same(
    balances,
    [
      { from: 5, to: 1e12 },
      { from: 1e12, to: 1e12 },
    ],
    'the audit records the balance as it was before each top-up, not what was added taken from the capped result',
  );
  const k = await s.createKey({ credits: { remaining: 1e12 } });
  const key = await s.adminCall('POST', `/v1/keys/${k.id}/credits`, { add: 7 });
  t.equal(key.body.balance.remaining, 1e12, "a key's too");
  const keyAudit = await s.adminCall('GET', `/v1/audit?key_id=${k.id}&action=key.credits_changed`);
  t.match(keyAudit.body.data, [{ changes: { balance: { from: 1e12, to: 1e12 } } }], "and the key's audit says it was full already");
});
