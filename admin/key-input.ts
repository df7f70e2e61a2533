import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { rateLimitSpec } from '../config/schema.js';
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
  .refine(isRealDateTime, 'must be a real date-time')
  .transform((s) => Date.parse(s));

const metaSchema = z
  .record(z.string().max(64), z.json())
  .refine((m) => JSON.stringify(m).length <= 4096, 'must be at most 4096 bytes as JSON');

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
    ip_allowlist: allowlist.nullable().optional(),
    expires_at: rfc3339.nullable().optional(),
    not_before: rfc3339.nullable().default(null),
    application: z.string().max(64).nullable().default(null),
    policy: policyName.nullable().default(null),
    meta: metaSchema.default({}),
  });

  const update = z
    .strictObject({
      name: name.optional(),
      description: description.optional(),
      scopes: scopes.optional(),
      apis: apis.nullable().optional(),
      plan: plan.nullable().optional(),
      rate_limit: rateLimitSpec.nullable().optional(),
      ip_allowlist: allowlist.nullable().optional(),
      expires_at: rfc3339.nullable().optional(),
      meta: metaSchema.optional(),
    })
    .refine((o) => Object.keys(o).length > 0, 'name at least one field to change');

  const reason = z.strictObject({ reason: z.string().max(500).nullable().default(null) }).default({ reason: null });
  const revoke = reason;
  const regenerate = z
    .strictObject({ grace_period_seconds: z.number().int().min(0).max(30 * 86_400).optional() })
    .default({});

  const appCreate = z.strictObject({ name, description: description.default(null), meta: metaSchema.default({}) });
  const appUpdate = z
    .strictObject({ name: name.optional(), description: description.optional(), meta: metaSchema.optional() })
    .refine((o) => Object.keys(o).length > 0, 'name at least one field to change');
  const appList = z.strictObject({
    status: z.enum(['active', 'suspended']).optional(),
    q: z.string().max(200).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(512).optional(),
  });
  const audit = z.strictObject({
    actor: z.string().max(64).optional(),
    action: z.string().max(64).optional(),
    key_id: z.string().max(64).optional(),
    application_id: z.string().max(64).optional(),
    from: rfc3339.optional(),
    to: rfc3339.optional(),
    limit: z.coerce.number().int().min(1).max(100).default(50),
    cursor: z.string().max(512).optional(),
  });

  const list = z.strictObject({
    status: z.enum(['pending', 'active', 'suspended', 'expired', 'revoked']).optional(),
    environment: z.enum(envNames).optional(),
    application: z.string().optional(),
    scope: z.string().optional(),
    q: z.string().max(200).optional(),
    sort: z.enum(['created_at', 'last_used_at', 'name']).default('created_at'),
    order: z.enum(['asc', 'desc']).default('desc'),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(512).optional(),
  });

  return { create, update, revoke, suspend: reason, regenerate, list, appCreate, appUpdate, appList, audit };
}

export type KeySchemas = ReturnType<typeof keySchemas>;
export type CreateKeyInput = z.output<KeySchemas['create']>;
export type UpdateKeyInput = z.output<KeySchemas['update']>;
export type CreateAppInput = z.output<KeySchemas['appCreate']>;
export type UpdateAppInput = z.output<KeySchemas['appUpdate']>;
