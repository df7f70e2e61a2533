import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { Pool } from 'undici';

/*
 * The verify API's client, `keygate/verify` (docs/verify.md, "The TypeScript client"): for a
 * service that checks API keys itself, against Keygate's POST /v1/keys/verify. It imports
 * nothing of the gateway, so a service that uses it loads none of Keygate's server code.
 */

/** What to verify: the key, and optionally the request it comes with (docs/verify.md). */
export interface VerifyRequest {
  key: string;
  /** An API's name (`apis[].name`): the key must be allowed to call it. */
  api?: string;
  /** The request's method and path: matched against the APIs' routes, for their scopes and limits. */
  method?: string;
  path?: string;
  /** For APIs that are told apart by `host`. */
  host?: string;
  /** The client's address, for the key's IP allowlist; default: the caller's own. */
  ip?: string;
  /** Scopes the key must hold, besides those of the route. */
  scopes?: string[];
  /** Quota units this request spends. */
  cost?: number;
  /** The environment the key must belong to; default: the verify API's. */
  environment?: string;
}

/** Keygate's answer, valid or not; deep-frozen, since a cached one is handed to every caller. */
export interface Verification {
  readonly valid: boolean;
  /** The error code a proxied request would have been refused with (docs/errors.md); null when valid. */
  readonly code: string | null;
  /** For `invalid_token`: `malformed`, `not_found`, `expired`, `revoked`, `suspended`, `pending`, `wrong_environment`. */
  readonly reason: string | null;
  readonly message: string | null;
  readonly key_id: string | null;
  readonly environment: string | null;
  readonly scopes: readonly string[] | null;
  readonly application_id: string | null;
  readonly ratelimit: { readonly limit: number; readonly remaining: number; readonly reset: number } | null;
  /** The key's quota or credits after this call (docs/quotas.md); null for a key without. */
  readonly quota: { readonly limit: number; readonly remaining: number; readonly reset: number | null } | null;
  /** The quota or credits the key's application shares, after this call; null for none. */
  readonly app_quota?: { readonly limit: number; readonly remaining: number; readonly reset: number | null } | null;
  /** The key or its application has a quota or credits (counted in this call or not): never cached. */
  readonly metered?: boolean;
  readonly request_id: string;
  /** The refusal's own fields: `retry_after`, `missing_scopes`, `client_ip`, `api`. */
  readonly [extra: string]: unknown;
}

export interface VerifierOptions {
  /** The status listener's base URL, e.g. `http://127.0.0.1:8090`. */
  url: string;
  /** `status_listener.verify.token`; sent as X-Keygate-Verify-Token. */
  token?: string;
  /**
   * Keep valid answers for `ttlMs` (above 0, at most MAX_CACHE_TTL_MS, 60 s), at most `max` of
   * them. A cached answer spends no token and records no usage, and a key revoked meanwhile
   * stays valid until its answers expire: keep it short. A key's cached answers serve at most
   * the rate-limit tokens Keygate last said it had left; refusals, answers with no token left
   * and answers that carry a quota are never cached. Off by default.
   */
  cache?: { ttlMs: number; max: number };
  /** A call that takes longer fails with a VerifyError (default 5 s). */
  timeoutMs?: number;
  /** Milliseconds, for the cache's expiry; tests drive it. Default: performance.now. */
  clock?: { now(): number };
}

export interface Verifier {
  verify(request: VerifyRequest): Promise<Verification>;
  /** Closes the connections to Keygate. */
  close(): Promise<void>;
}

/** Keygate refused the call itself (a wrong token, an invalid body) or could not be reached. */
export class VerifyError extends Error {
  override readonly name = 'VerifyError';
  /** The HTTP status Keygate answered with; 0 when it could not be reached. */
  readonly status: number;
  /** Keygate's error code (`unauthorized`, `validation_failed`, ...), or `unreachable`. */
  readonly code: string;
  readonly body: unknown;
  constructor(status: number, code: string, message: string, body?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** The longest `cache.ttlMs`: how long a revoked key may still be answered valid from the cache. */
export const MAX_CACHE_TTL_MS = 60_000;

/**
 * The cache's key for a request: SHA-256 of the API key (never the key itself, which then lives
 * only as long as the caller holds it) and the rest of the request, which the answer depends on.
 */
export function cacheKeyOf(request: VerifyRequest): string {
  const { key, ...rest } = request;
  return `${hash('sha256', key, 'hex')} ${JSON.stringify([rest.api, rest.method?.toUpperCase(), rest.path, rest.host, rest.ip, rest.scopes, rest.cost, rest.environment])}`;
}

/** A cached answer and how many more callers it may serve: its rate limit's tokens left. */
interface Entry {
  readonly answer: Verification;
  left: number;
}

/**
 * Per key (by its hash), the cache's hits that Keygate never saw: each answer from Keygate may
 * be served again only while its `remaining` exceeds them, so a key's hits, over all its entries,
 * stay within the tokens it had left. Kept until its bucket would be full again.
 */
interface Spent {
  hits: number;
  left: number;
  until: number;
}

function checkCache(cache: { ttlMs: number; max: number }): void {
  const { ttlMs, max } = cache;
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > MAX_CACHE_TTL_MS) {
    throw new RangeError(
      `cache.ttlMs must be milliseconds above 0 and at most ${MAX_CACHE_TTL_MS}, got ${ttlMs}: a cached answer outlives a revocation for that long (leave cache out to turn it off)`,
    );
  }
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`cache.max must be a whole number of answers, 1 or more, got ${max}`);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export function createVerifier(options: VerifierOptions): Verifier {
  if (options.cache !== undefined) checkCache(options.cache);
  const base = new URL(options.url);
  const pool = new Pool(base.origin, { connections: 16 });
  const timeoutMs = options.timeoutMs ?? 5_000;
  const clock = options.clock ?? performance;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.token !== undefined) headers['x-keygate-verify-token'] = options.token;
  const path = `${base.pathname.replace(/\/+$/, '')}/v1/keys/verify`;
  const cache =
    options.cache === undefined
      ? null
      : {
          ttlMs: options.cache.ttlMs,
          entries: new LRUCache<string, Entry>({ max: options.cache.max, ttl: options.cache.ttlMs, ...(options.clock ? { perf: options.clock, ttlResolution: 0 } : {}) }),
          spent: new LRUCache<string, Spent>({ max: options.cache.max }),
        };

  async function call(request: VerifyRequest): Promise<Verification> {
    let res;
    try {
      res = await pool.request({ method: 'POST', path, headers, body: JSON.stringify(request), headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    } catch (err) {
      throw new VerifyError(0, 'unreachable', `Keygate could not be reached at ${base.origin}: ${(err as Error).message}`);
    }
    const text = await res.body.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new VerifyError(res.statusCode, 'bad_response', `Keygate answered ${res.statusCode} without JSON`);
    }
    if (res.statusCode !== 200) {
      const b = body as { error?: string; message?: string };
      throw new VerifyError(res.statusCode, b.error ?? 'bad_response', b.message ?? `Keygate answered ${res.statusCode}`, body);
    }
    return deepFreeze(body as Verification);
  }

  return {
    async verify(request) {
      if (cache === null) return call(request);
      const id = cacheKeyOf(request);
      const keyHash = id.slice(0, id.indexOf(' '));
      const hit = cache.entries.get(id);
      if (hit !== undefined) {
        const spent = cache.spent.get(keyHash);
        if (spent !== undefined && spent.until > clock.now() && spent.left > 0) {
          spent.hits++;
          spent.left--;
          if (--hit.left === 0) cache.entries.delete(id);
          return hit.answer;
        }
        cache.entries.delete(id);
      }
      const answer = await call(request);
      // A quota spend must reach Keygate each time; so must an answer with no token left.
      const remaining = answer.ratelimit?.remaining ?? 0;
      if (!answer.valid || answer.metered === true || answer.quota != null || answer.app_quota != null || remaining <= 0) return answer;
      const now = clock.now();
      let spent = cache.spent.get(keyHash);
      if (spent === undefined || spent.until <= now) {
        spent = { hits: 0, left: 0, until: 0 };
        cache.spent.set(keyHash, spent);
      }
      spent.until = Math.max(spent.until, now + Math.max(cache.ttlMs, (answer.ratelimit?.reset ?? 0) * 1000));
      spent.left = remaining - spent.hits;
      if (spent.left > 0) cache.entries.set(id, { answer, left: remaining });
      return answer;
    },
    close() {
      return pool.close();
    },
  };
}
