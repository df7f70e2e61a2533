import type { Alert, AlertQuery, Delivery, DeliveryState, ExpiringCursor } from '../../alerts.js';
import type { AppRecord } from '../../application.js';
import type { AuditEntry, KeyEvent } from '../../audit.js';
import { dueTransition, type KeyRecord } from '../../record.js';
import { DAY, MINUTE, bucketStart, type Bucket, type ErrorSample, type Granularity } from '../../usage-agg.js';
import { alertFilter, decodeTimeCursor, encodeCursor, queryApps, queryAudit, queryErrors, queryKeys, timeDigits, timeMember } from '../query.js';
import type { AppQuery, AuditQuery, ErrorQuery, KeyPage, KeyQuery, Page } from '../store.js';
import type { ScriptClient } from './scripts.js';

/** Ids (or bucket starts) sent in one call, so that no script or reply grows without bound. */
export const CHUNK = 500;

/** What the reads need of the store that runs them. */
export interface Db {
  readonly client: ScriptClient;
  /** The deployment's hash tag, `{prefix}`, which the scripts take as their prefix. */
  readonly tag: string;
  /** The Redis name of one of the deployment's keys. */
  key(suffix: string): string;
  /** Runs a call, turning a failure to reach Redis into StoreUnavailableError (labelled `what`). */
  run<T>(what: string, fn: () => Promise<T>): Promise<T>;
}

export async function keyByHash(db: Db, hash: string): Promise<KeyRecord | null> {
  const row = await db.run('lookup', () => db.client.kgByHash(db.key('hash'), db.tag, hash));
  return row ? withUsage(row[0], row[1], row[2], row[3]) : null;
}

/** Records by id, in order, leaving out ids with none. */
export async function keysById(db: Db, ids: readonly string[]): Promise<KeyRecord[]> {
  const out: KeyRecord[] = [];
  for (let i = 0; i < ids.length; i += CHUNK) {
    const part = ids.slice(i, i + CHUNK);
    const flat = await db.run('read', () => db.client.kgByIds(db.key('keys'), db.tag, ...part));
    for (let j = 0; j < flat.length; j += 4) {
      if (flat[j]) out.push(withUsage(flat[j]!, flat[j + 1]!, flat[j + 2]!, flat[j + 3]!));
    }
  }
  return out;
}

export async function listKeys(db: Db, query: KeyQuery): Promise<KeyPage> {
  const ids = await db.run('list', () => db.client.smembers(db.key('keys')));
  return queryKeys(await keysById(db, ids), query);
}

export async function keysOfApp(db: Db, appId: string): Promise<KeyRecord[]> {
  const ids = await db.run('list', () => db.client.smembers(db.key(`appkeys:${appId}`)));
  return (await keysById(db, ids)).filter((k) => k.application === appId);
}

export async function dueKeys(db: Db, now: number, limit: number): Promise<KeyRecord[]> {
  const ids = await db.run('due', () => db.client.zrangebyscore(db.key('due'), '-inf', now, 'LIMIT', 0, limit));
  return (await keysById(db, ids)).filter((k) => dueTransition(k, now) !== null);
}

export async function getApp(db: Db, id: string): Promise<AppRecord | null> {
  const json = await db.run('read', () => db.client.get(db.key(`app:${id}`)));
  return json ? (JSON.parse(json) as AppRecord) : null;
}

export async function listApps(db: Db, query: AppQuery): Promise<Page<AppRecord>> {
  const ids = await db.run('list', () => db.client.smembers(db.key('apps')));
  const apps: AppRecord[] = [];
  for (let i = 0; i < ids.length; i += CHUNK) {
    const part = ids.slice(i, i + CHUNK).map((id) => db.key(`app:${id}`));
    const rows = await db.run('list', () => db.client.mget(...part));
    for (const json of rows) if (json) apps.push(JSON.parse(json) as AppRecord);
  }
  return queryApps(apps, query);
}

export async function listAudit(db: Db, query: AuditQuery): Promise<Page<AuditEntry>> {
  const rows = await db.run('audit', () => db.client.lrange(db.key('audit'), 0, -1));
  return queryAudit(
    rows.map((r) => JSON.parse(r) as AuditEntry),
    query,
  );
}

export async function listKeyEvents(db: Db, keyId: string): Promise<KeyEvent[]> {
  const rows = await db.run('events', () => db.client.lrange(db.key(`events:${keyId}`), 0, -1));
  return rows.map((r) => JSON.parse(r) as KeyEvent);
}

export async function usageBuckets(db: Db, scope: string, gran: Granularity, from: number, to: number): Promise<Bucket[]> {
  const size = gran === 'm' ? MINUTE : DAY;
  const starts: number[] = [];
  for (let start = bucketStart(from, gran); start < to && starts.length < 100_000; start += size) if (start >= from) starts.push(start);
  const out: Bucket[] = [];
  for (let i = 0; i < starts.length; i += CHUNK) {
    const part = starts.slice(i, i + CHUNK);
    const pipeline = db.client.pipeline();
    for (const start of part) pipeline.hgetall(db.key(`agg:${gran}:${start}:${scope}`));
    const rows = await db.run('usage', async () => {
      const res = (await pipeline.exec()) ?? [];
      return res.map(([err, v]) => {
        if (err) throw err;
        return v as Record<string, string>;
      });
    });
    rows.forEach((row, j) => {
      const names = Object.keys(row);
      if (names.length === 0) return;
      const fields: Record<string, number> = {};
      for (const name of names) fields[name] = Number(row[name]);
      out.push({ start: part[j]!, fields });
    });
  }
  return out;
}

export async function recentErrors(db: Db, query: ErrorQuery): Promise<ErrorSample[]> {
  const rows = await db.run('usage', () => db.client.lrange(db.key('errors'), 0, -1));
  return queryErrors(rows, (r) => JSON.parse(r) as ErrorSample, query);
}

/**
 * Store.expiringKeys from the index <p>:expiring (redis/lua/expiring.lua), built first for keys
 * written before the index existed (once per deployment; `built` remembers it in this process).
 */
export async function expiringKeys(db: Db, built: { done: boolean }, from: number, to: number, cursor: ExpiringCursor | null, limit: number): Promise<KeyRecord[]> {
  if (!built.done) {
    if ((await db.run('expiring', () => db.client.exists(db.key('expiring:built')))) === 0) await buildExpiringIndex(db);
    built.done = true;
  }
  if (limit <= 0) return [];
  // expires_at > from and ≤ to, on whole milliseconds: from the next millisecond after `from`
  // up to, not including, the one after `to`.
  const lower = timeDigits(Math.floor(from) + 1);
  const after = cursor === null ? null : timeMember(cursor.expires_at, cursor.id);
  const min = after !== null && after >= lower ? `(${after}` : `[${lower}`;
  const max = `(${timeDigits(Math.floor(to) + 1)}`;
  if (min.slice(1) >= max.slice(1)) return [];
  const members = await db.run('expiring', () => db.client.zrangebylex(db.key('expiring'), min, max, 'LIMIT', 0, limit));
  return keysById(db, members.map((m) => m.slice(17)));
}

/** The member of a key in the expiring-key index; '' when it has none. */
export function expiringMember(rec: KeyRecord): string {
  return rec.revoked_at === null && rec.expires_at !== null ? timeMember(rec.expires_at, rec.id) : '';
}

async function buildExpiringIndex(db: Db): Promise<void> {
  const ids = await db.run('expiring', () => db.client.smembers(db.key('keys')));
  for (let i = 0; i < ids.length; i += CHUNK) {
    const args: string[] = [];
    for (const rec of await keysById(db, ids.slice(i, i + CHUNK))) args.push(rec.id, String(rec.version), expiringMember(rec));
    if (args.length > 0) await db.run('expiring', () => db.client.kgExpiringIndex(db.key('ver'), db.tag, ...args));
  }
  await db.run('expiring', () => db.client.kgExpiringIndex(db.key('ver'), db.tag, ''));
}

export async function getAlert(db: Db, id: string): Promise<Alert | null> {
  const json = await db.run('alerts', () => db.client.hget(db.key('alerts'), id));
  return json ? (JSON.parse(json) as Alert) : null;
}

/**
 * Alerts newest first from the narrowest index that holds them all (one key's, one tenant's,
 * or everyone's, each a sorted set of timeMember members ranged by lex), read in batches and
 * filtered on what that index does not narrow.
 */
export async function listAlerts(db: Db, q: AlertQuery): Promise<Page<Alert>> {
  const index = q.key_id !== undefined ? `alertsby:k:${q.key_id}` : q.tenant !== null ? `alertsby:t:${q.tenant}` : 'alertsby';
  // Members sort as (created_at, id); newest first is the reverse, from the upper bound down.
  let max = q.to === undefined ? '+' : `(${timeDigits(q.to)}`;
  if (q.cursor !== undefined) {
    const [t, id] = decodeTimeCursor(q.cursor);
    const after = timeMember(t, id);
    if (max === '+' || after < max.slice(1)) max = `(${after}`;
  }
  const min = q.from === undefined ? '-' : `[${timeDigits(q.from)}`;
  const keep = alertFilter(q);
  // When the index (and the range) is all the filtering, a page is one read of limit + 1.
  const narrowed = q.type === undefined && (q.key_id === undefined || q.tenant === null);
  const batch = narrowed ? q.limit + 1 : Math.max(q.limit + 1, 200);
  const found: Alert[] = [];
  for (;;) {
    const members = await db.run('alerts', () => db.client.zrevrangebylex(db.key(index), max, min, 'LIMIT', 0, batch));
    if (members.length > 0) {
      const rows = await db.run('alerts', () => db.client.hmget(db.key('alerts'), ...members.map((m) => m.slice(17))));
      for (const json of rows) {
        if (!json) continue;
        const a = JSON.parse(json) as Alert;
        if (keep(a)) found.push(a);
        if (found.length > q.limit) break;
      }
    }
    if (found.length > q.limit || members.length < batch) break;
    max = `(${members[members.length - 1]!}`;
  }
  const data = found.slice(0, q.limit);
  const last = data[data.length - 1];
  return { data, next_cursor: found.length > q.limit && last ? encodeCursor(last.created_at, last.id) : null };
}

const DELIVERY_FIELDS = ['a', 't', 's', 'at', 'n', 'c'] as const;

/** Deliveries by id, in order, leaving out ids with none. */
export async function deliveriesById(db: Db, ids: readonly string[]): Promise<Delivery[]> {
  const out: Delivery[] = [];
  for (let i = 0; i < ids.length; i += CHUNK) {
    const part = ids.slice(i, i + CHUNK);
    const pipeline = db.client.pipeline();
    for (const id of part) pipeline.hmget(db.key(`dlv:${id}`), ...DELIVERY_FIELDS);
    const rows = await db.run('deliveries', async () =>
      ((await pipeline.exec()) ?? []).map(([err, v]) => {
        if (err) throw err;
        return v as (string | null)[];
      }),
    );
    rows.forEach(([a, t, s, at, n, c], j) => {
      if (a === null || a === undefined) return;
      out.push({
        id: part[j]!,
        alert_id: a,
        target: t!,
        state: s as DeliveryState,
        attempts: JSON.parse(at!) as Delivery['attempts'],
        next_at: n === '' || n === null || n === undefined ? null : Number(n),
        created_at: Number(c),
      });
    });
  }
  return out;
}

export async function dueDeliveries(db: Db, now: number, limit: number): Promise<Delivery[]> {
  if (limit <= 0) return [];
  const ids = await db.run('deliveries', () => db.client.zrangebyscore(db.key('dlvdue'), '-inf', now, 'LIMIT', 0, limit));
  return deliveriesById(db, ids);
}

export async function listDeliveries(db: Db, alertId: string): Promise<Delivery[]> {
  const ids = await db.run('deliveries', () => db.client.lrange(db.key(`alertdlv:${alertId}`), 0, -1));
  return deliveriesById(db, ids);
}

/** `rec` with the usage counters as the scripts answer them (see counters.lua). */
export function applyUsage(rec: KeyRecord, requests: string, errors: string, last: string): KeyRecord {
  return {
    ...rec,
    usage: { total_requests: Number(requests), error_count: Number(errors) },
    last_used_at: last === '' ? null : Number(last),
  };
}

function withUsage(json: string, requests: string, errors: string, last: string): KeyRecord {
  return applyUsage(JSON.parse(json) as KeyRecord, requests, errors, last);
}
