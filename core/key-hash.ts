import { createHmac, hash } from 'node:crypto';

/**
 * How a record's lookup id was derived, remembered with the record so that the pepper can
 * be rotated: `sha256`, or `hmac-sha256:<pepper id>`.
 */
export type HashKind = string;

export interface Pepper {
  id: string;
  secret: string;
}

/**
 * Derives lookup ids from plaintext keys. `crypto.hash` measured 0.27 µs a key here against
 * 1.08 µs for @noble/hashes, so the one-shot node:crypto call is used on the hot path.
 */
export class KeyHasher {
  readonly current: Pepper | null;
  readonly #previous: readonly Pepper[];

  constructor(current: Pepper | null, previous: readonly Pepper[] = []) {
    this.current = current;
    this.#previous = previous;
  }

  get currentKind(): HashKind {
    return this.current ? `hmac-sha256:${this.current.id}` : 'sha256';
  }

  /** The lookup id under the current scheme, in hex: as the store indexes records. */
  hash(key: string): string {
    return this.current ? hmac(this.current.secret, key) : hash('sha256', key, 'hex');
  }

  /**
   * The id the key cache holds a key by: the first CACHE_ID_BYTES of the lookup id's digest,
   * as latin1 characters (Node's 'binary' encoding): a string of 32 bytes where the hex would
   * take 80, in each of a million cache entries, and cheaper to make (no hex expansion) and to
   * look up.
   *
   * The string returned may be a slice of the whole digest (V8 keeps a substring of 13
   * characters or more as a view of its parent): fine for a lookup, but whatever keeps the id
   * keeps `ownCacheId(id)`, a copy of its own, or it holds the whole digest as well.
   */
  cacheId(key: string): string {
    const digest = this.current ? createHmac('sha256', this.current.secret).update(key).digest('binary') : hash('sha256', key, 'binary');
    return digest.slice(0, CACHE_ID_BYTES);
  }

  /** Lookup ids under older schemes, tried only when the current one finds nothing. */
  fallbacks(key: string): string[] {
    if (!this.current) return [];
    const out = this.#previous.map((p) => hmac(p.secret, key));
    out.push(hash('sha256', key, 'hex'));
    return out;
  }
}

function hmac(secret: string, key: string): string {
  return createHmac('sha256', secret).update(key).digest('hex');
}

/**
 * How much of a lookup id's SHA-256 (or HMAC-SHA-256) digest a cache id keeps: 128 bits. Two
 * keys the cache would confuse must agree in those bits; for someone to make a key that
 * passes as one of a million cached keys takes about 2^108 hashes (a second preimage of a
 * 128-bit digest against 2^20 targets), and two real keys agree by chance with odds of about
 * 2^-89 at a million keys. The store and its invalidations keep the whole digest.
 */
export const CACHE_ID_BYTES = 16;

/** The store's hex lookup id (a key record's `hash`) as the cache id of its key; a flat string. */
export function cacheIdOfHex(hex: string): string {
  return Buffer.from(hex.slice(0, 2 * CACHE_ID_BYTES), 'hex').toString('latin1');
}

/** A cache id as a string of its own (not a view of the digest it was cut from), to keep. */
export function ownCacheId(id: string): string {
  return Buffer.from(id, 'latin1').toString('latin1');
}
