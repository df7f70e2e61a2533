import type { Config } from '../../config/schema.js';
import type { Alert, AlertType, Delivery } from '../../core/alerts.js';
import type { KeyEvent } from '../../core/audit.js';
import type { Clock } from '../../core/clock.js';
import { maskKey, randomBase62 } from '../../core/key-format.js';
import type { Logger } from '../../core/log.js';
import type { KeyRecord } from '../../core/record.js';
import type { Store } from '../../core/store/store.js';

type AlertsConfig = Config['alerts'];
type Rules = AlertsConfig['rules'];

/** A policy's thresholds over the global ones (a policy names only what it changes). */
export interface EffectiveRules extends Rules {
  expiring_days: number[];
  off: readonly AlertType[];
}

/** What a lifecycle event of a key's timeline raises. */
const LIFECYCLE: Partial<Record<KeyEvent['type'], AlertType>> = {
  rotated: 'key.rotated',
  revoked: 'key.revoked',
  leaked: 'key.leaked',
  expired: 'key.expired',
};

export function alertKeyOf(rec: KeyRecord): Alert['key'] {
  return { id: rec.id, name: rec.name, masked: maskKey(rec.start, rec.end) };
}

/**
 * Raises alerts: stores each one once per deduplication key, with one pending delivery per
 * destination that takes it (docs/alerts.md). Delivery itself is the Deliverer's.
 */
export class AlertService {
  #config: Config;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #rules = new Map<string | null, EffectiveRules>();
  /** Dashboard users by name, for the owner of a key (`created_by`). */
  readonly #emails: ReadonlyMap<string, string>;

  constructor(config: Config, store: Store, clock: Clock, log: Logger) {
    this.#config = config;
    this.#store = store;
    this.#clock = clock;
    this.#log = log;
    this.#emails = new Map(config.dashboard.users.map((u) => [u.name, u.email]));
  }

  /**
   * Reads `config` from now on (a configuration reload, docs/operations.md): its policies
   * and scopes; the sections a reload does not apply are the running ones, unchanged.
   */
  reconfigure(config: Config): void {
    this.#config = config;
    this.#rules.clear();
  }

  get enabled(): boolean {
    return this.#config.alerts.enabled;
  }

  /** The thresholds for keys of this policy (null: none). */
  rules(policy: string | null): EffectiveRules {
    let r = this.#rules.get(policy);
    if (r !== undefined) return r;
    const a = this.#config.alerts;
    const o = policy === null ? null : (this.#config.policies[policy]?.alerts ?? null);
    r = {
      rate_limited: { ...a.rules.rate_limited, ...o?.rate_limited },
      ip_denied: { ...a.rules.ip_denied, ...o?.ip_denied },
      used_after_revocation: { ...a.rules.used_after_revocation, ...o?.used_after_revocation },
      error_rate: { ...a.rules.error_rate, ...o?.error_rate },
      unusual_usage: { ...a.rules.unusual_usage, ...o?.unusual_usage },
      expiring_days: o?.expiring_days ?? a.expiring_days,
      off: o?.off ?? [],
    };
    this.#rules.set(policy, r);
    return r;
  }

  /**
   * Stores an alert about `key` (null: all traffic) unless one with the same `dedup` was
   * stored; answers it, or null when it was a duplicate, alerts are off, or its policy turns
   * this type off.
   */
  async raise(type: AlertType, key: KeyRecord | null, data: Record<string, unknown>, dedup: string): Promise<Alert | null> {
    if (!this.enabled) return null;
    if (key !== null && this.rules(key.policy).off.includes(type)) return null;
    const now = this.#clock.now();
    const alert: Alert = {
      id: `alr_${randomBase62(26)}`,
      type,
      created_at: now,
      tenant: key?.tenant ?? null,
      key: key === null ? null : alertKeyOf(key),
      data,
    };
    const deliveries = this.#destinations(alert, key).map(
      (target): Delivery => ({ id: `dlv_${randomBase62(26)}`, alert_id: alert.id, target, state: 'pending', attempts: [], next_at: now, created_at: now }),
    );
    const added = await this.#store.addAlert(alert, `${type}|${dedup}`, deliveries);
    if (!added) return null;
    this.#log.info('alert raised', { alert_id: alert.id, type, key_id: alert.key?.id ?? null, deliveries: deliveries.length });
    return alert;
  }

  /**
   * The alerts a committed change of keys raises (rotated, revoked, leaked, expired), from its
   * timeline events. A failure is logged, never thrown: the change itself has been stored.
   */
  async fromKeyEvents(events: readonly KeyEvent[], records: readonly KeyRecord[]): Promise<void> {
    if (!this.enabled) return;
    for (const e of events) {
      const type = LIFECYCLE[e.type];
      if (type === undefined) continue;
      const rec = records.find((r) => r.id === e.key_id);
      if (rec === undefined) continue;
      // A key is rotated, revoked and expired once; a leak is raised once a day per key.
      const dedup = type === 'key.leaked' ? `${rec.id}|${Math.floor(e.at / 86_400_000)}` : rec.id;
      try {
        await this.raise(type, rec, lifecycleData(e), dedup);
      } catch (err) {
        this.#log.error('alert not stored', { type, key_id: rec.id, err: (err as Error).message });
      }
    }
  }

  /** Who receives this alert: `webhook:<name>` per matching webhook, and `email` when email takes it. */
  #destinations(alert: Alert, key: KeyRecord | null): string[] {
    const a = this.#config.alerts;
    const out: string[] = [];
    for (const w of a.webhooks) {
      if (!takes(w.events, alert.type)) continue;
      if (w.tenant !== null && w.tenant !== alert.tenant) continue;
      out.push(`webhook:${w.name}`);
    }
    if (a.email && takes(a.email.events, alert.type) && this.recipients(key).length > 0) out.push('email');
    return out;
  }

  /** The addresses an email about `key` goes to: the fixed list, and the key's creator when known. */
  recipients(key: KeyRecord | null): string[] {
    const email = this.#config.alerts.email;
    if (!email) return [];
    const to = new Set(email.to.map((t) => t.toLowerCase()));
    if (email.owners && key?.created_by) {
      const owner = this.#emails.get(key.created_by);
      if (owner !== undefined) to.add(owner);
    }
    return [...to];
  }
}

function takes(events: readonly string[], type: AlertType): boolean {
  return events.includes('*') || events.includes(type);
}

function lifecycleData(e: KeyEvent): Record<string, unknown> {
  const data: Record<string, unknown> = { at: new Date(e.at).toISOString(), actor: e.actor };
  if (e.scheduled_at !== null) data['scheduled_at'] = new Date(e.scheduled_at).toISOString();
  for (const [k, v] of Object.entries(e.detail)) data[k] = v;
  return data;
}
