import type { Test } from 'tap';
import { generateKey } from '../../core/key-format.js';
import { KeyHasher } from '../../core/key-hash.js';
import type { KeyRecord } from '../../core/record.js';
import type { Store } from '../../core/store/store.js';
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

export function storeConformance(t: Test, target: ConformanceTarget): void {
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
