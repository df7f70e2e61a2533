import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ManualClock } from '../core/clock.js';
import { generateKey } from '../core/key-format.js';
import { cacheIdOfHex, KeyHasher } from '../core/key-hash.js';
import { compilePolicy } from '../core/limiter.js';
import type { KeyRecord } from '../core/record.js';
import { FileStore } from '../core/store/file-store.js';
import { compileKey, type CompiledKey } from '../gateway/compiled-key.js';
import { isMissing, KeyCache } from '../gateway/key-cache.js';
import { switchable, type Switchable } from './lib/flaky-store.js';
import { keyRecord } from './lib/records.js';

const dir = mkdtempSync(join(tmpdir(), 'keygate-cache-'));
const store = switchable(await FileStore.open({ dir }));
t.teardown(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});
const clock = new ManualClock();
const hasher = new KeyHasher(null);
const plans = new Map([['default', compilePolicy('default', { limit: 10, window_seconds: 60, burst: null })]]);
const cache = new KeyCache(store, hasher, (r, gen) => compileKey(r, plans, gen), { max: 1000, ttlMs: 60_000, negativeMax: 10_000, negativeTtlMs: 5_000, clock });

async function addKey(overrides: Partial<KeyRecord> = {}): Promise<{ key: string; rec: KeyRecord }> {
  const key = generateKey('gw', 'live');
  const rec = await store.putKey(keyRecord(key, hasher, clock.now(), { scopes: ['a', 'b'], ...overrides }), 0);
  return { key, rec };
}

t.test('a hit is synchronous and compiled', async (t) => {
  const { key, rec } = await addKey();
  const hash = hasher.cacheId(key);
  t.equal(cache.get(hash), undefined, 'cold');
  const loaded = await cache.load(hash, key);
  const hit = cache.get(hash);
  t.equal(hit, loaded, 'the same compiled object, returned without awaiting');
  t.notOk(isMissing(hit!));
  t.equal((hit as { id: string }).id, rec.id);
  t.ok((hit as unknown as { scopes: Set<string> }).scopes.has('b'), 'scopes compiled to a Set');
});

t.test('concurrent misses for one hash share one store read', async (t) => {
  const { key } = await addKey();
  const hash = hasher.cacheId(key);
  let open!: () => void;
  store.gate = new Promise((r) => (open = r));
  const before = store.lookups;
  const loads = Array.from({ length: 50 }, () => cache.load(hash, key));
  open();
  store.gate = null;
  const results = await Promise.all(loads);
  t.equal(store.lookups - before, 1, 'one lookup for 50 concurrent misses');
  t.ok(results.every((r) => r === results[0]));
});

t.test('unknown keys are cached for the negative TTL', async (t) => {
  const key = generateKey('gw', 'live');
  const hash = hasher.cacheId(key);
  const loaded = await cache.load(hash, key);
  t.ok(isMissing(loaded), 'answered as unknown');
  const before = store.lookups;
  t.equal(cache.get(hash), loaded, 'served from cache');
  t.equal(store.lookups, before);
  clock.advance(5_001);
  t.equal(cache.get(hash), undefined, 'forgotten after the negative TTL');
});

t.test('a changed key is dropped from the cache at once', async (t) => {
  const { key, rec } = await addKey();
  const hash = hasher.cacheId(key);
  await cache.load(hash, key);
  t.ok(cache.get(hash));
  await store.putKey({ ...rec, revoked_at: clock.now() }, rec.version);
  t.equal(cache.get(hash), undefined, 'invalidated by the store change event');
  const fresh = await cache.load(hash, key);
  const life = (fresh as CompiledKey).life;
  t.ok(life !== null && life.revokedAt !== null && life.revokedAt <= clock.now(), 'revoked from now on');
});

t.test('a cache id is the first 16 bytes of the lookup id the store and its invalidations name', async (t) => {
  const key = generateKey('gw', 'live');
  for (const h of [hasher, new KeyHasher({ id: 'p1', secret: 'pepper-secret-0123456789' })]) {
    const id = h.cacheId(key);
    t.equal(id.length, 16);
    t.equal(Buffer.from(id, 'latin1').toString('hex'), h.hash(key).slice(0, 32), h.currentKind);
    t.equal(cacheIdOfHex(h.hash(key)), id, `${h.currentKind}: an invalidation finds the entry`);
  }
  t.not(hasher.cacheId(key), hasher.cacheId(generateKey('gw', 'live')), 'another key, another id');
});

t.test('a key that changes while it is being read is read again, not cached as it was', async (t) => {
  const { key, rec } = await addKey();
  const hash = hasher.cacheId(key);
  let release!: () => void;
  store.hold = new Promise((r) => (release = r));
  const before = store.lookups;
  const loading = cache.load(hash, key);
  // The first read has its answer (the key as it was) but has not returned it yet.
  while (store.lookups === before) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  await store.putKey({ ...rec, revoked_at: clock.now() }, rec.version);
  store.hold = null;
  release();
  const loaded = (await loading) as CompiledKey;
  t.equal(store.lookups - before, 2, 'read again after the change');
  t.ok(loaded.life !== null && loaded.life.revokedAt !== null, 'the caller gets the revoked key');
  t.equal(cache.get(hash), loaded, 'and the cache holds it');
});

t.test('when the store fails, a stale entry is served; with none the load fails', async (t) => {
  const { key } = await addKey();
  const hash = hasher.cacheId(key);
  await cache.load(hash, key);
  clock.advance(60_001);
  t.equal(cache.get(hash), undefined, 'stale after the TTL');
  store.down = true;
  try {
    const stale = await cache.load(hash, key);
    t.notOk(isMissing(stale), 'stale compiled key served during the outage');
    const other = generateKey('gw', 'live');
    await t.rejects(cache.load(hasher.cacheId(other), other), { code: 'KEYGATE_STORE_UNAVAILABLE' });
  } finally {
    store.down = false;
  }
});

t.test('keys hashed before a pepper was configured are still found', async (t) => {
  const { key, rec } = await addKey();
  const peppered = new KeyHasher({ id: 'p1', secret: 'pepper-secret-0123456789' });
  const pcache = new KeyCache(store, peppered, (r, gen) => compileKey(r, plans, gen), { max: 10, ttlMs: 60_000, negativeMax: 10_000, negativeTtlMs: 5_000, clock });
  const found = await pcache.load(peppered.cacheId(key), key);
  t.equal((found as { id: string }).id, rec.id);
  t.not(peppered.hash(key), hasher.hash(key));
});

t.test('a read that fails before reaching the store leaves nothing behind: the next load reads again', async (t) => {
  const { key, rec } = await addKey();
  // A hasher that fails once, synchronously, as the read starts (before its first await).
  let failures = 1;
  class FailingOnce extends KeyHasher {
    override hash(k: string): string {
      if (failures-- > 0) throw new Error('hash failed');
      return super.hash(k);
    }
  }
  const own = new KeyCache(store, new FailingOnce(null), (r, gen) => compileKey(r, plans, gen), { max: 10, ttlMs: 60_000, negativeMax: 10_000, negativeTtlMs: 5_000, clock });
  const id = hasher.cacheId(key);
  await t.rejects(own.load(id, key), { code: 'KEYGATE_STORE_UNAVAILABLE' }, 'nothing cached to serve instead');
  const entry = await own.load(id, key);
  t.notOk(isMissing(entry));
  t.equal((entry as { id: string }).id, rec.id, 'the second load read the store');
});

t.test('unknown keys beyond both maxima never evict a known key', async (t) => {
  const small = new KeyCache(store, hasher, (r, gen) => compileKey(r, plans, gen), { max: 10, ttlMs: 60_000, negativeMax: 50, negativeTtlMs: 5_000, clock });
  const { key } = await addKey();
  const id = hasher.cacheId(key);
  await small.load(id, key);
  let unknown = 0;
  for (let i = 0; i < 200; i++) {
    const other = generateKey('gw', 'live');
    if (isMissing(await small.load(hasher.cacheId(other), other))) unknown++;
  }
  t.equal(unknown, 200, 'every other key is unknown');
  t.equal(small.negativeSize, 50, 'the unknown keys fill their own LRU up to its max');
  t.equal(small.size, 1, 'the known key is the only one in the other');
  const before = store.lookups;
  const hit = small.get(id);
  t.ok(hit !== undefined && !isMissing(hit), 'the known key is still a hit');
  t.equal(store.lookups, before, 'without a store read');
});

t.test('a key created after it was cached as unknown is found at once', async (t) => {
  const key = generateKey('gw', 'live');
  const id = hasher.cacheId(key);
  t.ok(isMissing(await cache.load(id, key)));
  await store.putKey(keyRecord(key, hasher, clock.now()), 0);
  t.equal(cache.get(id), undefined, 'the unknown entry is dropped by the change');
  t.notOk(isMissing(await cache.load(id, key)));
});
