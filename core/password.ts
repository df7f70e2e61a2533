import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Passwords of dashboard users, as `keygate hash-password` makes them and `dashboard.users[].
 * password_hash` holds them: scrypt (RFC 7914) from node:crypto, in the PHC string format
 *
 *   $scrypt$ln=15,r=8,p=1$<salt, base64 without padding>$<32-byte key, base64 without padding>
 *
 * ln is log2 of the cost N. Verification re-derives the key with the parameters the string
 * names and compares in constant time; a string that does not parse never matches.
 */

const DEFAULT = { ln: 15, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** Bounds on what a configured hash may ask for, so that a bad string cannot exhaust memory or CPU. */
const MAX_LN = 20;
const MAX_R = 32;
const MAX_P = 16;

const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,88})\$([A-Za-z0-9+/]{43})$/;

export interface ScryptParams {
  ln: number;
  r: number;
  p: number;
}

function derive(password: string, salt: Buffer, { ln, r, p }: ScryptParams): Promise<Buffer> {
  const N = 2 ** ln;
  return new Promise((ok, fail) =>
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? fail(err) : ok(key))),
  );
}

const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

/** A new hash of `password` with a random salt. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, params);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

/** The parameters of a hash string, or null when it is not one this module reads. */
export function parsePasswordHash(hash: string): (ScryptParams & { salt: Buffer; key: Buffer }) | null {
  const m = PHC.exec(hash);
  if (!m) return null;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (ln < 10 || ln > MAX_LN || r < 1 || r > MAX_R || p < 1 || p > MAX_P) return null;
  const key = Buffer.from(m[5]!, 'base64');
  if (key.length !== KEY_BYTES) return null;
  return { ln, r, p, salt: Buffer.from(m[4]!, 'base64'), key };
}

/** True when `password` is the one `hash` was made from; compared in constant time. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const parsed = parsePasswordHash(hash);
  if (parsed === null) return false;
  const key = await derive(password, parsed.salt, parsed);
  return timingSafeEqual(key, parsed.key);
}
