import type { Alert, AlertQuery, Delivery, ExpiringCursor } from '../alerts.js';
import type { AppRecord } from '../application.js';
import type { AuditEntry, KeyEvent } from '../audit.js';
import type { QuotaAnswer, QuotaOp, QuotaTerms } from '../quota.js';
import type { KeyRecord, KeyStatus } from '../record.js';
import type { KeyUsageDelta } from '../usage.js';
import type { Bucket, BucketDelta, ErrorSample, Granularity } from '../usage-agg.js';

export type KeySort = 'created_at' | 'last_used_at' | 'name';

export interface KeyQuery {
  /** Only this tenant's keys; null for a token that is not limited to one. */
  tenant: string | null;
  status?: KeyStatus | undefined;
  environment?: string | undefined;
  application?: string | undefined;
  scope?: string | undefined;
  /** Case-insensitive substring of the name, or an exact id. */
  q?: string | undefined;
  sort: KeySort;
  order: 'asc' | 'desc';
  limit: number;
  cursor?: string | undefined;
  /** The time that statuses are computed at. */
  now: number;
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export type KeyPage = Page<KeyRecord>;

export interface AppQuery {
  tenant: string | null;
  status?: 'active' | 'suspended' | undefined;
  q?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

export interface AuditQuery {
  tenant: string | null;
  actor?: string | undefined;
  action?: string | undefined;
  target_id?: string | undefined;
  from?: number | undefined;
  to?: number | undefined;
  limit: number;
  cursor?: string | undefined;
}

/**
 * One atomic change: records written compare-and-set on their versions, with the audit
 * entries and lifecycle events that describe it. Either all of it is stored or none.
 */
export interface Commit {
  keys?: { rec: KeyRecord; expected: number }[];
  apps?: { rec: AppRecord; expected: number }[];
  audit?: AuditEntry[];
  events?: KeyEvent[];
}

export interface Committed {
  keys: KeyRecord[];
  apps: AppRecord[];
}

/**
 * What both planes need of a store. Both implementations pass the same conformance tests.
 * Writes are compare-and-set on `version`: a record is stored only when the stored version is
 * the expected one (0 for a new record), and is stored with that version + 1.
 */
/** One batch of traffic for the store, applied whole and at most once. */
export interface UsageBatch {
  /** Unique per batch: a batch sent again (a retry after a lost answer) is not counted twice. */
  id: string;
  keys: KeyUsageDelta[];
  /** Aggregate increments, each kept `ttl_ms` from this write (the retention). */
  buckets: (BucketDelta & { ttl_ms: number })[];
  errors: ErrorSample[];
  /** Most error samples kept; older ones are dropped. */
  keep_errors: number;
}

export interface ErrorQuery {
  key_id?: string | undefined;
  tenant?: string | undefined;
  from?: number | undefined;
  to?: number | undefined;
  limit: number;
  /** Samples after this one in the newest-first order (a `next_cursor` of the errors route). */
  cursor?: string | undefined;
}

export interface Store {
  readonly kind: string;
  /** False while the store cannot be reached (the process runs degraded meanwhile). */
  readonly available: boolean;
  getKeyByHash(hash: string): Promise<KeyRecord | null>;
  getKey(id: string): Promise<KeyRecord | null>;
  /** `commit` of one key alone. */
  putKey(rec: KeyRecord, expectedVersion: number): Promise<KeyRecord>;
  commit(change: Commit): Promise<Committed>;
  listKeys(query: KeyQuery): Promise<KeyPage>;
  /** Every key of an application, in no particular order. */
  keysOfApp(appId: string): Promise<KeyRecord[]>;
  /** Keys with a scheduled transition at or before `now` that has not been recorded yet. */
  dueKeys(now: number, limit: number): Promise<KeyRecord[]>;
  getApp(id: string): Promise<AppRecord | null>;
  listApps(query: AppQuery): Promise<Page<AppRecord>>;
  listAudit(query: AuditQuery): Promise<Page<AuditEntry>>;
  /** A key's lifecycle events, oldest first. */
  listKeyEvents(keyId: string): Promise<KeyEvent[]>;
  /**
   * Takes or renews a named lease for `ttlMs`; true while `holder` has it. Keeps periodic work
   * (the scheduler) to one process at a time.
   */
  lease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /**
   * Adds traffic to keys' `usage` counters and moves `last_used_at` forward, without changing
   * their version; a key's first recorded use also appends its `first_used` event. Deltas for
   * keys that no longer exist are dropped.
   */
  recordUsage(deltas: readonly KeyUsageDelta[]): Promise<void>;
  /**
   * `recordUsage` with aggregates and error samples, all in one atomic write; answers false
   * (and changes nothing) when a batch with this id was applied before.
   */
  ingestUsage(batch: UsageBatch): Promise<boolean>;
  /** A scope's buckets of one granularity with `from` ≤ start < `to`, oldest first; empty ones left out. */
  usageBuckets(scope: string, gran: Granularity, from: number, to: number): Promise<Bucket[]>;
  /** Error samples, newest first. */
  recentErrors(query: ErrorQuery): Promise<ErrorSample[]>;
  /**
   * One atomic operation on the quota balance of `account` (a key id; core/quota.ts,
   * applyQuota) under `terms`, in the period holding `now`: `spend` takes `amount` units when
   * that many are left and otherwise changes nothing and answers `ok: false`; `refund` gives
   * `amount` back if the balance is still in the period of `now` (the spending request's
   * time); `set`, `add` and `read` do what they say. Exact whatever the concurrency: N spends
   * of 1 against a balance of Q admit exactly min(N, Q), across every process sharing the store.
   */
  quota(account: string, terms: QuotaTerms, op: QuotaOp, amount: number, now: number): Promise<QuotaAnswer>;
  /**
   * Called with the lookup id of every key that changed, so caches can drop it; with null when
   * changes may have been missed (a lost connection), so caches drop everything.
   */
  onKeyChange(listener: (hash: string | null) => void): () => void;
  /**
   * Keys not revoked (`revoked_at` null) whose `expires_at` is after `from` and at or before
   * `to`, ordered by `expires_at` then id, after `cursor` (the last key of the previous page),
   * at most `limit`. A page shorter than `limit` is the last.
   */
  expiringKeys(from: number, to: number, cursor: ExpiringCursor | null, limit: number): Promise<KeyRecord[]>;
  /**
   * Stores an alert with its deliveries, all or nothing, unless an alert with this `dedup` key
   * is stored already: then nothing is written and the answer is false. A dedup key is kept as
   * long as its alert. `created_at` is a whole number of milliseconds; delivery ids are new.
   */
  addAlert(alert: Alert, dedup: string, deliveries: readonly Delivery[]): Promise<boolean>;
  getAlert(id: string): Promise<Alert | null>;
  /** Alerts newest first (created_at, then id), filtered; keyset cursors. */
  listAlerts(query: AlertQuery): Promise<Page<Alert>>;
  /** Pending deliveries with `next_at` ≤ now, earliest due first (then by id). */
  dueDeliveries(now: number, limit: number): Promise<Delivery[]>;
  /**
   * Replaces a stored delivery's `state`, `attempts` and `next_at` (its alert, target and
   * creation stay as stored); unknown ids are ignored.
   */
  putDelivery(delivery: Delivery): Promise<void>;
  /** An alert's deliveries, oldest first: in the order addAlert was given them. */
  listDeliveries(alertId: string): Promise<Delivery[]>;
  /** Drops alerts created before `before` with their deliveries and dedup keys; the number dropped. */
  pruneAlerts(before: number): Promise<number>;
  close(): Promise<void>;
}

/** Everything a store holds, as `keygate migrate` moves it from one store to another. */
export interface StoreDump {
  keys: KeyRecord[];
  apps: AppRecord[];
  audit: AuditEntry[];
  /** Every key's lifecycle events, each key's in order. */
  events: KeyEvent[];
  /** Usage aggregates with the end of their retention. */
  buckets: { scope: string; gran: Granularity; start: number; expires: number; fields: Record<string, number> }[];
  /** Error samples, oldest kept first. */
  errors: ErrorSample[];
  /** Ids of the usage batches applied, oldest first. */
  batches: string[];
  /** Alerts with their deduplication keys, oldest stored first. */
  alerts: { alert: Alert; dedup: string }[];
  /** Every alert's deliveries, each alert's in order. */
  deliveries: Delivery[];
  /** Quota balances by account (core/quota.ts). */
  quotas: { account: string; balance: number; period: number }[];
}
