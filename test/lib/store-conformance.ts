import type { Test } from 'tap';
import { generateKey } from '../../core/key-format.js';
import { KeyHasher } from '../../core/key-hash.js';
import type { AppRecord } from '../../core/application.js';
import type { AuditEntry, KeyEvent } from '../../core/audit.js';
import type { KeyRecord } from '../../core/record.js';
import type { Store, UsageBatch } from '../../core/store/store.js';
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
}
