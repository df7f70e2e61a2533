import { resolve } from 'node:path';
import type { Database, Statement } from 'better-sqlite3';
import type { Alert, AlertQuery, Delivery, DeliveryState, ExpiringCursor } from '../alerts.js';
import type { AppRecord } from '../application.js';
import type { AuditEntry, KeyEvent } from '../audit.js';
import { applyQuota, periodStart, quotaResetAt, type QuotaAnswer, type QuotaOp, type QuotaState, type QuotaTerms } from '../quota.js';
import { dueTransition, nextDueAt, type KeyRecord } from '../record.js';
import type { KeyUsageDelta } from '../usage.js';
import { DAY, MINUTE, type Bucket, type ErrorSample, type Granularity } from '../usage-agg.js';
import { StoreUnavailableError, VersionConflictError } from '../internal-errors.js';
import { ChangeFeed } from './sqlite/changes.js';
import { createPrivate, openDatabase, storeError, unsynced, write } from './sqlite/connection.js';
import * as q from './sqlite/queries.js';
import { migrate, SCHEMA_VERSION } from './sqlite/schema.js';
import type { AppQuery, AuditQuery, Commit, Committed, ErrorQuery, KeyPage, KeyQuery, Page, Store, StoreDump, UsageBatch } from './store.js';

export interface SqliteStoreOptions {
  /** The database file; created (with its directory) when missing. */
  path: string;
  /** How long a write waits for another process's write lock before it fails (503). */
  lockWaitMs?: number;
  /** How often a process that caches keys looks for other processes' key changes. */
  pollMs?: number;
  /** How long a key change waits for every caching process to confirm it. */
  invalidationWaitMs?: number;
  warn?: (msg: string, fields: Record<string, unknown>) => void;
  /** Told about what opening did (a schema migrated). */
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

/** Usage batch ids remembered, to apply a batch sent twice once (as the file store keeps). */
const BATCH_IDS_KEPT = 100_000;

/**
 * The embedded store: one SQLite database file (better-sqlite3, WAL mode) that every process
 * of one machine can share: the admin plane and each gateway worker open it, read keys from it
 * through their own caches, and hear each other's key changes through it (sqlite/changes.ts).
 * The schema is numbered migrations (sqlite/migrations/); each commit is one transaction, on
 * disk before it is acknowledged; lists and usage queries run in SQL (sqlite/queries.ts).
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  /** On local disk: there is no connection to lose. */
  readonly available = true;
  readonly path: string;
  readonly #db: Database;
  readonly #lockWaitMs: number;
  readonly #changes: ChangeFeed;
  readonly #s: ReturnType<typeof statements>;
  /** Start of the newest usage bucket written: buckets whose retention ended before it go. */
  #newestBucket: number;
  #prunedAt = 0;
  #closed = false;

  private constructor(db: Database, options: Required<Omit<SqliteStoreOptions, 'warn' | 'log'>> & Pick<SqliteStoreOptions, 'warn'>) {
    this.#db = db;
    this.path = options.path;
    this.#lockWaitMs = options.lockWaitMs;
    this.#s = statements(db);
    this.#changes = new ChangeFeed(db, {
      path: options.path,
      pollMs: options.pollMs,
      waitMs: options.invalidationWaitMs,
      lockWaitMs: options.lockWaitMs,
      warn: options.warn ?? (() => {}),
    });
    this.#newestBucket = (db.prepare('SELECT coalesce(max(start), 0) FROM usage_buckets').pluck().get() as number) ?? 0;
  }

  static async open(options: SqliteStoreOptions): Promise<SqliteStore> {
    const path = resolve(options.path);
    const lockWaitMs = options.lockWaitMs ?? 5_000;
    const db = await openDatabase(path, lockWaitMs);
    try {
      const found = await write(db, path, 'open', lockWaitMs, () => migrate(db, path));
      if (found !== SCHEMA_VERSION) options.log?.('sqlite schema migrated', { path, from: found, to: SCHEMA_VERSION });
      return new SqliteStore(db, {
        path,
        lockWaitMs,
        pollMs: options.pollMs ?? 2,
        invalidationWaitMs: options.invalidationWaitMs ?? 500,
        warn: options.warn,
      });
    } catch (err) {
      db.close();
      throw storeError(err, path, 'open');
    }
  }

  /** A read; failures become the store's errors. */
  #read<T>(what: string, fn: () => T): T {
    if (this.#closed) throw new StoreUnavailableError('the sqlite store is closed');
    try {
      return fn();
    } catch (err) {
      throw storeError(err, this.path, what);
    }
  }

  #write<T>(what: string, fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreUnavailableError('the sqlite store is closed'));
    return write(this.#db, this.path, what, this.#lockWaitMs, fn);
  }

  async getKeyByHash(hash: string): Promise<KeyRecord | null> {
    const row = this.#read('lookup', () => this.#s.byHash.get(hash) as q.KeyRow | undefined);
    return row ? q.keyFromRow(row) : null;
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    const row = this.#read('read', () => this.#s.byId.get(id) as q.KeyRow | undefined);
    return row ? q.keyFromRow(row) : null;
  }

  async putKey(rec: KeyRecord, expectedVersion: number): Promise<KeyRecord> {
    return (await this.commit({ keys: [{ rec, expected: expectedVersion }] })).keys[0]!;
  }

  async commit(change: Commit): Promise<Committed> {
    const s = this.#s;
    const hashes: string[] = [];
    const run = this.#db.transaction(() => {
      const seen = new Set<string>();
      for (const { rec, expected } of change.keys ?? []) {
        const current = s.keyVersion.get(rec.id) as { version: number; hash: string; seq: number; scopes: string } | undefined;
        if ((current?.version ?? 0) !== expected) throw new VersionConflictError(`key ${rec.id} changed since version ${expected}`);
        const owner = s.hashOwner.get(rec.hash) as string | undefined;
        if ((owner !== undefined && owner !== rec.id) || seen.has(rec.hash)) throw new VersionConflictError('a key with this hash already exists');
        seen.add(rec.hash);
        const row = keyColumns({ ...rec, version: expected + 1 });
        if (current) {
          s.updateKey.run(row);
          if (current.scopes !== row.scopes) setScopes(s, current.seq, rec.scopes, true);
        } else {
          const seq = s.insertKey.run({ ...row, total_requests: rec.usage.total_requests, error_count: rec.usage.error_count, last_used_at: rec.last_used_at }).lastInsertRowid;
          setScopes(s, Number(seq), rec.scopes, false);
        }
        hashes.push(rec.hash);
        if (current && current.hash !== rec.hash) hashes.push(current.hash);
      }
      const apps: AppRecord[] = [];
      for (const { rec, expected } of change.apps ?? []) {
        const current = s.appVersion.get(rec.id) as number | undefined;
        if ((current ?? 0) !== expected) throw new VersionConflictError(`application ${rec.id} changed since version ${expected}`);
        const written = { ...rec, version: expected + 1 };
        (current === undefined ? s.insertApp : s.updateApp).run(appColumns(written));
        apps.push(written);
      }
      for (const a of change.audit ?? []) s.insertAudit.run(auditColumns(a));
      for (const e of change.events ?? []) s.insertEvent.run(e.key_id, JSON.stringify(e));
      const seq = this.#changes.append(hashes, Date.now());
      const keys = (change.keys ?? []).map(({ rec }) => q.keyFromRow(s.byId.get(rec.id) as q.KeyRow));
      return { keys, apps, seq };
    });
    const { keys, apps, seq } = await this.#write('commit', () => run.immediate());
    await this.#changes.published(hashes, seq);
    return { keys, apps };
  }

  async recordUsage(deltas: readonly KeyUsageDelta[]): Promise<void> {
    await this.ingestUsage({ id: '', keys: [...deltas], buckets: [], errors: [], keep_errors: 0 });
  }

  ingestUsage(batch: UsageBatch): Promise<boolean> {
    const s = this.#s;
    const run = this.#db.transaction((): boolean => {
      if (batch.id !== '') {
        if (s.batchKnown.get(batch.id) !== undefined) return false;
        const seq = Number(s.insertBatch.run(batch.id).lastInsertRowid);
        if (seq % 1000 === 0) s.pruneBatches.run(seq - BATCH_IDS_KEPT);
      }
      for (const d of batch.keys) {
        const last = s.lastUsed.get(d.key_id) as { last_used_at: number | null } | undefined;
        if (last === undefined) continue;
        if (last.last_used_at === null) {
          const e: KeyEvent = { key_id: d.key_id, type: 'first_used', scheduled_at: null, at: d.first_at, actor: 'gateway', detail: {} };
          s.insertEvent.run(d.key_id, JSON.stringify(e));
        }
        s.addUsage.run({ requests: d.requests, errors: d.errors, last: d.last_at, id: d.key_id });
      }
      for (const b of batch.buckets) {
        const expires = b.start + (b.gran === 'm' ? MINUTE : DAY) + b.ttl_ms;
        s.upsertBucket.run(b.scope, b.gran, b.start, expires);
        s.addFields.run(b.scope, b.gran, b.start, JSON.stringify(b.fields));
        if (b.start > this.#newestBucket) this.#newestBucket = b.start;
      }
      if (batch.errors.length > 0 && batch.keep_errors > 0) {
        let seq = 0;
        for (const e of batch.errors) seq = Number(s.insertError.run(e.time, e.request_id, e.key_id, e.tenant, JSON.stringify(e)).lastInsertRowid);
        s.pruneErrors.run(seq - batch.keep_errors);
      }
      // Buckets past their retention, at most once a minute of data: judged by the newest data,
      // but never past this machine's clock, or one bucket dated in the future (a gateway's
      // wrong clock, a hostile batch) would end the retention of every other.
      const horizon = Math.min(this.#newestBucket, Date.now());
      if (horizon - this.#prunedAt >= MINUTE) {
        this.#prunedAt = horizon;
        s.pruneFields.run(horizon);
        s.pruneBuckets.run(horizon);
      }
      return true;
    });
    return this.#write('usage', () => run.immediate());
  }

  async usageBuckets(scope: string, gran: Granularity, from: number, to: number): Promise<Bucket[]> {
    // Buckets start on their boundaries, so a bucket with from ≤ start < to is in the range.
    const rows = this.#read('usage', () => this.#s.fields.all(scope, gran, from, to)) as {
      start: number;
      field: string;
      value: number;
    }[];
    const out: Bucket[] = [];
    let cur: Bucket | undefined;
    for (const r of rows) {
      if (cur === undefined || cur.start !== r.start) out.push((cur = { start: r.start, fields: {} }));
      cur.fields[r.field] = r.value;
    }
    return out;
  }

  async recentErrors(query: ErrorQuery): Promise<ErrorSample[]> {
    return this.#read('usage', () => q.recentErrors(this.#db, query));
  }

  async listKeys(query: KeyQuery): Promise<KeyPage> {
    return this.#read('list', () => q.listKeys(this.#db, query));
  }

  async keysOfApp(appId: string): Promise<KeyRecord[]> {
    return this.#read('list', () => (this.#s.keysOfApp.all(appId) as q.KeyRow[]).map(q.keyFromRow));
  }

  async dueKeys(now: number, limit: number): Promise<KeyRecord[]> {
    const rows = this.#read('due', () => this.#s.due.all(now, limit) as q.KeyRow[]);
    return rows.map(q.keyFromRow).filter((k) => dueTransition(k, now) !== null);
  }

  async getApp(id: string): Promise<AppRecord | null> {
    const json = this.#read('read', () => this.#s.app.get(id) as string | undefined);
    return json === undefined ? null : (JSON.parse(json) as AppRecord);
  }

  async listApps(query: AppQuery): Promise<Page<AppRecord>> {
    return this.#read('list', () => q.listApps(this.#db, query));
  }

  async listAudit(query: AuditQuery): Promise<Page<AuditEntry>> {
    return this.#read('audit', () => q.listAudit(this.#db, query));
  }

  async listKeyEvents(keyId: string): Promise<KeyEvent[]> {
    return this.#read('events', () => (this.#s.events.all(keyId) as string[]).map((e) => JSON.parse(e) as KeyEvent));
  }

  /**
   * One immediate transaction: a read and a write that no other process can come between.
   * Spends and refunds, one a request, are committed without waiting for the disk (`unsynced`:
   * they survive a crash of the process, and the connection's next synced write takes them to
   * disk; a power cut may lose the last of them, in the key holder's favour); a set or top-up
   * from the admin plane waits for the disk, as every admin write does.
   */
  async quota(account: string, terms: QuotaTerms, op: QuotaOp, amount: number, now: number): Promise<QuotaAnswer> {
    const s = this.#s;
    const start = periodStart(now, terms.every);
    const run = this.#db.transaction(() => {
      const r = applyQuota((s.quota.get(account) as QuotaState | undefined) ?? null, terms, op, amount, start);
      if (r.state !== null) s.putQuota.run(account, r.state.balance, r.state.period);
      return r;
    });
    const traffic = op === 'spend' || op === 'refund';
    const r = await this.#write('quota', () => (traffic ? unsynced(this.#db, () => run.immediate()) : run.immediate()));
    return { ok: r.ok, remaining: r.remaining, resetAt: quotaResetAt(terms, start) };
  }

  async lease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const changed = await this.#write('lease', () => this.#s.lease.run(name, holder, now + ttlMs, holder, now).changes);
    return changed === 1;
  }

  onKeyChange(listener: (hash: string | null) => void): () => void {
    return this.#changes.onKeyChange(listener);
  }

  async expiringKeys(from: number, to: number, cursor: ExpiringCursor | null, limit: number): Promise<KeyRecord[]> {
    return this.#read('expiring', () => q.expiringKeys(this.#db, from, to, cursor, limit));
  }

  addAlert(alert: Alert, dedup: string, deliveries: readonly Delivery[]): Promise<boolean> {
    const s = this.#s;
    const run = this.#db.transaction((): boolean => {
      // The unique dedup column settles a race between two processes: the second insert is ignored.
      if (s.insertAlert.run(alertColumns(alert, dedup)).changes === 0) return false;
      for (const d of deliveries) s.insertDelivery.run(deliveryColumns(d));
      return true;
    });
    return this.#write('alert', () => run.immediate());
  }

  async getAlert(id: string): Promise<Alert | null> {
    const json = this.#read('alerts', () => this.#s.alert.get(id) as string | undefined);
    return json === undefined ? null : (JSON.parse(json) as Alert);
  }

  async listAlerts(query: AlertQuery): Promise<Page<Alert>> {
    return this.#read('alerts', () => q.listAlerts(this.#db, query));
  }

  async dueDeliveries(now: number, limit: number): Promise<Delivery[]> {
    return this.#read('deliveries', () => (this.#s.dueDeliveries.all(now, limit) as DeliveryRow[]).map(deliveryFromRow));
  }

  async putDelivery(delivery: Delivery): Promise<void> {
    const { id, state, next_at } = delivery;
    const attempts = JSON.stringify(delivery.attempts);
    await this.#write('delivery', () => this.#s.updateDelivery.run({ id, state, attempts, next_at }));
  }

  async listDeliveries(alertId: string): Promise<Delivery[]> {
    return this.#read('deliveries', () => (this.#s.deliveriesOf.all(alertId) as DeliveryRow[]).map(deliveryFromRow));
  }

  pruneAlerts(before: number): Promise<number> {
    const s = this.#s;
    const run = this.#db.transaction((): number => {
      s.pruneDeliveries.run(before);
      return s.pruneAlerts.run(before).changes;
    });
    return this.#write('alert prune', () => run.immediate());
  }

  /** Looks for other processes' key changes now (tests; the store polls on its own). */
  pollChanges(): void {
    this.#changes.poll();
  }

  /** The database's own check of every page and index: ['ok'], or what is wrong. */
  integrityCheck(): string[] {
    return this.#read('integrity check', () => this.#db.prepare('PRAGMA integrity_check').pluck().all() as string[]);
  }

  /**
   * A consistent copy of the database at `dest` (which must not exist), taken in one read
   * transaction while writes go on (VACUUM INTO; `keygate backup` does the same from outside).
   */
  async backup(dest: string): Promise<void> {
    this.#read('backup', () => {
      createPrivate(dest);
      this.#db.prepare('VACUUM INTO ?').run(dest);
    });
  }

  /** Everything held (`keygate migrate`, tests that compare stores). */
  dump(): StoreDump {
    return this.#read('dump', () => ({
      keys: (this.#db.prepare(`SELECT ${q.KEY_COLUMNS} FROM keys k ORDER BY k.seq`).all() as q.KeyRow[]).map(q.keyFromRow),
      apps: (this.#db.prepare('SELECT record FROM apps ORDER BY seq').pluck().all() as string[]).map((r) => JSON.parse(r) as AppRecord),
      audit: (this.#db.prepare('SELECT entry FROM audit ORDER BY seq').pluck().all() as string[]).map((r) => JSON.parse(r) as AuditEntry),
      events: (this.#db.prepare('SELECT event FROM events ORDER BY seq').pluck().all() as string[]).map((r) => JSON.parse(r) as KeyEvent),
      buckets: (this.#db.prepare('SELECT scope, gran, start, expires FROM usage_buckets').all() as StoreDump['buckets']).map((b) => ({
        ...b,
        fields: Object.fromEntries(
          this.#db.prepare('SELECT field, value FROM usage_fields WHERE scope = ? AND gran = ? AND start = ?').raw().all(b.scope, b.gran, b.start) as [string, number][],
        ),
      })),
      errors: (this.#db.prepare('SELECT sample FROM usage_errors ORDER BY seq').pluck().all() as string[]).map((r) => JSON.parse(r) as ErrorSample),
      batches: this.#db.prepare('SELECT id FROM usage_batches ORDER BY seq').pluck().all() as string[],
      alerts: (this.#db.prepare('SELECT alert, dedup FROM alerts ORDER BY seq').all() as { alert: string; dedup: string }[]).map((r) => ({
        alert: JSON.parse(r.alert) as Alert,
        dedup: r.dedup,
      })),
      deliveries: (this.#db.prepare(`SELECT ${DELIVERY_FIELDS} FROM deliveries ORDER BY seq`).all() as DeliveryRow[]).map(deliveryFromRow),
      quotas: this.#db.prepare('SELECT account, balance, period FROM quotas ORDER BY account').all() as StoreDump['quotas'],
    }));
  }

  /** Writes a whole dump into this (empty) store in one transaction (`keygate migrate`). */
  async importDump(dump: StoreDump): Promise<void> {
    const s = this.#s;
    const run = this.#db.transaction(() => {
      const present = this.#db
        .prepare('SELECT (SELECT count(*) FROM keys) + (SELECT count(*) FROM apps) + (SELECT count(*) FROM audit) + (SELECT count(*) FROM alerts)')
        .pluck()
        .get() as number;
      if (present > 0) throw new StoreUnavailableError(`${this.path} already holds data; migrate only into a new database`);
      for (const k of dump.keys) {
        const seq = s.insertKey.run({ ...keyColumns(k), total_requests: k.usage.total_requests, error_count: k.usage.error_count, last_used_at: k.last_used_at }).lastInsertRowid;
        setScopes(s, Number(seq), k.scopes, false);
      }
      for (const a of dump.apps) s.insertApp.run(appColumns(a));
      for (const a of dump.audit) s.insertAudit.run(auditColumns(a));
      for (const e of dump.events) s.insertEvent.run(e.key_id, JSON.stringify(e));
      for (const b of dump.buckets) {
        s.upsertBucket.run(b.scope, b.gran, b.start, b.expires);
        for (const field in b.fields) s.addField.run(b.scope, b.gran, b.start, field, b.fields[field]);
      }
      for (const e of dump.errors) s.insertError.run(e.time, e.request_id, e.key_id, e.tenant, JSON.stringify(e));
      for (const id of dump.batches) s.insertBatch.run(id);
      for (const { alert, dedup } of dump.alerts) s.insertAlert.run(alertColumns(alert, dedup));
      for (const d of dump.deliveries) s.insertDelivery.run(deliveryColumns(d));
      for (const q of dump.quotas) s.putQuota.run(q.account, q.balance, q.period);
    });
    await this.#write('import', () => run.immediate());
    this.#newestBucket = (this.#db.prepare('SELECT coalesce(max(start), 0) FROM usage_buckets').pluck().get() as number) ?? 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#changes.close();
    this.#db.close();
  }
}

/** A key's rows in key_scopes (the admin list's scope filter). */
function setScopes(s: ReturnType<typeof statements>, seq: number, scopes: readonly string[], replace: boolean): void {
  if (replace) s.deleteScopes.run(seq);
  for (const scope of scopes) s.insertScope.run(scope, seq);
}

function keyColumns(rec: KeyRecord) {
  return {
    id: rec.id,
    hash: rec.hash,
    version: rec.version,
    tenant: rec.tenant,
    environment: rec.environment,
    application: rec.application,
    name: rec.name,
    name_folded: rec.name.toLowerCase(),
    created_at: rec.created_at,
    expires_at: rec.expires_at,
    not_before: rec.not_before,
    revoked_at: rec.revoked_at,
    grace_ends_at: rec.grace_ends_at,
    suspended: rec.suspended_at !== null || rec.app_suspended_at !== null ? 1 : 0,
    due_at: nextDueAt(rec),
    record: JSON.stringify(rec),
    scopes: JSON.stringify(rec.scopes),
  };
}

function appColumns(a: AppRecord) {
  return {
    id: a.id,
    version: a.version,
    tenant: a.tenant,
    name_folded: a.name.toLowerCase(),
    created_at: a.created_at,
    suspended: a.suspended_at === null ? 0 : 1,
    record: JSON.stringify(a),
  };
}

function auditColumns(a: AuditEntry) {
  return { id: a.id, time: a.time, tenant: a.tenant, actor: a.actor, action: a.action, target_id: a.target_id, entry: JSON.stringify(a) };
}

function alertColumns(a: Alert, dedup: string) {
  return { id: a.id, dedup, type: a.type, created_at: a.created_at, tenant: a.tenant, key_id: a.key?.id ?? null, alert: JSON.stringify(a) };
}

interface DeliveryRow {
  id: string;
  alert_id: string;
  target: string;
  state: DeliveryState;
  attempts: string;
  next_at: number | null;
  created_at: number;
}

const DELIVERY_FIELDS = 'id, alert_id, target, state, attempts, next_at, created_at';

function deliveryColumns(d: Delivery): DeliveryRow {
  return { id: d.id, alert_id: d.alert_id, target: d.target, state: d.state, attempts: JSON.stringify(d.attempts), next_at: d.next_at, created_at: d.created_at };
}

function deliveryFromRow(r: DeliveryRow): Delivery {
  return { id: r.id, alert_id: r.alert_id, target: r.target, state: r.state, attempts: JSON.parse(r.attempts) as Delivery['attempts'], next_at: r.next_at, created_at: r.created_at };
}

const KEY_FIELDS =
  'id, hash, version, tenant, environment, application, name, name_folded, created_at, expires_at, not_before, revoked_at, grace_ends_at, suspended, due_at, record';

/** Every statement the store runs more than once, prepared when it opens. */
function statements(db: Database) {
  const p = (sql: string): Statement => db.prepare(sql);
  return {
    byHash: p(`SELECT ${q.KEY_COLUMNS} FROM keys k WHERE k.hash = ?`),
    byId: p(`SELECT ${q.KEY_COLUMNS} FROM keys k WHERE k.id = ?`),
    keyVersion: p("SELECT version, hash, seq, json_extract(record, '$.scopes') AS scopes FROM keys WHERE id = ?"),
    deleteScopes: p('DELETE FROM key_scopes WHERE key_seq = ?'),
    insertScope: p('INSERT OR IGNORE INTO key_scopes (scope, key_seq) VALUES (?, ?)'),
    hashOwner: p('SELECT id FROM keys WHERE hash = ?').pluck(),
    insertKey: p(
      `INSERT INTO keys (${KEY_FIELDS}, total_requests, error_count, last_used_at)
       VALUES (${KEY_FIELDS.split(', ').map((f) => `@${f}`).join(', ')}, @total_requests, @error_count, @last_used_at)`,
    ),
    updateKey: p(`UPDATE keys SET ${KEY_FIELDS.split(', ').filter((f) => f !== 'id').map((f) => `${f} = @${f}`).join(', ')} WHERE id = @id`),
    keysOfApp: p(`SELECT ${q.KEY_COLUMNS} FROM keys k WHERE k.application = ?`),
    due: p(`SELECT ${q.KEY_COLUMNS} FROM keys k WHERE k.due_at <= ? ORDER BY k.due_at LIMIT ?`),
    lastUsed: p('SELECT last_used_at FROM keys WHERE id = ?'),
    addUsage: p(
      `UPDATE keys SET total_requests = total_requests + @requests, error_count = error_count + @errors,
       last_used_at = max(coalesce(last_used_at, @last), @last) WHERE id = @id`,
    ),
    appVersion: p('SELECT version FROM apps WHERE id = ?').pluck(),
    app: p('SELECT record FROM apps WHERE id = ?').pluck(),
    insertApp: p(
      'INSERT INTO apps (id, version, tenant, name_folded, created_at, suspended, record) VALUES (@id, @version, @tenant, @name_folded, @created_at, @suspended, @record)',
    ),
    updateApp: p(
      'UPDATE apps SET version = @version, tenant = @tenant, name_folded = @name_folded, created_at = @created_at, suspended = @suspended, record = @record WHERE id = @id',
    ),
    insertAudit: p('INSERT INTO audit (id, time, tenant, actor, action, target_id, entry) VALUES (@id, @time, @tenant, @actor, @action, @target_id, @entry)'),
    insertEvent: p('INSERT INTO events (key_id, event) VALUES (?, ?)'),
    events: p('SELECT event FROM events WHERE key_id = ? ORDER BY seq').pluck(),
    batchKnown: p('SELECT 1 FROM usage_batches WHERE id = ?').pluck(),
    insertBatch: p('INSERT INTO usage_batches (id) VALUES (?)'),
    pruneBatches: p('DELETE FROM usage_batches WHERE seq <= ?'),
    upsertBucket: p(
      `INSERT INTO usage_buckets (scope, gran, start, expires) VALUES (?, ?, ?, ?)
       ON CONFLICT (scope, gran, start) DO UPDATE SET expires = max(expires, excluded.expires)`,
    ),
    // A bucket's fields in one statement (a JSON object read by json_each), not one statement a
    // field: a flush of 1,000 keys' usage upserts about 24,000 fields.
    addFields: p(
      `INSERT INTO usage_fields (scope, gran, start, field, value) SELECT ?, ?, ?, key, value FROM json_each(?) WHERE true
       ON CONFLICT (scope, gran, start, field) DO UPDATE SET value = value + excluded.value`,
    ),
    addField: p(
      `INSERT INTO usage_fields (scope, gran, start, field, value) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (scope, gran, start, field) DO UPDATE SET value = value + excluded.value`,
    ),
    fields: p('SELECT start, field, value FROM usage_fields WHERE scope = ? AND gran = ? AND start >= ? AND start < ? ORDER BY start'),
    pruneFields: p(
      `DELETE FROM usage_fields WHERE (scope, gran, start) IN (SELECT scope, gran, start FROM usage_buckets WHERE expires <= ?)`,
    ),
    pruneBuckets: p('DELETE FROM usage_buckets WHERE expires <= ?'),
    insertError: p('INSERT INTO usage_errors (time, request_id, key_id, tenant, sample) VALUES (?, ?, ?, ?, ?)'),
    pruneErrors: p('DELETE FROM usage_errors WHERE seq <= ?'),
    insertAlert: p(
      `INSERT INTO alerts (id, dedup, type, created_at, tenant, key_id, alert) VALUES (@id, @dedup, @type, @created_at, @tenant, @key_id, @alert)
       ON CONFLICT (dedup) DO NOTHING`,
    ),
    alert: p('SELECT alert FROM alerts WHERE id = ?').pluck(),
    insertDelivery: p(`INSERT INTO deliveries (${DELIVERY_FIELDS}) VALUES (@id, @alert_id, @target, @state, @attempts, @next_at, @created_at)`),
    updateDelivery: p('UPDATE deliveries SET state = @state, attempts = @attempts, next_at = @next_at WHERE id = @id'),
    dueDeliveries: p(`SELECT ${DELIVERY_FIELDS} FROM deliveries WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?`),
    deliveriesOf: p(`SELECT ${DELIVERY_FIELDS} FROM deliveries WHERE alert_id = ? ORDER BY seq`),
    pruneDeliveries: p('DELETE FROM deliveries WHERE alert_id IN (SELECT id FROM alerts WHERE created_at < ?)'),
    pruneAlerts: p('DELETE FROM alerts WHERE created_at < ?'),
    quota: p('SELECT balance, period FROM quotas WHERE account = ?'),
    putQuota: p(
      `INSERT INTO quotas (account, balance, period) VALUES (?, ?, ?)
       ON CONFLICT (account) DO UPDATE SET balance = excluded.balance, period = excluded.period`,
    ),
    lease: p(
      `INSERT INTO leases (name, holder, until) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
       WHERE leases.holder = ? OR leases.until <= ?`,
    ),
  };
}
