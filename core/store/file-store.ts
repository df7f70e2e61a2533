import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Alert, AlertQuery, Delivery, ExpiringCursor } from '../alerts.js';
import type { AppRecord } from '../application.js';
import type { AuditEntry, KeyEvent } from '../audit.js';
import { applyQuota, periodStart, quotaResetAt, type QuotaAnswer, type QuotaOp, type QuotaState, type QuotaTerms } from '../quota.js';
import { dueTransition, type KeyRecord } from '../record.js';
import type { KeyUsageDelta } from '../usage.js';
import type { Bucket, ErrorSample, Fields, Granularity } from '../usage-agg.js';
import { DAY, MINUTE, bucketStart } from '../usage-agg.js';
import { compareText, expiringKeys, queryAlerts, queryApps, queryAudit, queryErrors, queryKeys } from './query.js';
import {
  type AppQuery,
  type AuditQuery,
  type Commit,
  type Committed,
  type KeyPage,
  type KeyQuery,
  type Page,
  type ErrorQuery,
  type Store,
  type StoreDump,
  type UsageBatch,
} from './store.js';
import { StoreLockedError, StoreUnavailableError, VersionConflictError } from '../internal-errors.js';

export interface FileStoreOptions {
  dir: string;
  /** Told about skipped torn or corrupt journal lines on open. */
  warn?: (msg: string, fields: Record<string, unknown>) => void;
}

/** One journal line: one commit, applied whole or (torn) not at all. */
interface Entry {
  t: 'c';
  keys: KeyRecord[];
  apps: AppRecord[];
  audit: AuditEntry[];
  events: KeyEvent[];
  /** Traffic added to keys' usage (recordUsage); absent from configuration commits. */
  usage?: KeyUsageDelta[];
  /** A usage batch's id (applied once), its aggregate increments and error samples. */
  batch?: string;
  /** Applied batch ids, as a compaction writes them. */
  batches?: string[];
  buckets?: StoredBucket[];
  errors?: ErrorSample[];
  keep_errors?: number;
  /** Alerts stored, with their deduplication keys. */
  alerts?: StoredAlert[];
  /** Deliveries stored or replaced (by id). */
  deliveries?: Delivery[];
  /** Alerts created before this were dropped, with their deliveries and dedup keys. */
  prune_before?: number;
  /** Quota balances written (by account). */
  quotas?: ({ id: string } & QuotaState)[];
}

interface StoredAlert {
  alert: Alert;
  dedup: string;
}

/** An aggregate bucket; `expires` is the end of its retention. */
interface StoredBucket {
  scope: string;
  gran: Granularity;
  start: number;
  expires: number;
  fields: Fields;
}

/** Usage batch ids remembered, to apply a batch sent twice once (far more than are ever in flight). */
const BATCH_IDS_KEPT = 100_000;
/** Journal lines appended since the last compaction that trigger the next one. */
const COMPACT_AFTER = 20_000;

const JOURNAL = 'journal.log';
const LOCK = 'LOCK';
/** Lock files this process holds, so that opening one directory twice in-process is refused too. */
const heldLocks = new Set<string>();

/**
 * The embedded store: every record in memory, every write appended to a journal and
 * fdatasync'ed before it is acknowledged. Each journal line is `crc32hex json`, so a line torn
 * by a crash fails its checksum and is skipped (and cut off) when the store next opens.
 * One process owns a directory at a time through a LOCK file holding its pid; a lock whose
 * process is gone is taken over.
 */
export class FileStore implements Store {
  readonly kind = 'file';
  /** On local disk: there is no connection to lose. */
  readonly available = true;
  readonly #dir: string;
  readonly #byId = new Map<string, KeyRecord>();
  readonly #byHash = new Map<string, KeyRecord>();
  readonly #apps = new Map<string, AppRecord>();
  readonly #audit: AuditEntry[] = [];
  readonly #events = new Map<string, KeyEvent[]>();
  readonly #leases = new Map<string, { holder: string; until: number }>();
  readonly #buckets = new Map<string, StoredBucket>();
  /** Quota balances by account (core/quota.ts). */
  readonly #quotas = new Map<string, QuotaState>();
  #errors: ErrorSample[] = [];
  /** Applied usage batch ids, oldest first (a Map keeps insertion order). */
  readonly #batches = new Map<string, true>();
  /** Alerts by id, in the order they were stored. */
  readonly #alerts = new Map<string, StoredAlert>();
  /** Alert ids by dedup key. */
  readonly #dedup = new Map<string, string>();
  /** Deliveries by id, in the order they were stored. */
  readonly #deliveries = new Map<string, Delivery>();
  /** Delivery ids by alert id, in the order addAlert was given them. */
  readonly #alertDeliveries = new Map<string, string[]>();
  #newestBucket = 0;
  #appended = 0;
  readonly #emitter = new EventEmitter();
  #fh: FileHandle | null = null;
  /** Journal length after the last acknowledged write: a failed append is cut back to it. */
  #offset = 0;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(dir: string) {
    this.#dir = dir;
    this.#emitter.setMaxListeners(0);
  }

  static async open(options: FileStoreOptions): Promise<FileStore> {
    mkdirSync(options.dir, { recursive: true });
    // One spelling per directory, so that a relative and an absolute path share one lock.
    const dir = realpathSync(options.dir);
    const store = new FileStore(dir);
    acquireLock(join(dir, LOCK));
    try {
      store.#replay(options.warn ?? (() => {}));
      const path = join(dir, JOURNAL);
      const created = !existsSync(path);
      store.#fh = await open(path, 'a');
      store.#offset = (await store.#fh.stat()).size;
      if (created) syncDir(dir);
    } catch (err) {
      releaseLock(join(dir, LOCK));
      throw err;
    }
    return store;
  }

  /**
   * Everything the file store in `dir` holds, read without changing its journal: no torn line
   * cut off, no compaction, so that after an import into SQLite (core/store/migrate.ts) the
   * journal is still the one the earlier release wrote. Holds the LOCK while it reads: a
   * directory that a live process owns is refused.
   */
  static readDump(options: FileStoreOptions): StoreDump {
    const dir = realpathSync(options.dir);
    const lock = join(dir, LOCK);
    acquireLock(lock);
    try {
      const store = new FileStore(dir);
      store.#replay(options.warn ?? (() => {}), false);
      return store.dump();
    } finally {
      releaseLock(lock);
    }
  }

  /** Applies the journal; with `repair`, rewrites it when damaged or long (see below). */
  #replay(warn: NonNullable<FileStoreOptions['warn']>, repair = true): void {
    const path = join(this.#dir, JOURNAL);
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let offset = 0;
    let lines = 0;
    let skipped = 0;
    while (offset < buf.length) {
      const nl = buf.indexOf(10, offset);
      const end = nl === -1 ? buf.length : nl;
      const entry = nl === -1 ? null : decodeLine(buf.subarray(offset, end));
      if (entry) {
        this.#apply(entry);
        lines++;
      } else {
        skipped++;
        warn('skipped a torn or corrupt journal line', { path, offset, bytes: end - offset });
      }
      offset = end + 1;
    }
    // Rewrite the journal when it was damaged, or when it holds many more lines than a
    // compaction would write (a large store compacts into many lines: rewriting it at every
    // start would double the start-up time for nothing).
    if (repair && (skipped > 0 || lines > 1000 + 2 * this.#compactLines())) this.#compact(path);
  }

  #compact(path: string): void {
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      // Many moderate lines rather than one huge one: a line must fit in a JavaScript string.
      const chunk = 1000;
      const write = <T>(items: readonly T[], wrap: (part: T[]) => Partial<Entry>) => {
        for (let i = 0; i < items.length; i += chunk) writeSync(fd, encodeLine({ ...emptyEntry(), ...wrap(items.slice(i, i + chunk)) }));
      };
      write([...this.#byId.values()], (keys) => ({ keys }));
      write([...this.#apps.values()], (apps) => ({ apps }));
      write(this.#audit, (audit) => ({ audit }));
      write([...this.#events.values()].flat(), (events) => ({ events }));
      // Buckets past their retention go: judged by the newest data (so a store fed old traffic
      // keeps it), never past this machine's clock (so one event from the far future cannot end
      // the retention of everything).
      write([...this.#buckets.values()].filter((b) => b.expires > this.#retentionHorizon()), (buckets) => ({ buckets }));
      write(this.#errors, (errors) => ({ errors, keep_errors: Number.MAX_SAFE_INTEGER }));
      write([...this.#batches.keys()], (batches) => ({ batches }));
      write([...this.#alerts.values()], (alerts) => ({ alerts }));
      write([...this.#deliveries.values()], (deliveries) => ({ deliveries }));
      write([...this.#quotas].map(([id, q]) => ({ id, ...q })), (quotas) => ({ quotas }));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    syncDir(this.#dir);
  }

  /** Buckets that expired at or before this are gone (see #compact). */
  #retentionHorizon(): number {
    return Math.min(this.#newestBucket, Date.now());
  }

  /** How many lines #compact writes for what is in memory now. */
  #compactLines(): number {
    const lines = (n: number) => Math.ceil(n / 1000);
    let events = 0;
    for (const list of this.#events.values()) events += list.length;
    return (
      lines(this.#byId.size) + lines(this.#apps.size) + lines(this.#audit.length) + lines(events) +
      lines(this.#buckets.size) + lines(this.#errors.length) + lines(this.#batches.size) +
      lines(this.#alerts.size) + lines(this.#deliveries.size) + lines(this.#quotas.size)
    );
  }

  #apply(entry: Entry): void {
    for (const written of entry.keys) {
      const prev = this.#byId.get(written.id);
      // Usage belongs to the traffic, not to whoever wrote the configuration last.
      const rec = prev ? { ...written, usage: prev.usage, last_used_at: prev.last_used_at } : written;
      if (prev && prev.hash !== rec.hash) this.#byHash.delete(prev.hash);
      this.#byId.set(rec.id, rec);
      this.#byHash.set(rec.hash, rec);
    }
    for (const d of entry.usage ?? []) {
      const prev = this.#byId.get(d.key_id);
      if (!prev) continue;
      const rec: KeyRecord = {
        ...prev,
        usage: { total_requests: prev.usage.total_requests + d.requests, error_count: prev.usage.error_count + d.errors },
        last_used_at: Math.max(prev.last_used_at ?? d.last_at, d.last_at),
      };
      this.#byId.set(rec.id, rec);
      this.#byHash.set(rec.hash, rec);
    }
    for (const id of entry.batch === undefined ? (entry.batches ?? []) : [entry.batch]) {
      this.#batches.set(id, true);
      if (this.#batches.size > BATCH_IDS_KEPT) this.#batches.delete(this.#batches.keys().next().value!);
    }
    for (const b of entry.buckets ?? []) {
      const id = `${b.scope}\u0000${b.gran}\u0000${b.start}`;
      const cur = this.#buckets.get(id);
      if (cur === undefined) this.#buckets.set(id, { ...b, fields: { ...b.fields } });
      else {
        for (const [name, v] of Object.entries(b.fields)) cur.fields[name] = (cur.fields[name] ?? 0) + v;
        cur.expires = Math.max(cur.expires, b.expires);
      }
      if (b.start > this.#newestBucket) this.#newestBucket = b.start;
    }
    if (entry.errors !== undefined && entry.errors.length > 0) {
      for (const e of entry.errors) this.#errors.push(e);
      const keep = entry.keep_errors ?? Number.MAX_SAFE_INTEGER;
      if (this.#errors.length > keep) this.#errors = this.#errors.slice(this.#errors.length - keep);
    }
    for (const app of entry.apps) this.#apps.set(app.id, app);
    for (const a of entry.audit) this.#audit.push(a);
    for (const e of entry.events) {
      let list = this.#events.get(e.key_id);
      if (!list) this.#events.set(e.key_id, (list = []));
      list.push(e);
    }
    for (const a of entry.alerts ?? []) {
      this.#alerts.set(a.alert.id, a);
      this.#dedup.set(a.dedup, a.alert.id);
    }
    for (const d of entry.deliveries ?? []) {
      if (!this.#deliveries.has(d.id)) {
        let list = this.#alertDeliveries.get(d.alert_id);
        if (!list) this.#alertDeliveries.set(d.alert_id, (list = []));
        list.push(d.id);
      }
      this.#deliveries.set(d.id, d);
    }
    for (const q of entry.quotas ?? []) this.#quotas.set(q.id, { balance: q.balance, period: q.period });
    if (entry.prune_before !== undefined) {
      for (const [id, { alert, dedup }] of this.#alerts) {
        if (alert.created_at >= entry.prune_before) continue;
        this.#alerts.delete(id);
        this.#dedup.delete(dedup);
        for (const d of this.#alertDeliveries.get(id) ?? []) this.#deliveries.delete(d);
        this.#alertDeliveries.delete(id);
      }
    }
  }

  /** Appends one entry built from the current state (null: nothing to write) and applies it, in turn with every other write. */
  #journal<T>(build: () => { entry: Entry | null; answer: T }): Promise<T> {
    const run = this.#tail.then(async () => {
      if (this.#closed || !this.#fh) throw new StoreUnavailableError('the file store is closed');
      const { entry, answer } = build();
      if (entry === null) return answer;
      await this.#append(encodeLine(entry));
      this.#apply(entry);
      await this.#compactWhenLong();
      return answer;
    });
    this.#tail = run.catch(() => {});
    return run;
  }

  async expiringKeys(from: number, to: number, cursor: ExpiringCursor | null, limit: number): Promise<KeyRecord[]> {
    return expiringKeys(this.#byId.values(), from, to, cursor, limit);
  }

  /** In turn with every other write, so concurrent spends see each other's. */
  quota(account: string, terms: QuotaTerms, op: QuotaOp, amount: number, now: number): Promise<QuotaAnswer> {
    const start = periodStart(now, terms.every);
    return this.#journal(() => {
      const r = applyQuota(this.#quotas.get(account) ?? null, terms, op, amount, start);
      const answer = { ok: r.ok, remaining: r.remaining, resetAt: quotaResetAt(terms, start) };
      return { entry: r.state === null ? null : { ...emptyEntry(), quotas: [{ id: account, ...r.state }] }, answer };
    });
  }

  addAlert(alert: Alert, dedup: string, deliveries: readonly Delivery[]): Promise<boolean> {
    return this.#journal(() =>
      this.#dedup.has(dedup)
        ? { entry: null, answer: false }
        : { entry: { ...emptyEntry(), alerts: [{ alert, dedup }], deliveries: [...deliveries] }, answer: true },
    );
  }

  async getAlert(id: string): Promise<Alert | null> {
    return this.#alerts.get(id)?.alert ?? null;
  }

  async listAlerts(query: AlertQuery): Promise<Page<Alert>> {
    return queryAlerts([...this.#alerts.values()].map((a) => a.alert), query);
  }

  async dueDeliveries(now: number, limit: number): Promise<Delivery[]> {
    const due: Delivery[] = [];
    for (const d of this.#deliveries.values()) if (d.state === 'pending' && d.next_at !== null && d.next_at <= now) due.push(d);
    due.sort((a, b) => a.next_at! - b.next_at! || compareText(a.id, b.id));
    return due.slice(0, limit);
  }

  async putDelivery(delivery: Delivery): Promise<void> {
    await this.#journal(() => {
      const stored = this.#deliveries.get(delivery.id);
      if (stored === undefined) return { entry: null, answer: undefined };
      const replaced: Delivery = { ...stored, state: delivery.state, attempts: delivery.attempts, next_at: delivery.next_at };
      return { entry: { ...emptyEntry(), deliveries: [replaced] }, answer: undefined };
    });
  }

  async listDeliveries(alertId: string): Promise<Delivery[]> {
    return (this.#alertDeliveries.get(alertId) ?? []).map((id) => this.#deliveries.get(id)!);
  }

  pruneAlerts(before: number): Promise<number> {
    return this.#journal(() => {
      let n = 0;
      for (const { alert } of this.#alerts.values()) if (alert.created_at < before) n++;
      return { entry: n === 0 ? null : { ...emptyEntry(), prune_before: before }, answer: n };
    });
  }

  async getKeyByHash(hash: string): Promise<KeyRecord | null> {
    return this.#byHash.get(hash) ?? null;
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    return this.#byId.get(id) ?? null;
  }

  async putKey(rec: KeyRecord, expectedVersion: number): Promise<KeyRecord> {
    return (await this.commit({ keys: [{ rec, expected: expectedVersion }] })).keys[0]!;
  }

  commit(change: Commit): Promise<Committed> {
    // Commits are serialised so that the version checks, the journal order and the in-memory
    // state agree; each is one journal line, so a crash keeps all of it or none.
    const run = this.#tail.then(async () => {
      if (this.#closed || !this.#fh) throw new StoreUnavailableError('the file store is closed');
      const keys: KeyRecord[] = [];
      const hashes = new Set<string>();
      for (const { rec, expected } of change.keys ?? []) {
        const current = this.#byId.get(rec.id);
        if ((current?.version ?? 0) !== expected) throw new VersionConflictError(`key ${rec.id} changed since version ${expected}`);
        const owner = this.#byHash.get(rec.hash);
        if ((owner && owner.id !== rec.id) || hashes.has(rec.hash)) throw new VersionConflictError('a key with this hash already exists');
        hashes.add(rec.hash);
        keys.push({ ...rec, version: expected + 1 });
      }
      const apps: AppRecord[] = [];
      for (const { rec, expected } of change.apps ?? []) {
        if ((this.#apps.get(rec.id)?.version ?? 0) !== expected) {
          throw new VersionConflictError(`application ${rec.id} changed since version ${expected}`);
        }
        apps.push({ ...rec, version: expected + 1 });
      }
      const entry: Entry = { t: 'c', keys, apps, audit: change.audit ?? [], events: change.events ?? [] };
      const previous = keys.map((k) => this.#byId.get(k.id));
      await this.#append(encodeLine(entry));
      this.#apply(entry);
      await this.#compactWhenLong();
      for (const [i, k] of keys.entries()) keys[i] = this.#byId.get(k.id)!;
      for (const [i, k] of keys.entries()) {
        this.#emitter.emit('key', k.hash);
        const prev = previous[i];
        if (prev && prev.hash !== k.hash) this.#emitter.emit('key', prev.hash);
      }
      return { keys, apps };
    });
    this.#tail = run.catch(() => {});
    return run;
  }

  async recordUsage(deltas: readonly KeyUsageDelta[]): Promise<void> {
    await this.ingestUsage({ id: '', keys: [...deltas], buckets: [], errors: [], keep_errors: 0 });
  }

  ingestUsage(batch: UsageBatch): Promise<boolean> {
    const run = this.#tail.then(async () => {
      if (this.#closed || !this.#fh) throw new StoreUnavailableError('the file store is closed');
      if (batch.id !== '' && this.#batches.has(batch.id)) return false;
      const usage = batch.keys.filter((d) => this.#byId.has(d.key_id));
      if (usage.length === 0 && batch.buckets.length === 0 && batch.errors.length === 0) return true;
      const events: KeyEvent[] = usage
        .filter((d) => this.#byId.get(d.key_id)!.last_used_at === null)
        .map((d) => ({ key_id: d.key_id, type: 'first_used', scheduled_at: null, at: d.first_at, actor: 'gateway', detail: {} }));
      const entry: Entry = { t: 'c', keys: [], apps: [], audit: [], events, usage };
      if (batch.id !== '') entry.batch = batch.id;
      if (batch.buckets.length > 0) {
        entry.buckets = batch.buckets.map((b) => ({
          scope: b.scope,
          gran: b.gran,
          start: b.start,
          expires: b.start + (b.gran === 'm' ? MINUTE : DAY) + b.ttl_ms,
          fields: b.fields,
        }));
      }
      if (batch.errors.length > 0) {
        entry.errors = batch.errors;
        entry.keep_errors = batch.keep_errors;
      }
      await this.#append(encodeLine(entry));
      this.#apply(entry);
      await this.#compactWhenLong();
      return true;
    });
    this.#tail = run.catch(() => {});
    return run;
  }

  async usageBuckets(scope: string, gran: Granularity, from: number, to: number): Promise<Bucket[]> {
    const size = gran === 'm' ? MINUTE : DAY;
    const out: Bucket[] = [];
    for (let start = bucketStart(from, gran); start < to; start += size) {
      if (start < from) continue;
      const b = this.#buckets.get(`${scope}\u0000${gran}\u0000${start}`);
      if (b !== undefined) out.push({ start, fields: { ...b.fields } });
    }
    return out;
  }

  async recentErrors(query: ErrorQuery): Promise<ErrorSample[]> {
    return queryErrors(this.#errors, (e) => e, query);
  }

  /**
   * Appends and syncs one line. When that fails part-way (disk full, I/O error) the torn bytes
   * are cut off, so the next acknowledged line is not glued to them and lost on replay; if
   * even that fails, the store refuses further writes rather than risk it.
   */
  async #append(line: string): Promise<void> {
    const fh = this.#fh!;
    const bytes = Buffer.from(line);
    try {
      await fh.write(bytes);
      await fh.datasync();
      this.#offset += bytes.length;
    } catch (err) {
      try {
        await fh.truncate(this.#offset);
      } catch {
        this.#closed = true;
      }
      throw new StoreUnavailableError('could not write the journal', { cause: err });
    }
  }

  /** Rewrites the journal from memory once it has grown by COMPACT_AFTER lines (usage adds one a second). */
  async #compactWhenLong(): Promise<void> {
    if (++this.#appended < COMPACT_AFTER) return;
    this.#appended = 0;
    const path = join(this.#dir, JOURNAL);
    await this.#fh!.close();
    this.#fh = null;
    try {
      this.#compact(path);
    } finally {
      this.#fh = await open(path, 'a');
      this.#offset = (await this.#fh.stat()).size;
    }
  }

  async listKeys(query: KeyQuery): Promise<KeyPage> {
    return queryKeys(this.#byId.values(), query);
  }

  async keysOfApp(appId: string): Promise<KeyRecord[]> {
    return [...this.#byId.values()].filter((k) => k.application === appId);
  }

  async dueKeys(now: number, limit: number): Promise<KeyRecord[]> {
    const out: KeyRecord[] = [];
    for (const rec of this.#byId.values()) {
      if (dueTransition(rec, now) !== null) out.push(rec);
      if (out.length >= limit) break;
    }
    return out;
  }

  async getApp(id: string): Promise<AppRecord | null> {
    return this.#apps.get(id) ?? null;
  }

  async listApps(query: AppQuery): Promise<Page<AppRecord>> {
    return queryApps(this.#apps.values(), query);
  }

  async listAudit(query: AuditQuery): Promise<Page<AuditEntry>> {
    return queryAudit(this.#audit, query);
  }

  async listKeyEvents(keyId: string): Promise<KeyEvent[]> {
    return [...(this.#events.get(keyId) ?? [])];
  }

  async lease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    // One process owns this store, so a lease needs no more than memory; it still keeps two
    // schedulers in one process apart.
    const now = Date.now();
    const current = this.#leases.get(name);
    if (current && current.holder !== holder && current.until > now) return false;
    this.#leases.set(name, { holder, until: now + ttlMs });
    return true;
  }

  /** Everything held, as `keygate migrate` moves it to another store (core/store/migrate.ts). */
  dump(): StoreDump {
    return {
      keys: [...this.#byId.values()],
      apps: [...this.#apps.values()],
      audit: [...this.#audit],
      events: [...this.#events.values()].flat(),
      buckets: [...this.#buckets.values()].filter((b) => b.expires > this.#retentionHorizon()).map((b) => ({ ...b, fields: { ...b.fields } })),
      errors: [...this.#errors],
      batches: [...this.#batches.keys()],
      alerts: [...this.#alerts.values()],
      deliveries: [...this.#deliveries.values()],
      // By account, as the SQLite store lists them.
      quotas: [...this.#quotas]
        .map(([account, q]) => ({ account, balance: q.balance, period: q.period }))
        .sort((a, b) => (a.account < b.account ? -1 : a.account > b.account ? 1 : 0)),
    };
  }

  onKeyChange(listener: (hash: string | null) => void): () => void {
    this.#emitter.on('key', listener);
    return () => this.#emitter.off('key', listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#tail;
    await this.#fh?.close();
    this.#fh = null;
    releaseLock(join(this.#dir, LOCK));
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function emptyEntry(): Entry {
  return { t: 'c', keys: [], apps: [], audit: [], events: [] };
}

function encodeLine(entry: Entry): string {
  const json = JSON.stringify(entry);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

function decodeLine(line: Buffer): Entry | null {
  if (line.length < 10 || line[8] !== 32) return null;
  const json = line.subarray(9);
  if (crc32(json).toString(16).padStart(8, '0') !== line.subarray(0, 8).toString('latin1')) return null;
  try {
    const entry = JSON.parse(json.toString('utf8')) as Entry;
    return entry.t === 'c' &&
      Array.isArray(entry.keys) &&
      Array.isArray(entry.apps) &&
      Array.isArray(entry.audit) &&
      Array.isArray(entry.events) &&
      (entry.usage === undefined || Array.isArray(entry.usage)) &&
      (entry.buckets === undefined || Array.isArray(entry.buckets)) &&
      (entry.errors === undefined || Array.isArray(entry.errors)) &&
      (entry.batches === undefined || Array.isArray(entry.batches)) &&
      (entry.alerts === undefined || Array.isArray(entry.alerts)) &&
      (entry.deliveries === undefined || Array.isArray(entry.deliveries)) &&
      (entry.prune_before === undefined || typeof entry.prune_before === 'number') &&
      (entry.quotas === undefined || Array.isArray(entry.quotas))
      ? entry
      : null;
  } catch {
    return null;
  }
}

function acquireLock(path: string): void {
  if (heldLocks.has(path)) {
    throw new StoreLockedError(`data directory ${join(path, '..')} is already open in this process`);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      fsyncSync(fd);
      closeSync(fd);
      heldLocks.add(path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number.parseInt(readLock(path), 10);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
      throw new StoreLockedError(
        `data directory ${join(path, '..')} is in use by process ${pid}; stop it or point store.path elsewhere`,
      );
    }
    // The owner is gone (killed, or an earlier run whose pid this process now has): take over.
    try {
      unlinkSync(path);
    } catch {
      // another process may have removed it first; the next attempt decides
    }
  }
  throw new StoreLockedError(`could not lock data directory ${join(path, '..')}`);
}

function readLock(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseLock(path: string): void {
  heldLocks.delete(path);
  try {
    if (readLock(path) === String(process.pid)) unlinkSync(path);
  } catch {
    // nothing to release
  }
}
