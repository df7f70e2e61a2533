import t, { type Test } from 'tap';
import { bearer, call, startStack, type Stack } from './lib/stack.js';
import { waitFor } from './lib/within.js';

// Shadow mode (docs/quotas.md): a plan, a route limit or a quota in `mode: shadow` is computed
// and reported (headers, metrics, usage, the key.rate_limited alert) but never refuses.

async function stack(t: Test, alerts: Record<string, unknown> = {}): Promise<Stack> {
  const s = await startStack({
    overrides: (upstream) => ({
      plans: {
        default: { limit: 100, window_seconds: 60 },
        trial: { limit: 2, window_seconds: 60, mode: 'shadow' },
        enforced: { limit: 2, window_seconds: 60 },
      },
      apis: [
        {
          name: 'emails',
          path_prefix: '/v1/emails',
          upstream,
          routes: [
            { method: 'GET', path: '/v1/emails/search', rate_limit: { limit: 1, window_seconds: 60, mode: 'shadow' } },
            { method: 'GET', path: '/v1/emails/strict', rate_limit: { limit: 1, window_seconds: 60 } },
            { method: '*', path: '/v1/emails/*' },
          ],
        },
      ],
      alerts,
    }),
  });
  t.teardown(() => s.close());
  return s;
}

async function statuses(s: Stack, key: string, n: number, path = '/v1/emails/list'): Promise<{ status: number; ratelimit: string }[]> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const res = await call(`${s.gw['production']}${path}`, { headers: bearer(key) });
    out.push({ status: res.status, ratelimit: String(res.headers['ratelimit']) });
  }
  return out;
}

function decisions(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^keygate_rate_limit_decisions_total\{decision="([a-z_]+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

t.test('a shadow plan never refuses, reports its bucket, and counts what it would have refused', async (t) => {
  const s = await stack(t);
  const trial = await s.createKey({ plan: 'trial' });
  const got = await statuses(s, trial.key, 5);
  t.same(got.map((r) => r.status), [200, 200, 200, 200, 200], 'all five admitted');
  t.same(got.map((r) => r.ratelimit), ['"trial";r=1;t=30', '"trial";r=0;t=60', '"trial";r=0;t=60', '"trial";r=0;t=60', '"trial";r=0;t=60'], 'the headers show the bucket empty');
  await waitFor(() => s.events.length >= 5, 2000, 'usage events');
  t.same(s.events.map((e) => e.would_deny), [null, null, 'rate_limit_exceeded', 'rate_limit_exceeded', 'rate_limit_exceeded'], 'usage flags the three it would have refused');
  t.same(s.events.map((e) => e.outcome), Array(5).fill('ok'));

  const enforced = await s.createKey({ plan: 'enforced' });
  t.same((await statuses(s, enforced.key, 3)).map((r) => r.status), [200, 200, 429], 'the same limit enforced refuses the third');
  await waitFor(() => s.events.length >= 8, 2000, 'usage events');
  t.same(decisions(await s.gateway.runtime.metrics!.registry.metrics()), { allowed: 4, limited: 1, would_deny: 3 }, 'keygate_rate_limit_decisions_total');
});

t.test('a shadow route limit never refuses; an enforced one beside it does', async (t) => {
  const s = await stack(t);
  const k = await s.createKey({});
  const shadow = await statuses(s, k.key, 3, '/v1/emails/search');
  t.same(shadow.map((r) => r.status), [200, 200, 200]);
  t.match(shadow[2]!.ratelimit, /^"default";r=97;t=\d+, "emails_0";r=0;t=60$/, 'the route’s bucket is reported, and every request took the key’s token');
  t.same((await statuses(s, k.key, 2, '/v1/emails/strict')).map((r) => r.status), [200, 429]);
  await waitFor(() => s.events.length >= 5, 2000, 'usage events');
  t.same(s.events.map((e) => e.would_deny), [null, 'rate_limit_exceeded', 'rate_limit_exceeded', null, null]);
});

t.test('a shadow quota never refuses and counts what it would have', async (t) => {
  const s = await stack(t);
  const k = await s.createKey({ quota: { limit: 2, period: 'day', mode: 'shadow' } });
  const got = await statuses(s, k.key, 4);
  t.same(got.map((r) => r.status), [200, 200, 200, 200]);
  t.match(got[3]!.ratelimit, /, "quota";r=0;t=43200$/, 'the quota reported empty');
  await waitFor(() => s.events.length >= 4, 2000, 'usage events');
  t.same(s.events.map((e) => e.would_deny), [null, null, 'quota_exceeded', 'quota_exceeded']);
  t.same(s.events.map((e) => e.quota_remaining), [1, 0, 0, 0]);
  t.match(decisions(await s.gateway.runtime.metrics!.registry.metrics()), { allowed: 2, would_deny: 2 });
  const rec = await s.adminCall('GET', `/v1/keys/${k.id}`);
  t.equal(rec.body.balance.remaining, 0, 'a shadow quota is spent as an enforced one until it is empty');
});

t.test('key.rate_limited: raised for what shadow limits would have refused, and says so', async (t) => {
  const s = await stack(t, { rules: { rate_limited: { count: 3, window_minutes: 5 } } });
  const trial = await s.createKey({ plan: 'trial' });
  await statuses(s, trial.key, 4);
  await waitFor(() => s.events.length >= 4, 2000, 'usage events');
  await s.admin.usage.flush();
  t.equal(await s.admin.alerts.watch.tick(), 0, 'two would-have-been refusals: under three');
  await statuses(s, trial.key, 1);
  await waitFor(() => s.events.length >= 5, 2000, 'usage events');
  await s.admin.usage.flush();
  t.equal(await s.admin.alerts.watch.tick(), 1, 'three: raised');
  const [alert] = (await s.adminCall('GET', '/v1/alerts?type=key.rate_limited')).body.data;
  t.match(alert, { key: { id: trial.id }, data: { requests: 3, refused: 0, would_have_been_refused: 3, window_minutes: 5 } });
  const usage = await s.adminCall('GET', `/v1/keys/${trial.id}/usage?range=1h`);
  t.match(usage.body.rate_limit, { exceeded: 0, would_have_been_refused: 3 }, 'the key’s usage counts them');
});
