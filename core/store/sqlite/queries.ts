import type { Database } from 'better-sqlite3';
import type { Alert, AlertQuery, ExpiringCursor } from '../../alerts.js';
import type { AppRecord } from '../../application.js';
import type { AuditEntry } from '../../audit.js';
import type { KeyRecord } from '../../record.js';
import type { ErrorSample } from '../../usage-agg.js';
import { InvalidCursorError } from '../../internal-errors.js';
import { decodeCursor, encodeCursor } from '../query.js';
import type { AppQuery, AuditQuery, ErrorQuery, KeyPage, KeyQuery, Page } from '../store.js';

// The admin plane's lists in SQL, each keyset-paged with the same cursors as the other stores
// (core/store/query.ts): a cursor holds the sort value and id of a page's last row, and the next
// page starts strictly after it, so inserts between pages neither repeat nor skip a row.

/** A key row as selected: the record and the traffic counters kept beside it. */
export interface KeyRow {
  record: string;
  total_requests: number;
  error_count: number;
  last_used_at: number | null;
}

export const KEY_COLUMNS = 'k.record, k.total_requests, k.error_count, k.last_used_at';

export function keyFromRow(row: KeyRow): KeyRecord {
  const rec = JSON.parse(row.record) as KeyRecord;
  rec.usage = { total_requests: row.total_requests, error_count: row.error_count };
  rec.last_used_at = row.last_used_at;
  return rec;
}

/** The sort expressions; each has an index (with the tenant in front, too). */
const SORTS = {
  created_at: { sql: 'k.created_at', type: 'number' },
  last_used_at: { sql: 'coalesce(k.last_used_at, -1)', type: 'number' },
  name: { sql: 'k.name', type: 'string' },
} as const;

/** A key's status at `@now`, as core/record.ts keyStatus computes it. */
const STATUS = `CASE
  WHEN k.revoked_at IS NOT NULL OR (k.grace_ends_at IS NOT NULL AND k.grace_ends_at <= @now) THEN 'revoked'
  WHEN k.expires_at IS NOT NULL AND k.expires_at <= @now THEN 'expired'
  WHEN k.suspended = 1 THEN 'suspended'
  WHEN k.not_before IS NOT NULL AND k.not_before > @now THEN 'pending'
  ELSE 'active' END`;

/** Keys that may have a status at `@now`, each through a partial index; null: no narrowing. */
const CANDIDATES: Record<KeyQuery['status'] & string, string | null> = {
  revoked:
    'SELECT seq FROM keys WHERE revoked_at IS NOT NULL UNION ALL SELECT seq FROM keys WHERE grace_ends_at IS NOT NULL AND grace_ends_at <= @now',
  expired: 'SELECT seq FROM keys WHERE expires_at IS NOT NULL AND expires_at <= @now',
  suspended: 'SELECT seq FROM keys WHERE suspended = 1',
  pending: 'SELECT seq FROM keys WHERE not_before IS NOT NULL AND not_before > @now',
  active: null,
};

/** `s` as a GLOB pattern that matches it literally anywhere in a name. */
function containsGlob(s: string): string {
  return `*${s.replace(/[[*?]/g, (c) => `[${c}]`)}*`;
}

export function listKeys(db: Database, query: KeyQuery): KeyPage {
  const sort = SORTS[query.sort];
  const where: string[] = [];
  const params: Record<string, unknown> = { now: query.now, limit: query.limit + 1 };
  if (query.tenant !== null) {
    where.push('k.tenant = @tenant');
    params['tenant'] = query.tenant;
  }
  if (query.environment !== undefined) {
    where.push('k.environment = @environment');
    params['environment'] = query.environment;
  }
  if (query.application !== undefined) {
    where.push('k.application = @application');
    params['application'] = query.application;
  }
  if (query.scope !== undefined) {
    where.push('k.seq IN (SELECT key_seq FROM key_scopes WHERE scope = @scope)');
    params['scope'] = query.scope;
  }
  if (query.q !== undefined) {
    const folded = query.q.toLowerCase();
    params['q'] = query.q;
    params['folded'] = folded;
    // Three characters or more: the trigram index finds the names; shorter ones are scanned.
    if ([...folded].length >= 3) {
      params['glob'] = containsGlob(folded);
      where.push('k.seq IN (SELECT rowid FROM keys_names WHERE name_folded GLOB @glob UNION ALL SELECT seq FROM keys WHERE id = @q)');
    } else {
      where.push('(k.id = @q OR instr(k.name_folded, @folded) > 0)');
    }
  }
  if (query.status !== undefined) {
    // A status other than active holds few keys: found through its index, then checked.
    const candidates = CANDIDATES[query.status] ?? null;
    if (candidates !== null) where.push(`k.seq IN (${candidates})`);
    where.push(`(${STATUS}) = @status`);
    params['status'] = query.status;
  }
  const dir = query.order === 'asc' ? 'ASC' : 'DESC';
  if (query.cursor !== undefined) {
    const [value, id] = decodeCursor(query.cursor);
    if (typeof value !== sort.type) throw new InvalidCursorError('cursor is not one this server issued');
    // The first term bounds the index scan; the second settles ties on the sort value by id.
    const op = dir === 'ASC' ? '>' : '<';
    where.push(`${sort.sql} ${op}= @after AND (${sort.sql} ${op} @after OR k.id ${op} @afterId)`);
    params['after'] = value;
    params['afterId'] = id;
  }
  const sql =
    `SELECT ${KEY_COLUMNS}, ${sort.sql} AS sort_value, k.id AS id FROM keys k` +
    (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY ${sort.sql} ${dir}, k.id ${dir} LIMIT @limit`;
  const rows = db.prepare(sql).all(params) as (KeyRow & { sort_value: string | number; id: string })[];
  const more = rows.length > query.limit;
  if (more) rows.pop();
  const last = rows[rows.length - 1];
  return { data: rows.map(keyFromRow), next_cursor: more && last ? encodeCursor(last.sort_value, last.id) : null };
}

/** Newest first on (time column, id), keyset-paged; `from` is a query on alias `r` selecting `doc`, `t`, `id`. */
function newestFirst<T>(
  db: Database,
  from: string,
  where: string[],
  params: Record<string, unknown>,
  limit: number,
  cursor: string | undefined,
  parse: (doc: string) => T,
): Page<T> {
  if (cursor !== undefined) {
    const [value, id] = decodeCursor(cursor);
    if (typeof value !== 'number') throw new InvalidCursorError('cursor is not one this server issued');
    where.push('t <= @afterT AND (t < @afterT OR id < @afterId)');
    params['afterT'] = value;
    params['afterId'] = id;
  }
  params['limit'] = limit + 1;
  const sql = `SELECT doc, t, id FROM (${from})` + (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') + ' ORDER BY t DESC, id DESC LIMIT @limit';
  const rows = db.prepare(sql).all(params) as { doc: string; t: number; id: string }[];
  const more = rows.length > limit;
  if (more) rows.pop();
  const last = rows[rows.length - 1];
  return { data: rows.map((r) => parse(r.doc)), next_cursor: more && last ? encodeCursor(last.t, last.id) : null };
}

export function listApps(db: Database, q: AppQuery): Page<AppRecord> {
  const where: string[] = [];
  const params: Record<string, unknown> = {};
  if (q.tenant !== null) {
    where.push('tenant = @tenant');
    params['tenant'] = q.tenant;
  }
  if (q.status !== undefined) where.push(q.status === 'active' ? 'suspended = 0' : 'suspended = 1');
  if (q.q !== undefined) {
    where.push('(id = @q OR instr(name_folded, @folded) > 0)');
    params['q'] = q.q;
    params['folded'] = q.q.toLowerCase();
  }
  const from = 'SELECT record AS doc, created_at AS t, id, tenant, suspended, name_folded FROM apps';
  return newestFirst(db, from, where, params, q.limit, q.cursor, (doc) => JSON.parse(doc) as AppRecord);
}

/**
 * The WHERE terms of a newest-first log (audit, alerts): each column equal to its value when
 * one is given, and the time column `t` within [from, to).
 */
function logFilters(equal: Record<string, string | null | undefined>, q: { from?: number | undefined; to?: number | undefined }) {
  const where: string[] = [];
  const params: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(equal)) {
    if (value === undefined || value === null) continue;
    where.push(`${column} = @${column}`);
    params[column] = value;
  }
  if (q.from !== undefined) {
    where.push('t >= @from');
    params['from'] = q.from;
  }
  if (q.to !== undefined) {
    where.push('t < @to');
    params['to'] = q.to;
  }
  return { where, params };
}

export function listAudit(db: Database, q: AuditQuery): Page<AuditEntry> {
  const { where, params } = logFilters({ tenant: q.tenant, actor: q.actor, action: q.action, target_id: q.target_id }, q);
  const from = 'SELECT entry AS doc, time AS t, id, tenant, actor, action, target_id FROM audit';
  return newestFirst(db, from, where, params, q.limit, q.cursor, (doc) => JSON.parse(doc) as AuditEntry);
}

export function listAlerts(db: Database, q: AlertQuery): Page<Alert> {
  const { where, params } = logFilters({ tenant: q.tenant, type: q.type, key_id: q.key_id }, q);
  const from = 'SELECT alert AS doc, created_at AS t, id, tenant, type, key_id FROM alerts';
  return newestFirst(db, from, where, params, q.limit, q.cursor, (doc) => JSON.parse(doc) as Alert);
}

/** Store.expiringKeys through the partial index keys_expiring (migration 0002). */
export function expiringKeys(db: Database, from: number, to: number, cursor: ExpiringCursor | null, limit: number): KeyRecord[] {
  const params: Record<string, unknown> = { from, to, limit };
  let after = '';
  if (cursor !== null) {
    // The first term bounds the index scan; the second settles ties on expires_at by id.
    after = ' AND k.expires_at >= @afterE AND (k.expires_at > @afterE OR k.id > @afterId)';
    params['afterE'] = cursor.expires_at;
    params['afterId'] = cursor.id;
  }
  const sql =
    `SELECT ${KEY_COLUMNS} FROM keys k WHERE k.expires_at IS NOT NULL AND k.revoked_at IS NULL` +
    ` AND k.expires_at > @from AND k.expires_at <= @to${after} ORDER BY k.expires_at, k.id LIMIT @limit`;
  return (db.prepare(sql).all(params) as KeyRow[]).map(keyFromRow);
}

/**
 * Error samples newest first, in the order and with the cursors of core/store/query.ts
 * queryErrors: by time, and within one millisecond newest kept first; a cursor (time, request
 * id) continues with the samples of its millisecond kept before its own, then older ones.
 */
export function recentErrors(db: Database, q: ErrorQuery): ErrorSample[] {
  const where: string[] = [];
  const params: Record<string, unknown> = { limit: q.limit };
  if (q.key_id !== undefined) {
    where.push('key_id = @key');
    params['key'] = q.key_id;
  }
  if (q.tenant !== undefined) {
    where.push('tenant = @tenant');
    params['tenant'] = q.tenant;
  }
  if (q.from !== undefined) {
    where.push('time >= @from');
    params['from'] = q.from;
  }
  if (q.to !== undefined) {
    where.push('time < @to');
    params['to'] = q.to;
  }
  if (q.cursor !== undefined) {
    const [at, requestId] = decodeCursor(q.cursor);
    if (typeof at !== 'number') throw new InvalidCursorError('cursor is not one this server issued');
    // The cursor's own sample, the newest kept of that millisecond and request id; when it is
    // gone, nothing of its millisecond follows it.
    const own = db.prepare('SELECT max(seq) FROM usage_errors WHERE time = ? AND request_id = ?').pluck().get(at, requestId) as number | null;
    where.push('(time < @at OR (time = @at AND seq < @own))');
    params['at'] = at;
    params['own'] = own ?? Number.MIN_SAFE_INTEGER;
  }
  const sql =
    'SELECT sample FROM usage_errors' + (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') + ' ORDER BY time DESC, seq DESC LIMIT @limit';
  return (db.prepare(sql).pluck().all(params) as string[]).map((s) => JSON.parse(s) as ErrorSample);
}
