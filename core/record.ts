import { toIso } from './clock.js';
import { maskKey } from './key-format.js';
import type { HashKind } from './key-hash.js';
import type { CreditsSpec, QuotaSpec } from './quota.js';

export interface RateLimitSpec {
  limit: number;
  window_seconds: number;
  /** Bucket capacity; null means `limit`. */
  burst: number | null;
}

/**
 * The limit an application shares among all its keys (docs/admin-api.md, "Applications"): a
 * request spends from its key's bucket and from its application's, and either can refuse. A
 * limit of its own or a plan's; null fields both: none.
 */
export interface AppLimit {
  plan: string | null;
  rate_limit: RateLimitSpec | null;
}

/** The application's shared limit, or null when it has none. */
export function appLimitOf(app: { plan?: string | null; rate_limit?: RateLimitSpec | null }): AppLimit | null {
  const plan = app.plan ?? null;
  const rate_limit = app.rate_limit ?? null;
  return plan === null && rate_limit === null ? null : { plan, rate_limit };
}

/**
 * The quota or credits an application shares among all its keys (docs/quotas.md, "An
 * application's quota"): a request spends from its key's balance and from its application's,
 * kept under the application's id; either can refuse.
 */
export interface AppQuota {
  quota: QuotaSpec | null;
  credits: CreditsSpec | null;
}

/** The application's shared quota, or null when it has none. */
export function appQuotaOf(app: { quota?: QuotaSpec | null; credits?: CreditsSpec | null }): AppQuota | null {
  const quota = app.quota ?? null;
  const credits = app.credits ?? null;
  return quota === null && credits === null ? null : { quota, credits };
}

export type KeyStatus = 'pending' | 'active' | 'suspended' | 'expired' | 'revoked';

/**
 * A key as stores keep it. Never holds the plaintext key: `hash` is the lookup id and
 * `start`/`end` are the display fragments. Times are epoch milliseconds.
 */
export interface KeyRecord {
  id: string;
  version: number;
  tenant: string | null;
  hash: string;
  hash_kind: HashKind;
  start: string;
  end: string;
  name: string;
  description: string | null;
  environment: string;
  scopes: string[];
  apis: string[] | null;
  plan: string | null;
  rate_limit: RateLimitSpec | null;
  /** Units per period this key may spend (docs/quotas.md); absent in records written before quotas. */
  quota?: QuotaSpec | null;
  /** A balance of units this key spends, refilled or not; never with `quota`. */
  credits?: CreditsSpec | null;
  /**
   * The key whose balance this one spends: a regenerated key keeps its predecessor's, so a
   * rotation neither resets nor loses it. Absent or null: its own id.
   */
  quota_account?: string | null;
  ip_allowlist: string[] | null;
  application: string | null;
  policy: string | null;
  meta: Record<string, unknown>;
  created_at: number;
  created_by: string | null;
  updated_at: number;
  expires_at: number | null;
  not_before: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
  revoked_reason: string | null;
  suspended_at: number | null;
  suspended_reason: string | null;
  /** Set while the key's application is suspended; kept apart from the key's own suspension. */
  app_suspended_at: number | null;
  /**
   * The application's shared limit, copied onto each of its keys in the commit that sets it (as
   * `app_suspended_at` is), so a gateway reads it with the key. Absent in records written
   * before applications had limits: none.
   */
  app_limit?: AppLimit | null;
  /** The application's shared quota, copied onto its keys as `app_limit` is. Absent: none. */
  app_quota?: AppQuota | null;
  replaces: string | null;
  replaced_by: string | null;
  /** After a regeneration with grace: the old key works until then, and is revoked from then on. */
  grace_ends_at: number | null;
  /** When the key's policy next rotates it; null when it does not rotate. */
  rotate_at: number | null;
  /** When the scheduler recorded that a pending key became active. */
  activated_at: number | null;
  /** When the scheduler recorded that the key expired. */
  expired_at: number | null;
  usage: { total_requests: number; error_count: number };
}

/** Revoked at `now`: explicitly, or because the grace of its regeneration has ended. */
export function isRevoked(rec: KeyRecord, now: number): boolean {
  return rec.revoked_at !== null || (rec.grace_ends_at !== null && rec.grace_ends_at <= now);
}

/** Status at `now`: a permanent revocation first, then expiry, suspension, and a future start. */
export function keyStatus(rec: KeyRecord, now: number): KeyStatus {
  if (isRevoked(rec, now)) return 'revoked';
  if (rec.expires_at !== null && rec.expires_at <= now) return 'expired';
  if (rec.suspended_at !== null || rec.app_suspended_at !== null) return 'suspended';
  if (rec.not_before !== null && rec.not_before > now) return 'pending';
  return 'active';
}

export type Transition = 'grace_ended' | 'activated' | 'rotate' | 'expired';

/**
 * The scheduled change a key is due for at `now`, if any: the end of a rotation grace, then
 * activation, then rotation, then expiry. A rotation is due only while it falls no later than
 * the expiry (rotation wins on the expiry day, see rotationTime); a key that expired before its
 * rotation time expires, even when the scheduler reaches it after both.
 */
export function dueTransition(rec: KeyRecord, now: number): Transition | null {
  if (rec.revoked_at !== null) return null;
  if (rec.grace_ends_at !== null) return rec.grace_ends_at <= now ? 'grace_ended' : null;
  if (rec.expired_at !== null) return null;
  if (rec.not_before !== null && rec.activated_at === null && rec.not_before <= now) return 'activated';
  if (rotatesBeforeExpiry(rec) && rec.replaced_by === null && rec.rotate_at! <= now) return 'rotate';
  if (rec.expires_at !== null && rec.expires_at <= now) return 'expired';
  return null;
}

/**
 * The earliest time at which dueTransition stops answering null, or null if it never will
 * without a write: `dueTransition(rec, now) !== null` exactly when this is at or before `now`.
 * Stores index keys by it to find the due ones without scanning.
 */
export function nextDueAt(rec: KeyRecord): number | null {
  if (rec.revoked_at !== null) return null;
  if (rec.grace_ends_at !== null) return rec.grace_ends_at;
  if (rec.expired_at !== null) return null;
  let at: number | null = null;
  const consider = (t: number | null) => {
    if (t !== null && (at === null || t < at)) at = t;
  };
  if (rec.not_before !== null && rec.activated_at === null) consider(rec.not_before);
  if (rotatesBeforeExpiry(rec) && rec.replaced_by === null) consider(rec.rotate_at);
  consider(rec.expires_at);
  return at;
}

/** Whether the key has a rotation time that comes no later than its expiry. */
export function rotatesBeforeExpiry(rec: KeyRecord): boolean {
  return rec.rotate_at !== null && (rec.expires_at === null || rec.rotate_at <= rec.expires_at);
}

/** The fields a new key starts with that no request sets. */
export const NEW_KEY_STATE = Object.freeze({
  version: 0,
  last_used_at: null,
  revoked_at: null,
  revoked_reason: null,
  suspended_at: null,
  suspended_reason: null,
  app_suspended_at: null,
  replaces: null,
  replaced_by: null,
  grace_ends_at: null,
  rotate_at: null,
  activated_at: null,
  expired_at: null,
});

/** `revoked_reason` of a key whose regeneration grace has ended (the scheduler records the same). */
export const GRACE_ENDED = 'rotation grace ended';
/** `suspended_reason` of a key suspended only through its application (whose record holds the reason). */
export const APP_SUSPENDED = 'application suspended';

/** The id under which a key's quota balance is kept (see `quota_account`). */
export function quotaAccount(rec: KeyRecord): string {
  return rec.quota_account ?? rec.id;
}

/** The record as the admin API shows it: never the key, never the hash. */
export function keyToWire(rec: KeyRecord, now: number) {
  const graceEnded = rec.grace_ends_at !== null && rec.grace_ends_at <= now;
  return {
    id: rec.id,
    name: rec.name,
    description: rec.description,
    environment: rec.environment,
    masked: maskKey(rec.start, rec.end),
    status: keyStatus(rec, now),
    scopes: rec.scopes,
    apis: rec.apis,
    plan: rec.plan,
    rate_limit: rec.rate_limit,
    quota: rec.quota ?? null,
    credits: rec.credits ?? null,
    ip_allowlist: rec.ip_allowlist,
    application: rec.application,
    policy: rec.policy,
    meta: rec.meta,
    created_at: toIso(rec.created_at),
    created_by: rec.created_by,
    updated_at: toIso(rec.updated_at),
    expires_at: toIso(rec.expires_at),
    not_before: toIso(rec.not_before),
    last_used_at: toIso(rec.last_used_at),
    revoked_at: toIso(rec.revoked_at ?? (graceEnded ? rec.grace_ends_at : null)),
    // Why, as given to revoke or suspend; the system's own reasons for what it did by itself.
    revoked_reason: rec.revoked_reason ?? (rec.revoked_at === null && graceEnded ? GRACE_ENDED : null),
    suspended_at: toIso(rec.suspended_at ?? rec.app_suspended_at),
    suspended_reason: rec.suspended_at !== null ? rec.suspended_reason : rec.app_suspended_at !== null ? APP_SUSPENDED : null,
    replaces: rec.replaces,
    replaced_by: rec.replaced_by,
    grace_ends_at: toIso(rec.grace_ends_at),
    rotate_at: toIso(rec.rotate_at),
    usage: { total_requests: rec.usage.total_requests, error_count: rec.usage.error_count },
  };
}

export type KeyWire = ReturnType<typeof keyToWire>;
