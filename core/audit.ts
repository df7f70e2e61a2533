import { toIso } from './clock.js';

/** Who made an admin call, as the audit log records it. */
export interface Actor {
  name: string;
  role: string;
  tenant: string | null;
  ip: string;
  request_id: string;
}

/** The scheduler acting on its own. */
export function schedulerActor(requestId: string): Actor {
  return { name: 'scheduler', role: 'system', tenant: null, ip: '', request_id: requestId };
}

/** Every action the audit log records; the audit route's `action` filter accepts exactly these. */
export const AUDIT_ACTIONS = [
  'key.created',
  'key.updated',
  'key.suspended',
  'key.reactivated',
  'key.regenerated',
  'key.rotated',
  'key.revoked',
  'key.activated',
  'key.expired',
  'key.grace_ended',
  'key.leaked',
  'key.credits_changed',
  'application.created',
  'application.updated',
  'application.suspended',
  'application.reactivated',
  'application.credits_changed',
  'config.reloaded',
  'config.reload_refused',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/**
 * One admin mutation. Never holds a key or a hash: `changes` lists field names and values of
 * configuration only. Times are epoch milliseconds as stored; auditToWire renders them.
 */
export interface AuditEntry {
  id: string;
  time: number;
  actor: string;
  role: string;
  /** The tenant of what was changed (null: untenanted). */
  tenant: string | null;
  ip: string;
  request_id: string;
  action: AuditAction;
  target_type: 'key' | 'application' | 'config';
  target_id: string;
  changes: Record<string, { from: unknown; to: unknown }>;
}

export type KeyEventType =
  | 'created'
  | 'activated'
  | 'first_used'
  | 'edited'
  | 'suspended'
  | 'reactivated'
  | 'rotated'
  | 'expired'
  | 'revoked'
  | 'leaked';

/** Record fields that hold a time; `changes` shows their values as RFC 3339 like the records do. */
const isTimeField = (field: string) => field.endsWith('_at') || field === 'not_before';

/** The entry as the admin API shows it: `occurred_at` and every time in `changes` in RFC 3339 UTC. */
export function auditToWire(e: AuditEntry) {
  const changes: AuditEntry['changes'] = {};
  for (const [field, c] of Object.entries(e.changes)) {
    changes[field] = isTimeField(field) ? { from: isoOrSame(c.from), to: isoOrSame(c.to) } : c;
  }
  return {
    id: e.id,
    occurred_at: toIso(e.time),
    actor: e.actor,
    role: e.role,
    tenant: e.tenant,
    ip: e.ip,
    request_id: e.request_id,
    action: e.action,
    target_type: e.target_type,
    target_id: e.target_id,
    changes,
  };
}

const isoOrSame = (v: unknown) => (typeof v === 'number' ? toIso(v) : v);

/** A step of a key's lifecycle, with the time it was due (when it was scheduled) and the time it happened. */
export interface KeyEvent {
  key_id: string;
  type: KeyEventType;
  scheduled_at: number | null;
  at: number;
  actor: string;
  detail: Record<string, unknown>;
}

/** Field-by-field difference of two records, for the audit log; secrets never pass through here. */
export function diff<T extends object>(before: T | null, after: T, fields: readonly (keyof T & string)[]): AuditEntry['changes'] {
  const changes: AuditEntry['changes'] = {};
  for (const f of fields) {
    const from = before === null ? null : before[f];
    const to = after[f];
    if (JSON.stringify(from) !== JSON.stringify(to)) changes[f] = { from: from ?? null, to: to ?? null };
  }
  return changes;
}
