import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import { ERRORS, INVALID_TOKEN_REASONS } from '../core/errors.js';
import { errorCursor } from '../core/store/query.js';
import type { Store } from '../core/store/store.js';
import { DAY, MINUTE, bucketStart, summarize, type AggregatedEvent, type ErrorSample, type Granularity } from '../core/usage-agg.js';
import { route, sendJson, type Route } from './http.js';
import { cursor, fromBeforeTo, pageLimit, rfc3339 } from './key-input.js';
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
  .superRefine(fromBeforeTo);

const errorsQuery = z
  .strictObject({
    range: z.enum(['1h', '24h', '7d', '30d']).optional(),
    from: rfc3339.optional(),
    to: rfc3339.optional(),
    key_id: z.string().max(64).optional().meta({ description: "This key's errors only." }),
    limit: pageLimit(100, 10_000),
    cursor,
    format: z.enum(['json', 'csv']).default('json'),
  })
  .refine((q) => q.range === undefined || (q.from === undefined && q.to === undefined), 'give range, or from/to, not both')
  .superRefine(fromBeforeTo);

const event = z.object({
  // Milliseconds: the gateways' own batch format, compact at a million events a batch.
  // Within the range of a Date, so that every stored sample can be shown (toISOString).
  time: z.number().min(0).max(8.64e15).meta({ description: 'When the request was answered, in epoch milliseconds.' }),
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
  would_deny: z.string().max(64).nullable().default(null).meta({ description: 'The refusal a limit in shadow mode would have answered; null when none would have.' }),
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

const CSV_COLUMNS = ['occurred_at', 'request_id', 'key_id', 'api', 'method', 'route', 'status', 'error', 'reason', 'message'] as const;

/** One CSV field (RFC 4180); a leading = + - @ is neutralised so spreadsheets do not run it. */
function csvField(v: unknown): string {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The same request with `cursor` set to the next page's, as a path and query. */
function nextPage(url: URL, next: string): string {
  const params = new URLSearchParams(url.searchParams);
  params.set('cursor', next);
  return `${url.pathname}?${params}`;
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
    route('GET', '/v1/keys/{id}/usage', 'read', {
      operationId: 'getKeyUsage',
      tag: 'Usage',
      summary: 'A key’s traffic',
      description: 'Totals, success rate, latency, a time series, the busiest endpoints, status codes, countries and rate-limit events of one key, over `range` or `from`/`to` (default: the last 24 hours).',
      query: rangeQuery,
      responses: { 200: { description: 'The key’s traffic.', schema: 'KeyUsageSummary' } },
    }, async (c, [id]) => {
      const q = c.parse(rangeQuery, Object.fromEntries(c.url.searchParams));
      const rec = await keys.get(id!, c.actor);
      const plan = rec.rate_limit ?? config.plans[rec.plan ?? 'default'] ?? null;
      const perMinute = plan === null ? null : Math.round((plan.limit / plan.window_seconds) * 60 * 1000) / 1000;
      sendJson(c.res, 200, { key_id: rec.id, ...(await summary(rec.id, q, false, perMinute)) }, c.requestId);
    }),
    route('GET', '/v1/usage', 'read', {
      operationId: 'getUsage',
      tag: 'Usage',
      summary: 'All traffic',
      description: 'What getKeyUsage gives for one key, over every key (a tenant’s token: its tenant’s), with the busiest keys.',
      query: rangeQuery,
      responses: { 200: { description: 'The traffic.', schema: 'UsageSummary' } },
    }, async (c) => {
      const q = c.parse(rangeQuery, Object.fromEntries(c.url.searchParams));
      const scope = c.actor.tenant === null ? '*' : `t:${c.actor.tenant}`;
      sendJson(c.res, 200, await summary(scope, q, true), c.requestId);
    }),
    route('GET', '/v1/usage/errors', 'read', {
      operationId: 'listUsageErrors',
      tag: 'Usage',
      summary: 'Recent errors',
      description:
        'Requests answered with an error, newest first, a page at a time. `format=csv` exports a page as CSV with a header row; ' +
        'its next page is linked in a `Link: <…>; rel="next"` header.',
      query: errorsQuery,
      responses: {
        200: {
          description: 'A page of errors.',
          schema: 'ErrorSampleList',
          media: { 'text/csv': { type: 'string', description: `Columns: ${CSV_COLUMNS.join(', ')}.` } },
        },
      },
    }, async (c) => {
      const q = c.parse(errorsQuery, Object.fromEntries(c.url.searchParams));
      if (q.key_id !== undefined) await keys.get(q.key_id, c.actor); // 404 for another tenant's key
      const to = q.to ?? clock.now();
      const from = q.from ?? (q.range !== undefined ? to - SPANS[q.range] : undefined);
      // One more than the page, to know whether another page follows.
      const found = await store.recentErrors({ key_id: q.key_id, tenant: c.actor.tenant ?? undefined, from, to: q.to, limit: q.limit + 1, cursor: q.cursor });
      const samples = found.length > q.limit ? found.slice(0, q.limit) : found;
      const next_cursor = found.length > q.limit ? errorCursor(samples[samples.length - 1]!) : null;
      const rows = samples.map((e) => ({
        occurred_at: new Date(e.time).toISOString(),
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
      if (q.format === 'json') return sendJson(c.res, 200, { data: rows, next_cursor }, c.requestId);
      let csv = `${CSV_COLUMNS.join(',')}\r\n`;
      for (const r of rows) csv += `${CSV_COLUMNS.map((col) => csvField(r[col])).join(',')}\r\n`;
      c.res.writeHead(200, {
        'content-type': 'text/csv; charset=utf-8',
        'content-disposition': 'attachment; filename="keygate-errors.csv"',
        'content-length': Buffer.byteLength(csv),
        'cache-control': 'no-store',
        'x-request-id': c.requestId,
        // A CSV has no room for the cursor: the next page is linked instead (RFC 8288).
        ...(next_cursor === null ? {} : { link: `<${nextPage(c.url, next_cursor)}>; rel="next"` }),
      });
      c.res.end(csv);
    }),
    route('POST', '/v1/usage/events', 'ingest_usage', {
      operationId: 'ingestUsageEvents',
      tag: 'Usage',
      summary: 'Hand over usage events',
      description: 'A gateway’s batch of usage events (gateway role). The batch is stored before the answer, once per batch id: a batch sent again is not counted twice.',
      body: { schema: eventBatch, name: 'UsageEventBatch' },
      responses: { 200: { description: 'What was stored.', schema: 'UsageBatchResult' } },
    }, async (c) => {
      const batch = c.parse(eventBatch, await c.body(config.admin.max_usage_batch_bytes));
      const applied = await usage.ingest(`${c.actor.name}:${batch.id}`, batch.events as AggregatedEvent[]);
      sendJson(c.res, 200, { stored: applied ? batch.events.length : 0, duplicate: !applied }, c.requestId);
    }),
  ];
}
