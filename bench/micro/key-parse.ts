import { crc32 } from 'node:zlib';
import { base62Checksum, generateKey, parseKey } from '../../core/key-format.js';
import { measure, report } from './lib.js';

/**
 * Nanoseconds per key of the parse-key stage's check (DESIGN.md §2: shape and CRC32 checksum,
 * before any store lookup), on 1,024 distinct well-formed keys, and on the two ways a key is
 * refused: a wrong checksum (the whole check runs) and a wrong shape (refused early).
 *   node --import=tsx bench/micro/key-parse.ts
 */
const MASK = 1023;
const keys = Array.from({ length: MASK + 1 }, () => generateKey('gw', 'live'));
// The last checksum character changed: every character is valid base62, only the CRC disagrees.
// Flattened (as a header value is): a concatenation would be a rope that costs more to read.
const flat = (s: string) => Buffer.from(s).toString();
const badChecksum = keys.map((k) => flat(k.slice(0, -1) + (k.endsWith('0') ? '1' : '0')));
const badShape = keys.map((k) => flat(`gw-${k.slice(3)}`));
const bodies = keys.map((k) => k.slice(0, -6));

/**
 * A candidate for parseKey's checksum step, measured here so the proposal has numbers: the
 * CRC32 computed over the string's char codes in JavaScript (table-driven, no crossing into
 * C++ and no Buffer), and the six checksum characters compared by value instead of building
 * the expected checksum string. Same answers as base62Checksum (checked below).
 */
const CRC_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[n] = c;
}
const BASE62_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 62; i++) BASE62_VALUE['0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'.charCodeAt(i)] = i;
/** Key characters are ASCII (checked before), so a char code is its UTF-8 byte. */
function checksumMatches(key: string): boolean {
  const split = key.length - 6;
  let c = -1;
  for (let i = 0; i < split; i++) c = CRC_TABLE[(c ^ key.charCodeAt(i)) & 0xff]! ^ (c >>> 8);
  let crc = (c ^ -1) >>> 0;
  for (let i = key.length - 1; i >= split; i--) {
    const v = BASE62_VALUE[key.charCodeAt(i)]!;
    if (v < 0 || v !== crc % 62) return false;
    crc = Math.floor(crc / 62);
  }
  return crc === 0;
}
const IS_BASE62 = new Uint8Array(128);
for (let i = 0; i < 128; i++) IS_BASE62[i] = BASE62_VALUE[i]! >= 0 ? 1 : 0;
/** parseKey's shape checks, unchanged, with the candidate checksum step. */
function candidateParse(key: string, prefix: string): string | null {
  const p = prefix.length;
  if (key.length < p + 3 + 49 || key.length > p + 34 + 49) return null;
  if (!key.startsWith(prefix) || key.charCodeAt(p) !== 95) return null;
  const tagEnd = key.length - 49 - 1;
  if (key.charCodeAt(tagEnd) !== 95) return null;
  for (let i = p + 1; i < tagEnd; i++) {
    const c = key.charCodeAt(i);
    if (c < 97 || c > 122) return null;
  }
  if (tagEnd === p + 1) return null;
  for (let i = tagEnd + 1; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 128 || IS_BASE62[c] === 0) return null;
  }
  if (!checksumMatches(key)) return null;
  return key.slice(p + 1, tagEnd);
}
for (let i = 0; i <= MASK; i++) {
  if (candidateParse(keys[i]!, 'gw') !== parseKey(keys[i]!, 'gw') || candidateParse(badChecksum[i]!, 'gw') !== null) {
    throw new Error('the candidate parse disagrees with parseKey');
  }
  if (!checksumMatches(keys[i]!) || checksumMatches(badChecksum[i]!)) throw new Error('the candidate checksum disagrees with base62Checksum');
}

const cases = [
  measure('parseKey, valid key (shape + checksum)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += parseKey(keys[i & MASK]!, 'gw')!.length;
    return s;
  }),
  measure('parseKey, wrong checksum (refused last)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (parseKey(badChecksum[i & MASK]!, 'gw') === null) s++;
    return s;
  }),
  measure('parseKey, wrong shape (refused first)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (parseKey(badShape[i & MASK]!, 'gw') === null) s++;
    return s;
  }),
  measure('  of which base62Checksum(body)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += base62Checksum(bodies[i & MASK]!).charCodeAt(5);
    return s;
  }),
  measure('  of which zlib.crc32(body)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s ^= crc32(bodies[i & MASK]!);
    return s;
  }),
  measure('candidate parseKey: JS table CRC32, checksum compared in place (valid key)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += candidateParse(keys[i & MASK]!, 'gw')!.length;
    return s;
  }),
  measure('  of which the candidate checksum step', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (checksumMatches(keys[i & MASK]!)) s++;
    return s;
  }),
];
report('key-parse: core/key-format.ts parseKey (59-character gw_live_ keys)', cases, [
  'zlib.crc32 on a string crosses into C++ and encodes the string first; base62Checksum then builds the expected checksum string by concatenation.',
  'The candidate rows are not Keygate code: a proposal for core/key-format.ts, checked here to give the same answers on every key.',
]);
