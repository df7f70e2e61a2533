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

export function compileKey(rec: KeyRecord, plans: ReadonlyMap<string, LimitPolicy>): CompiledKey {
  const cidrs: Cidr[] = [];
  for (const entry of rec.ip_allowlist ?? []) {
    const parsed = parseCidr(entry);
    if (parsed) cidrs.push(parsed);
  }
  const plan = plans.get(rec.plan ?? 'default') ?? plans.get('default')!;
  return Object.freeze({
    id: rec.id,
    environment: rec.environment,
    revokedAt: Math.min(rec.revoked_at ?? Number.POSITIVE_INFINITY, rec.grace_ends_at ?? Number.POSITIVE_INFINITY),
    suspended: rec.suspended_at !== null || rec.app_suspended_at !== null,
    sunset: rec.grace_ends_at !== null && rec.revoked_at === null ? new Date(rec.grace_ends_at).toUTCString() : null,
    expiresAt: rec.expires_at ?? Number.POSITIVE_INFINITY,
    notBefore: rec.not_before ?? Number.NEGATIVE_INFINITY,
    apis: rec.apis ? new Set(rec.apis) : null,
    scopes: new Set(rec.scopes),
    scopesHeader: rec.scopes.join(','),
    cidrs: rec.ip_allowlist && rec.ip_allowlist.length > 0 ? cidrs : null,
    application: rec.application,
    tenant: rec.tenant,
    policy: rec.rate_limit ? compilePolicy('key', rec.rate_limit, plan.onStoreFailure) : plan,
  });
}
