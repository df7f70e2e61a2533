import type { Alert, AlertQuery, ExpiringCursor } from '../alerts.js';
import type { AppRecord } from '../application.js';
import type { AuditEntry } from '../audit.js';
import { keyStatus, type KeyRecord } from '../record.js';
import type { ErrorSample } from '../usage-agg.js';
import { type AppQuery, type AuditQuery, type ErrorQuery, type KeyPage, type KeyQuery, type Page } from './store.js';
import { InvalidCursorError } from '../internal-errors.js';

type SortValue = string | number;

function sortValue(rec: KeyRecord, sort: KeyQuery['sort']): SortValue {
  if (sort === 'name') return rec.name;
  if (sort === 'last_used_at') return rec.last_used_at ?? -1;
  return rec.created_at;
}

function compare(a: SortValue, aId: string, b: SortValue, bId: string): number {
  const c = typeof a === 'string' && typeof b === 'string' ? compareText(a, b) : a < b ? -1 : a > b ? 1 : 0;
  return c !== 0 ? c : compareText(aId, bId);
}

/**
 * Strings in code point order: the order of their UTF-8 bytes, as the SQLite store's BINARY
 * collation sorts names. JavaScript's `<` compares UTF-16 code units instead, which puts
 * characters beyond U+FFFF (emoji) before U+E000–U+FFFF (fullwidth forms, U+FFFD).
 */
export function compareText(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return unitRank(x) - unitRank(y);
  }
  return a.length - b.length;
}

/** A code unit's place in code point order: surrogates (of code points above U+FFFF) after U+E000–U+FFFF. */
const unitRank = (c: number): number => (c < 0xd800 ? c : c < 0xe000 ? c + 0x2000 : c - 0x800);

export function encodeCursor(v: SortValue, id: string): string {
  return Buffer.from(JSON.stringify([v, id])).toString('base64url');
}

export function decodeCursor(cursor: string): [SortValue, string] {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(parsed) &&
      parsed.length === 2 &&
      (typeof parsed[0] === 'string' || typeof parsed[0] === 'number') &&
      typeof parsed[1] === 'string'
    ) {
      return [parsed[0], parsed[1]];
    }
  } catch {
    // fall through to the error below
  }
  throw new InvalidCursorError('cursor is not one this server issued');
}

/** Filters, sorts and pages records held in memory; a keyset cursor keeps pages stable under inserts. */
export function queryKeys(records: Iterable<KeyRecord>, query: KeyQuery): KeyPage {
  const q = query.q?.toLowerCase();
  const after = query.cursor ? decodeCursor(query.cursor) : null;
  const dir = query.order === 'asc' ? 1 : -1;
  const matches: KeyRecord[] = [];
  for (const rec of records) {
    if (query.tenant !== null && rec.tenant !== query.tenant) continue;
    if (query.environment !== undefined && rec.environment !== query.environment) continue;
    if (query.application !== undefined && rec.application !== query.application) continue;
    if (query.scope !== undefined && !rec.scopes.includes(query.scope)) continue;
    if (q !== undefined && rec.id !== query.q && !rec.name.toLowerCase().includes(q)) continue;
    if (query.status !== undefined && keyStatus(rec, query.now) !== query.status) continue;
    if (after && dir * compare(sortValue(rec, query.sort), rec.id, after[0], after[1]) <= 0) continue;
    matches.push(rec);
  }
  matches.sort((a, b) => dir * compare(sortValue(a, query.sort), a.id, sortValue(b, query.sort), b.id));
  const data = matches.slice(0, query.limit);
  const last = data[data.length - 1];
  const next_cursor =
    matches.length > query.limit && last ? encodeCursor(sortValue(last, query.sort), last.id) : null;
  return { data, next_cursor };
}

/** Newest first, keyset-paged on (time, id). */
function newestFirst<T>(items: Iterable<T>, keep: (item: T) => boolean, time: (item: T) => number, id: (item: T) => string, limit: number, cursor: string | undefined): Page<T> {
  // A cursor of another list (a name where a time belongs) is refused, as the SQL lists refuse it.
  const after = cursor ? decodeTimeCursor(cursor) : null;
  const matches: T[] = [];
  for (const item of items) {
    if (!keep(item)) continue;
    if (after && compare(time(item), id(item), after[0], after[1]) >= 0) continue;
    matches.push(item);
  }
  matches.sort((a, b) => compare(time(b), id(b), time(a), id(a)));
  const data = matches.slice(0, limit);
  const last = data[data.length - 1];
  return { data, next_cursor: matches.length > limit && last ? encodeCursor(time(last), id(last)) : null };
}

export function queryApps(apps: Iterable<AppRecord>, q: AppQuery): Page<AppRecord> {
  const needle = q.q?.toLowerCase();
  return newestFirst(
    apps,
    (a) =>
      (q.tenant === null || a.tenant === q.tenant) &&
      (q.status === undefined || (a.suspended_at === null ? 'active' : 'suspended') === q.status) &&
      (needle === undefined || a.id === q.q || a.name.toLowerCase().includes(needle)),
    (a) => a.created_at,
    (a) => a.id,
    q.limit,
    q.cursor,
  );
}

export function queryAudit(entries: Iterable<AuditEntry>, q: AuditQuery): Page<AuditEntry> {
  return newestFirst(
    entries,
    (e) =>
      (q.tenant === null || e.tenant === q.tenant) &&
      (q.actor === undefined || e.actor === q.actor) &&
      (q.action === undefined || e.action === q.action) &&
      (q.target_id === undefined || e.target_id === q.target_id) &&
      (q.from === undefined || e.time >= q.from) &&
      (q.to === undefined || e.time < q.to),
    (e) => e.time,
    (e) => e.id,
    q.limit,
    q.cursor,
  );
}

export function queryAlerts(alerts: Iterable<Alert>, q: AlertQuery): Page<Alert> {
  return newestFirst(alerts, alertFilter(q), (a) => a.created_at, (a) => a.id, q.limit, q.cursor);
}

/** Whether an alert passes a query's filters (tenant, type, key, time range). */
export function alertFilter(q: AlertQuery): (a: Alert) => boolean {
  return (a) =>
    (q.tenant === null || a.tenant === q.tenant) &&
    (q.type === undefined || a.type === q.type) &&
    (q.key_id === undefined || a.key?.id === q.key_id) &&
    (q.from === undefined || a.created_at >= q.from) &&
    (q.to === undefined || a.created_at < q.to);
}

/** A list cursor that must hold a time (the newest-first lists'): its time and id. */
export function decodeTimeCursor(cursor: string): [number, string] {
  const [t, id] = decodeCursor(cursor);
  if (typeof t !== 'number') throw new InvalidCursorError('cursor is not one this server issued');
  return [t, id];
}

/** Store.expiringKeys over records held in memory. */
export function expiringKeys(keys: Iterable<KeyRecord>, from: number, to: number, cursor: ExpiringCursor | null, limit: number): KeyRecord[] {
  const out: KeyRecord[] = [];
  for (const k of keys) {
    const e = k.expires_at;
    if (e === null || k.revoked_at !== null || e <= from || e > to) continue;
    if (cursor !== null && compare(e, k.id, cursor.expires_at, cursor.id) <= 0) continue;
    out.push(k);
  }
  out.sort((a, b) => compare(a.expires_at!, a.id, b.expires_at!, b.id));
  return out.length > limit ? out.slice(0, limit) : out;
}

/**
 * A time (ms) and an id as one string whose byte order is the order of (time, id): the time in
 * 16 digits (clamped to 0…2^53 − 1), a colon, the id. The Redis store keeps its time-ordered
 * indexes as such members of sorted sets, ranged by lex (ZRANGEBYLEX), so that a keyset cursor
 * on (time, id) is one exact bound even through many records of one millisecond.
 */
export function timeMember(time: number, id = ''): string {
  return `${timeDigits(time)}:${id}`;
}

/** `time` (rounded up to a whole millisecond) in the 16 digits of timeMember. */
export function timeDigits(time: number): string {
  return String(Math.min(Math.max(Math.ceil(time), 0), Number.MAX_SAFE_INTEGER)).padStart(16, '0');
}

/**
 * Error samples kept oldest first → those matching `query`, newest first, at most `limit`,
 * keyset-paged after `query.cursor`. Gateways' batches do not arrive in time order, so samples
 * are sorted by time; those of one millisecond stay newest-kept first. A cursor names the last
 * sample of its page by time and request id: the next page holds the samples of that
 * millisecond kept before it (later ones came after the page was read), then older ones.
 */
export function queryErrors<T>(kept: readonly T[], parse: (row: T) => ErrorSample, query: ErrorQuery): ErrorSample[] {
  const after = query.cursor ? decodeCursor(query.cursor) : null;
  if (after !== null && typeof after[0] !== 'number') throw new InvalidCursorError('cursor is not one this server issued');
  const at = after?.[0] as number;
  let passed = false;
  const out: ErrorSample[] = [];
  for (let i = kept.length - 1; i >= 0; i--) {
    const e = parse(kept[i]!);
    if (query.key_id !== undefined && e.key_id !== query.key_id) continue;
    if (query.tenant !== undefined && e.tenant !== query.tenant) continue;
    if (query.from !== undefined && e.time < query.from) continue;
    if (query.to !== undefined && e.time >= query.to) continue;
    if (after !== null) {
      // Newer than the cursor: on the pages before it, or kept since they were read.
      if (e.time > at) continue;
      // The cursor's millisecond: the samples up to and including the cursor's own were shown.
      if (e.time === at && !passed) {
        passed = e.request_id === after[1];
        continue;
      }
    }
    out.push(e);
  }
  // Stable: samples of one millisecond keep the newest-kept-first order of the scan.
  out.sort((a, b) => b.time - a.time);
  return out.length > query.limit ? out.slice(0, query.limit) : out;
}

/** The cursor of the page that follows `last` in queryErrors' order. */
export const errorCursor = (last: ErrorSample): string => encodeCursor(last.time, last.request_id);
