import { crc32 } from 'node:zlib';
import { base62Checksum, generateKey, parseKey } from '../../core/key-format.js';
import { measure, report } from './lib.js';

/**
 * Nanoseconds per key of the parse-key stage's check (docs/architecture.md, Key format: shape
 * and CRC32 checksum, before any store lookup), on 1,024 distinct well-formed keys, and on the
 * two ways a key is refused: a wrong checksum (the whole check runs) and a wrong shape
 * (refused early).
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

/** The checksum step as parseKey did it until 2026-11-29: zlib.crc32, then the expected checksum built as a string. */
function previousChecksumStep(key: string): boolean {
  const split = key.length - 6;
  return base62Checksum(key.slice(0, split)) === key.slice(split);
}
for (let i = 0; i <= MASK; i++) {
  if (parseKey(keys[i]!, 'gw') !== 'live' || parseKey(badChecksum[i]!, 'gw') !== null || !previousChecksumStep(keys[i]!) || previousChecksumStep(badChecksum[i]!)) {
    throw new Error('parseKey and the previous checksum step disagree');
  }
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
  measure('base62Checksum(body), as key generation computes it', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += base62Checksum(bodies[i & MASK]!).charCodeAt(5);
    return s;
  }),
  measure('zlib.crc32(body) alone', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s ^= crc32(bodies[i & MASK]!);
    return s;
  }),
  measure('previous checksum step: zlib.crc32, then the checksum string rebuilt and compared', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (previousChecksumStep(keys[i & MASK]!)) s++;
    return s;
  }),
];
report('key-parse: core/key-format.ts parseKey (59-character gw_live_ keys)', cases, [
  'parseKey computes the CRC32 over the char codes in JavaScript and reads the six checksum characters by value; the previous step (zlib.crc32, which crosses into C++ and encodes the string first, then the checksum string rebuilt by concatenation) is measured for comparison.',
]);
