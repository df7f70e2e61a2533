import t, { type Test } from 'tap';
import { exchange, responses } from './lib/raw-socket.js';
import { bearer, call, startStack, TENANT_A_TOKEN, TENANT_B_TOKEN, VIEWER_TOKEN, DEV_TOKEN, type Stack } from './lib/stack.js';
import { waitFor } from './lib/within.js';

// Quotas and credits end to end (docs/quotas.md): a real gateway, admin plane and SQLite
// store, time on a ManualClock. Exactness of the store operation under concurrency is proved
// on every store by the conformance suite (test/lib/store-conformance.ts); across processes by
// test/quota-processes.test.ts.

async function stack(t: Test): Promise<Stack> {
  const s = await startStack({
    overrides: (upstream) => ({
      plans: {
        default: { limit: 100, window_seconds: 60 },
        metered: { limit: 100, window_seconds: 60, quota: { limit: 2, period: 'day' } },
        tight: { limit: 100, window_seconds: 60, on_store_failure: 'closed' },
      },
      apis: [
        {
          name: 'emails',
          path_prefix: '/v1/emails',
          upstream,
          routes: [
            { method: 'POST', path: '/v1/emails/bulk', cost: 5 },
            { method: 'GET', path: '/v1/emails/free', cost: 0 },
            { method: '*', path: '/v1/emails/*' },
          ],
        },
        // Port 1 on loopback: nothing listens, connections are refused (502).
        { name: 'dead', path_prefix: '/v1/dead', upstream: 'http://127.0.0.1:1', unlisted: 'allow' },
      ],
    }),
  });
  t.teardown(() => s.close());
  return s;
}

const get = (s: Stack, key: string, path = '/v1/emails/list', method = 'GET') => call(`${s.gw['production']}${path}`, { method, headers: bearer(key) });

t.test('a quota admits its limit per period, refuses with 429 quota_exceeded until the refill, and refills', async (t) => {
  const s = await stack(t);
  const k = await s.createKey({ quota: { limit: 3, period: 'hour' } });
  t.match(k.record, { quota: { limit: 3, period: 'hour', refill: true, mode: 'enforce', refund_on: [] }, credits: null }, 'the record carries the quota');
  for (let i = 0; i < 3; i++) {
    const ok = await get(s, k.key);
    t.equal(ok.status, 200, `request ${i + 1} admitted`);
    t.equal(ok.headers['ratelimit-policy'], '"default";q=100;w=60, "quota";q=3;w=3600', 'RateLimit-Policy names the quota');
    t.equal(ok.headers['ratelimit'], `"default";r=${99 - i};t=${Math.ceil((i + 1) * 0.6)}, "quota";r=${2 - i};t=3600`, 'RateLimit: what is left and the seconds to the refill');
  }
  s.clock.advance(15 * 60_000);
  const refused = await get(s, k.key);
  t.equal(refused.status, 429);
  t.equal(refused.headers['retry-after'], '2700', 'Retry-After: the seconds until the next hour');
  t.match(refused.body, {
    error: 'quota_exceeded',
    retry_after: 2700,
    message: 'Quota exceeded: this API key has used up its quota; it refills at 2026-06-01T13:00:00.000Z, in 2700 seconds.',
    doc_url: 'docs/errors.md#quota_exceeded',
  });
  t.match(refused.headers['ratelimit'], /^"default";r=100;t=0, "quota";r=0;t=2700$/, 'the refused request took no rate-limit token');
  t.equal(s.upstream.seen.length, 3, 'the refused request never reached the upstream');

  s.clock.advance(45 * 60_000);
  const refilled = await get(s, k.key);
  t.equal(refilled.status, 200, 'the next hour: refilled');
  t.match(refilled.headers['ratelimit'], /"quota";r=2;t=3600$/);
  await waitFor(() => s.events.length >= 5, 2000, 'five usage events');
  t.same(s.events.map((e) => e.quota_remaining), [2, 1, 0, 0, 2], 'usage events carry the balance');
  t.same(s.events.map((e) => e.outcome), ['ok', 'ok', 'ok', 'quota_exceeded', 'ok']);
});

t.test('checked last: a request another check refuses spends nothing', async (t) => {
  const s = await stack(t);
  const k = await s.createKey({ quota: { limit: 1, period: 'day' }, scopes: [], apis: ['emails'] });
  t.equal((await get(s, k.key, '/v1/dead/x')).status, 403, 'api_not_allowed');
  const rec = await s.adminCall('GET', `/v1/keys/${k.id}`);
  t.same(rec.body.balance, { remaining: 1, refills_at: '2026-06-02T00:00:00.000Z' }, 'the balance, untouched, on the key record');
  t.equal((await get(s, k.key)).status, 200);
  t.equal((await get(s, k.key)).status, 429);
});

t.test('a route’s cost: units per request; cost 0 is free', async (t) => {
  const s = await stack(t);
  const k = await s.createKey({ credits: { remaining: 12 } });
  t.equal((await get(s, k.key, '/v1/emails/bulk', 'POST')).status, 200);
  const second = await get(s, k.key, '/v1/emails/bulk', 'POST');
  t.equal(second.status, 200);
  t.match(second.headers['ratelimit'], /, "quota";r=2$/, 'credits that never refill: no t');
  t.match(second.headers['ratelimit-policy'], /, "quota";q=12$/, 'nor w');
  const third = await get(s, k.key, '/v1/emails/bulk', 'POST');
  t.equal(third.status, 429, 'five units wanted, two left');
  t.equal(third.headers['retry-after'], undefined, 'no Retry-After: the credits never refill');
  t.match(third.body, { error: 'quota_exceeded', message: "Quota exceeded: this API key has used up its credits, which do not refill; ask the API's owner for more." });
  t.notOk('retry_after' in third.body);
  t.equal((await get(s, k.key)).status, 200, 'a request of cost 1 still fits');
  for (let i = 0; i < 3; i++) t.equal((await get(s, k.key, '/v1/emails/free')).status, 200, 'free routes spend nothing');
  t.equal((await get(s, k.key)).status, 200, 'the last unit');
  t.equal((await get(s, k.key)).status, 429);
});

t.test('credits refill to their amount; a plan’s quota applies to its keys; a key’s own replaces it', async (t) => {
  const s = await stack(t);
  const monthly = await s.createKey({ credits: { remaining: 1, refill: { amount: 3, every: 'month' } } });
  t.equal((await get(s, monthly.key)).status, 200);
  const empty = await get(s, monthly.key);
  t.equal(empty.status, 429);
  t.equal(empty.body.retry_after, Math.ceil((Date.UTC(2026, 6, 1) - s.clock.now()) / 1000), 'until the first of the next month');
  s.clock.set(Date.UTC(2026, 6, 1));
  for (let i = 0; i < 3; i++) t.equal((await get(s, monthly.key)).status, 200, 'refilled to 3');
  t.equal((await get(s, monthly.key)).status, 429);

  const metered = await s.createKey({ plan: 'metered' });
  t.equal(metered.record.quota, null, 'no quota of its own');
  t.same([(await get(s, metered.key)).status, (await get(s, metered.key)).status, (await get(s, metered.key)).status], [200, 200, 429], 'the plan’s 2 a day');
  const own = await s.createKey({ plan: 'metered', quota: { limit: 4, period: 'day' } });
  for (let i = 0; i < 4; i++) t.equal((await get(s, own.key)).status, 200);
  t.equal((await get(s, own.key)).status, 429, 'its own 4 a day');
});

t.test('refund on upstream 5xx when the quota says so, not otherwise', async (t) => {
  const s = await stack(t);
  const refunded = await s.createKey({ quota: { limit: 2, period: 'day', refund_on: ['5xx'] } });
  const kept = await s.createKey({ quota: { limit: 2, period: 'day' } });
  const balance = async (id: string) => (await s.adminCall('GET', `/v1/keys/${id}`)).body.balance.remaining as number;
  for (const k of [refunded, kept]) t.equal((await get(s, k.key, '/v1/dead/x')).status, 502);
  await waitFor(() => s.events.length >= 2, 2000, 'both recorded');
  let left = 0;
  for (let i = 0; i < 100 && (left = await balance(refunded.id)) !== 2; i++) await new Promise((r) => setImmediate(r));
  t.equal(left, 2, 'refunded: the 502 cost nothing');
  t.equal(await balance(kept.id), 1, 'without refund_on: the 502 was spent');
});

t.test('a request refused after its spend, before anything went upstream, gets its units back', async (t) => {
  const s = await stack(t);
  const k = await s.createKey({ quota: { limit: 1, period: 'day' } });
  const host = new URL(s.gw['production']!).host;
  const text = await exchange(s.gw['production']!, `GET /v1/emails/list HTTP/1.1\r\nHost: ${host}\r\nHost: ${host}\r\nAuthorization: Bearer ${k.key}\r\nConnection: close\r\n\r\n`);
  t.equal(responses(text)[0]!.status, 400, 'two Host headers: refused by the forward stage');
  t.equal(s.upstream.seen.length, 0);
  let left = 0;
  for (let i = 0; i < 200 && (left = (await s.adminCall('GET', `/v1/keys/${k.id}`)).body.balance.remaining) !== 1; i++) await new Promise((r) => setImmediate(r));
  t.equal(left, 1, 'the unit is back');
  t.equal((await get(s, k.key)).status, 200);
});

t.test('POST /v1/keys/{id}/credits: set and top up, audited, role and tenant checked', async (t) => {
  const s = await stack(t);
  const k = await s.createKey({ credits: { remaining: 5 } }, TENANT_A_TOKEN);
  const topped = await s.adminCall('POST', `/v1/keys/${k.id}/credits`, { add: 10 }, TENANT_A_TOKEN);
  t.equal(topped.status, 200);
  t.match(topped.body, { id: k.id, credits: { remaining: 5 }, balance: { remaining: 15, refills_at: null } });
  s.clock.advance(1000);
  const set = await s.adminCall('POST', `/v1/keys/${k.id}/credits`, { set: 1 });
  t.same(set.body.balance, { remaining: 1, refills_at: null });
  t.equal((await get(s, k.key)).status, 200);
  t.equal((await get(s, k.key)).status, 429, 'the set balance is what the gateway spends');
  s.clock.advance(1000);
  t.equal((await s.adminCall('POST', `/v1/keys/${k.id}/credits`, { add: 2 })).body.balance.remaining, 2);
  t.equal((await get(s, k.key)).status, 200, 'a top-up works at once');

  const audit = await s.adminCall('GET', `/v1/audit?key_id=${k.id}&action=key.credits_changed`);
  t.match(audit.body.data, [
    { action: 'key.credits_changed', actor: 'ops', changes: { balance: { from: 0, to: 2 } } },
    { action: 'key.credits_changed', actor: 'ops', changes: { balance: { from: 15, to: 1 } } },
    { action: 'key.credits_changed', actor: 'tenant-a', tenant: 'a', changes: { balance: { from: 5, to: 15 } } },
  ], 'each change with the balance before and after, newest first');

  const viewer = await s.adminCall('POST', `/v1/keys/${k.id}/credits`, { add: 1 }, VIEWER_TOKEN);
  t.equal(viewer.status, 403, 'a viewer may not');
  t.equal(viewer.body.error, 'forbidden');
  const other = await s.adminCall('POST', `/v1/keys/${k.id}/credits`, { add: 1 }, TENANT_B_TOKEN);
  t.equal(other.status, 404, 'another tenant does not even see the key');
  t.equal((await s.adminCall('POST', `/v1/keys/${k.id}/credits`, { add: 1 }, DEV_TOKEN)).status, 200, 'a developer may');
  t.equal((await s.adminCall('GET', `/v1/keys/${k.id}`)).body.balance.remaining, 2);

  for (const bad of [{}, { set: 1, add: 1 }, { add: 0 }, { set: -1 }, { add: 1.5 }, { add: '5' }, { take: 1 }, { add: 1e13 }, { set: 2 ** 60 }]) {
    const res = await s.adminCall('POST', `/v1/keys/${k.id}/credits`, bad);
    t.equal(res.status, 400, `${JSON.stringify(bad)}: 400`);
    t.equal(res.body.error, 'validation_failed');
  }
  const plain = await s.createKey({});
  const none = await s.adminCall('POST', `/v1/keys/${plain.id}/credits`, { add: 1 });
  t.equal(none.status, 409, 'a key without a quota has no balance to change');
  t.match(none.body.message, /has no quota or credits/);
  t.equal((await s.adminCall('GET', `/v1/keys/${plain.id}`)).body.balance, null);
  await s.adminCall('POST', `/v1/keys/${k.id}/revoke`, {});
  t.equal((await s.adminCall('POST', `/v1/keys/${k.id}/credits`, { add: 1 })).status, 409, 'nor a revoked key');
});

t.test('edits: quota replaces credits and back; both at once is refused; a successor keeps the balance', async (t) => {
  const s = await stack(t);
  const both = await s.adminCall('POST', '/v1/keys', { name: 'both', quota: { limit: 1, period: 'day' }, credits: { remaining: 1 } });
  t.equal(both.status, 400);
  t.match(both.body.details, [{ path: 'credits', message: /give quota or credits, not both/ }]);
  t.equal((await s.adminCall('POST', '/v1/keys', { name: 'x', quota: { limit: 1 } })).status, 400, 'a refilling quota needs its period');

  const k = await s.createKey({ credits: { remaining: 3 } });
  const patched = await s.adminCall('PATCH', `/v1/keys/${k.id}`, { quota: { limit: 2, period: 'day' } });
  t.match(patched.body, { quota: { limit: 2, period: 'day' }, credits: null });
  t.equal((await get(s, k.key)).status, 200);
  const next = await s.adminCall('POST', `/v1/keys/${k.id}/regenerate`, {});
  t.equal(next.status, 201);
  t.match(next.body, { quota: { limit: 2 } });
  t.equal((await s.adminCall('GET', `/v1/keys/${next.body.id}`)).body.balance.remaining, 1, 'the successor spends the same balance');
  t.equal((await get(s, next.body.key)).status, 200);
  t.equal((await get(s, next.body.key)).status, 429, 'a rotation does not reset the quota');
});

t.test('the store failing: open plans let requests through uncounted, closed ones answer 503', async (t) => {
  const s = await stack(t);
  const open = await s.createKey({ quota: { limit: 1, period: 'day' } });
  const closed = await s.createKey({ plan: 'tight', quota: { limit: 1, period: 'day' } });
  // Warm both keys in the gateway's cache, then take the store's quota operation away.
  t.equal((await get(s, open.key, '/v1/emails/free')).status, 200);
  t.equal((await get(s, closed.key, '/v1/emails/free')).status, 200);
  const store = s.store as unknown as { quota: unknown };
  const real = store.quota;
  store.quota = () => Promise.reject(new Error('store down'));
  t.teardown(() => void (store.quota = real));
  t.equal((await get(s, open.key)).status, 200, 'local (the default): admitted');
  const refused = await get(s, closed.key);
  t.equal(refused.status, 503);
  t.match(refused.body.message, /Quotas cannot be checked right now/);
  store.quota = real;
  t.equal((await get(s, open.key)).status, 200, 'back: the uncounted request cost nothing');
  t.equal((await get(s, open.key)).status, 429);
});

t.test('concurrent requests through the gateway admit exactly the quota', async (t) => {
  const s = await stack(t);
  const k = await s.createKey({ quota: { limit: 10, period: 'day' } });
  const statuses = await Promise.all(Array.from({ length: 40 }, () => get(s, k.key).then((r) => r.status)));
  t.equal(statuses.filter((x) => x === 200).length, 10, '10 of 40 admitted');
  t.equal(statuses.filter((x) => x === 429).length, 30, 'the rest refused');
  t.equal(s.upstream.seen.length, 10);
});

t.test('configuration: quota and credits on plans and policies, route cost, shadow modes', async (t) => {
  const { parseConfig } = await import('../config/load.js');
  const base = (extra: Record<string, unknown>) => ({
    listeners: [{ port: 0, environment: 'production' }],
    admin: { port: 0, tokens: [{ name: 'ops', token: '0123456789abcdef-token', role: 'admin' }] },
    ...extra,
  });
  const errors = (extra: Record<string, unknown>): string[] => {
    try {
      parseConfig(base(extra), 'test');
    } catch (err) {
      return (err as { details: { path: string; message: string }[] }).details.map((d) => `${d.path}: ${d.message}`);
    }
    return [];
  };
  const ok = parseConfig(
    base({
      plans: { default: { limit: 1, window_seconds: 1, mode: 'shadow', quota: { limit: 5, period: 'month', refund_on: ['5xx'] } } },
      policies: { paid: { credits: { remaining: 100, refill: { amount: 100, every: 'month' } } } },
      apis: [{ name: 'a', upstream: 'http://127.0.0.1:1', routes: [{ path: '/x', cost: 3, rate_limit: { limit: 1, window_seconds: 1, mode: 'shadow' } }] }],
    }),
    'test',
  );
  t.match(ok.plans['default'], { mode: 'shadow', quota: { limit: 5, period: 'month', refill: true, mode: 'enforce', refund_on: ['5xx'] }, credits: null });
  t.match(ok.policies['paid']!.credits, { remaining: 100, refill: { amount: 100, every: 'month' }, mode: 'enforce', refund_on: [] });
  t.match(ok.apis[0]!.routes[0], { cost: 3, rate_limit: { mode: 'shadow' } });
  t.same(ok.apis[0]!.routes[0]!.cost, 3);
  t.same(errors({ plans: { default: { limit: 1, window_seconds: 1, quota: { limit: 5, period: 'day' }, credits: { remaining: 1 } } } }), ['plans.default: set either quota or credits, not both']);
  t.match(errors({ plans: { default: { limit: 1, window_seconds: 1, quota: { limit: 5 } } } }), [/^plans\.default\.quota\.period: is needed to refill/]);
  t.match(errors({ plans: { default: { limit: 1, window_seconds: 1, quota: { limit: 5, period: 'day', refill: false } } } }), [/^plans\.default\.quota\.period: has no meaning with refill: false/]);
  t.match(errors({ plans: { default: { limit: 1, window_seconds: 1, mode: 'dry' } } }), [/^plans\.default\.mode: /]);
  t.match(errors({ plans: { default: { limit: 1, window_seconds: 1, quota: { limit: 5, period: 'week' } } } }), [/^plans\.default\.quota\.period: /]);
  t.match(errors({ plans: { default: { limit: 1, window_seconds: 1, quota: { limit: 5, period: 'day', refund_on: ['4xx'] } } } }), [/^plans\.default\.quota\.refund_on\[0\]: /]);
  t.match(errors({ apis: [{ name: 'a', upstream: 'http://127.0.0.1:1', routes: [{ path: '/x', cost: -1 }] }] }), [/^apis\[0\]\.routes\[0\]\.cost: /]);
});
