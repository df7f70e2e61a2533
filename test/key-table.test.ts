import t from 'tap';
import { KeyTable } from '../gateway/key-table.js';

/** A 16-character latin1 cache id whose first word (the table's hash) is `home`. */
function id(home: number, n: number): string {
  const b = Buffer.alloc(16);
  b.writeInt32LE(home | 0, 0);
  b.writeUInt32LE(n >>> 0, 4);
  b.writeUInt32LE(0xdeadbeef, 8);
  b.writeUInt32LE(n * 7 + 1, 12);
  return b.toString('latin1');
}

/** The same LRU as a Map in recency order (lru-cache's behaviour as the key cache configured it). */
class Model {
  readonly entries = new Map<string, { value: number; expires: number }>();
  constructor(readonly max: number) {}
  get(k: string, now: number): number | undefined {
    const e = this.entries.get(k);
    if (e === undefined || now > e.expires) return undefined;
    this.entries.delete(k);
    this.entries.set(k, e);
    return e.value;
  }
  set(k: string, value: number, now: number, ttl: number): void {
    if (!this.entries.delete(k) && this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(k, { value, expires: now + ttl });
  }
}

t.test('get, set, delete, eviction and TTL agree with a reference LRU under colliding ids', async (t) => {
  // Few distinct homes: long runs of collisions exercise probing and backward-shift deletion,
  // and more ids than max exercise eviction and the reuse of freed rows.
  let seed = 42;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const max = 1500;
  const table = new KeyTable<number>(max);
  const model = new Model(max);
  const ids = Array.from({ length: 4000 }, (_, i) => id(rnd(64) * 1024 + (i % 3), i));
  let now = 1_000;
  let mismatches = 0;
  for (let step = 0; step < 40_000; step++) {
    const k = ids[rnd(ids.length)]!;
    const op = rnd(10);
    if (op < 5) {
      const row = table.find(k);
      const got = row !== -1 && !table.isStale(row, now) ? (table.touch(row), table.value(row)) : undefined;
      if (got !== model.get(k, now)) mismatches++;
    } else if (op < 8) {
      const ttl = rnd(2) === 0 ? 5_000 : 50;
      table.set(k, step, `key_${step}`, 0, now, ttl);
      model.set(k, step, now, ttl);
    } else if (op < 9) {
      if (table.delete(k) !== model.entries.delete(k)) mismatches++;
    } else {
      now += rnd(30);
    }
    if (table.size !== model.entries.size) mismatches++;
  }
  t.equal(mismatches, 0, 'every get, delete and size as the reference says');
  let found = 0;
  for (const [k, e] of model.entries) {
    const row = table.find(k);
    if (row !== -1 && table.value(row) === e.value && table.keyId(row) === `key_${e.value}`) found++;
  }
  t.equal(found, model.entries.size, 'every entry the reference holds is found with its value and key id');
});

t.test('a stale entry is neither returned nor dropped, and set again it is fresh', async (t) => {
  const table = new KeyTable<string>(10);
  const k = id(1, 1);
  const row = table.set(k, 'v', 'key_abc', 3, 1_000, 100);
  t.notOk(table.isStale(row, 1_100), 'fresh at exactly its TTL');
  t.ok(table.isStale(row, 1_101), 'stale once past it');
  t.equal(table.find(k), row, 'still held when stale');
  t.equal(table.gen(row), 3);
  t.equal(table.set(k, 'w', 'key_abc', 4, 2_000, 100), row, 'set again in its own row');
  t.notOk(table.isStale(row, 2_050));
  t.equal(table.value(row), 'w');
});

t.test('the least recently used entry is evicted, a get counting as a use', async (t) => {
  const table = new KeyTable<number>(3);
  const [a, b, c, d] = [id(0, 1), id(0, 2), id(0, 3), id(0, 4)];
  table.set(a, 1, 'a', 0, 0, 1e9);
  table.set(b, 2, 'b', 0, 0, 1e9);
  table.set(c, 3, 'c', 0, 0, 1e9);
  table.touch(table.find(a));
  table.set(d, 4, 'd', 0, 0, 1e9);
  t.equal(table.find(b), -1, 'b, the least recent, evicted');
  t.not(table.find(a), -1);
  t.equal(table.size, 3);
});

t.test('key ids that do not fit a row are not held', async (t) => {
  const table = new KeyTable<number>(4);
  const long = 'key_' + 'x'.repeat(40);
  t.equal(KeyTable.holds('key_0123456789abcdefghij'), true, 'a key id as admin/keys.ts makes them');
  t.equal(KeyTable.holds(long), false);
  t.equal(KeyTable.holds('key_\u0100'), false, 'not latin1');
  t.equal(table.keyId(table.set(id(5, 5), 1, long, 0, 0, 1)), null);
  t.equal(table.keyId(table.set(id(6, 6), 1, 'key_é', 0, 0, 1)), 'key_é');
});

t.test('past the bound of shared Grants a key keeps its own, and a plan-changing reload starts the sharing again', async (t) => {
  const { compileKey, forgetSharedParts, isSharedGrant } = await import('../gateway/compiled-key.js');
  const { compilePolicy } = await import('../core/limiter.js');
  const { KeyHasher } = await import('../core/key-hash.js');
  const { keyRecord } = await import('./lib/records.js');
  const hasher = new KeyHasher(null);
  forgetSharedParts();
  // A key without a limit of its own is judged by its plan object: each "reload" below makes
  // new plan objects, and so new Grants, as runtime.ts does.
  let last = compileKey(keyRecord('k0', hasher, 0, { scopes: ['a'] }), new Map([['default', compilePolicy('default', { limit: 10, window_seconds: 60, burst: null })]]), 0);
  t.equal(isSharedGrant(last.grant), true, 'shared while the table has room');
  for (let r = 0; r < 10_001; r++) {
    last = compileKey(keyRecord(`k${r}`, hasher, 0, { scopes: ['a'] }), new Map([['default', compilePolicy('default', { limit: 10, window_seconds: 60, burst: null })]]), 0);
  }
  t.equal(isSharedGrant(last.grant), false, 'past 10,000 Grants a new one is the key’s own (so the key cache gives it a Tail of its own)');
  forgetSharedParts();
  const plans = new Map([['default', compilePolicy('default', { limit: 10, window_seconds: 60, burst: null })]]);
  const a = compileKey(keyRecord('a', hasher, 0, { scopes: ['a'] }), plans, 0);
  const b = compileKey(keyRecord('b', hasher, 0, { scopes: ['a'] }), plans, 0);
  t.equal(isSharedGrant(a.grant), true, 'forgotten on reload: shared again');
  t.equal(a.grant, b.grant, 'one Grant for two keys alike');
});

t.test('a table larger than one 4 GiB buffer of rows is refused by name before anything is allocated', async (t) => {
  t.throws(() => new KeyTable(2 ** 26 + 1), /KeyTable: max must be at most 67108864/);
  t.throws(() => new KeyTable(0), /positive integer/);
});
