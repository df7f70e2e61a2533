import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { creditsSpec, quotaSpec, rateLimitSpec, units } from '../config/schema.js';
import { AUDIT_ACTIONS } from '../core/audit.js';
import { parseCidr } from '../core/ip.js';

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/i;

/** RFC 3339 with every field in range: Date.parse alone rolls 2027-02-30 over into March. */
export function isRealDateTime(s: string): boolean {
  const m = RFC3339.exec(s);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const offsetOk = m[9] === undefined || (Number(m[9]) <= 23 && Number(m[10]) <= 59);
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour <= 23 && minute <= 59 && second <= 59 && offsetOk;
}

export const rfc3339 = z
  .string()
  .regex(RFC3339, 'must be an RFC 3339 date-time, like 2027-01-31T12:00:00Z')
  .meta({ format: 'date-time' })
  .refine(isRealDateTime, 'must be a real date-time')
  .transform((s) => Date.parse(s));

/** `from` before `to` when both are given; an empty window is a mistake, not a query. */
export function fromBeforeTo(q: { from?: number | undefined; to?: number | undefined }, ctx: z.RefinementCtx): void {
  if (q.from !== undefined && q.to !== undefined && q.from >= q.to) ctx.addIssue({ code: 'custom', path: ['to'], message: 'must be after from' });
}

/** A page size: `max` at most, `fallback` when not given. */
export const pageLimit = (fallback: number, max = 100) =>
  z.coerce.number().int().min(1).max(max).default(fallback).meta({ description: `Most items in one page (1 to ${max}).` });

/** The `next_cursor` of the previous page; the next page starts after its last item. */
export const cursor = z.string().max(512).optional().meta({ description: 'The `next_cursor` of the previous page.' });

/** A key's `rate_limit` replaces its plan's limits, so naming both in one request has no single meaning. */
export const PLAN_AND_RATE_LIMIT = "give plan or rate_limit, not both: a key's rate_limit replaces its plan's limits, so the plan would have no effect";

function planOrRateLimit(o: { plan?: string | null | undefined; rate_limit?: unknown }, ctx: z.RefinementCtx): void {
  if (o.plan != null && o.rate_limit != null) ctx.addIssue({ code: 'custom', path: ['rate_limit'], message: PLAN_AND_RATE_LIMIT });
}

/**
 * A key's (or an application's, `holder`) balance is spent by one of its quota or its credits,
 * so it may carry only one: the refinement that says so.
 */
function oneBalance(holder: string) {
  const message = `give quota or credits, not both: ${holder} has one balance, counted one way`;
  return (o: { quota?: unknown; credits?: unknown }, ctx: z.RefinementCtx): void => {
    if (o.quota != null && o.credits != null) ctx.addIssue({ code: 'custom', path: ['credits'], message });
  };
}
const quotaOrCredits = oneBalance('a key');
const appQuotaOrCredits = oneBalance('an application');

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Any JSON value; named, as it refers to itself, so that the OpenAPI document can share it. */
export const jsonValue: z.ZodType<JsonValue> = z
  .lazy(() => z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(jsonValue), z.record(z.string(), jsonValue)]))
  .meta({ id: 'JsonValue' });

const metaSchema = z
  .record(z.string().max(64), jsonValue)
  .refine((m) => JSON.stringify(m).length <= 4096, 'must be at most 4096 bytes as JSON');

/** An application's `rate_limit` replaces its plan's, as a key's does. */
export const APP_PLAN_AND_RATE_LIMIT = "give plan or rate_limit, not both: an application's rate_limit replaces its plan's limit, so the plan would have no effect";

function appPlanOrRateLimit(o: { plan?: string | null | undefined; rate_limit?: unknown }, ctx: z.RefinementCtx): void {
  if (o.plan != null && o.rate_limit != null) ctx.addIssue({ code: 'custom', path: ['rate_limit'], message: APP_PLAN_AND_RATE_LIMIT });
}

/** Admin request schemas that depend on the configured catalog, environments, APIs and plans. */
export function keySchemas(config: Config) {
  const envNames = Object.keys(config.keys.environments) as [string, ...string[]];
  const catalog = new Set(config.scopes.catalog.map((e) => e.name));
  const presets = config.scopes.presets;
  const apiNames = new Set(config.apis.map((a) => a.name));
  const valid = [...catalog, ...Object.keys(presets)].join(', ');

  const scopes = z
    .array(z.string())
    .max(256)
    .superRefine((list, ctx) => {
      list.forEach((s, i) => {
        if (!catalog.has(s) && !(s in presets)) {
          ctx.addIssue({ code: 'custom', path: [i], message: `unknown scope "${s}"; valid scopes and presets: ${valid}` });
        }
      });
    })
    .transform((list) => [...new Set(list.flatMap((s) => presets[s] ?? [s]))]);
  const apis = z
    .array(z.string())
    .max(256)
    .superRefine((list, ctx) => {
      list.forEach((a, i) => {
        if (!apiNames.has(a)) ctx.addIssue({ code: 'custom', path: [i], message: `unknown API "${a}"; configured: ${[...apiNames].join(', ')}` });
      });
    })
    .transform((list) => [...new Set(list)]);
  const allowlist = z
    .array(
      z.string().refine((s) => parseCidr(s) !== null, 'must be an IPv4 or IPv6 address or CIDR, like 203.0.113.0/24 or 2001:db8::/32'),
    )
    .max(256);
  const plan = z.string().refine((p) => p in config.plans, `must be one of: ${Object.keys(config.plans).join(', ')}`);

  const policyName = z.string().refine((p) => p in config.policies, {
    message: Object.keys(config.policies).length ? `must be one of: ${Object.keys(config.policies).join(', ')}` : 'no policies are configured',
  });
  const name = z.string().trim().min(1, 'must not be empty').max(200);
  const description = z.string().max(1000).nullable();

  // Fields a policy may provide stay undefined when the request leaves them out.
  const create = z.strictObject({
    name,
    description: description.default(null),
    environment: z.enum(envNames).default(envNames[0]),
    scopes: scopes.default([]),
    apis: apis.nullable().default(null),
    plan: plan.nullable().optional(),
    rate_limit: rateLimitSpec.nullable().optional(),
    quota: quotaSpec.nullable().optional(),
    credits: creditsSpec.nullable().optional(),
    ip_allowlist: allowlist.nullable().optional(),
    expires_at: rfc3339.nullable().optional(),
    not_before: rfc3339.nullable().default(null),
    application: z.string().max(64).nullable().default(null),
    policy: policyName.nullable().default(null),
    meta: metaSchema.default({}),
  })
    .superRefine(planOrRateLimit)
    .superRefine(quotaOrCredits);

  const update = z
    .strictObject({
      name: name.optional(),
      description: description.optional(),
      scopes: scopes.optional(),
      apis: apis.nullable().optional(),
      plan: plan.nullable().optional(),
      rate_limit: rateLimitSpec.nullable().optional(),
      quota: quotaSpec.nullable().optional(),
      credits: creditsSpec.nullable().optional(),
      ip_allowlist: allowlist.nullable().optional(),
      expires_at: rfc3339.nullable().optional(),
      meta: metaSchema.optional(),
    })
    .refine((o) => Object.keys(o).length > 0, 'name at least one field to change')
    .superRefine(planOrRateLimit)
    .superRefine(quotaOrCredits);

  const unit = units.min(0);
  const credits = z
    .strictObject({
      set: unit.optional().meta({ description: 'The balance to set, in units.' }),
      add: unit.min(1).optional().meta({ description: 'Units to add to the balance (a top-up).' }),
    })
    .refine((o) => (o.set === undefined) !== (o.add === undefined), 'give set or add, one of them');

  const reason = z.strictObject({ reason: z.string().max(500).nullable().default(null) }).default({ reason: null });
  const revoke = reason;
  const regenerate = z
    .strictObject({ grace_period_seconds: z.number().int().min(0).max(30 * 86_400).optional() })
    .default({});

  // An application's shared limit: its keys' requests spend from it as well as from their own.
  const appLimit = {
    plan: plan.nullable().meta({ description: "A plan whose limit all the application's keys share; null: none." }),
    rate_limit: rateLimitSpec.nullable().meta({ description: "A limit of the application's own, shared by all its keys; replaces `plan`'s; null: none." }),
  };
  // Its shared quota: its keys' requests spend from it as well as from their own (docs/quotas.md).
  const appQuota = {
    quota: quotaSpec.nullable().meta({ description: "Units per period that all the application's keys share; null: none." }),
    credits: creditsSpec.nullable().meta({ description: "A balance of units that all the application's keys share; never with `quota`; null: none." }),
  };
  const appCreate = z
    .strictObject({
      name,
      description: description.default(null),
      meta: metaSchema.default({}),
      plan: appLimit.plan.default(null),
      rate_limit: appLimit.rate_limit.default(null),
      quota: appQuota.quota.default(null),
      credits: appQuota.credits.default(null),
    })
    .superRefine(appPlanOrRateLimit)
    .superRefine(appQuotaOrCredits);
  const appUpdate = z
    .strictObject({
      name: name.optional(),
      description: description.optional(),
      meta: metaSchema.optional(),
      plan: appLimit.plan.optional(),
      rate_limit: appLimit.rate_limit.optional(),
      quota: appQuota.quota.optional(),
      credits: appQuota.credits.optional(),
    })
    .refine((o) => Object.keys(o).length > 0, 'name at least one field to change')
    .superRefine(appPlanOrRateLimit)
    .superRefine(appQuotaOrCredits);
  const appList = z.strictObject({
    status: z.enum(['active', 'suspended']).optional(),
    q: z.string().max(200).optional().meta({ description: 'A case-insensitive part of the name, or an exact id.' }),
    limit: pageLimit(20),
    cursor,
  });
  const actions = AUDIT_ACTIONS.join(', ');
  const audit = z
    .strictObject({
      actor: z.string().max(64).optional().meta({ description: 'The name of the admin token (or `scheduler`) that acted.' }),
      action: z.enum(AUDIT_ACTIONS, { error: `must be one of: ${actions}` }).optional(),
      key_id: z.string().max(64).optional().meta({ description: 'Entries about this key.' }),
      application: z.string().max(64).optional().meta({ description: 'Entries about this application (the id a key record holds as `application`).' }),
      application_id: z.string().max(64).optional().meta({ description: 'The former name of `application`.', deprecated: true }),
      from: rfc3339.optional().meta({ description: 'Entries at or after this time (RFC 3339).' }),
      to: rfc3339.optional().meta({ description: 'Entries before this time (RFC 3339).' }),
      limit: pageLimit(50),
      cursor,
    })
    .superRefine((q, ctx) => {
      if (q.application !== undefined && q.application_id !== undefined && q.application !== q.application_id) {
        ctx.addIssue({ code: 'custom', path: ['application_id'], message: 'is the former name of application; give one of them' });
      }
      if (q.key_id !== undefined && (q.application ?? q.application_id) !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['application'], message: 'give key_id or application, not both: an entry is about one of them' });
      }
      fromBeforeTo(q, ctx);
    });

  const catalogNames = [...catalog].join(', ');
  const list = z.strictObject({
    status: z.enum(['pending', 'active', 'suspended', 'expired', 'revoked']).optional(),
    environment: z.enum(envNames).optional(),
    application: z.string().max(64).optional().meta({ description: "Keys of this application (its id)." }),
    scope: z
      .string()
      .refine((s) => catalog.has(s), `must be a scope of the catalog: ${catalogNames}`)
      .optional()
      .meta({ description: 'Keys holding this scope.' }),
    q: z.string().max(200).optional().meta({ description: 'A case-insensitive part of the name, or an exact id.' }),
    sort: z.enum(['created_at', 'last_used_at', 'name']).default('created_at'),
    order: z.enum(['asc', 'desc']).default('desc'),
    limit: pageLimit(20),
    cursor,
  });
  const events = z.strictObject({ limit: pageLimit(100), cursor });

  return { create, update, revoke, suspend: reason, regenerate, credits, list, events, appCreate, appUpdate, appList, audit };
}

export type KeySchemas = ReturnType<typeof keySchemas>;
export type CreateKeyInput = z.output<KeySchemas['create']>;
export type UpdateKeyInput = z.output<KeySchemas['update']>;
export type CreditsInput = z.output<KeySchemas['credits']>;
export type CreateAppInput = z.output<KeySchemas['appCreate']>;
export type UpdateAppInput = z.output<KeySchemas['appUpdate']>;
