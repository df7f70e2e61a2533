/**
 * The key cache's table of known keys (gateway/key-cache.ts): an LRU with a TTL per entry,
 * keyed by 16-byte cache ids (KeyHasher.cacheId, latin1 strings), whose bookkeeping lives in
 * typed arrays rather than in JavaScript objects.
 *
 * Why: with lru-cache, each cached key was a Map entry, a 16-character id string of its own
 * and slots in lru-cache's arrays, all on the V8 heap, promoted to the old generation a few at
 * a time among per-request garbage. A million cached keys held some 210 MB of live heap and,
 * because V8's old generation grows to about twice what is live between full collections, 506
 * to 701 MB of RSS (docs/performance.md, Scaling and memory). Here an entry is a row of typed
 * arrays, outside the V8 heap: its id as four 32-bit words, its place in the recency list, its
 * expiry and generation, and its key id's bytes; the only per-entry JavaScript value is a
 * pointer (`values`) to what the entry shares with other keys. Nothing of it is garbage, so the
 * heap's growth does not multiply it.
 *
 * The index is open addressing with linear probing (at most half full) and backward-shift
 * deletion (no tombstones). A cache id is the first 16 bytes of a SHA-256 (or HMAC-SHA-256)
 * digest: uniformly spread, and only keys the store knows get in, so its first word is the
 * hash. The arrays start small and double up to `max`, so a cache configured for a million
 * keys that holds a thousand costs a thousand rows.
 *
 * Behaves as the lru-cache configuration it replaces: `get` of a fresh entry makes it the most
 * recent; a stale entry is neither returned nor moved nor deleted (it is what a store outage
 * serves, through `peek`); `set` of a new id at `max` entries evicts the least recent one,
 * stale or not; an entry is stale once more than its TTL has passed since it was set.
 */
export class KeyTable<V> {
  readonly max: number;
  /** Rows allocated (≤ max); the arrays below have this many rows. */
  #cap = 0;
  /** Cache id words, 4 a row. */
  #words = new Int32Array(0);
  #prev = new Int32Array(0);
  #next = new Int32Array(0);
  /** When the entry goes stale: set time + TTL (stale when now is past it). */
  #expires = new Float64Array(0);
  #gens = new Float64Array(0);
  /** The key id's latin1 bytes (ID_BYTES a row) and their length; 255: not held here. */
  #ids = Buffer.alloc(0);
  #idLens = new Uint8Array(0);
  #values: (V | undefined)[] = [];
  /** Row + 1 at each index position, 0 where free. */
  #index = new Int32Array(0);
  #mask = 0;
  #head = -1;
  #tail = -1;
  #size = 0;
  /** Rows never used yet start at #size when #free is empty. */
  #free: number[] = [];
  #used = 0;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new Error('KeyTable: max must be a positive integer');
    this.max = max;
    this.#grow(Math.min(max, 1024));
  }

  get size(): number {
    return this.#size;
  }

  /** The row holding `id`, or -1. */
  find(id: string): number {
    const w0 = word(id, 0);
    const mask = this.#mask;
    const index = this.#index;
    const words = this.#words;
    let i = w0 & mask;
    for (;;) {
      const r = index[i]! - 1;
      if (r < 0) return -1;
      const o = r << 2;
      if (words[o] === w0 && words[o + 1] === word(id, 4) && words[o + 2] === word(id, 8) && words[o + 3] === word(id, 12)) return r;
      i = (i + 1) & mask;
    }
  }

  isStale(row: number, now: number): boolean {
    return now > this.#expires[row]!;
  }

  gen(row: number): number {
    return this.#gens[row]!;
  }

  value(row: number): V {
    return this.#values[row]!;
  }

  /** The key id held for `row`, or null when it is not held here (too long, or not latin1). */
  keyId(row: number): string | null {
    const len = this.#idLens[row]!;
    if (len === NOT_HELD) return null;
    const o = row * ID_BYTES;
    return this.#ids.toString('latin1', o, o + len);
  }

  /** Makes `row` the most recently used. */
  touch(row: number): void {
    if (row === this.#tail) return;
    this.#unlink(row);
    this.#append(row);
  }

  /**
   * Sets the entry of `id` (a new row, or its row again), most recent, stale after `ttl` ms
   * from `now`; a new id at `max` entries evicts the least recent entry first. `keyId` is kept
   * as bytes when it fits (ID_BYTES latin1 characters); `keyId` tells whether it did.
   */
  set(id: string, value: V, keyId: string, gen: number, now: number, ttl: number): number {
    let row = this.find(id);
    if (row === -1) {
      if (this.#size >= this.max) this.#deleteRow(this.#head);
      row = this.#newRow();
      const o = row << 2;
      this.#words[o] = word(id, 0);
      this.#words[o + 1] = word(id, 4);
      this.#words[o + 2] = word(id, 8);
      this.#words[o + 3] = word(id, 12);
      let i = this.#words[o]! & this.#mask;
      while (this.#index[i] !== 0) i = (i + 1) & this.#mask;
      this.#index[i] = row + 1;
      this.#size++;
      this.#append(row);
    } else {
      this.touch(row);
    }
    this.#values[row] = value;
    this.#gens[row] = gen;
    this.#expires[row] = now + ttl;
    this.#setKeyId(row, keyId);
    return row;
  }

  /** Removes the entry of `id`; false when there was none. */
  delete(id: string): boolean {
    const row = this.find(id);
    if (row === -1) return false;
    this.#deleteRow(row);
    return true;
  }

  /** Whether `set` keeps this key id as bytes (else the caller keeps it in the value). */
  static holds(keyId: string): boolean {
    return keyId.length <= ID_BYTES && isLatin1(keyId);
  }

  #setKeyId(row: number, keyId: string): void {
    const len = keyId.length;
    if (KeyTable.holds(keyId)) {
      this.#ids.write(keyId, row * ID_BYTES, len, 'latin1');
      this.#idLens[row] = len;
    } else {
      this.#idLens[row] = NOT_HELD;
    }
  }

  #newRow(): number {
    if (this.#free.length > 0) return this.#free.pop()!;
    if (this.#used === this.#cap) this.#grow(Math.min(this.max, this.#cap * 2));
    return this.#used++;
  }

  #deleteRow(row: number): void {
    const mask = this.#mask;
    const index = this.#index;
    const words = this.#words;
    let i = words[row << 2]! & mask;
    while (index[i] !== row + 1) i = (i + 1) & mask;
    // Backward shift: later entries of the run move into the hole when their home allows it.
    index[i] = 0;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const r = index[j]! - 1;
      if (r < 0) break;
      const home = words[r << 2]! & mask;
      // The entry at j may fill the hole at i unless its home lies cyclically in (i, j].
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!stays) {
        index[i] = r + 1;
        index[j] = 0;
        i = j;
      }
    }
    this.#unlink(row);
    this.#values[row] = undefined;
    this.#free.push(row);
    this.#size--;
  }

  #unlink(row: number): void {
    const p = this.#prev[row]!;
    const n = this.#next[row]!;
    if (p === -1) this.#head = n;
    else this.#next[p] = n;
    if (n === -1) this.#tail = p;
    else this.#prev[n] = p;
  }

  #append(row: number): void {
    this.#prev[row] = this.#tail;
    this.#next[row] = -1;
    if (this.#tail === -1) this.#head = row;
    else this.#next[this.#tail] = row;
    this.#tail = row;
  }

  /** Rows for `cap` entries, and an index at most half full for them. */
  #grow(cap: number): void {
    const old = this.#cap;
    this.#words = copied(new Int32Array(cap * 4), this.#words);
    this.#prev = copied(new Int32Array(cap), this.#prev);
    this.#next = copied(new Int32Array(cap), this.#next);
    this.#expires = copied(new Float64Array(cap), this.#expires);
    this.#gens = copied(new Float64Array(cap), this.#gens);
    const ids = Buffer.alloc(cap * ID_BYTES);
    this.#ids.copy(ids);
    this.#ids = ids;
    this.#idLens = copied(new Uint8Array(cap), this.#idLens);
    // Pushed one by one: an Array made at a length of a million would be a dictionary.
    for (let r = old; r < cap; r++) this.#values.push(undefined);
    this.#cap = cap;
    let size = 16;
    while (size < cap * 2) size *= 2;
    if (size === this.#index.length) return;
    this.#index = new Int32Array(size);
    this.#mask = size - 1;
    // Every live row goes into the new index (rows on the free list are not in the list).
    for (let r = this.#head; r !== -1; r = this.#next[r]!) {
      let i = this.#words[r << 2]! & this.#mask;
      while (this.#index[i] !== 0) i = (i + 1) & this.#mask;
      this.#index[i] = r + 1;
    }
  }
}

/** Key ids are `key_` and 20 base62 characters (admin/keys.ts); room for some longer ones too. */
const ID_BYTES = 32;
const NOT_HELD = 255;

/** Characters `at`..`at+3` of a latin1 string as one little-endian 32-bit word. */
function word(id: string, at: number): number {
  return id.charCodeAt(at) | (id.charCodeAt(at + 1) << 8) | (id.charCodeAt(at + 2) << 16) | (id.charCodeAt(at + 3) << 24);
}

function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

function copied<T extends Int32Array | Float64Array | Uint8Array>(to: T, from: T): T {
  to.set(from);
  return to;
}
