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

/** One admin mutation. Never holds a key or a hash: `changes` lists field names and values of configuration only. */
export interface AuditEntry {
  id: string;
  time: number;
  actor: string;
  role: string;
  /** The tenant of what was changed (null: untenanted). */
  tenant: string | null;
  ip: string;
  request_id: string;
  action: string;
  target_type: 'key' | 'application';
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
  | 'revoked';

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
