import t, { type Test } from 'tap';
import { bearer, call, startStack, TENANT_A_TOKEN, TENANT_B_TOKEN, type Stack } from './lib/stack.js';

// Every alert type (docs/alerts.md), with a ManualClock: fires once, at the right time,
// deduplicated per key, type and window, and listed for its tenant only.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

async function stack(t: Test, alerts: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<Stack> {
  const s = await startStack({ overrides: () => ({ alerts, ...extra }) });
  t.teardown(() => s.close());
  return s;
}



async function alerts(s: Stack, query = '', token?: string): Promise<any[]> {
  const res = await s.adminCall('GET', `/v1/alerts${query}`, undefined, token);
  if (res.status !== 200) throw new Error(`GET /v1/alerts${query}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.data;
}

/** Sends `n` requests with `key` to `path` and stores their usage, as a flush of the recorder does. */
async function traffic(s: Stack, key: string, n: number, path = '/v1/contacts/x'): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) statuses.push((await call(s.gw['production'] + path, { headers: bearer(key) })).status);
  await s.admin.usage.flush();
  return statuses;
}

t.test('key.expiring: once per key and threshold, at the threshold, for its tenant only', async (t) => {
  const s = await stack(t, { expiring_days: [7, 1] });
  const expires = s.clock.now() + 10 * DAY;
  const k = await s.createKey({ name: 'soon', expires_at: new Date(expires).toISOString() }, TENANT_A_TOKEN);
  t.equal(await s.admin.alerts.watch.tick(), 0, 'ten days before: nothing');
  s.clock.advance(3 * DAY - MINUTE);
  t.equal(await s.admin.alerts.watch.tick(), 0, 'a minute before seven days: nothing');
  s.clock.advance(2 * MINUTE);
  t.equal(await s.admin.alerts.watch.tick(), 1, 'seven days before: raised');
  t.equal(await s.admin.alerts.watch.tick(), 0, 'and not again');
  const [a] = await alerts(s, '', TENANT_A_TOKEN);
  t.match(a, {
    type: 'key.expiring',
    tenant: 'a',
    key: { id: k.id, name: 'soon', masked: k.record.masked },
    data: { expires_at: new Date(expires).toISOString(), days_left: 7, threshold_days: 7 },
  });
  t.match(a.id, /^alr_[A-Za-z0-9]{26}$/);
  t.same(await alerts(s, '', TENANT_B_TOKEN), [], "another tenant's token does not see it");
  t.equal((await s.adminCall('GET', `/v1/alerts/${a.id}`, undefined, TENANT_B_TOKEN)).status, 404, 'nor reach it by id');
  t.equal((await s.adminCall('GET', `/v1/alerts/${a.id}`, undefined, TENANT_A_TOKEN)).body.id, a.id);

  s.clock.advance(6 * DAY);
  t.equal(await s.admin.alerts.watch.tick(), 1, 'one day before: the second threshold');
  const both = await alerts(s, `?key_id=${k.id}`);
  t.same(both.map((x) => x.data.threshold_days), [1, 7], 'newest first');

  // A new expiry warns again.
  const later = s.clock.now() + 5 * DAY;
  t.equal((await s.adminCall('PATCH', `/v1/keys/${k.id}`, { expires_at: new Date(later).toISOString() })).status, 200);
  t.equal(await s.admin.alerts.watch.tick(), 1, 'an extended expiry inside the threshold warns for the new date');
  t.equal((await alerts(s, '?type=key.expiring')).length, 3);
  t.equal((await s.adminCall('GET', '/v1/alerts?type=key.nope')).status, 400, 'an unknown type is refused');
});

t.test('key.expired, key.revoked, key.rotated, key.leaked: from the lifecycle, before the change is answered', async (t) => {
  const s = await stack(t, {}, { leaks: { action: 'notify' } });
  const a = await s.createKey({ name: 'expiring', expires_at: new Date(s.clock.now() + HOUR).toISOString() });
  const b = await s.createKey({ name: 'revoked' });
  const c = await s.createKey({ name: 'rotated' });
  const d = await s.createKey({ name: 'leaked' });

  t.equal((await s.adminCall('POST', `/v1/keys/${b.id}/revoke`, { reason: 'no longer used' })).status, 200);
  t.match(await alerts(s, `?key_id=${b.id}`), [{ type: 'key.revoked', data: { reason: 'no longer used', actor: 'ops' } }], 'there once revoke has answered');

  const regen = await s.adminCall('POST', `/v1/keys/${c.id}/regenerate`, { grace_period_seconds: 3600 });
  t.equal(regen.status, 201);
  t.match(await alerts(s, `?key_id=${c.id}`), [{ type: 'key.rotated', data: { replaced_by: regen.body.id } }]);
  t.notOk(JSON.stringify(await alerts(s)).includes(regen.body.key), 'no alert holds a plaintext key');

  t.equal((await s.adminCall('POST', '/v1/keys/leaked', { key: d.key, source: 'pastebin' })).status, 200);
  t.match(await alerts(s, `?key_id=${d.id}`), [{ type: 'key.leaked', data: { source: 'pastebin', action: 'notify' } }]);
  t.equal((await s.adminCall('POST', '/v1/keys/leaked', { key: d.key, source: 'pastebin' })).status, 200);
  t.equal((await alerts(s, `?key_id=${d.id}`)).length, 1, 'a second report the same day is the same alert');

  s.clock.advance(HOUR + 1);
  await s.admin.scheduler.tick();
  t.match(await alerts(s, `?key_id=${a.id}`), [{ type: 'key.expired', key: { id: a.id } }], 'the expiry, once the scheduler records it');
  await s.admin.scheduler.tick();
  t.equal((await alerts(s, `?type=key.expired`)).length, 1);
});

t.test('key.used_after_revocation: a revoked key still tried, once per window', async (t) => {
  const s = await stack(t, { rules: { used_after_revocation: { count: 3, window_minutes: 60 } } });
  const k = await s.createKey({ name: 'old' });
  const other = await s.createKey({ name: 'fine' });
  await s.adminCall('POST', `/v1/keys/${k.id}/revoke`, {});
  t.same(await traffic(s, k.key, 2), [401, 401]);
  await traffic(s, other.key, 5);
  await s.admin.alerts.watch.tick();
  t.same(await alerts(s, '?type=key.used_after_revocation'), [], 'two tries are under the threshold of three');
  await traffic(s, k.key, 1);
  t.equal(await s.admin.alerts.watch.tick(), 1);
  const [a] = await alerts(s, '?type=key.used_after_revocation');
  t.match(a, { key: { id: k.id }, data: { requests: 3, window_minutes: 60 } });
  await traffic(s, k.key, 5);
  t.equal(await s.admin.alerts.watch.tick(), 0, 'more tries in the same window: no second alert');
  s.clock.advance(HOUR);
  await traffic(s, k.key, 3);
  t.equal(await s.admin.alerts.watch.tick(), 1, 'the next window: again');
});

t.test('key.ip_denied and key.rate_limited: refusals counted per key in their window', async (t) => {
  const s = await stack(t, { rules: { rate_limited: { count: 5, window_minutes: 5 }, ip_denied: { count: 2 } } });
  const fenced = await s.createKey({ name: 'fenced', ip_allowlist: ['203.0.113.0/24'] });
  const tiny = await s.createKey({ name: 'tiny', plan: 'tiny' });
  t.same(await traffic(s, fenced.key, 1), [403]);
  await s.admin.alerts.watch.tick();
  t.same(await alerts(s, '?type=key.ip_denied'), [], 'one is under the threshold of two');
  await traffic(s, fenced.key, 1);
  await s.admin.alerts.watch.tick();
  t.match(await alerts(s, '?type=key.ip_denied'), [{ key: { id: fenced.id }, data: { requests: 2, window_minutes: 60 } }]);

  const statuses = await traffic(s, tiny.key, 6);
  t.same(statuses, [200, 200, 429, 429, 429, 429], 'two admitted, four refused');
  await s.admin.alerts.watch.tick();
  t.same(await alerts(s, '?type=key.rate_limited'), [], 'four refusals: under five');
  s.clock.advance(6 * MINUTE);
  t.same(await traffic(s, tiny.key, 7), [200, 200, 429, 429, 429, 429, 429]);
  await s.admin.alerts.watch.tick();
  t.match(
    await alerts(s, '?type=key.rate_limited'),
    [{ key: { id: tiny.id }, data: { requests: 5, window_minutes: 5 } }],
    'five refusals in the last five minutes; the four before have left the window',
  );
});

t.test('key.error_rate and usage.error_rate: a share of errors over a minimum of requests', async (t) => {
  const s = await stack(t, {
    rules: { error_rate: { share: 0.5, min_requests: 10, window_minutes: 15 } },
    usage_error_rate: { share: 0.3, min_requests: 20, window_minutes: 15 },
  });
  const k = await s.createKey({ name: 'failing' });
  await traffic(s, k.key, 4, '/v1/dead/x');
  await s.admin.alerts.watch.tick();
  t.same(await alerts(s, '?type=key.error_rate'), [], 'four requests: under the minimum of ten');
  await traffic(s, k.key, 5, '/v1/contacts/ok');
  await traffic(s, k.key, 2, '/v1/dead/x');
  await s.admin.alerts.watch.tick();
  t.match(await alerts(s, '?type=key.error_rate'), [{ key: { id: k.id }, data: { requests: 11, errors: 6, share: 0.545, window_minutes: 15 } }]);
  t.same(await alerts(s, '?type=usage.error_rate'), [], 'all traffic: eleven requests, under twenty');
  const ok = await s.createKey({ name: 'healthy' });
  await traffic(s, ok.key, 9);
  await s.admin.alerts.watch.tick();
  t.match(await alerts(s, '?type=usage.error_rate'), [{ key: null, tenant: null, data: { requests: 20, errors: 6, share: 0.3 } }]);
  t.same(await alerts(s, '?type=usage.error_rate', TENANT_A_TOKEN), [], 'alerts about all traffic are not a tenant’s');
});

t.test('key.unusual_usage: the last hour far above the key’s own days before', async (t) => {
  const s = await stack(t, { rules: { unusual_usage: { factor: 10, min_requests: 30, baseline_days: 7 } } });
  const k = await s.createKey({ name: 'steady' });
  const dormant = await s.createKey({ name: 'dormant' });
  // Day one: 48 requests, two an hour on average.
  await traffic(s, k.key, 48);
  s.clock.advance(DAY);
  const fresh = await s.createKey({ name: 'new' });
  await traffic(s, k.key, 15);
  await s.admin.alerts.watch.tick();
  t.same(await alerts(s, '?type=key.unusual_usage'), [], 'fifteen in the hour: under the minimum of thirty');
  await traffic(s, k.key, 15);
  await traffic(s, fresh.key, 40);
  await traffic(s, dormant.key, 40);
  t.equal(await s.admin.alerts.watch.tick(), 1);
  t.match(await alerts(s, '?type=key.unusual_usage'), [{ key: { id: k.id }, data: { requests: 30, baseline_per_hour: 2, baseline_days: 1, factor: 15 } }],
    'thirty in the hour against two an hour; a key created today and one never used before have no baseline');
  await traffic(s, k.key, 30);
  t.equal(await s.admin.alerts.watch.tick(), 0, 'once per hour');
});

t.test('a policy tunes the rules for its keys, or turns a type off', async (t) => {
  const s = await stack(t, {}, {
    policies: {
      quiet: { alerts: { off: ['key.revoked'] } },
      strict: { alerts: { used_after_revocation: { count: 1 } } },
    },
  });
  const quiet = await s.createKey({ name: 'q', policy: 'quiet' });
  const strict = await s.createKey({ name: 's', policy: 'strict' });
  await s.adminCall('POST', `/v1/keys/${quiet.id}/revoke`, {});
  await s.adminCall('POST', `/v1/keys/${strict.id}/revoke`, {});
  t.same((await alerts(s, '?type=key.revoked')).map((a) => a.key.id), [strict.id], 'the quiet policy raises no key.revoked');
  await traffic(s, strict.key, 1);
  await s.admin.alerts.watch.tick();
  t.match(await alerts(s, '?type=key.used_after_revocation'), [{ key: { id: strict.id } }]);
});

t.test('GET /v1/alerts: filters and pages', async (t) => {
  const s = await stack(t);
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) {
    const k = await s.createKey({ name: `k${i}` });
    ids.push(k.id);
    await s.adminCall('POST', `/v1/keys/${k.id}/revoke`, {});
    if (i % 2 === 0) s.clock.advance(1000);
  }
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const res = await s.adminCall('GET', `/v1/alerts?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    t.ok(res.body.data.length <= 3);
    seen.push(...res.body.data.map((a: any) => a.key.id));
    cursor = res.body.next_cursor;
  } while (cursor);
  t.same([...seen].sort(), [...ids].sort(), 'every alert once');
  const all = await alerts(s, '?limit=100');
  t.same(seen, all.map((a) => a.key.id), 'in the order of one page');
  t.ok(all.every((a, i) => i === 0 || a.created_at <= all[i - 1].created_at), 'newest first');
  const from = new Date(s.clock.now() - 1000).toISOString();
  t.ok((await alerts(s, `?from=${from}`)).length < 7, 'from narrows');
  t.equal((await s.adminCall('GET', '/v1/alerts?limit=0')).status, 400);
  t.equal((await s.adminCall('GET', '/v1/alerts?cursor=garbage')).status, 400);
  t.equal((await s.adminCall('GET', '/v1/alerts?colour=red')).status, 400, 'an unknown parameter is refused');
});
