import t, { type Test } from 'tap';
import { Cluster } from 'ioredis';
import { parseConfig } from '../config/load.js';
import { generateKey } from '../core/key-format.js';
import { KeyHasher } from '../core/key-hash.js';
import { compilePolicy, LocalLimiter, newRateState } from '../core/limiter.js';
import { Logger } from '../core/log.js';
import { SharedLimiter } from '../core/shared-limiter.js';
import { openStore } from '../core/store/open.js';
import { RedisBuckets } from '../core/store/redis/buckets.js';
import { RedisStore, type RedisStoreOptions } from '../core/store/redis-store.js';
import type { Store } from '../core/store/store.js';
import { keyRecord } from './lib/records.js';
import { waitUntil } from './lib/redis.js';
import { RedisClusterSet, RedisSentinelSet, redisCli } from './lib/redis-topology.js';
import { storeConformance } from './lib/store-conformance.js';

// The Redis store's Sentinel and Cluster modes against real processes: one master watched by
// one sentinel, and a three-node cluster. The shared conformance suite runs on each, then what
// only a topology can break: the rate limiter's script across Cluster slots, invalidations
// between two separately opened stores, and the path from a parsed config to a connection.

const [sentinelSet, clusterSet] = await Promise.all([RedisSentinelSet.start(), RedisClusterSet.start()]);
t.teardown(() => Promise.all([sentinelSet.stop(), clusterSet.stop()]));

type Connection = Pick<RedisStoreOptions, 'sentinels' | 'name' | 'cluster'>;
/** Each mode's connection options, and the ports of the data nodes (where subscribers connect). */
const modes: { mode: string; connection: Connection; dataPorts: number[] }[] = [
  { mode: 'sentinel', connection: { sentinels: sentinelSet.sentinels, name: sentinelSet.name }, dataPorts: [sentinelSet.masterPort] },
  { mode: 'cluster', connection: { cluster: clusterSet.nodes }, dataPorts: clusterSet.ports },
];

const hasher = new KeyHasher(null);
let n = 0;

/** A store on `connection` under `prefix`; warnings (there should be none) are collected. */
async function open(t: Test, connection: Connection, prefix: string, warnings: string[] = []): Promise<RedisStore> {
  const store = await RedisStore.open({
    ...connection,
    prefix,
    commandTimeoutMs: 1000,
    connectTimeoutMs: 5000,
    warn: (msg, fields) => warnings.push(`${msg} ${JSON.stringify(fields)}`),
  });
  t.teardown(() => store.close());
  return store;
}

for (const { mode, connection, dataPorts } of modes) {
  t.test(`${mode}: store conformance`, async (t) => {
    const prefixes = new WeakMap<Store, string>();
    storeConformance(t, {
      async open(t) {
        // Each test its own prefix: a fresh, empty store (and, in Cluster, its own slot).
        const prefix = `${mode}${n++}`;
        const store = await open(t, connection, prefix);
        prefixes.set(store, prefix);
        return store;
      },
      async reopen(t, store) {
        const prefix = prefixes.get(store)!;
        await store.close();
        const again = await open(t, connection, prefix);
        prefixes.set(again, prefix);
        return again;
      },
    });
  });

  t.test(`${mode}: a change written by one store reaches the listeners of another`, async (t) => {
    const prefix = `${mode}${n++}`;
    const warnings: string[] = [];
    const writer = await open(t, connection, prefix, warnings);
    const reader = await open(t, connection, prefix, warnings);
    t.ok(writer.available && reader.available, 'both stores are connected');
    const heard: (string | null)[] = [];
    reader.onKeyChange((h) => heard.push(h));
    const rec = await writer.putKey(keyRecord(generateKey('gw', 'live'), hasher, Date.now()), 0);
    await waitUntil(() => heard.includes(rec.hash), 'the reader to hear the change', 5000);
    t.same(heard, [rec.hash], 'the reader heard exactly the changed hash');
    t.same(await reader.getKeyByHash(rec.hash), rec, 'and reads what was written');
    // A store of another deployment (prefix) hears nothing of it.
    const other = await open(t, connection, `${mode}${n++}`, warnings);
    const otherHeard: (string | null)[] = [];
    other.onKeyChange((h) => otherHeard.push(h));
    const second = await writer.putKey({ ...rec, name: 'renamed' }, rec.version);
    await waitUntil(() => heard.length === 2, 'the second change', 5000);
    t.same(heard, [rec.hash, second.hash]);
    t.same(otherHeard, [], 'another prefix hears nothing');
    t.same(warnings, [], 'no warnings');
  });

  t.test(`${mode}: a dropped subscriber connection drops cached keys, and changes keep arriving`, async (t) => {
    const prefix = `${mode}${n++}`;
    const writer = await open(t, connection, prefix);
    const warnings: string[] = [];
    const reader = await open(t, connection, prefix, warnings);
    const heard: (string | null)[] = [];
    reader.onKeyChange((h) => heard.push(h));
    // Every subscriber connection on every data node is cut (a network blip, a proxy timeout);
    // a Cluster client then re-subscribes through whichever node it picks next.
    for (const port of dataPorts) t.not(await redisCli(port, ['CLIENT', 'KILL', 'TYPE', 'pubsub']), null, `CLIENT KILL on ${port}`);
    // Changes published while it was away are lost, so every cached key is suspect.
    await waitUntil(() => heard.includes(null), 'the reader to drop its cached keys', 5000);
    t.ok(warnings.some((w) => w.startsWith('redis subscriber reconnected')), 'and it says so');
    // A Cluster subscriber may have moved to a node whose connections were cut next, and move
    // again: wait until both stores are subscribed once more, wherever they are.
    const channel = `{${prefix}}:invalidate`;
    const subscribers = async () => {
      let sum = 0;
      for (const port of dataPorts) sum += Number((await redisCli(port, ['PUBSUB', 'NUMSUB', channel]))?.split('\n')[1] ?? 0);
      return sum;
    };
    await waitUntil(async () => (await subscribers()) === 2, 'both stores to subscribe again', 5000);
    const rec = await writer.putKey(keyRecord(generateKey('gw', 'live'), hasher, Date.now()), 0);
    await waitUntil(() => heard.includes(rec.hash), 'the reader to hear a change after the reconnect', 5000);
    t.pass('a change after the reconnect is heard');
  });

  t.test(`${mode}: openStore connects from a parsed config`, async (t) => {
    const lines: string[] = [];
    const log = new Logger({ level: 'warn', write: (line) => lines.push(line) });
    const prefix = `${mode}${n++}`;
    const conn: Record<string, unknown> = mode === 'sentinel'
      ? { type: 'redis', sentinels: sentinelSet.sentinels, name: sentinelSet.name }
      : { type: 'redis', cluster: clusterSet.nodes };
    const config = parseConfig(
      {
        listeners: [{ port: 0, host: '127.0.0.1', environment: 'production' }],
        plans: { default: { limit: 100, window_seconds: 60 } },
        admin: { port: 0, tokens: [{ name: 'ops', token: 'test-admin-token-0123456789', role: 'admin' }] },
        store: { ...conn, prefix, command_timeout_ms: 1000, connect_timeout_ms: 5000 },
      },
      'test',
    );
    const opened = await openStore(config.store, log);
    t.teardown(() => opened.close());
    t.equal(opened.kind, 'redis');
    t.ok(opened.available, 'connected');
    if (!(opened instanceof RedisStore)) throw new Error('openStore did not open a RedisStore');
    const client = opened.client;
    if (mode === 'cluster') t.ok(client instanceof Cluster, 'a Cluster client');
    else t.same((client.options as { sentinels?: unknown }).sentinels, sentinelSet.sentinels, 'through the sentinel');
    const rec = await opened.putKey(keyRecord(generateKey('gw', 'live'), hasher, Date.now()), 0);
    t.same(await opened.getKeyByHash(rec.hash), rec, 'a write and a read');
    t.same(lines, [], 'nothing logged at warn or above');
  });
}

t.test('cluster: the shared rate limiter takes from buckets on many slots', async (t) => {
  const store = await open(t, { cluster: clusterSet.nodes }, `rl${n++}`);
  const client = store.client as Cluster;
  const prefix = `rl${n++}`;
  const limiter = new SharedLimiter(new RedisBuckets(client, prefix), new LocalLimiter(() => Date.now()), { leaseFraction: 0.02, leaseMax: 50, leaseTtlMs: 1000 });
  t.teardown(() => limiter.close());
  const policy = compilePolicy('p', { limit: 5, window_seconds: 60, burst: null });
  // Ids whose buckets fall on slots owned by every node.
  const slots = new Map<string, number>();
  const owners = new Set<string>();
  for (let i = 0; owners.size < clusterSet.ports.length && i < 200; i++) {
    const id = `key_${i}`;
    const slot = (await client.cluster('KEYSLOT', `${prefix}:rl:{${id}}`)) as number;
    const owner = client.slots[slot]?.[0];
    if (owner && !owners.has(owner)) {
      owners.add(owner);
      slots.set(id, slot);
    }
  }
  t.equal(owners.size, clusterSet.ports.length, 'buckets on every node');
  t.equal(new Set(slots.values()).size, slots.size, 'each on its own slot');
  for (const id of slots.keys()) {
    const out = newRateState();
    const taken: boolean[] = [];
    for (let i = 0; i < 6; i++) taken.push(await limiter.take(id, policy, Date.now(), out));
    t.same(taken, [true, true, true, true, true, false], `${id}: exactly 5 takes, then a refusal`);
    t.equal(out.allowed, false);
    t.equal(out.unavailable, false, 'refused by the bucket, not by a failure');
    t.ok(out.retryAfter >= 1);
    t.equal(limiter.degraded, false, 'no store failure on the way');
    t.equal(await client.exists(`${prefix}:rl:{${id}}`), 1, 'the bucket is in Redis');
  }
});

t.test('cluster: available follows the node that holds the deployment slot; the store works again once it is back', async (t) => {
  const prefix = `down${n++}`;
  const store = await open(t, { cluster: clusterSet.nodes }, prefix);
  const rec = await store.putKey(keyRecord(generateKey('gw', 'live'), hasher, Date.now()), 0);
  t.ok(store.available, 'available');
  // Only the node with this prefix's slot dies: the Cluster client itself stays 'ready'.
  const owner = await clusterSet.ownerOf(`{${prefix}}`);
  await clusterSet.kill(owner);
  t.teardown(async () => {
    await clusterSet.restart(owner);
    await clusterSet.waitOk();
  });
  await waitUntil(() => !store.available, 'the store to report itself unavailable', 5000);
  t.equal((store.client as Cluster).status, 'ready', 'though the Cluster client is still ready');
  await t.rejects(store.getKey(rec.id), { code: 'KEYGATE_STORE_UNAVAILABLE' }, 'a read fails as unavailable');
  await clusterSet.restart(owner);
  await clusterSet.waitOk();
  await waitUntil(() => store.available, 'the store to be available again', 10_000);
  // The node restarted empty (no persistence); what matters is that the same store works.
  const again = await store.putKey(keyRecord(generateKey('gw', 'live'), hasher, Date.now()), 0);
  t.same(await store.getKeyByHash(again.hash), again, 'a write and a read after the outage');
});
