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
  /** From this time on the key is revoked: at once, or when its rotation grace ends. */
  readonly revokedAt: number;
  readonly suspended: boolean;
  /** `Sunset` header value while the key is in a rotation grace; null otherwise. */
  readonly sunset: string | null;
  readonly expiresAt: number;
  readonly notBefore: number;
  readonly apis: ReadonlySet<string> | null;
  readonly scopes: ReadonlySet<string>;
  readonly scopesHeader: string;
  /** Null when the key has no allowlist; an entry that fails to parse matches nothing. */
  readonly cidrs: readonly Cidr[] | null;
  readonly application: string | null;
  readonly tenant: string | null;
  readonly policy: LimitPolicy;
}

/**
 * Equal parts of different keys are one object: most keys share their scope set, API list,
 * allowlist and limit with many others, and a cache of a million keys should not hold a
 * million copies (measured by bench/scaling/cache-memory.ts: 960 → 224 bytes a compiled key).
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

export function compileKey(rec: KeyRecord, plans: ReadonlyMap<string, LimitPolicy>): CompiledKey {
  const plan = plans.get(rec.plan ?? 'default') ?? plans.get('default')!;
  const allowlist = rec.ip_allowlist;
  const limit = rec.rate_limit;
  return Object.freeze({
    id: rec.id,
    environment: rec.environment,
    revokedAt: Math.min(rec.revoked_at ?? Number.POSITIVE_INFINITY, rec.grace_ends_at ?? Number.POSITIVE_INFINITY),
    suspended: rec.suspended_at !== null || rec.app_suspended_at !== null,
    sunset: rec.grace_ends_at !== null && rec.revoked_at === null ? new Date(rec.grace_ends_at).toUTCString() : null,
    expiresAt: rec.expires_at ?? Number.POSITIVE_INFINITY,
    notBefore: rec.not_before ?? Number.NEGATIVE_INFINITY,
    apis: rec.apis ? apiSets.get(rec.apis.join(SEP), () => new Set(rec.apis)) : null,
    scopes: scopeSets.get(rec.scopes.join(SEP), () => new Set(rec.scopes)),
    scopesHeader: rec.scopes.join(','),
    // An entry that fails to parse is left out, so it matches nothing.
    cidrs: allowlist && allowlist.length > 0 ? allowlists.get(allowlist.join(SEP), () => parseAllowlist(allowlist)) : null,
    application: rec.application,
    tenant: rec.tenant,
    policy: limit
      ? policies.get(`${limit.limit}/${limit.window_seconds}/${limit.burst}/${plan.onStoreFailure}`, () => compilePolicy('key', limit, plan.onStoreFailure))
      : plan,
  });
}

function parseAllowlist(entries: readonly string[]): readonly Cidr[] {
  const cidrs: Cidr[] = [];
  for (const entry of entries) {
    const parsed = parseCidr(entry);
    if (parsed) cidrs.push(parsed);
  }
  return Object.freeze(cidrs);
}
