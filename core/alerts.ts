/**
 * Alerts: what Keygate tells key owners before it hurts (docs/alerts.md). An alert is stored
 * once per deduplication key (a key, a type and a window), listed at `GET /v1/alerts`, and
 * handed to every matching destination as a delivery that is retried until it succeeds or
 * gives up. Stores keep alerts and deliveries durable, so a restart loses nothing pending.
 */

export const ALERT_TYPES = [
  'key.expiring',
  'key.expired',
  'key.rotated',
  'key.revoked',
  'key.leaked',
  'key.used_after_revocation',
  'key.ip_denied',
  'key.rate_limited',
  'key.error_rate',
  'key.unusual_usage',
  'usage.error_rate',
] as const;
export type AlertType = (typeof ALERT_TYPES)[number];

export function isAlertType(s: string): s is AlertType {
  return (ALERT_TYPES as readonly string[]).includes(s);
}

/** The key an alert is about, as anyone may see it (never the secret). */
export interface AlertKey {
  id: string;
  name: string;
  masked: string;
}

export interface Alert {
  /** `alr_` and 26 random characters: receivers deduplicate on it. */
  id: string;
  type: AlertType;
  /** Milliseconds since the epoch (ISO 8601 over HTTP). */
  created_at: number;
  /** The key's tenant; null for alerts about all traffic or a key without one. */
  tenant: string | null;
  key: AlertKey | null;
  /** What happened, by type (docs/alerts.md). */
  data: Record<string, unknown>;
}

export interface DeliveryAttempt {
  at: number;
  ok: boolean;
  /** The receiver's HTTP status or SMTP reply code; null when none came. */
  status: number | null;
  error: string | null;
  duration_ms: number;
}

export type DeliveryState = 'pending' | 'delivered' | 'failed';

/** One alert on its way to one destination. */
export interface Delivery {
  id: string;
  alert_id: string;
  /** `webhook:<name>` or `email`. */
  target: string;
  state: DeliveryState;
  /** Oldest first. */
  attempts: DeliveryAttempt[];
  /** When the next attempt is due; null once delivered or given up. */
  next_at: number | null;
  created_at: number;
}

export interface AlertQuery {
  /** Only this tenant's alerts; null for a token that is not limited to one. */
  tenant: string | null;
  type?: AlertType | undefined;
  key_id?: string | undefined;
  /** created_at ≥ from and < to. */
  from?: number | undefined;
  to?: number | undefined;
  limit: number;
  /** A `next_cursor` of an earlier page (newest first). */
  cursor?: string | undefined;
}

/** Where the expiring-keys scan goes on from: the last key it saw. */
export interface ExpiringCursor {
  expires_at: number;
  id: string;
}
