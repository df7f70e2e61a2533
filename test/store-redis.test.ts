import t from 'tap';
import { RedisStore } from '../core/store/redis-store.js';
import type { Store } from '../core/store/store.js';
import { Redis } from 'ioredis';
import { generateKey } from '../core/key-format.js';
import { KeyHasher } from '../core/key-hash.js';
import { RedisServer, waitUntil } from './lib/redis.js';
import { keyRecord } from './lib/records.js';
import { storeConformance } from './lib/store-conformance.js';

// The shared store conformance suite on the Redis store, against a real redis-server.

const server = await RedisServer.start();
t.teardown(() => server.stop());
const raw = new Redis(server.url);
t.teardown(() => raw.quit());
const hasher = new KeyHasher(null);

let n = 0;
const prefixes = new WeakMap<Store, string>();
const open = async (prefix: string) =>
  RedisStore.open({ url: server.url, prefix, commandTimeoutMs: 1000, connectTimeoutMs: 2000 });

storeConformance(t, {
  async open(t) {
    // Each test its own prefix: a fresh, empty store on the same server.
    const prefix = `conf${n++}`;
    const store = await open(prefix);
    t.teardown(() => store.close());
    prefixes.set(store, prefix);
    return store;
  },
  async reopen(t, store) {
    const prefix = prefixes.get(store)!;
    await store.close();
    const again = await open(prefix);
    t.teardown(() => again.close());
    prefixes.set(again, prefix);
    return again;
  },
});

t.test('a write that changes keys answers once every gateway process has dropped them', async (t) => {
  const prefix = `ack${n++}`;
  const warnings: string[] = [];
  const writer = await RedisStore.open({
    url: server.url, prefix, commandTimeoutMs: 1000, connectTimeoutMs: 2000, invalidationWaitMs: 300,
    warn: (msg) => warnings.push(msg),
  });
  const holder = await open(prefix);
  t.teardown(() => Promise.all([writer.close(), holder.close()]));
  const heard: string[] = [];
  holder.onKeyChange((h) => h !== null && heard.push(h));
  await waitUntil(async () => (await raw.hlen(`{${prefix}}:members`)) === 1, 'the cache holder to join');

  for (let i = 0; i < 20; i++) {
    const rec = await writer.putKey(keyRecord(generateKey('gw', 'live'), hasher, Date.now()), 0);
    t.ok(heard.includes(rec.hash), `write ${i}: the other process had dropped the key when the write answered`);
  }
  t.same(warnings, [], 'no one lagged');

  // A member that never confirms (a hung gateway) delays a write by the wait, then it answers.
  await raw.hset(`{${prefix}}:members`, 'hung-gateway', String(Date.now() + 60_000));
  let began = performance.now();
  await writer.putKey(keyRecord(generateKey('gw', 'live'), hasher, Date.now()), 0);
  const waited = performance.now() - began;
  t.ok(waited >= 290 && waited < 1500, `waited ${waited.toFixed(0)} ms for the hung member, then answered`);
  t.match(warnings, ['gateways did not confirm a key change in time']);
  // Once its membership lapses (the process is gone), nobody waits for it.
  await raw.hset(`{${prefix}}:members`, 'hung-gateway', String(Date.now() - 1));
  began = performance.now();
  await writer.putKey(keyRecord(generateKey('gw', 'live'), hasher, Date.now()), 0);
  t.ok(performance.now() - began < 250, 'a lapsed member is not waited for');
  t.equal(await raw.hexists(`{${prefix}}:members`, 'hung-gateway'), 0, 'and is removed');
});

t.test('expiringKeys finds keys written before the expiring index existed (an upgraded deployment), once built', async (t) => {
  const prefix = `exp${n++}`;
  const writer = await open(prefix);
  t.teardown(() => writer.close());
  const T0 = Date.UTC(2026, 5, 1, 12);
  const keys = [];
  for (let i = 0; i < 5; i++) keys.push(await writer.putKey(keyRecord(generateKey('gw', 'live'), hasher, T0, { expires_at: T0 + 100 + (i % 2) }), 0));
  const revoked = await writer.putKey(keyRecord(generateKey('gw', 'live'), hasher, T0, { expires_at: T0 + 100, revoked_at: T0, revoked_reason: 'leaked' }), 0);
  // What an earlier release left: the same keys, no index and no mark that it was built.
  await raw.del(`{${prefix}}:expiring`, `{${prefix}}:expm`, `{${prefix}}:expiring:built`);
  const upgraded = await open(prefix);
  t.teardown(() => upgraded.close());
  const wanted = [...keys].sort((a, b) => a.expires_at! - b.expires_at! || (a.id < b.id ? -1 : 1)).map((k) => k.id);
  t.same((await upgraded.expiringKeys(T0, T0 + 200, null, 100)).map((k) => k.id), wanted, 'every key found, in order');
  t.equal(await raw.exists(`{${prefix}}:expiring:built`), 1, 'the index is marked built');
  t.notOk((await raw.zrangebylex(`{${prefix}}:expiring`, '-', '+')).some((m) => m.endsWith(revoked.id)), 'a revoked key is not in it');
  // A key changed after the build is indexed by its commit, by any process.
  await writer.putKey({ ...keys[0]!, expires_at: T0 + 150 }, keys[0]!.version);
  t.equal((await upgraded.expiringKeys(T0 + 120, T0 + 200, null, 100))[0]?.id, keys[0]!.id, 'a later change moves the key');
});

t.test('pruneAlerts drops more alerts than one script takes, in several scripts', async (t) => {
  const prefix = `prune${n++}`;
  const store = await open(prefix);
  t.teardown(() => store.close());
  const T0 = Date.UTC(2026, 5, 1, 12);
  for (let i = 0; i < 1203; i++) {
    const id = `alr_${String(i).padStart(26, '0')}`;
    await store.addAlert({ id, type: 'key.expiring', created_at: T0 + (i % 7), tenant: i % 2 ? 't' : null, key: { id: `key_${i % 3}`, name: 'k', masked: 'gw_live_…' }, data: {} }, `d${i}`, [
      { id: `dlv_${i}`, alert_id: id, target: 'email', state: 'pending', attempts: [], next_at: T0, created_at: T0 },
    ]);
  }
  t.equal(await store.pruneAlerts(T0 + 7), 1203, 'every alert dropped');
  const left = (await raw.keys(`{${prefix}}:*`)).filter((k) => /^\{[^}]+\}:(alert|dlv)/.test(k));
  t.same(left, [], 'nothing of them (indexes, dedup keys, deliveries) is left in Redis');
});
