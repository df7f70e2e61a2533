import { compilePolicy, type LimitPolicy } from '../core/limiter.js';
import { parseCidr, type Cidr } from '../core/ip.js';
import { compileQuota, quotaId, type QuotaPolicy } from '../core/quota.js';
import type { KeyRecord } from '../core/record.js';

/**
 * What a key is allowed, as the hot path reads it: sets instead of arrays, parsed CIDRs, the
 * rate-limit policy resolved. Most keys share all of it with many others (same environment,
 * scopes, APIs, allowlist, tenant and limit), so it is one object for all of them.
 */
export interface Grant {
  readonly environment: string;
  readonly apis: ReadonlySet<string> | null;
  readonly scopes: ReadonlySet<string>;
  readonly scopesHeader: string;
  /** Null when the key has no allowlist; an entry that fails to parse matches nothing. */
  readonly cidrs: readonly Cidr[] | null;
  readonly tenant: string | null;
  readonly policy: LimitPolicy;
  /**
   * The limit the key's application shares among its keys (named "app" in the RateLimit
   * headers; its bucket is the application's id), or null: none, as for most keys.
   */
  readonly appPolicy: LimitPolicy | null;
  /** The key's quota or credits, or its plan's; null for a key with neither (most keys). */
  readonly quota: QuotaPolicy | null;
  /**
   * The quota or credits the key's application shares among its keys (named "app-quota" in
   * the RateLimit headers; its balance is kept under the application's id), or null: none.
   */
  readonly appQuota: QuotaPolicy | null;
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
 * A key record turned, once per cache fill, into what the hot path reads. The object holds
 * only what is the key's own (id, times, application, the cache generation) and points to its
 * shared Grant, whose parts the getters hand out: a million cached keys are a million small
 * objects, not a million copies of the same sets and strings (bench/scaling/cache-memory.ts).
 */
export class CompiledKey {
  readonly id: string;
  /**
   * What limits the key in time, or its suspension; null for a key with none of these (most
   * keys), which then costs no object and no check.
   */
  readonly life: KeyLife | null;
  readonly grant: Grant;
  readonly application: string | null;
  /** The key cache's generation when the record was read (gateway/key-cache.ts). */
  readonly gen: number;
  /** Whose quota balance the key spends: its own id, or its rotation chain's first key's. */
  readonly account: string;

  constructor(id: string, life: KeyLife | null, grant: Grant, application: string | null, gen: number, account: string = id) {
    this.id = id;
    this.life = life;
    this.grant = grant;
    this.application = application;
    this.gen = gen;
    this.account = account;
    // Not frozen here: the key cache makes one on a hit of a key whose object it no longer
    // holds (gateway/key-cache.ts), where a freeze would double the cost. compileKey freezes.
  }

  get environment(): string {
    return this.grant.environment;
  }
  get apis(): ReadonlySet<string> | null {
    return this.grant.apis;
  }
  get scopes(): ReadonlySet<string> {
    return this.grant.scopes;
  }
  get scopesHeader(): string {
    return this.grant.scopesHeader;
  }
  get cidrs(): readonly Cidr[] | null {
    return this.grant.cidrs;
  }
  get tenant(): string | null {
    return this.grant.tenant;
  }
  get policy(): LimitPolicy {
    return this.grant.policy;
  }
  get appPolicy(): LimitPolicy | null {
    return this.grant.appPolicy;
  }
  get quota(): QuotaPolicy | null {
    return this.grant.quota;
  }
  get appQuota(): QuotaPolicy | null {
    return this.grant.appQuota;
  }
}

/** Why a key may not be used: the `invalid_token` reasons its times and suspension give. */
export type LifeReason = 'revoked' | 'expired' | 'suspended' | 'pending';

/**
 * Why a key with these times and this suspension may not be used at `now`, or undefined when
 * it may. Judged against a clock reading, not a scheduler's last run: the status stage asks it
 * for every request, and open WebSockets ask it again when their key changes or time passes.
 */
export function unusable(life: KeyLife, now: number): LifeReason | undefined {
  if (life.revokedAt !== null && life.revokedAt <= now) return 'revoked';
  if (life.expiresAt !== null && life.expiresAt <= now) return 'expired';
  if (life.suspended) return 'suspended';
  if (life.notBefore !== null && life.notBefore > now) return 'pending';
  return undefined;
}

/**
 * Equal parts of different keys are one object. Parts are never changed once built. Past
 * `max` distinct values new ones are simply not shared, so the table stays bounded whatever
 * the keys hold.
 */
class Shared<T> {
  #values = new Map<string, T>();
  readonly #max: number;
  /** Every value this table has handed out as shared (weakly: a value dies with the keys that hold it). */
  readonly kept = new WeakSet<object>();

  constructor(max: number) {
    this.#max = max;
  }

  get(id: string, make: () => T): T {
    let v = this.#values.get(id);
    if (v === undefined) {
      v = make();
      if (this.#values.size < this.#max) {
        this.#values.set(id, v);
        if (typeof v === 'object' && v !== null) this.kept.add(v);
      }
    }
    return v;
  }

  /** Starts again empty: values handed out stay valid; equal ones made later are shared anew. */
  clear(): void {
    this.#values = new Map();
  }
}

const SEP = '\u0000';
const grants = new Shared<Grant>(10_000);
const scopeSets = new Shared<ReadonlySet<string>>(10_000);
const apiSets = new Shared<ReadonlySet<string>>(10_000);
const allowlists = new Shared<readonly Cidr[]>(10_000);
const policies = new Shared<LimitPolicy>(10_000);
const quotas = new Shared<QuotaPolicy | null>(10_000);
const NO_QUOTAS: ReadonlyMap<string, QuotaPolicy> = new Map();

/**
 * Whether `grant` is one the grants table shares between keys; past the table's bound a key's
 * Grant is its own, and what the key cache builds around it must be too (gateway/key-cache.ts).
 */
export function isSharedGrant(grant: Grant): boolean {
  return grants.kept.has(grant);
}

/**
 * Empties the tables of shared parts, for a reload that replaced the plans: the ids of Grants
 * and policies name the plan objects they were made from, so without it every such reload
 * would add a full set of parts that no key compiled afterwards can share, until the bound.
 */
export function forgetSharedParts(): void {
  for (const table of [grants, scopeSets, apiSets, allowlists, policies, quotas]) table.clear();
}
const identities = new WeakMap<object, number>();
let identityCount = 0;
/** A number that stands for `o` itself, for table keys that must tell equal-looking objects apart. */
function identity(o: object): number {
  let n = identities.get(o);
  if (n === undefined) {
    n = ++identityCount;
    identities.set(o, n);
  }
  return n;
}
/** Applications: each record read from the store brings its own copy of the string. */
const names = new Shared<string>(10_000);

/** `planQuotas`: each plan's quota, by plan name (plans without one left out). */
export function compileKey(
  rec: KeyRecord,
  plans: ReadonlyMap<string, LimitPolicy>,
  gen = 0,
  planQuotas: ReadonlyMap<string, QuotaPolicy> = NO_QUOTAS,
): CompiledKey {
  const application = rec.application === null ? null : names.get(rec.application, () => rec.application!);
  return Object.freeze(new CompiledKey(rec.id, lifeOf(rec), grantOf(rec, plans, planQuotas), application, gen, rec.quota_account ?? rec.id));
}

/** The same key stamped with another cache generation (a stale entry served again). */
export function withGen(k: CompiledKey, gen: number): CompiledKey {
  return Object.freeze(new CompiledKey(k.id, k.life, k.grant, k.application, gen, k.account));
}

function grantOf(rec: KeyRecord, plans: ReadonlyMap<string, LimitPolicy>, planQuotas: ReadonlyMap<string, QuotaPolicy>): Grant {
  const planName = plans.has(rec.plan ?? 'default') ? (rec.plan ?? 'default') : 'default';
  const plan = plans.get(planName)!;
  const limit = rec.rate_limit;
  // A plan is the runtime's own object (another runtime may hold a different plan of that name).
  const limitId = limit
    ? `${limit.limit}/${limit.window_seconds}/${limit.burst}/${plan.onStoreFailure}/${plan.maxConcurrent}/${plan.shadow}`
    : `plan #${identity(plan)}`;
  const ownQuota = quotaId(rec.quota, rec.credits);
  const planQuota = ownQuota === null ? (planQuotas.get(planName) ?? null) : null;
  const quotaKey = ownQuota ?? (planQuota === null ? null : `plan quota #${identity(planQuota)}`);
  const allowlist = rec.ip_allowlist && rec.ip_allowlist.length > 0 ? rec.ip_allowlist : null;
  const scopesId = rec.scopes.join(SEP);
  const apisId = rec.apis ? rec.apis.join(SEP) : null;
  const allowId = allowlist ? allowlist.join(SEP) : null;
  const appLimit = rec.application === null ? null : (rec.app_limit ?? null);
  const appPlan = appLimit === null || appLimit.rate_limit !== null ? null : (plans.get(appLimit.plan ?? 'default') ?? plans.get('default')!);
  const appSpec = appLimit === null ? null : (appLimit.rate_limit ?? { limit: appPlan!.limit, window_seconds: appPlan!.windowSeconds, burst: appPlan!.capacity });
  // An application's plan lends its mode too (a shadow plan only reports); its own limit enforces.
  const appId = appSpec === null ? null : `${appSpec.limit}/${appSpec.window_seconds}/${appSpec.burst}/${(appPlan ?? plan).onStoreFailure}/${appPlan?.shadow === true}`;
  const appQuota = rec.application === null ? null : (rec.app_quota ?? null);
  const appQuotaId = appQuota === null ? null : quotaId(appQuota.quota, appQuota.credits);
  // JSON keeps the parts apart whatever they contain (null, and names with separators in them).
  const id = JSON.stringify([rec.environment, apisId, scopesId, allowId, rec.tenant, limitId, appId, quotaKey, appQuotaId]);
  return grants.get(id, () =>
    Object.freeze({
      environment: rec.environment,
      apis: apisId === null ? null : apiSets.get(apisId, () => new Set(rec.apis)),
      scopes: scopeSets.get(scopesId, () => new Set(rec.scopes)),
      scopesHeader: rec.scopes.join(','),
      // An entry that fails to parse is left out, so it matches nothing.
      cidrs: allowlist === null || allowId === null ? null : allowlists.get(allowId, () => parseAllowlist(allowlist)),
      tenant: rec.tenant,
      policy: limit
        ? policies.get(limitId, () => compilePolicy('key', limit, plan.onStoreFailure, plan.maxConcurrent, plan.shadow ? 'shadow' : 'enforce'))
        : plan,
      appPolicy:
        appSpec === null || appId === null
          ? null
          : policies.get(`app ${appId}`, () => compilePolicy('app', appSpec, (appPlan ?? plan).onStoreFailure, null, appPlan?.shadow ? 'shadow' : 'enforce')),
      quota: ownQuota === null ? planQuota : quotas.get(ownQuota, () => compileQuota(rec.quota, rec.credits)),
      appQuota:
        appQuota === null || appQuotaId === null ? null : quotas.get(`app ${appQuotaId}`, () => compileQuota(appQuota.quota, appQuota.credits, 'app-quota')),
    }),
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

function parseAllowlist(entries: readonly string[]): readonly Cidr[] {
  const cidrs: Cidr[] = [];
  for (const entry of entries) {
    const parsed = parseCidr(entry);
    if (parsed) cidrs.push(parsed);
  }
  return Object.freeze(cidrs);
}
