import type { Config } from '../../config/schema.js';
import type { ExpiringCursor } from '../../core/alerts.js';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import type { KeyRecord } from '../../core/record.js';
import type { Store } from '../../core/store/store.js';
import { DAY, MINUTE, bucketStart, type Fields } from '../../core/usage-agg.js';
import { LeasedPeriodic } from './periodic.js';
import type { AlertService } from './service.js';

const HOUR = 3_600_000;
const PAGE = 500;
/** Keys looked at per pass for expiry, at most (the rest wait for the next pass). */
const MAX_EXPIRING = 50_000;
/** Dedup keys remembered as raised, so a pass does not ask the store again; cleared when full. */
const MAX_SEEN = 100_000;

/** Per-key counters of the overall per-minute aggregates (core/usage-agg.ts), by what the rules read. */
const FIELD = { rate_limited: 'kr:', ip_denied: 'ki:', used_after_revocation: 'kv:', requests: 'k:', errors: 'ke:' } as const;
/** Per key: requests a limit in shadow mode would have refused. */
const SHADOW = 'kw:';

/**
 * Looks for what deserves an alert, every `alerts.interval_ms` in one admin process at a time
 * (LeasedPeriodic): keys about to expire, and traffic that crosses a threshold in the usage
 * aggregates (docs/alerts.md). Windows are whole minutes ending with the current one, and an
 * alert is raised once per key, type and window (aligned on the window's length).
 */
export class AlertWatch {
  #config: Config;
  readonly #store: Store;
  readonly #alerts: AlertService;
  readonly #clock: Clock;
  readonly #log: Logger;
  /** Overall per-minute buckets by start; minutes older than the last two do not change and are not read again. */
  readonly #minutes = new Map<number, Fields>();
  readonly #days = new Map<number, Fields>();
  #daysReadAt = -Infinity;
  readonly #seen = new Set<string>();
  readonly #records = new Map<string, KeyRecord | null>();
  #lastPrune = -Infinity;
  readonly #periodic: LeasedPeriodic;

  constructor(config: Config, store: Store, alerts: AlertService, clock: Clock, log: Logger) {
    this.#config = config;
    this.#store = store;
    this.#alerts = alerts;
    this.#clock = clock;
    this.#log = log;
    this.#periodic = new LeasedPeriodic(store, 'alert-watch', config.alerts.interval_ms, () => this.#pass());
  }

  /**
   * Reads `config` from now on (a configuration reload, docs/operations.md): its policies
   * and scopes; the sections a reload does not apply are the running ones, unchanged.
   */
  reconfigure(config: Config): void {
    this.#config = config;
  }

  start(): void {
    this.#periodic.start();
  }

  /** One pass; resolves with the number of alerts raised. Passes never overlap. */
  tick(): Promise<number> {
    if (!this.#alerts.enabled) return Promise.resolve(0);
    return this.#periodic.tick().catch((err: Error) => {
      this.#log.warn('alert watch pass failed', { err: err.message });
      return 0;
    });
  }

  close(): Promise<void> {
    return this.#periodic.close();
  }

  async #pass(): Promise<number> {
    const now = this.#clock.now();
    this.#records.clear();
    let raised = await this.#expiring(now);
    raised += await this.#traffic(now);
    if (now - this.#lastPrune >= HOUR) {
      this.#lastPrune = now;
      const dropped = await this.#store.pruneAlerts(now - this.#config.alerts.retention_days * DAY);
      if (dropped > 0) this.#log.info('alerts pruned', { dropped });
    }
    return raised;
  }

  async #raise(...args: Parameters<AlertService['raise']>): Promise<number> {
    const dedup = `${args[0]}|${args[3]}`;
    if (this.#seen.has(dedup)) return 0;
    const alert = await this.#alerts.raise(...args);
    if (this.#seen.size >= MAX_SEEN) this.#seen.clear();
    this.#seen.add(dedup);
    return alert === null ? 0 : 1;
  }

  /** key.expiring: once per key, threshold and expiry time (an extended expiry warns again). */
  async #expiring(now: number): Promise<number> {
    const policies = Object.keys(this.#config.policies);
    const longest = Math.max(...this.#config.alerts.expiring_days, ...policies.map((p) => Math.max(...this.#alerts.rules(p).expiring_days)));
    let raised = 0;
    let cursor: ExpiringCursor | null = null;
    for (let seen = 0; seen < MAX_EXPIRING; ) {
      const page = await this.#store.expiringKeys(now, now + longest * DAY, cursor, PAGE);
      for (const rec of page) {
        // An old key in its rotation grace is on its way out: its successor is what matters.
        if (rec.replaced_by !== null) continue;
        const left = rec.expires_at! - now;
        const threshold = Math.min(...this.#alerts.rules(rec.policy).expiring_days.filter((d) => left <= d * DAY));
        if (!Number.isFinite(threshold)) continue;
        const data = { expires_at: new Date(rec.expires_at!).toISOString(), days_left: Math.round(left / DAY), threshold_days: threshold };
        raised += await this.#raise('key.expiring', rec, data, `${rec.id}|${threshold}|${rec.expires_at}`);
      }
      seen += page.length;
      if (page.length < PAGE) break;
      const last = page[page.length - 1]!;
      cursor = { expires_at: last.expires_at!, id: last.id };
    }
    return raised;
  }

  async #traffic(now: number): Promise<number> {
    const overrides = Object.keys(this.#config.policies).map((p) => this.#alerts.rules(p));
    const all = [this.#alerts.rules(null), ...overrides];
    const longest = Math.max(60, this.#config.alerts.usage_error_rate.window_minutes, ...all.flatMap((r) => [r.rate_limited.window_minutes, r.ip_denied.window_minutes, r.used_after_revocation.window_minutes, r.error_rate.window_minutes]));
    await this.#readMinutes(now, longest);
    let raised = 0;

    // Counts of refusals: rate limit, IP allowlist, revoked key.
    for (const type of ['rate_limited', 'ip_denied', 'used_after_revocation'] as const) {
      const least = Math.min(...all.map((r) => r[type].count));
      const widest = Math.max(...all.map((r) => r[type].window_minutes));
      // A limit in shadow mode counts what it would have refused (docs/quotas.md, Shadow mode).
      const totals = this.#sums(FIELD[type], now, widest);
      if (type === 'rate_limited') for (const [keyId, w] of this.#sums(SHADOW, now, widest)) totals.set(keyId, (totals.get(keyId) ?? 0) + w);
      for (const [keyId, total] of totals) {
        if (total < least) continue;
        const rec = await this.#record(keyId);
        if (rec === null) continue;
        const rule = this.#alerts.rules(rec.policy)[type];
        const refused = this.#sum(`${FIELD[type]}${keyId}`, now, rule.window_minutes);
        const shadow = type === 'rate_limited' ? this.#sum(`${SHADOW}${keyId}`, now, rule.window_minutes) : 0;
        const n = refused + shadow;
        if (n < rule.count) continue;
        const data: Record<string, unknown> = { requests: n, window_minutes: rule.window_minutes };
        if (type === 'rate_limited') {
          data['refused'] = refused;
          data['would_have_been_refused'] = shadow;
        }
        if (type === 'used_after_revocation') {
          if (rec.revoked_at === null && rec.grace_ends_at === null) continue;
          data['revoked_at'] = new Date(Math.min(rec.revoked_at ?? Infinity, rec.grace_ends_at ?? Infinity)).toISOString();
          data['replaced_by'] = rec.replaced_by;
        }
        raised += await this.#raise(`key.${type}`, rec, data, `${keyId}|${windowOf(now, rule.window_minutes)}`);
      }
    }

    // Error share of a key's requests.
    const leastShare = Math.min(...all.map((r) => r.error_rate.share));
    const leastRequests = Math.min(...all.map((r) => r.error_rate.min_requests));
    const widestErrors = Math.max(...all.map((r) => r.error_rate.window_minutes));
    for (const [keyId, errors] of this.#sums(FIELD.errors, now, widestErrors)) {
      if (errors < leastRequests * leastShare) continue;
      const rec = await this.#record(keyId);
      if (rec === null) continue;
      const rule = this.#alerts.rules(rec.policy).error_rate;
      const n = this.#sum(`${FIELD.requests}${keyId}`, now, rule.window_minutes);
      const e = this.#sum(`${FIELD.errors}${keyId}`, now, rule.window_minutes);
      if (n < rule.min_requests || e / n < rule.share) continue;
      const data = { requests: n, errors: e, share: round(e / n), threshold: rule.share, window_minutes: rule.window_minutes };
      raised += await this.#raise('key.error_rate', rec, data, `${keyId}|${windowOf(now, rule.window_minutes)}`);
    }

    // A key's last hour against its own hourly average of the days before.
    const leastUnusual = Math.min(...all.map((r) => r.unusual_usage.min_requests));
    const hourly = [...this.#sums(FIELD.requests, now, 60)].filter(([, n]) => n >= leastUnusual);
    if (hourly.length > 0) {
      await this.#readDays(now, Math.max(...all.map((r) => r.unusual_usage.baseline_days)));
      for (const [keyId, n] of hourly) {
        const rec = await this.#record(keyId);
        if (rec === null) continue;
        const rule = this.#alerts.rules(rec.policy).unusual_usage;
        // The baseline: whole days before today, and only those the key existed in.
        const today = bucketStart(now, 'd');
        const days = Math.min(rule.baseline_days, Math.floor((today - bucketStart(rec.created_at, 'd')) / DAY));
        if (days < 1 || n < rule.min_requests) continue;
        let before = 0;
        for (let d = 1; d <= days; d++) before += this.#days.get(today - d * DAY)?.[`${FIELD.requests}${keyId}`] ?? 0;
        // A key never used before has no baseline: its first traffic is not unusual.
        if (before === 0) continue;
        const perHour = before / (days * 24);
        if (n < rule.factor * Math.max(perHour, 1)) continue;
        const data = { requests: n, baseline_per_hour: round(perHour), baseline_days: days, factor: round(n / Math.max(perHour, 1)), threshold_factor: rule.factor };
        raised += await this.#raise('key.unusual_usage', rec, data, `${keyId}|${Math.floor(now / HOUR)}`);
      }
    }

    // All traffic.
    const u = this.#config.alerts.usage_error_rate;
    const n = this.#sum('n', now, u.window_minutes);
    const ok = this.#sum('ok', now, u.window_minutes);
    if (n >= u.min_requests && (n - ok) / n >= u.share) {
      const data = { requests: n, errors: n - ok, share: round((n - ok) / n), threshold: u.share, window_minutes: u.window_minutes };
      raised += await this.#raise('usage.error_rate', null, data, `*|${windowOf(now, u.window_minutes)}`);
    }
    return raised;
  }

  /** Reads the overall minutes of the last `minutes`: the two newest again (still filling), older ones once. */
  async #readMinutes(now: number, minutes: number): Promise<void> {
    const current = bucketStart(now, 'm');
    const from = current - (minutes - 1) * MINUTE;
    for (const start of this.#minutes.keys()) if (start < from) this.#minutes.delete(start);
    let missing = from;
    while (missing < current - MINUTE && this.#minutes.has(missing)) missing += MINUTE;
    const buckets = await this.#store.usageBuckets('*', 'm', missing, now + 1);
    for (let s = missing; s <= current; s += MINUTE) this.#minutes.set(s, {});
    for (const b of buckets) this.#minutes.set(b.start, b.fields);
  }

  /** Reads the overall days of the baseline, at most once an hour. */
  async #readDays(now: number, days: number): Promise<void> {
    if (now - this.#daysReadAt < HOUR) return;
    this.#daysReadAt = now;
    const today = bucketStart(now, 'd');
    this.#days.clear();
    for (const b of await this.#store.usageBuckets('*', 'd', today - days * DAY, today)) this.#days.set(b.start, b.fields);
  }

  /** A field's total over the last `minutes` whole minutes (the current one included). */
  #sum(field: string, now: number, minutes: number): number {
    const from = bucketStart(now, 'm') - (minutes - 1) * MINUTE;
    let total = 0;
    for (const [start, fields] of this.#minutes) if (start >= from) total += fields[field] ?? 0;
    return total;
  }

  /** Per key, the totals of the fields `<prefix><key id>` over the last `minutes`. */
  #sums(prefix: string, now: number, minutes: number): Map<string, number> {
    const from = bucketStart(now, 'm') - (minutes - 1) * MINUTE;
    const out = new Map<string, number>();
    for (const [start, fields] of this.#minutes) {
      if (start < from) continue;
      for (const name in fields) {
        if (!name.startsWith(prefix)) continue;
        const id = name.slice(prefix.length);
        out.set(id, (out.get(id) ?? 0) + fields[name]!);
      }
    }
    return out;
  }

  async #record(id: string): Promise<KeyRecord | null> {
    let rec = this.#records.get(id);
    if (rec === undefined) this.#records.set(id, (rec = await this.#store.getKey(id)));
    return rec;
  }
}

/** The window a time falls in, for deduplication: whole windows of `minutes` since the epoch. */
function windowOf(now: number, minutes: number): number {
  return Math.floor(now / (minutes * MINUTE));
}

const round = (v: number) => Math.round(v * 1000) / 1000;
