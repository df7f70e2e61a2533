import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import { ERRORS, INVALID_TOKEN_REASONS } from '../core/errors.js';
import type { Store } from '../core/store/store.js';
import { DAY, MINUTE, bucketStart, summarize, type AggregatedEvent, type ErrorSample, type Granularity } from '../core/usage-agg.js';
import { route, sendJson, type Route } from './http.js';
import { rfc3339 } from './key-input.js';
import type { KeyService } from './keys.js';
import type { Call } from './http.js';
import type { UsageRecorder } from './usage.js';

export interface UsageRouteDeps {
  config: Config;
  keys: KeyService;
  store: Store;
  clock: Clock;
  usage: UsageRecorder;
}

const SPANS = { '1h': 3_600_000, '24h': DAY, '7d': 7 * DAY, '30d': 30 * DAY } as const;

const rangeQuery = z
  .strictObject({
    range: z.enum(['1h', '24h', '7d', '30d']).optional(),
    from: rfc3339.optional(),
    to: rfc3339.optional(),
  })
  .refine((q) => q.range === undefined || (q.from === undefined && q.to === undefined), 'give range, or from/to, not both')
  .refine((q) => q.from === undefined || q.to === undefined || q.from < q.to, 'from must be before to');

const errorsQuery = z.strictObject({
  range: z.enum(['1h', '24h', '7d', '30d']).optional(),
  from: rfc3339.optional(),
  to: rfc3339.optional(),
  key_id: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
  format: z.enum(['json', 'csv']).default('json'),
}).refine((q) => q.range === undefined || (q.from === undefined && q.to === undefined), 'give range, or from/to, not both');

const event = z.object({
  time: z.number().finite(),
  request_id: z.string().max(200),
  key_id: z.string().max(64).nullable(),
  tenant: z.string().max(200).nullable().default(null),
  api: z.string().max(200).nullable(),
  method: z.string().max(32),
  route: z.string().max(1000).nullable(),
  status: z.number().int().min(100).max(599),
  outcome: z.string().max(64),
  reason: z.string().max(64).nullable().default(null),
  latency_ms: z.number().min(0),
  upstream_ms: z.number().min(0).nullable().default(null),
  bytes_in: z.number().int().min(0).default(0),
  bytes_out: z.number().int().min(0).default(0),
  country: z.string().max(8).nullable().default(null),
});
const eventBatch = z.strictObject({
  /** Unique per batch and sender: a batch sent again is stored once. */
  id: z.string().min(1).max(200),
  events: z.array(event).max(1_000_000),
});

/**
 * Resolves `range` or `from`/`to` into a window and the granularity that serves it. A `range`
 * is that many whole buckets ending with the current one (1h: 60 minutes, 7d: 7 days); an
 * explicit window is read in minutes when short and recent enough, in days otherwise.
 */
function window(q: { range?: keyof typeof SPANS | undefined; from?: number | undefined; to?: number | undefined }, now: number, config: Config) {
  if (q.from === undefined && q.to === undefined) {
    const span = SPANS[q.range ?? '24h'];
    const gran: Granularity = span <= DAY ? 'm' : 'd';
    const size = gran === 'm' ? MINUTE : DAY;
    return { from: bucketStart(now, gran) - (span / size - 1) * size, to: now + 1, gran };
  }
  const to = q.to ?? now + 1;
  const from = q.from ?? to - DAY;
  const minutesKept = config.usage.minute_retention_hours * 3_600_000;
  const gran: Granularity = to - from <= 2 * DAY && from >= now - minutesKept ? 'm' : 'd';
  return { from, to, gran };
}

const sampleMessage = (e: ErrorSample) =>
  (e.error === 'invalid_token' && e.reason !== null ? INVALID_TOKEN_REASONS[e.reason as keyof typeof INVALID_TOKEN_REASONS] : undefined) ??
  ERRORS[e.error as keyof typeof ERRORS]?.message ??
  (e.error === 'client_closed_request' ? 'The client closed the connection before the answer.' : '');

const CSV_COLUMNS = ['time', 'request_id', 'key_id', 'api', 'method', 'route', 'status', 'error', 'reason', 'message'] as const;

/** One CSV field (RFC 4180); a leading = + - @ is neutralised so spreadsheets do not run it. */
function csvField(v: unknown): string {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The usage routes: per-key and overall analytics, recent errors, and the gateways' intake. */
export function usageRoutes(d: UsageRouteDeps): Route<Call>[] {
  const { config, keys, store, clock, usage } = d;

  async function summary(scope: string, q: z.output<typeof rangeQuery>, perKey: boolean, limitPerMinute?: number | null) {
    const now = clock.now();
    const w = window(q, now, config);
    const from = bucketStart(w.from, w.gran);
    const buckets = await store.usageBuckets(scope, w.gran, from, w.to);
    const minutes = w.gran === 'm' ? buckets : await store.usageBuckets(scope, 'm', Math.max(from, now - config.usage.minute_retention_hours * 3_600_000), w.to);
    const s = summarize(buckets, { from, to: w.to, gran: w.gran }, minutes, { perKey });
    if (limitPerMinute !== undefined) s.rate_limit.limit_per_minute = limitPerMinute;
    return s;
  }

  return [
    route('GET', '/v1/keys/{id}/usage', 'read', { summary: "A key's traffic over a range", query: rangeQuery, responses: { 200: 'Totals, time series, endpoints, status codes, rate-limit events' } }, async (c, [id]) => {
      const q = c.parse(rangeQuery, Object.fromEntries(c.url.searchParams));
      const rec = await keys.get(id!, c.actor);
      const plan = rec.rate_limit ?? config.plans[rec.plan ?? 'default'] ?? null;
      const perMinute = plan === null ? null : Math.round((plan.limit / plan.window_seconds) * 60 * 1000) / 1000;
      sendJson(c.res, 200, { key_id: rec.id, ...(await summary(rec.id, q, false, perMinute)) }, c.requestId);
    }),
    route('GET', '/v1/usage', 'read', { summary: 'All traffic (a tenant token: its tenant’s) over a range', query: rangeQuery, responses: { 200: 'Totals, time series, endpoints, status codes, usage by key, rate-limit events' } }, async (c) => {
      const q = c.parse(rangeQuery, Object.fromEntries(c.url.searchParams));
      const scope = c.actor.tenant === null ? '*' : `t:${c.actor.tenant}`;
      sendJson(c.res, 200, await summary(scope, q, true), c.requestId);
    }),
    route('GET', '/v1/usage/errors', 'read', { summary: 'Recent errors, newest first; format=csv exports them', query: errorsQuery, responses: { 200: '`{ data }`, or text/csv with a header row' } }, async (c) => {
      const q = c.parse(errorsQuery, Object.fromEntries(c.url.searchParams));
      if (q.key_id !== undefined) await keys.get(q.key_id, c.actor); // 404 for another tenant's key
      const to = q.to ?? clock.now();
      const from = q.from ?? (q.range !== undefined ? to - SPANS[q.range] : undefined);
      const samples = await store.recentErrors({ key_id: q.key_id, tenant: c.actor.tenant ?? undefined, from, to: q.to, limit: q.limit });
      const rows = samples.map((e) => ({
        time: new Date(e.time).toISOString(),
        request_id: e.request_id,
        key_id: e.key_id,
        api: e.api,
        method: e.method,
        route: e.route,
        status: e.status,
        error: e.error,
        reason: e.reason,
        message: sampleMessage(e),
      }));
      if (q.format === 'json') return sendJson(c.res, 200, { data: rows }, c.requestId);
      let csv = `${CSV_COLUMNS.join(',')}\r\n`;
      for (const r of rows) csv += `${CSV_COLUMNS.map((col) => csvField(r[col])).join(',')}\r\n`;
      c.res.writeHead(200, {
        'content-type': 'text/csv; charset=utf-8',
        'content-disposition': 'attachment; filename="keygate-errors.csv"',
        'content-length': Buffer.byteLength(csv),
        'cache-control': 'no-store',
        'x-request-id': c.requestId,
      });
      c.res.end(csv);
    }),
    route('POST', '/v1/usage/events', 'ingest_usage', { summary: "A gateway's batch of usage events; stored before the answer, once per batch id", body: eventBatch, responses: { 200: '`{ stored, duplicate }`' } }, async (c) => {
      const batch = c.parse(eventBatch, await c.body(config.admin.max_usage_batch_bytes));
      const applied = await usage.ingest(`${c.actor.name}:${batch.id}`, batch.events as AggregatedEvent[]);
      sendJson(c.res, 200, { stored: applied ? batch.events.length : 0, duplicate: !applied }, c.requestId);
    }),
  ];
}
