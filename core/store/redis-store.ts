import { Cluster } from 'ioredis';
import type { Alert, AlertQuery, Delivery, ExpiringCursor } from '../alerts.js';
import type { AppRecord } from '../application.js';
import type { AuditEntry, KeyEvent } from '../audit.js';
import { periodStart, quotaResetAt, type QuotaAnswer, type QuotaOp, type QuotaTerms } from '../quota.js';
import { nextDueAt, type KeyRecord } from '../record.js';
import type { KeyUsageDelta } from '../usage.js';
import type { Bucket, ErrorSample, Granularity } from '../usage-agg.js';
import { connect, SlotWatch, waitReady, within, type Client, type RedisStoreOptions } from './redis/connection.js';
import { Invalidation } from './redis/invalidation.js';
import * as q from './redis/queries.js';
import { defineScripts, type ScriptClient } from './redis/scripts.js';
import { timeDigits, timeMember } from './query.js';
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
  type UsageBatch,
} from './store.js';
import { StoreUnavailableError, VersionConflictError } from '../internal-errors.js';

export type { RedisStoreOptions } from './redis/connection.js';

/** `#run` labels of calls that change data. */
const WRITES = new Set(['commit', 'usage', 'lease', 'ingest', 'alert', 'delivery', 'alert prune', 'quota']);
/** A balance that refills to its initial amount is dropped this long after its period ends (gateway clocks may lag). */
const QUOTA_KEEP_MS = 86_400_000;

/** Alerts one prune script drops at most, so that no script blocks Redis for long. */
const PRUNE_CHUNK = 500;

// Every record of a deployment lives under one hash tag, `{prefix}`, so that a commit touching
// keys, applications, the audit list and the due index runs as one script on one Cluster slot.
// Rate-limit buckets (see the limiter) and quota balances carry their own tags and spread across slots.

/**
 * The production store: every gateway and admin process shares one Redis (single node,
 * Sentinel or Cluster). Writes are Lua scripts (redis/lua/), so a commit is all-or-nothing
 * and its version checks cannot race; each commit publishes the lookup hashes it changed, and
 * every process's `onKeyChange` listeners hear them (redis/invalidation.ts). Commands that
 * cannot be sent (Redis down) or take longer than `commandTimeoutMs` fail with
 * StoreUnavailableError; nothing queues and nothing hangs.
 */
export class RedisStore implements Store {
  readonly kind = 'redis';
  readonly #client: ScriptClient;
  readonly #sub: Client;
  readonly #tag: string;
  readonly #prefix: string;
  readonly #db: q.Db;
  readonly #invalidation: Invalidation;
  #closed = false;
  /** Whether the expiring-key index is known to hold every key (see redis/queries.ts expiringKeys). */
  readonly #expiringBuilt = { done: false };
  /** Cluster only: whether the node serving this deployment's slot answers. */
  #slot: SlotWatch | undefined;

  private constructor(client: Client, sub: Client, options: RedisStoreOptions) {
    this.#client = defineScripts(client);
    this.#sub = sub;
    this.#tag = `{${options.prefix}}`;
    this.#prefix = options.prefix;
    const tag = this.#tag;
    this.#db = {
      client: this.#client,
      tag,
      key: (suffix) => `${tag}:${suffix}`,
      run: (what, fn) => this.#run(what, fn),
    };
    this.#invalidation = new Invalidation(this.#client, sub, tag, options.invalidationWaitMs ?? 500, options.warn ?? (() => {}));
  }

  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const warn = options.warn ?? (() => {});
    const { client, sub } = connect(options, warn);
    const store = new RedisStore(client, sub, options);
    // Wait (bounded, alongside the client) for Redis to acknowledge the SUBSCRIBE: a change
    // published before that is never delivered, so a store handed out earlier could let a
    // caller cache a key that another process changes a moment later and never hear of it.
    const subscribed = store.#invalidation.subscribe();
    const [ready, listening] = await Promise.all([
      waitReady(client, options.connectTimeoutMs),
      within(subscribed, options.connectTimeoutMs, false),
    ]);
    if (client instanceof Cluster) {
      store.#slot = new SlotWatch(client, store.#db.key('ver'));
      await store.#slot.start();
    }
    if (!ready) warn('redis not reachable yet; starting degraded', { timeout_ms: options.connectTimeoutMs });
    if (!listening) {
      warn('redis invalidation channel not subscribed yet', { timeout_ms: options.connectTimeoutMs });
      // Whatever was cached before the subscription took effect may have missed a change.
      void subscribed.then((ok) => ok && !store.#closed && store.#invalidation.dropAll());
    }
    return store;
  }

  /** Runs a Redis call; a failure to reach Redis (or a timeout) becomes StoreUnavailableError. */
  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError('the redis store is closed');
    try {
      return await fn();
    } catch (err) {
      // A write that timed out was sent: Redis may run it yet. One that could not be sent was not.
      const uncertain = WRITES.has(what) && (err as Error).message === 'Command timed out';
      throw new StoreUnavailableError(`redis ${what} failed: ${(err as Error).message}`, { cause: err, uncertain });
    }
  }

  getKeyByHash(hash: string): Promise<KeyRecord | null> {
    return q.keyByHash(this.#db, hash);
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    return (await q.keysById(this.#db, [id]))[0] ?? null;
  }

  async putKey(rec: KeyRecord, expectedVersion: number): Promise<KeyRecord> {
    return (await this.commit({ keys: [{ rec, expected: expectedVersion }] })).keys[0]!;
  }

  async commit(change: Commit): Promise<Committed> {
    const hashes = new Set<string>();
    const keys = (change.keys ?? []).map(({ rec, expected }) => {
      if (hashes.has(rec.hash)) throw new VersionConflictError('a key with this hash already exists');
      hashes.add(rec.hash);
      return { ...rec, version: expected + 1 };
    });
    const apps = (change.apps ?? []).map(({ rec, expected }) => ({ ...rec, version: expected + 1 }));
    const payload = JSON.stringify({
      keys: keys.map((k, i) => ({
        id: k.id,
        hash: k.hash,
        expected: change.keys![i]!.expected,
        json: JSON.stringify(k),
        app: k.application ?? '',
        due: nextDueAt(k) ?? -1,
        exp: q.expiringMember(k),
      })),
      apps: apps.map((a, i) => ({ id: a.id, expected: change.apps![i]!.expected, json: JSON.stringify(a) })),
      audit: (change.audit ?? []).map((a) => JSON.stringify(a)),
      events: (change.events ?? []).map((e) => ({ key: e.key_id, json: JSON.stringify(e) })),
    });
    const out = await this.#run('commit', () => this.#client.kgCommit(this.#db.key('ver'), this.#tag, payload));
    if (out[0] === 'conflict') throw new VersionConflictError(out[1] ?? 'version conflict');
    await this.#invalidation.awaitAcks(out[1 + keys.length * 3] ?? '0');
    return {
      keys: keys.map((k, i) => q.applyUsage(k, out[1 + i * 3]!, out[2 + i * 3]!, out[3 + i * 3]!)),
      apps,
    };
  }

  async recordUsage(deltas: readonly KeyUsageDelta[]): Promise<void> {
    for (let i = 0; i < deltas.length; i += q.CHUNK) {
      const args: (string | number)[] = [];
      for (const d of deltas.slice(i, i + q.CHUNK)) args.push(d.key_id, d.requests, d.errors, d.first_at, d.last_at);
      await this.#run('usage', () => this.#client.kgUsage(this.#db.key('ver'), this.#tag, ...args));
    }
  }

  async ingestUsage(batch: UsageBatch): Promise<boolean> {
    if (batch.keep_errors === 0) batch = { ...batch, errors: [] };
    // Numbers that must stay exact (times) travel as strings; Lua's cjson keeps 14 digits.
    const payload = JSON.stringify({
      keys: batch.keys.map((d) => ({ ...d, first_at: String(d.first_at), last_at: String(d.last_at) })),
      buckets: batch.buckets.map((b) => ({ name: `agg:${b.gran}:${b.start}:${b.scope}`, ttl_ms: b.ttl_ms, fields: b.fields })),
      errors: batch.errors,
    });
    // cjson turns an empty array into an object; the script reads both the same way.
    const applied = await this.#run('ingest', () =>
      this.#client.kgIngest(this.#db.key('ver'), this.#tag, batch.id, payload, Math.max(1, batch.keep_errors)),
    );
    return applied === 1;
  }

  usageBuckets(scope: string, gran: Granularity, from: number, to: number): Promise<Bucket[]> {
    return q.usageBuckets(this.#db, scope, gran, from, to);
  }

  recentErrors(query: ErrorQuery): Promise<ErrorSample[]> {
    return q.recentErrors(this.#db, query);
  }

  listKeys(query: KeyQuery): Promise<KeyPage> {
    return q.listKeys(this.#db, query);
  }

  keysOfApp(appId: string): Promise<KeyRecord[]> {
    return q.keysOfApp(this.#db, appId);
  }

  dueKeys(now: number, limit: number): Promise<KeyRecord[]> {
    return q.dueKeys(this.#db, now, limit);
  }

  getApp(id: string): Promise<AppRecord | null> {
    return q.getApp(this.#db, id);
  }

  listApps(query: AppQuery): Promise<Page<AppRecord>> {
    return q.listApps(this.#db, query);
  }

  listAudit(query: AuditQuery): Promise<Page<AuditEntry>> {
    return q.listAudit(this.#db, query);
  }

  listKeyEvents(keyId: string): Promise<KeyEvent[]> {
    return q.listKeyEvents(this.#db, keyId);
  }

  async lease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return (await this.#run('lease', () => this.#client.kgLease(this.#db.key(`lease:${name}`), holder, ttlMs))) === 1;
  }

  /**
   * One script on the balance's own key, `{prefix}:q:{account}` (its own hash tag, as a
   * rate-limit bucket's). A balance that refills to its initial amount is as good as absent
   * once its period is over, so it expires then (a day later, by the caller's clock); others are kept.
   */
  async quota(account: string, terms: QuotaTerms, op: QuotaOp, amount: number, now: number): Promise<QuotaAnswer> {
    const start = periodStart(now, terms.every);
    const resetAt = quotaResetAt(terms, start);
    // Relative to the caller's clock, which set the period (Redis's own may differ).
    const keepMs = resetAt !== null && terms.refill === terms.initial ? Math.max(1, resetAt - now) + QUOTA_KEEP_MS : '';
    const [ok, left] = await this.#run('quota', () =>
      this.#client.kgQuota(`${this.#prefix}:q:{${account}}`, terms.initial, terms.refill ?? '', op, amount, start, keepMs),
    );
    return { ok: ok === 1, remaining: Number(left), resetAt };
  }

  onKeyChange(listener: (hash: string | null) => void): () => void {
    return this.#invalidation.onKeyChange(listener);
  }

  expiringKeys(from: number, to: number, cursor: ExpiringCursor | null, limit: number): Promise<KeyRecord[]> {
    return q.expiringKeys(this.#db, this.#expiringBuilt, from, to, cursor, limit);
  }

  async addAlert(alert: Alert, dedup: string, deliveries: readonly Delivery[]): Promise<boolean> {
    if (!Number.isSafeInteger(alert.created_at) || alert.created_at < 0) {
      throw new RangeError(`alert ${alert.id}: created_at must be whole milliseconds since the epoch, not ${alert.created_at}`);
    }
    // Times travel as strings: Lua's cjson keeps 14 digits.
    const payload = JSON.stringify({
      id: alert.id,
      dedup,
      json: JSON.stringify(alert),
      member: timeMember(alert.created_at, alert.id),
      tenant: alert.tenant ?? undefined,
      key: alert.key?.id,
      deliveries: deliveries.map((d) => ({
        id: d.id,
        a: d.alert_id,
        t: d.target,
        s: d.state,
        at: JSON.stringify(d.attempts),
        n: d.next_at === null ? '' : String(d.next_at),
        c: String(d.created_at),
      })),
    });
    return (await this.#run('alert', () => this.#client.kgAlertAdd(this.#db.key('ver'), this.#tag, payload))) === 1;
  }

  getAlert(id: string): Promise<Alert | null> {
    return q.getAlert(this.#db, id);
  }

  listAlerts(query: AlertQuery): Promise<Page<Alert>> {
    return q.listAlerts(this.#db, query);
  }

  dueDeliveries(now: number, limit: number): Promise<Delivery[]> {
    return q.dueDeliveries(this.#db, now, limit);
  }

  async putDelivery(delivery: Delivery): Promise<void> {
    const next = delivery.next_at === null ? '' : String(delivery.next_at);
    const attempts = JSON.stringify(delivery.attempts);
    await this.#run('delivery', () => this.#client.kgDeliveryPut(this.#db.key('ver'), this.#tag, delivery.id, delivery.state, attempts, next));
  }

  listDeliveries(alertId: string): Promise<Delivery[]> {
    return q.listDeliveries(this.#db, alertId);
  }

  async pruneAlerts(before: number): Promise<number> {
    const bound = `(${timeDigits(before)}`;
    let dropped = 0;
    for (;;) {
      const n = await this.#run('alert prune', () => this.#client.kgAlertPrune(this.#db.key('ver'), this.#tag, bound, PRUNE_CHUNK));
      dropped += n;
      if (n < PRUNE_CHUNK) return dropped;
    }
  }

  /** The shared client, for the distributed rate limiter. */
  get client(): Client {
    return this.#client;
  }

  get available(): boolean {
    return this.#client.status === 'ready' && (this.#slot?.reachable ?? true);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#slot?.close();
    await this.#invalidation.close();
    await Promise.allSettled([this.#client.quit(), this.#sub.quit()]);
    this.#client.disconnect();
    this.#sub.disconnect();
  }
}
