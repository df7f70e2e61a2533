import type { AppRecord } from '../../application.js';
import type { AuditEntry, KeyEvent } from '../../audit.js';
import { dueTransition, type KeyRecord } from '../../record.js';
import { DAY, MINUTE, bucketStart, type Bucket, type ErrorSample, type Granularity } from '../../usage-agg.js';
import { queryApps, queryAudit, queryErrors, queryKeys } from '../query.js';
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
