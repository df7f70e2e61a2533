import { toIso } from './clock.js';

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
}

export function appToWire(app: AppRecord) {
  return {
    id: app.id,
    name: app.name,
    description: app.description,
    status: app.suspended_at === null ? 'active' : 'suspended',
    meta: app.meta,
    tenant: app.tenant,
    created_at: toIso(app.created_at),
    created_by: app.created_by,
    updated_at: toIso(app.updated_at),
    suspended_at: toIso(app.suspended_at),
    suspended_reason: app.suspended_reason,
  };
}
