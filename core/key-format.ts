import { crc32 } from 'node:zlib';
import { randomBytes } from 'node:crypto';

/** The base62 alphabet of DESIGN.md §2, in its order. */
export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const SECRET_LENGTH = 43;
export const CHECKSUM_LENGTH = 6;
const TAIL_LENGTH = SECRET_LENGTH + CHECKSUM_LENGTH;

const IS_BASE62 = new Uint8Array(128);
for (let i = 0; i < BASE62.length; i++) IS_BASE62[BASE62.charCodeAt(i)] = 1;

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
  const split = key.length - CHECKSUM_LENGTH;
  if (base62Checksum(key.slice(0, split)) !== key.slice(split)) return null;
  return key.slice(p + 1, tagEnd);
}

/** Display parts kept with the record: prefix, env and 3 secret chars; the last 3 chars. */
export function keyDisplayParts(key: string): { start: string; end: string } {
  const secretStart = key.length - TAIL_LENGTH;
  return { start: key.slice(0, secretStart + 3), end: key.slice(-3) };
}

export function maskKey(start: string, end: string): string {
  return `${start}...${end}`;
}
