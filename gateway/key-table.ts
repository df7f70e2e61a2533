import { MAX_CACHED_KEYS } from '../config/schema.js';

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
 * hash. The rows for `max` keys are reserved at once and take memory as they are used (the index,
 * 8 bytes a key of `max`, is touched at random and so is taken whole).
 *
 * Behaves as the lru-cache configuration it replaces: `get` of a fresh entry makes it the most
 * recent; a stale entry is neither returned nor moved nor deleted (it is what a store outage
 * serves, through `peek`); `set` of a new id at `max` entries evicts the least recent one,
 * stale or not; an entry is stale once more than its TTL has passed since it was set.
 */
export class KeyTable<V> {
  readonly max: number;
  /**
   * The rows, ROW bytes each (layout at ROW), seen as 32-bit words, doubles and bytes. All
   * `max` rows are allocated at once: the memory comes zeroed from the system and takes no
   * RSS until a row is first written, and rows are used in order, so a table holding N keys
   * takes N rows of RSS. Growing by doubling instead held the old rows and the new together
   * until a full GC freed the old (a million keys read 317 MB at peak that way).
   */
  #rows = new ArrayBuffer(0);
  #i32 = new Int32Array(0);
  #u32 = new Uint32Array(0);
  #f64 = new Float64Array(0);
  #bytes = Buffer.alloc(0);
  #values: (V | undefined)[] = [];
  /** Row + 1 at each index position, 0 where free. */
  #index = new Int32Array(0);
  #mask = 0;
  #head = -1;
  #tail = -1;
  #size = 0;
  /** Rows freed by a delete; rows never used start at #used. */
  #free: number[] = [];
  #used = 0;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new Error('KeyTable: max must be a positive integer');
    if (max > MAX_CACHED_KEYS) throw new Error(`KeyTable: max must be at most ${MAX_CACHED_KEYS} (its rows are one buffer of at most 4 GiB)`);
    this.max = max;
    this.#allocate(max);
  }

  get size(): number {
    return this.#size;
  }

  /** Whether `set` keeps this key id in its row (else the caller keeps it in the value). */
  static holds(keyId: string): boolean {
    return keyId.length <= ID_BYTES && isLatin1(keyId);
  }

  /** The row holding `id`, or -1. */
  find(id: string): number {
    const w0 = word(id, 0);
    const mask = this.#mask;
    const index = this.#index;
    const i32 = this.#i32;
    let i = w0 & mask;
    for (;;) {
      const r = index[i]! - 1;
      if (r < 0) return -1;
      const o = r * ROW_I32;
      if (i32[o] === w0 && i32[o + 1] === word(id, 4) && i32[o + 2] === word(id, 8) && i32[o + 3] === word(id, 12)) return r;
      i = (i + 1) & mask;
    }
  }

  isStale(row: number, now: number): boolean {
    return now > this.#f64[row * ROW_F64 + EXPIRES_F64]!;
  }

  gen(row: number): number {
    return this.#u32[row * ROW_I32 + GEN_I32]!;
  }

  value(row: number): V {
    return this.#values[row]!;
  }

  /** The key id held in `row`, or null when it is not held here (too long, or not latin1). */
  keyId(row: number): string | null {
    const o = row * ROW;
    const len = this.#bytes[o + ID_LEN]!;
    if (len === NOT_HELD) return null;
    return this.#bytes.toString('latin1', o + ID, o + ID + len);
  }

  /** Makes `row` the most recently used. */
  touch(row: number): void {
    if (row === this.#tail) return;
    this.#unlink(row);
    this.#append(row);
  }

  /**
   * Sets the entry of `id` (a new row, or its row again), most recent, stale after `ttl` ms
   * from `now`; a new id at `max` entries evicts the least recent entry first. `gen` is kept
   * as an unsigned 32-bit number (a generation past that never matches: a miss, never a
   * wrong answer).
   */
  set(id: string, value: V, keyId: string, gen: number, now: number, ttl: number): number {
    let row = this.find(id);
    if (row === -1) {
      if (this.#size >= this.max) this.#deleteRow(this.#head);
      row = this.#newRow();
      const i32 = this.#i32;
      const o = row * ROW_I32;
      i32[o] = word(id, 0);
      i32[o + 1] = word(id, 4);
      i32[o + 2] = word(id, 8);
      i32[o + 3] = word(id, 12);
      let i = i32[o]! & this.#mask;
      while (this.#index[i] !== 0) i = (i + 1) & this.#mask;
      this.#index[i] = row + 1;
      this.#size++;
      this.#append(row);
    } else {
      this.touch(row);
    }
    this.#values[row] = value;
    this.#u32[row * ROW_I32 + GEN_I32] = gen;
    this.#f64[row * ROW_F64 + EXPIRES_F64] = now + ttl;
    const o = row * ROW;
    if (KeyTable.holds(keyId)) {
      this.#bytes.write(keyId, o + ID, keyId.length, 'latin1');
      this.#bytes[o + ID_LEN] = keyId.length;
    } else {
      this.#bytes[o + ID_LEN] = NOT_HELD;
    }
    return row;
  }

  /** Removes the entry of `id`; false when there was none. */
  delete(id: string): boolean {
    const row = this.find(id);
    if (row === -1) return false;
    this.#deleteRow(row);
    return true;
  }

  #newRow(): number {
    if (this.#free.length > 0) return this.#free.pop()!;
    // Pushed one by one: an Array made at a length of a million would be a dictionary.
    this.#values.push(undefined);
    return this.#used++;
  }

  #deleteRow(row: number): void {
    const mask = this.#mask;
    const index = this.#index;
    const i32 = this.#i32;
    let i = i32[row * ROW_I32]! & mask;
    while (index[i] !== row + 1) i = (i + 1) & mask;
    // Backward shift: later entries of the run move into the hole when their home allows it.
    index[i] = 0;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const r = index[j]! - 1;
      if (r < 0) break;
      const home = i32[r * ROW_I32]! & mask;
      // The entry at j stays unless the hole at i lies between its home and j.
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
    const i32 = this.#i32;
    const p = i32[row * ROW_I32 + PREV_I32]!;
    const n = i32[row * ROW_I32 + NEXT_I32]!;
    if (p === -1) this.#head = n;
    else i32[p * ROW_I32 + NEXT_I32] = n;
    if (n === -1) this.#tail = p;
    else i32[n * ROW_I32 + PREV_I32] = p;
  }

  #append(row: number): void {
    const i32 = this.#i32;
    i32[row * ROW_I32 + PREV_I32] = this.#tail;
    i32[row * ROW_I32 + NEXT_I32] = -1;
    if (this.#tail === -1) this.#head = row;
    else i32[this.#tail * ROW_I32 + NEXT_I32] = row;
    this.#tail = row;
  }

  /** Rows for `max` entries, and an index at most half full for them. */
  #allocate(max: number): void {
    const rows = new ArrayBuffer(max * ROW);
    this.#rows = rows;
    this.#i32 = new Int32Array(rows);
    this.#u32 = new Uint32Array(rows);
    this.#f64 = new Float64Array(rows);
    this.#bytes = Buffer.from(rows);
    let size = 16;
    while (size < max * 2) size *= 2;
    this.#index = new Int32Array(size);
    this.#mask = size - 1;
  }
}

/**
 * A row: one 64-byte cache line, so that a lookup reads one line besides the index. Bytes 0-15
 * the cache id (4 words), 16 the previous and 20 the next row in recency order (-1: none), 24
 * the generation (uint32), 28 the key id's length (NOT_HELD: not held here), 32 the expiry
 * (float64, ms), 40-63 the key id's latin1 bytes.
 */
const ROW = 64;
const ROW_I32 = ROW / 4;
const ROW_F64 = ROW / 8;
const PREV_I32 = 4;
const NEXT_I32 = 5;
const GEN_I32 = 6;
const ID_LEN = 28;
const EXPIRES_F64 = 4;
const ID = 40;
/** Key ids are `key_` and 20 base62 characters (admin/keys.ts); a longer one is kept in the value. */
const ID_BYTES = ROW - ID;
const NOT_HELD = 255;

/** Characters `at`..`at+3` of a latin1 string as one little-endian 32-bit word. */
function word(id: string, at: number): number {
  return id.charCodeAt(at) | (id.charCodeAt(at + 1) << 8) | (id.charCodeAt(at + 2) << 16) | (id.charCodeAt(at + 3) << 24);
}

function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}
