import type { Test } from 'tap';
import type { Alert, AlertQuery, Delivery } from '../../core/alerts.js';
import { generateKey, randomBase62 } from '../../core/key-format.js';
import { KeyHasher } from '../../core/key-hash.js';
import type { AppRecord } from '../../core/application.js';
import type { AuditEntry, KeyEvent } from '../../core/audit.js';
import type { KeyRecord } from '../../core/record.js';
import type { Page, Store, UsageBatch } from '../../core/store/store.js';
import { keyRecord } from './records.js';

// What every store must do, whatever holds the data. Each store's test file runs this suite
// against a fresh store from `open`; `reopen` (where the store persists) closes it and opens
// the same data again.

const hasher = new KeyHasher(null);
const T0 = Date.UTC(2026, 5, 1, 12);

export interface ConformanceTarget {
  open(t: Test): Promise<Store>;
  /** Closes `store` and opens its data again. */
  reopen(t: Test, store: Store): Promise<Store>;
}

function newKey(over: Partial<KeyRecord> = {}): KeyRecord {
  return keyRecord(generateKey('gw', 'live'), hasher, T0, { name: 'conformance', ...over });
}

function newApp(over: Partial<AppRecord> = {}): AppRecord {
  return {
    id: `app_${Math.random().toString(36).slice(2, 12)}`,
    version: 0,
    tenant: null,
    name: 'an app',
    description: null,
    meta: {},
    created_at: T0,
    created_by: 'ops',
    updated_at: T0,
    suspended_at: null,
    suspended_reason: null,
    ...over,
  };
}

function auditEntry(i: number, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id: `aud_${String(i).padStart(6, '0')}`,
    time: T0 + i * 1000,
    actor: 'ops',
    role: 'admin',
    tenant: null,
    ip: '127.0.0.1',
    request_id: `req-${i}`,
    action: 'key.created',
    target_type: 'key',
    target_id: `key_${i}`,
    changes: { name: { from: null, to: `k${i}` } },
    ...over,
  };
}

function keyEvent(keyId: string, type: KeyEvent['type'], at: number): KeyEvent {
  return { key_id: keyId, type, scheduled_at: null, at, actor: 'ops', detail: { n: at } };
}

function newAlert(over: Partial<Alert> = {}): Alert {
  return {
    id: `alr_${randomBase62(26)}`,
    type: 'key.expiring',
    created_at: T0,
    tenant: null,
    key: { id: 'key_one', name: 'one', masked: 'gw_live_abcd…wxyz' },
    data: { expires_at: '2026-06-08T12:00:00.000Z', days: 7, nested: { list: [1, 'two', null] } },
    ...over,
  };
}

function newDelivery(alert: Alert, target: string, over: Partial<Delivery> = {}): Delivery {
  return {
    id: `dlv_${randomBase62(26)}`,
    alert_id: alert.id,
    target,
    state: 'pending',
    attempts: [],
    next_at: alert.created_at,
    created_at: alert.created_at,
    ...over,
  };
}

/** Alerts newest first (created_at, then id), as every store lists them. */
const newestFirst = (alerts: Alert[]): Alert[] =>
  [...alerts].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));

/** Every page of a list, following next_cursor, at most `max` pages. */
async function everyPage<T>(list: (cursor: string | undefined) => Promise<Page<T>>, max = 1000): Promise<T[][]> {
  const pages: T[][] = [];
  let cursor: string | undefined;
  do {
    const page = await list(cursor);
    pages.push(page.data);
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined && pages.length < max);
  return pages;
}

export function storeConformance(t: Test, target: ConformanceTarget): void {
  t.test('round trip: by id and by hash, every field kept, version 1', async (t) => {
    const store = await target.open(t);
    const rec = newKey({ scopes: ['a', 'b'], meta: { team: 'x', nested: { n: 1 } }, ip_allowlist: ['10.0.0.0/8'], expires_at: T0 + 5000 });
    const written = await store.putKey(rec, 0);
    t.same(written, { ...rec, version: 1 });
    t.same(await store.getKey(rec.id), written);
    t.same(await store.getKeyByHash(rec.hash), written);
    t.equal(await store.getKey('key_missing'), null);
    t.equal(await store.getKeyByHash('0'.repeat(64)), null);
  });

  t.test('a commit is all or nothing, and its listeners hear each changed hash', async (t) => {
    const store = await target.open(t);
    const heard: (string | null)[] = [];
    store.onKeyChange((h) => heard.push(h));
    const a = await store.putKey(newKey(), 0);
    const b = newKey();
    await t.rejects(
      store.commit({ keys: [{ rec: b, expected: 0 }, { rec: { ...a, name: 'stale' }, expected: 0 }], audit: [auditEntry(1)] }),
      { code: 'KEYGATE_VERSION_CONFLICT' },
    );
    t.equal(await store.getKey(b.id), null, 'the first record of a refused commit is not written');
    t.equal((await store.listAudit({ tenant: null, limit: 10 })).data.length, 0, 'nor its audit entry');
    // A new hash for an existing key (a re-hash): the old lookup is gone, both hashes are announced.
    const rehashed = { ...a, hash: 'f'.repeat(64) };
    await store.commit({ keys: [{ rec: rehashed, expected: 1 }], events: [keyEvent(a.id, 'edited', T0)] });
    t.equal(await store.getKeyByHash(a.hash), null, 'the old hash finds nothing');
    t.equal((await store.getKeyByHash(rehashed.hash))?.id, a.id);
    // Pub/sub may deliver a moment later than the write returns.
    for (let i = 0; i < 100 && !heard.includes(rehashed.hash); i++) await new Promise((r) => setTimeout(r, 10));
    t.ok(heard.includes(a.hash) && heard.includes(rehashed.hash), 'both hashes announced');
  });

  t.test('lists: filters, tenant, sort and cursor pages that neither repeat nor skip', async (t) => {
    const store = await target.open(t);
    const recs: KeyRecord[] = [];
    for (let i = 0; i < 7; i++) {
      recs.push(
        await store.putKey(newKey({ name: `key ${i}`, created_at: T0 + i, tenant: i % 2 ? 'a' : null, environment: i < 5 ? 'production' : 'test', scopes: i === 3 ? ['special'] : [] }), 0),
      );
    }
    const base = { tenant: null, sort: 'created_at' as const, order: 'desc' as const, now: T0 };
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.listKeys({ ...base, limit: 3, cursor });
      seen.push(...page.data.map((k) => k.id));
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    t.same(seen, recs.map((r) => r.id).reverse(), 'newest first, every key once');
    t.same((await store.listKeys({ ...base, tenant: 'a', limit: 10 })).data.map((k) => k.name), ['key 5', 'key 3', 'key 1']);
    t.same((await store.listKeys({ ...base, environment: 'test', limit: 10 })).data.map((k) => k.name), ['key 6', 'key 5']);
    t.same((await store.listKeys({ ...base, scope: 'special', limit: 10 })).data.map((k) => k.name), ['key 3']);
    t.same((await store.listKeys({ ...base, q: 'KEY 4', limit: 10 })).data.map((k) => k.name), ['key 4']);
    await t.rejects(store.listKeys({ ...base, limit: 3, cursor: 'nonsense' }), { code: 'KEYGATE_INVALID_CURSOR' });
  });

  t.test('applications: compare-and-set, list, and the keys of one', async (t) => {
    const store = await target.open(t);
    const app = newApp({ tenant: 'a' });
    const [written] = (await store.commit({ apps: [{ rec: app, expected: 0 }] })).apps;
    t.equal(written!.version, 1);
    await t.rejects(store.commit({ apps: [{ rec: app, expected: 0 }] }), { code: 'KEYGATE_VERSION_CONFLICT' });
    t.same(await store.getApp(app.id), written);
    t.equal(await store.getApp('app_missing'), null);
    await store.commit({ apps: [{ rec: newApp({ tenant: 'b' }), expected: 0 }] });
    t.same((await store.listApps({ tenant: 'a', limit: 10 })).data.map((a) => a.id), [app.id], 'tenant filter');
    t.equal((await store.listApps({ tenant: null, limit: 10 })).data.length, 2);
    const k1 = await store.putKey(newKey({ application: app.id }), 0);
    await store.putKey(newKey(), 0);
    t.same((await store.keysOfApp(app.id)).map((k) => k.id), [k1.id]);
  });

  t.test('audit and events: appended in order, paged newest first', async (t) => {
    const store = await target.open(t);
    for (let i = 0; i < 5; i++) await store.commit({ audit: [auditEntry(i, { tenant: i === 2 ? 'a' : null })] });
    const first = await store.listAudit({ tenant: null, limit: 3 });
    t.same(first.data.map((e) => e.id), ['aud_000004', 'aud_000003', 'aud_000002']);
    const rest = await store.listAudit({ tenant: null, limit: 3, cursor: first.next_cursor! });
    t.same(rest.data.map((e) => e.id), ['aud_000001', 'aud_000000']);
    t.same((await store.listAudit({ tenant: 'a', limit: 10 })).data.map((e) => e.id), ['aud_000002']);
    t.same((await store.listAudit({ tenant: null, target_id: 'key_3', limit: 10 })).data.map((e) => e.id), ['aud_000003']);
    t.same(await store.listKeyEvents('key_none'), []);
    await store.commit({ events: [keyEvent('key_e', 'created', T0), keyEvent('key_e', 'edited', T0 + 1)] });
    await store.commit({ events: [keyEvent('key_e', 'revoked', T0 + 2)] });
    t.same((await store.listKeyEvents('key_e')).map((e) => e.type), ['created', 'edited', 'revoked']);
  });

  t.test('due keys: each scheduled transition found once due, and not after it is recorded', async (t) => {
    const store = await target.open(t);
    const expiring = await store.putKey(newKey({ expires_at: T0 + 100 }), 0);
    const pending = await store.putKey(newKey({ not_before: T0 + 50 }), 0);
    await store.putKey(newKey(), 0);
    const ids = async (now: number) => (await store.dueKeys(now, 100)).map((k) => k.id).sort();
    t.same(await ids(T0), [], 'nothing due yet');
    t.same(await ids(T0 + 60), [pending.id]);
    t.same(await ids(T0 + 100), [expiring.id, pending.id].sort());
    await store.putKey({ ...pending, activated_at: T0 + 60 }, pending.version);
    await store.putKey({ ...expiring, expired_at: T0 + 100 }, expiring.version);
    t.same(await ids(T0 + 1000), [], 'recorded transitions are no longer due');
    t.equal((await store.dueKeys(T0 + 1000, 1)).length, 0);
    await store.putKey(newKey({ expires_at: T0 + 10 }), 0);
    await store.putKey(newKey({ expires_at: T0 + 20 }), 0);
    t.equal((await store.dueKeys(T0 + 1000, 1)).length, 1, 'the limit holds');
  });

  t.test('lease: one holder at a time, renewable by its holder', async (t) => {
    const store = await target.open(t);
    t.equal(await store.lease('scheduler', 'one', 60_000), true);
    t.equal(await store.lease('scheduler', 'two', 60_000), false, 'taken');
    t.equal(await store.lease('scheduler', 'one', 60_000), true, 'renewed');
    t.equal(await store.lease('other', 'two', 60_000), true, 'leases are by name');
  });

  t.test('usage: counters and last use move, the version does not, first use is an event', async (t) => {
    const store = await target.open(t);
    const rec = await store.putKey(newKey(), 0);
    await store.recordUsage([{ key_id: rec.id, requests: 3, errors: 1, first_at: T0 + 10, last_at: T0 + 20 }]);
    await store.recordUsage([{ key_id: rec.id, requests: 2, errors: 2, first_at: T0 + 30, last_at: T0 + 40 }]);
    const got = (await store.getKey(rec.id))!;
    t.same(got.usage, { total_requests: 5, error_count: 3 });
    t.equal(got.last_used_at, T0 + 40);
    t.equal(got.version, rec.version, 'usage does not change the version');
    t.equal((await store.getKeyByHash(rec.hash))!.usage.total_requests, 5, 'the lookup by hash sees it too');
    const firstUsed = (await store.listKeyEvents(rec.id)).filter((e) => e.type === 'first_used');
    t.equal(firstUsed.length, 1, 'one first_used event');
    t.equal(firstUsed[0]!.at, T0 + 10, 'at the first request of the first batch');
  });

  t.test('usage: a configuration write neither loses nor overwrites usage', async (t) => {
    const store = await target.open(t);
    const rec = await store.putKey(newKey(), 0);
    const stale = (await store.getKey(rec.id))!;
    await store.recordUsage([{ key_id: rec.id, requests: 4, errors: 0, first_at: T0, last_at: T0 + 5 }]);
    // An admin edit built from a read taken before the traffic was recorded.
    const edited = await store.putKey({ ...stale, name: 'renamed' }, stale.version);
    t.same(edited.usage, { total_requests: 4, error_count: 0 }, 'the written record reports the stored usage');
    const got = (await store.getKey(rec.id))!;
    t.equal(got.name, 'renamed');
    t.same(got.usage, { total_requests: 4, error_count: 0 });
    t.equal(got.last_used_at, T0 + 5);
  });

  t.test('usage: an unknown key is ignored, last use never moves back, and it all persists', async (t) => {
    let store = await target.open(t);
    const rec = await store.putKey(newKey(), 0);
    await store.recordUsage([
      { key_id: 'key_doesnotexist', requests: 1, errors: 0, first_at: T0, last_at: T0 },
      { key_id: rec.id, requests: 1, errors: 0, first_at: T0 + 100, last_at: T0 + 100 },
    ]);
    t.equal(await store.getKey('key_doesnotexist'), null, 'no record appears for an unknown key');
    await store.recordUsage([{ key_id: rec.id, requests: 1, errors: 1, first_at: T0 + 50, last_at: T0 + 50 }]);
    t.equal((await store.getKey(rec.id))!.last_used_at, T0 + 100, 'a late batch does not move last use back');
    store = await target.reopen(t, store);
    const got = (await store.getKey(rec.id))!;
    t.same(got.usage, { total_requests: 2, error_count: 1 }, 'usage survives a restart');
    t.equal(got.last_used_at, T0 + 100);
    t.equal((await store.listKeyEvents(rec.id)).filter((e) => e.type === 'first_used').length, 1);
  });

  t.test('usage batches: counters, aggregates and errors in one write, once per batch id, persisted', async (t) => {
    let store = await target.open(t);
    const rec = await store.putKey(newKey(), 0);
    const minute = T0 - (T0 % 60_000);
    const batch = (id: string, n: number): UsageBatch => ({
      id,
      keys: [{ key_id: rec.id, requests: n, errors: 1, first_at: T0 + 1, last_at: T0 + 2 }],
      buckets: [
        { scope: rec.id, gran: 'm', start: minute, ttl_ms: 86_400_000, fields: { n, ok: n - 1, 's:200': n - 1, 's:503': 1, lat: 2.5 * n, 'e:n|emails|GET|/v1/*': n } },
        { scope: '*', gran: 'm', start: minute, ttl_ms: 86_400_000, fields: { n, [`k:${rec.id}`]: n } },
        { scope: rec.id, gran: 'd', start: T0 - (T0 % 86_400_000), ttl_ms: 30 * 86_400_000, fields: { n } },
      ],
      errors: [
        { time: T0 + 2, request_id: `r-${id}`, key_id: rec.id, tenant: null, api: 'emails', method: 'GET', route: '/v1/*', status: 503, error: 'service_unavailable', reason: null },
      ],
      keep_errors: 2,
    });
    t.equal(await store.ingestUsage(batch('b1', 3)), true, 'a new batch is applied');
    t.equal(await store.ingestUsage(batch('b1', 3)), false, 'the same batch again is not');
    t.equal(await store.ingestUsage(batch('b2', 2)), true);
    t.equal(await store.ingestUsage(batch('b3', 1)), true);
    const got = (await store.getKey(rec.id))!;
    t.same(got.usage, { total_requests: 6, error_count: 3 }, 'key counters count each batch once');
    t.equal(got.last_used_at, T0 + 2);
    t.equal((await store.listKeyEvents(rec.id)).filter((e) => e.type === 'first_used').length, 1, 'first use once');
    const check = async (s: Store, when: string) => {
      const minutes = await s.usageBuckets(rec.id, 'm', minute - 60_000, minute + 120_000);
      t.same(minutes, [{ start: minute, fields: { n: 6, ok: 3, 's:200': 3, 's:503': 3, lat: 15, 'e:n|emails|GET|/v1/*': 6 } }], `${when}: minute fields summed`);
      t.same(await s.usageBuckets('*', 'm', minute, minute + 60_000), [{ start: minute, fields: { n: 6, [`k:${rec.id}`]: 6 } }]);
      t.same(await s.usageBuckets(rec.id, 'm', minute + 60_000, minute + 120_000), [], 'a range without traffic is empty');
      t.equal((await s.usageBuckets(rec.id, 'd', T0 - 86_400_000, T0 + 86_400_000))[0]?.fields['n'], 6, 'day bucket');
      const errors = await s.recentErrors({ limit: 10 });
      t.same(errors.map((e) => e.request_id), ['r-b3', 'r-b2'], `${when}: errors newest first, the oldest past keep_errors dropped`);
      t.same(await s.recentErrors({ key_id: 'key_other', limit: 10 }), [], 'filtered by key');
      t.same((await s.recentErrors({ from: T0 + 3, limit: 10 })).length, 0, 'filtered by time');
    };
    await check(store, 'live');
    store = await target.reopen(t, store);
    await check(store, 'after a restart');
    t.equal(await store.ingestUsage(batch('b2', 2)), false, 'a batch id is still known after a restart');
  });

  t.test('compare-and-set: a stale version is refused and changes nothing', async (t) => {
    const store = await target.open(t);
    const rec = await store.putKey(newKey(), 0);
    t.equal(rec.version, 1);
    await store.putKey({ ...rec, name: 'first' }, 1);
    await t.rejects(store.putKey({ ...rec, name: 'second' }, 1), { code: 'KEYGATE_VERSION_CONFLICT' });
    t.equal((await store.getKey(rec.id))!.name, 'first');
    await t.rejects(store.putKey(newKey({ hash: rec.hash }), 0), { code: 'KEYGATE_VERSION_CONFLICT' }, 'a second record with the same hash');
  });

  t.test('alerts: a dedup key stores one alert; a second add with it answers false and writes nothing', async (t) => {
    const store = await target.open(t);
    const first = newAlert();
    const firstDeliveries = [newDelivery(first, 'webhook:ops'), newDelivery(first, 'email')];
    t.equal(await store.addAlert(first, 'key_one|key.expiring|7', firstDeliveries), true, 'the first add stores it');
    const second = newAlert({ created_at: T0 + 1 });
    t.equal(await store.addAlert(second, 'key_one|key.expiring|7', [newDelivery(second, 'webhook:ops')]), false, 'the same dedup key again is refused');
    t.same(await store.getAlert(first.id), first, 'the first alert is kept whole');
    t.equal(await store.getAlert(second.id), null, 'the refused alert is not stored');
    t.equal(await store.getAlert('alr_missing'), null);
    t.same((await store.listAlerts({ tenant: null, limit: 10 })).data, [first], 'one alert listed');
    t.same(await store.listDeliveries(first.id), firstDeliveries, "the first alert's deliveries, in the order given");
    t.same(await store.listDeliveries(second.id), [], 'none of the refused one');
    t.same((await store.dueDeliveries(T0 + 1000, 10)).map((d) => d.id).sort(), firstDeliveries.map((d) => d.id).sort(), 'only the first alert\'s deliveries are due');
    const other = newAlert({ created_at: T0 + 2 });
    t.equal(await store.addAlert(other, 'key_one|key.expiring|1', []), true, 'another dedup key is another alert');
  });

  t.test('alerts: adds of one dedup key at once: exactly one is stored, with its deliveries and no other\'s', async (t) => {
    const store = await target.open(t);
    const tries = Array.from({ length: 8 }, (_, i) => {
      const alert = newAlert({ created_at: T0 + i });
      return { alert, deliveries: [newDelivery(alert, 'webhook:a'), newDelivery(alert, 'webhook:b')] };
    });
    const answers = await Promise.all(tries.map((x) => store.addAlert(x.alert, 'race', x.deliveries)));
    t.equal(answers.filter((a) => a).length, 1, 'one add answered true');
    const winner = tries[answers.indexOf(true)]!;
    t.same((await store.listAlerts({ tenant: null, limit: 20 })).data, [winner.alert], 'and only its alert is stored');
    t.same((await store.dueDeliveries(T0 + 1000, 100)).map((d) => d.alert_id), [winner.alert.id, winner.alert.id], 'with only its deliveries');
    for (const x of tries) if (x !== winner) t.same(await store.listDeliveries(x.alert.id), [], `a losing add left no delivery (${x.alert.created_at - T0})`);
  });

  t.test('alerts: newest first, filtered by tenant, type, key and time, cursor pages through equal times', async (t) => {
    const store = await target.open(t);
    const all: Alert[] = [];
    const tenants = [null, 'a', 'b'] as const;
    // Thirty alerts of one millisecond (the ids settle their order), and a few around them.
    for (let i = 0; i < 36; i++) {
      const created_at = i < 30 ? T0 + 500 : T0 + (i - 30) * 300;
      const tenant = tenants[i % 3]!;
      const keyId = `key_${i % 4}`;
      const alert = newAlert({ created_at, tenant, type: i % 5 === 0 ? 'key.revoked' : 'key.expiring', key: i === 7 ? null : { id: keyId, name: keyId, masked: 'gw_live_…' } });
      t.equal(await store.addAlert(alert, `dedup-${i}`, []), true);
      all.push(alert);
    }
    const ids = (alerts: Alert[]) => alerts.map((a) => a.id);
    const pagesOf = async (query: Omit<AlertQuery, 'cursor'>) => everyPage((cursor) => store.listAlerts({ ...query, cursor }));
    const expect = async (query: Omit<AlertQuery, 'cursor' | 'limit'>, keep: (a: Alert) => boolean, what: string) => {
      const wanted = ids(newestFirst(all.filter(keep)));
      t.same(ids((await store.listAlerts({ ...query, limit: 100 })).data), wanted, `${what}: one page`);
      const pages = await pagesOf({ ...query, limit: 4 });
      t.same(ids(pages.flat()), wanted, `${what}: pages of 4 neither repeat nor skip`);
      t.ok(pages.slice(0, -1).every((p) => p.length === 4), `${what}: every page but the last is full`);
    };
    await expect({ tenant: null }, () => true, 'everything');
    await expect({ tenant: 'a' }, (a) => a.tenant === 'a', "tenant a's");
    await expect({ tenant: 'nobody' }, () => false, "an unknown tenant's");
    await expect({ tenant: null, type: 'key.revoked' }, (a) => a.type === 'key.revoked', 'one type');
    await expect({ tenant: null, key_id: 'key_3' }, (a) => a.key?.id === 'key_3', 'one key');
    await expect({ tenant: 'b', key_id: 'key_2' }, (a) => a.tenant === 'b' && a.key?.id === 'key_2', 'one key within a tenant');
    await expect({ tenant: 'a', type: 'key.revoked', key_id: 'key_0' }, (a) => a.tenant === 'a' && a.type === 'key.revoked' && a.key?.id === 'key_0', 'every filter');
    await expect({ tenant: null, from: T0 + 500, to: T0 + 900 }, (a) => a.created_at >= T0 + 500 && a.created_at < T0 + 900, 'from inclusive, to exclusive');
    await expect({ tenant: null, from: T0 + 501 }, (a) => a.created_at >= T0 + 501, 'after the crowded millisecond');
    await expect({ tenant: null, to: T0 + 500 }, (a) => a.created_at < T0 + 500, 'before the crowded millisecond');

    // An alert added between pages: later pages go on where they left off.
    const first = await store.listAlerts({ tenant: null, limit: 5 });
    // Of the crowded millisecond, but with the highest id: before the first page's last alert.
    const late = newAlert({ created_at: T0 + 500, id: 'alr_' + 'z'.repeat(26) });
    await store.addAlert(late, 'late', []);
    t.same(ids((await pagesOf({ tenant: null, limit: 5 })).flat()), ids(newestFirst([...all, late])), 'a fresh listing has the new alert in its place');
    const next = await store.listAlerts({ tenant: null, limit: 100, cursor: first.next_cursor! });
    t.same(ids(next.data), ids(newestFirst(all)).slice(5), 'the old cursor neither repeats nor skips');
    await t.rejects(store.listAlerts({ tenant: null, limit: 5, cursor: 'nonsense' }), { code: 'KEYGATE_INVALID_CURSOR' });
  });

  t.test('deliveries: due ones earliest first, delivered and failed ones never, putDelivery replaces state, attempts and next_at', async (t) => {
    const store = await target.open(t);
    const alert = newAlert();
    const [late, early, middle, tie] = [T0 + 30, T0 + 10, T0 + 20, T0 + 10].map((at, i) => newDelivery(alert, `webhook:w${i}`, { next_at: at }));
    const deliveries = [late!, early!, middle!, tie!];
    await store.addAlert(alert, 'd', deliveries);
    const due = async (now: number, limit = 100) => (await store.dueDeliveries(now, limit)).map((d) => d.id);
    const byId = (a: Delivery, b: Delivery) => (a.id < b.id ? -1 : 1);
    t.same(await due(T0 + 9), [], 'nothing due before its time');
    t.same(await due(T0 + 10), [early!, tie!].sort(byId).map((d) => d.id), 'due at next_at, ties by id');
    t.same(await due(T0 + 100), [...[early!, tie!].sort(byId), middle!, late!].map((d) => d.id), 'earliest due first');
    t.equal((await due(T0 + 100, 2)).length, 2, 'the limit holds');

    const attempt = { at: T0 + 10, ok: true, status: 204, error: null, duration_ms: 12 };
    await store.putDelivery({ ...early!, state: 'delivered', attempts: [attempt], next_at: null });
    const failedAttempt = { at: T0 + 10, ok: false, status: null, error: 'connect ECONNREFUSED', duration_ms: 3 };
    await store.putDelivery({ ...tie!, state: 'failed', attempts: [failedAttempt], next_at: null });
    await store.putDelivery({ ...middle!, attempts: [failedAttempt], next_at: T0 + 1000, target: 'webhook:changed', alert_id: 'alr_other' });
    await store.putDelivery(newDelivery(alert, 'webhook:unknown'));
    t.same(await due(T0 + 100), [late!.id], 'delivered, failed and rescheduled ones are not due');
    t.same(await due(T0 + 1000), [late!.id, middle!.id], 'a rescheduled one is due at its new time');
    t.same(
      await store.listDeliveries(alert.id),
      [
        late!,
        { ...early!, state: 'delivered', attempts: [attempt], next_at: null },
        { ...middle!, attempts: [failedAttempt], next_at: T0 + 1000 },
        { ...tie!, state: 'failed', attempts: [failedAttempt], next_at: null },
      ],
      'every field round trips; alert, target and creation stay as stored; an unknown id is not added',
    );
    t.same(await store.listDeliveries('alr_other'), [], 'a delivery does not move to another alert');
    t.same(await store.listDeliveries('alr_none'), []);
  });

  t.test('pruneAlerts drops alerts created before a time, with their deliveries and dedup keys', async (t) => {
    const store = await target.open(t);
    const alerts = [0, 1, 2, 2].map((i) => newAlert({ created_at: T0 + i, tenant: i === 1 ? 'a' : null }));
    for (const [i, a] of alerts.entries()) await store.addAlert(a, `dedup-${i}`, [newDelivery(a, 'email'), newDelivery(a, 'webhook:x')]);
    t.equal(await store.pruneAlerts(T0), 0, 'nothing is older than the oldest');
    t.equal(await store.pruneAlerts(T0 + 2), 2, 'created before T0 + 2: two');
    for (const a of alerts.slice(0, 2)) {
      t.equal(await store.getAlert(a.id), null, 'a pruned alert is gone');
      t.same(await store.listDeliveries(a.id), [], 'with its deliveries');
    }
    t.same((await store.listAlerts({ tenant: null, limit: 10 })).data, newestFirst(alerts.slice(2)), 'the newer ones stay');
    t.same((await store.listAlerts({ tenant: 'a', limit: 10 })).data, [], "and no tenant's list keeps a pruned one");
    t.same((await store.listAlerts({ tenant: null, key_id: 'key_one', limit: 10 })).data.length, 2, "nor a key's");
    t.same((await store.dueDeliveries(T0 + 100, 100)).map((d) => d.alert_id).sort(), [alerts[2]!.id, alerts[2]!.id, alerts[3]!.id, alerts[3]!.id].sort(), 'pruned deliveries are never due');
    t.equal(await store.addAlert(newAlert({ created_at: T0 + 10 }), 'dedup-0', []), true, 'a pruned dedup key can be used again');
    t.equal(await store.addAlert(newAlert({ created_at: T0 + 10 }), 'dedup-2', []), false, 'a kept one cannot');
    t.equal(await store.pruneAlerts(T0 + 1_000), 3, 'the rest');
    t.same((await store.listAlerts({ tenant: null, limit: 10 })).data, []);
  });

  t.test('expiringKeys: after from, up to and including to, revoked left out, cursor pages through equal expires_at', async (t) => {
    const store = await target.open(t);
    const put = (over: Partial<KeyRecord>) => store.putKey(newKey(over), 0);
    const crowd: KeyRecord[] = [];
    for (let i = 0; i < 7; i++) crowd.push(await put({ expires_at: T0 + 100 }));
    const soon = await put({ expires_at: T0 + 50 });
    const atTo = await put({ expires_at: T0 + 200 });
    await put({ expires_at: T0 + 201 });
    await put({ expires_at: T0 });
    await put({ expires_at: null });
    const revoked = await put({ expires_at: T0 + 100, revoked_at: T0 - 1, revoked_reason: 'leaked' });
    const byId = (a: KeyRecord, b: KeyRecord) => (a.id < b.id ? -1 : 1);
    const wanted = [soon, ...[...crowd].sort(byId), atTo].map((k) => k.id);
    t.same((await store.expiringKeys(T0, T0 + 200, null, 100)).map((k) => k.id), wanted, 'expires_at in (from, to], by expires_at then id');
    t.notOk((await store.expiringKeys(T0 - 1000, T0 + 1000, null, 100)).some((k) => k.id === revoked.id), 'a revoked key is left out');
    const paged: string[] = [];
    for (let cursor = null as { expires_at: number; id: string } | null, n = 0; n < 20; n++) {
      const page = await store.expiringKeys(T0, T0 + 200, cursor, 3);
      paged.push(...page.map((k) => k.id));
      if (page.length < 3) break;
      const last = page[page.length - 1]!;
      cursor = { expires_at: last.expires_at!, id: last.id };
    }
    t.same(paged, wanted, 'pages of 3 neither repeat nor skip');
    const got = (await store.expiringKeys(T0, T0 + 200, null, 1))[0]!;
    t.same(got, soon, 'whole records');
    // Changes move keys in and out.
    const moved = crowd[0]!;
    await store.putKey({ ...moved, expires_at: T0 + 150 }, moved.version);
    await store.putKey({ ...crowd[1]!, revoked_at: T0, revoked_reason: 'done' }, crowd[1]!.version);
    await store.putKey({ ...crowd[2]!, expires_at: null }, crowd[2]!.version);
    const after = (await store.expiringKeys(T0, T0 + 200, null, 100)).map((k) => k.id);
    t.same(after, [soon.id, ...[...crowd.slice(3)].sort(byId).map((k) => k.id), moved.id, atTo.id], 'a new expires_at moves a key; a revocation or a cleared expiry drops it');
    t.same(await store.expiringKeys(T0 + 200, T0 + 200, null, 100), [], 'an empty range');
  });

  t.test('alerts and pending deliveries survive a restart', async (t) => {
    let store = await target.open(t);
    const alert = newAlert({ tenant: 'a' });
    const pending = newDelivery(alert, 'webhook:ops', { next_at: T0 + 5 });
    const done = newDelivery(alert, 'email');
    await store.addAlert(alert, 'kept', [pending, done]);
    const delivered: Delivery = { ...done, state: 'delivered', attempts: [{ at: T0, ok: true, status: 250, error: null, duration_ms: 40 }], next_at: null };
    await store.putDelivery(delivered);
    const gone = newAlert({ created_at: T0 - 10 });
    await store.addAlert(gone, 'pruned', [newDelivery(gone, 'email')]);
    t.equal(await store.pruneAlerts(T0), 1);
    store = await target.reopen(t, store);
    t.same(await store.getAlert(alert.id), alert, 'the alert');
    t.same((await store.listAlerts({ tenant: 'a', limit: 10 })).data, [alert], 'listed in its tenant');
    t.same(await store.listDeliveries(alert.id), [pending, delivered], 'its deliveries as last written');
    t.same(await store.dueDeliveries(T0 + 10, 10), [pending], 'the pending one still due');
    t.equal(await store.getAlert(gone.id), null, 'a pruned alert stays pruned');
    t.equal(await store.addAlert(newAlert(), 'kept', []), false, 'the dedup key is kept');
    t.equal(await store.addAlert(newAlert(), 'pruned', []), true, 'a pruned one is free');
  });

  t.test('quota: concurrent spends admit exactly the balance', async (t) => {
    const store = await target.open(t);
    const terms = { initial: 25, refill: 25, every: 'day' as const };
    const answers = await Promise.all(Array.from({ length: 60 }, () => store.quota('key_q', terms, 'spend', 1, T0)));
    t.equal(answers.filter((a) => a.ok).length, 25, '25 of 60 spends admitted');
    t.same(answers.map((a) => a.remaining).filter((r, i) => answers[i]!.ok).sort((a, b) => b - a), Array.from({ length: 25 }, (_, i) => 24 - i), 'each admitted spend saw its own remainder');
    t.same(await store.quota('key_q', terms, 'read', 0, T0), { ok: true, remaining: 0, resetAt: Date.UTC(2026, 5, 2) }, 'nothing left until the next day');
    const costly = await Promise.all(Array.from({ length: 10 }, () => store.quota('key_c', { initial: 10, refill: null, every: null }, 'spend', 3, T0)));
    t.equal(costly.filter((a) => a.ok).length, 3, 'spends of 3 against 10: three admitted, the 1 left refuses a fourth');
  });

  t.test('quota: refills at the period boundary, refunds only within the period, set and add', async (t) => {
    let store = await target.open(t);
    const terms = { initial: 3, refill: 3, every: 'hour' as const };
    for (let i = 0; i < 3; i++) t.ok((await store.quota('key_r', terms, 'spend', 1, T0 + i)).ok);
    t.match(await store.quota('key_r', terms, 'spend', 1, T0 + 10), { ok: false, remaining: 0, resetAt: T0 + 3_600_000 }, 'empty until the hour ends');
    t.match(await store.quota('key_r', terms, 'refund', 1, T0 + 5), { ok: true, remaining: 1 }, 'a refund within the period gives the unit back');
    t.match(await store.quota('key_r', terms, 'spend', 1, T0 + 3_600_000), { ok: true, remaining: 2, resetAt: T0 + 7_200_000 }, 'refilled at the next hour');
    t.match(await store.quota('key_r', terms, 'refund', 1, T0 + 20), { remaining: 2 }, 'a refund for a request of the hour before changes nothing');
    const credits = { initial: 100, refill: 50, every: 'month' as const };
    t.match(await store.quota('key_k', credits, 'read', 0, T0), { remaining: 100, resetAt: Date.UTC(2026, 6, 1) }, 'credits start with their initial balance');
    t.match(await store.quota('key_k', credits, 'add', 25, T0), { remaining: 125 }, 'a top-up adds');
    t.match(await store.quota('key_k', credits, 'set', 7, T0), { remaining: 7 }, 'a set replaces');
    store = await target.reopen(t, store);
    t.match(await store.quota('key_k', credits, 'read', 0, T0 + 1), { remaining: 7 }, 'the balance survives a restart');
    t.match(await store.quota('key_k', credits, 'read', 0, Date.UTC(2026, 6, 1)), { remaining: 50, resetAt: Date.UTC(2026, 7, 1) }, 'the next month starts with the refill amount');
    t.match(await store.quota('key_none', { initial: 4, refill: null, every: null }, 'refund', 1, T0), { remaining: 4 }, 'nothing to refund on a balance never spent');
  });
}
