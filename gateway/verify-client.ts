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

/** Keygate's answer, valid or not. */
export interface Verification {
  valid: boolean;
  /** The error code a proxied request would have been refused with (docs/errors.md); null when valid. */
  code: string | null;
  /** For `invalid_token`: `malformed`, `not_found`, `expired`, `revoked`, `suspended`, `pending`, `wrong_environment`. */
  reason: string | null;
  message: string | null;
  key_id: string | null;
  environment: string | null;
  scopes: string[] | null;
  application_id: string | null;
  ratelimit: { limit: number; remaining: number; reset: number } | null;
  request_id: string;
  /** The refusal's own fields: `retry_after`, `missing_scopes`, `client_ip`, `api`. */
  [extra: string]: unknown;
}

export interface VerifierOptions {
  /** The status listener's base URL, e.g. `http://127.0.0.1:8090`. */
  url: string;
  /** `status_listener.verify.token`; sent as X-Keygate-Verify-Token. */
  token?: string;
  /**
   * Keep valid answers for `ttlMs` (at most `max` of them). A cached answer spends no token and
   * records no usage: keep it short. Refusals are never cached. Off by default.
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

/**
 * The cache's key for a request: SHA-256 of the API key (never the key itself, which then lives
 * only as long as the caller holds it) and the rest of the request, which the answer depends on.
 */
export function cacheKeyOf(request: VerifyRequest): string {
  const { key, ...rest } = request;
  return `${hash('sha256', key, 'hex')} ${JSON.stringify([rest.api, rest.method?.toUpperCase(), rest.path, rest.host, rest.ip, rest.scopes, rest.cost, rest.environment])}`;
}

export function createVerifier(options: VerifierOptions): Verifier {
  const base = new URL(options.url);
  const pool = new Pool(base.origin, { connections: 16 });
  const timeoutMs = options.timeoutMs ?? 5_000;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.token !== undefined) headers['x-keygate-verify-token'] = options.token;
  const path = `${base.pathname.replace(/\/+$/, '')}/v1/keys/verify`;
  const cache =
    options.cache === undefined
      ? null
      : new LRUCache<string, Verification>({ max: options.cache.max, ttl: options.cache.ttlMs, ...(options.clock ? { perf: options.clock, ttlResolution: 0 } : {}) });

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
    return body as Verification;
  }

  return {
    async verify(request) {
      if (cache === null) return call(request);
      const id = cacheKeyOf(request);
      const hit = cache.get(id);
      if (hit !== undefined) return hit;
      const answer = await call(request);
      if (answer.valid) cache.set(id, answer);
      return answer;
    },
    close() {
      return pool.close();
    },
  };
}
