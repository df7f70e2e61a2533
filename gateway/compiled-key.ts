import { compilePolicy, type LimitPolicy } from '../core/limiter.js';
import { parseCidr, type Cidr } from '../core/ip.js';
import type { KeyRecord } from '../core/record.js';

/**
 * A key record turned, once per cache fill, into what the hot path reads: sets instead of
 * arrays, parsed CIDRs, times as numbers, the rate-limit policy resolved.
 */
export interface CompiledKey {
  readonly id: string;
  readonly environment: string;
  /**
   * What limits the key in time, or its suspension; null for a key with none of these (most
   * keys), which then costs no object and no check.
   */
  readonly life: KeyLife | null;
  readonly apis: ReadonlySet<string> | null;
  readonly scopes: ReadonlySet<string>;
  readonly scopesHeader: string;
  /** Null when the key has no allowlist; an entry that fails to parse matches nothing. */
  readonly cidrs: readonly Cidr[] | null;
  readonly application: string | null;
  readonly tenant: string | null;
  readonly policy: LimitPolicy;
  /** The key cache's generation when the record was read (gateway/key-cache.ts). */
  readonly gen: number;
}

/**
 * A key's times and suspension. Times that do not apply are null rather than ±Infinity: a
 * field that may hold null keeps V8 from boxing a number in every object (16 bytes each).
 */
export interface KeyLife {
  /** From this time on the key is revoked: at once, or when its rotation grace ends. */
  readonly revokedAt: number | null;
  readonly expiresAt: number | null;
  readonly notBefore: number | null;
  readonly suspended: boolean;
  /** `Sunset` header value while the key is in a rotation grace; null otherwise. */
  readonly sunset: string | null;
}

/**
 * Equal parts of different keys are one object: most keys share their scope set, API list,
 * allowlist and limit with many others, and a cache of a million keys should not hold a
 * million copies (bench/scaling/cache-memory.ts measured 960 → 192 bytes a compiled key).
 * Parts are never changed once built. Past `max` distinct values new ones are simply not
 * shared, so the table stays bounded whatever the keys hold.
 */
class Shared<T> {
  readonly #values = new Map<string, T>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  get(id: string, make: () => T): T {
    let v = this.#values.get(id);
    if (v === undefined) {
      v = make();
      if (this.#values.size < this.#max) this.#values.set(id, v);
    }
    return v;
  }
}

const SEP = '\u0000';
const scopeSets = new Shared<ReadonlySet<string>>(10_000);
const apiSets = new Shared<ReadonlySet<string>>(10_000);
const allowlists = new Shared<readonly Cidr[]>(10_000);
const policies = new Shared<LimitPolicy>(10_000);
const scopeHeaders = new Shared<string>(10_000);
/** Environments, tenants and applications: each record read from the store brings its own copy. */
const names = new Shared<string>(10_000);
const name = (s: string | null): string | null => (s === null ? null : names.get(s, () => s));

export function compileKey(rec: KeyRecord, plans: ReadonlyMap<string, LimitPolicy>, gen = 0): CompiledKey {
  const plan = plans.get(rec.plan ?? 'default') ?? plans.get('default')!;
  const allowlist = rec.ip_allowlist;
  const limit = rec.rate_limit;
  const scopesId = rec.scopes.join(SEP);
  return build(
    rec.id,
    name(rec.environment)!,
    lifeOf(rec),
    rec.apis ? apiSets.get(rec.apis.join(SEP), () => new Set(rec.apis)) : null,
    scopeSets.get(scopesId, () => new Set(rec.scopes)),
    scopeHeaders.get(scopesId, () => rec.scopes.join(',')),
    // An entry that fails to parse is left out, so it matches nothing.
    allowlist && allowlist.length > 0 ? allowlists.get(allowlist.join(SEP), () => parseAllowlist(allowlist)) : null,
    name(rec.application),
    name(rec.tenant),
    limit
      ? policies.get(`${limit.limit}/${limit.window_seconds}/${limit.burst}/${plan.onStoreFailure}`, () => compilePolicy('key', limit, plan.onStoreFailure))
      : plan,
    gen,
  );
}

function lifeOf(rec: KeyRecord): KeyLife | null {
  const { revoked_at: revoked, grace_ends_at: graceEnds, expires_at: expiresAt, not_before: notBefore } = rec;
  const suspended = rec.suspended_at !== null || rec.app_suspended_at !== null;
  if (revoked === null && graceEnds === null && expiresAt === null && notBefore === null && !suspended) return null;
  return Object.freeze({
    revokedAt: revoked === null ? graceEnds : graceEnds === null ? revoked : Math.min(revoked, graceEnds),
    expiresAt,
    notBefore,
    suspended,
    sunset: graceEnds !== null && revoked === null ? new Date(graceEnds).toUTCString() : null,
  });
}

/** The same key stamped with another cache generation (a stale entry served again). */
export function withGen(k: CompiledKey, gen: number): CompiledKey {
  return build(k.id, k.environment, k.life, k.apis, k.scopes, k.scopesHeader, k.cidrs, k.application, k.tenant, k.policy, gen);
}

/** Every compiled key is made here, so that all share one V8 shape and the hot path's reads stay monomorphic. */
function build(
  id: string,
  environment: string,
  life: KeyLife | null,
  apis: ReadonlySet<string> | null,
  scopes: ReadonlySet<string>,
  scopesHeader: string,
  cidrs: readonly Cidr[] | null,
  application: string | null,
  tenant: string | null,
  policy: LimitPolicy,
  gen: number,
): CompiledKey {
  return Object.freeze({ id, environment, life, apis, scopes, scopesHeader, cidrs, application, tenant, policy, gen });
}

function parseAllowlist(entries: readonly string[]): readonly Cidr[] {
  const cidrs: Cidr[] = [];
  for (const entry of entries) {
    const parsed = parseCidr(entry);
    if (parsed) cidrs.push(parsed);
  }
  return Object.freeze(cidrs);
}
