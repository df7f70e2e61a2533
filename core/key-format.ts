import { crc32 } from 'node:zlib';
import { randomBytes } from 'node:crypto';

/** The base62 alphabet of docs/architecture.md, Key format, in its order. */
export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const SECRET_LENGTH = 43;
export const CHECKSUM_LENGTH = 6;
const TAIL_LENGTH = SECRET_LENGTH + CHECKSUM_LENGTH;

const IS_BASE62 = new Uint8Array(128);
for (let i = 0; i < BASE62.length; i++) IS_BASE62[BASE62.charCodeAt(i)] = 1;
const BASE62_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE62.length; i++) BASE62_VALUE[BASE62.charCodeAt(i)] = i;
/** CRC-32 (IEEE 802.3, zlib's) table. */
const CRC_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[n] = c;
}

/** `count` base62 characters drawn uniformly from the OS CSPRNG (rejection sampling, no modulo bias). */
export function randomBase62(count: number): string {
  let out = '';
  while (out.length < count) {
    const bytes = randomBytes(count + 16);
    for (let i = 0; i < bytes.length && out.length < count; i++) {
      const b = bytes[i]!;
      if (b < 248) out += BASE62[b % 62];
    }
  }
  return out;
}

export function base62Checksum(body: string): string {
  let n = crc32(body);
  let s = '';
  do {
    s = BASE62[n % 62] + s;
    n = Math.floor(n / 62);
  } while (n > 0);
  return s.padStart(CHECKSUM_LENGTH, '0');
}

export function generateKey(prefix: string, envTag: string): string {
  const body = `${prefix}_${envTag}_${randomBase62(SECRET_LENGTH)}`;
  return body + base62Checksum(body);
}

/**
 * Checks shape and checksum without touching any store. Returns the environment tag, or
 * null when the key is malformed. `prefix` is the configured key prefix.
 */
export function parseKey(key: string, prefix: string): string | null {
  const p = prefix.length;
  if (key.length < p + 3 + TAIL_LENGTH || key.length > p + 34 + TAIL_LENGTH) return null;
  if (!key.startsWith(prefix) || key.charCodeAt(p) !== 95 /* _ */) return null;
  const tagEnd = key.length - TAIL_LENGTH - 1;
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

/**
 * Whether the key's last six characters are base62Checksum of the rest, computed in place:
 * the CRC-32 over the char codes in JavaScript (a key checked this far is ASCII, so a char
 * code is its UTF-8 byte; zlib.crc32 would first encode the string in C++) and the checksum
 * read by value rather than rebuilt as a string. bench/micro/key-parse.ts measures both.
 */
function checksumMatches(key: string): boolean {
  const split = key.length - CHECKSUM_LENGTH;
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

/** Display parts kept with the record: prefix, env and 3 secret chars; the last 3 chars. */
export function keyDisplayParts(key: string): { start: string; end: string } {
  const secretStart = key.length - TAIL_LENGTH;
  return { start: key.slice(0, secretStart + 3), end: key.slice(-3) };
}

export function maskKey(start: string, end: string): string {
  return `${start}...${end}`;
}
