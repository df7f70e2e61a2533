import { toIso } from './clock.js';
import type { CreditsSpec, QuotaSpec } from './quota.js';
import type { RateLimitSpec } from './record.js';

/** A consumer application: the owner of keys. Suspending it suspends its keys. */
export interface AppRecord {
  id: string;
  version: number;
  tenant: string | null;
  name: string;
  description: string | null;
  meta: Record<string, unknown>;
  created_at: number;
  created_by: string | null;
  updated_at: number;
  suspended_at: number | null;
  suspended_reason: string | null;
  /**
   * A plan's limit shared by all the application's keys, or (`rate_limit`) one of its own, which
   * then wins; neither: no shared limit. Absent in records written before they existed: null.
   */
  plan?: string | null;
  rate_limit?: RateLimitSpec | null;
  /**
   * A quota or credits shared by all the application's keys (docs/quotas.md), one or the other;
   * its balance is kept under the application's id. Absent in older records: none.
   */
  quota?: QuotaSpec | null;
  credits?: CreditsSpec | null;
}

export function appToWire(app: AppRecord) {
  return {
    id: app.id,
    name: app.name,
    description: app.description,
    status: app.suspended_at === null ? 'active' : 'suspended',
    meta: app.meta,
    plan: app.plan ?? null,
    rate_limit: app.rate_limit ?? null,
    quota: app.quota ?? null,
    credits: app.credits ?? null,
    tenant: app.tenant,
    created_at: toIso(app.created_at),
    created_by: app.created_by,
    updated_at: toIso(app.updated_at),
    suspended_at: toIso(app.suspended_at),
    suspended_reason: app.suspended_reason,
  };
}
