import t from 'tap';
import { request } from 'undici';
import { generateKey } from '../core/key-format.js';
import { bearer, call, startStack, TENANT_A_TOKEN } from './lib/stack.js';

// Usage events, aggregates and the usage API through real sockets: requests of known
// outcomes, then the events, the key counters and the API's figures, compared field by field.

const stack = await startStack({ overrides: () => ({ usage: { country_header: 'cf-ipcountry', flush_interval_ms: 60_000 } }) });
t.teardown(() => stack.close());
const prod = stack.gw.production!;

const { key, id } = await stack.createKey({ scopes: ['read_campaigns'], rate_limit: { limit: 3, window_seconds: 60 } });
const app = await stack.adminCall('POST', '/v1/applications', { name: 'tenant app' }, TENANT_A_TOKEN);
const tenantKey = await stack.createKey({ application: app.body.id }, TENANT_A_TOKEN);
const other = await stack.createKey();

// Known outcomes, each once or as counted here.
const plan: { path: string; headers?: Record<string, string>; method?: string; body?: string; status: number }[] = [
  { path: '/v1/emails/list', headers: { ...bearer(key), 'cf-ipcountry': 'de' }, status: 200 },
  { path: '/v1/emails/list', headers: { ...bearer(key), 'cf-ipcountry': 'DE' }, status: 200 },
  { path: '/v1/emails/list', headers: { ...bearer(key), 'cf-ipcountry': 'FRA' }, method: 'POST', body: 'x'.repeat(1234), status: 200 },
  { path: '/v1/emails/list', headers: bearer(key), status: 429 },
  { path: '/v1/emails/send', headers: bearer(other.key), method: 'POST', status: 403 },
  { path: '/v1/dead/x', headers: bearer(other.key), status: 502 },
  { path: '/v1/emails/list', headers: bearer(generateKey('gw', 'live')), status: 401 },
  { path: '/v1/emails/list', status: 401 },
  { path: '/nowhere', headers: bearer(other.key), status: 404 },
  { path: '/v1/contacts/1', headers: bearer(tenantKey.key), status: 200 },
];
const before = stack.events.length;
for (const p of plan) {
  const res = await call(prod + p.path, { method: p.method ?? 'GET', headers: p.headers ?? {}, ...(p.body ? { body: p.body } : {}) });
  if (res.status !== p.status) throw new Error(`${p.path}: expected ${p.status}, got ${res.status} ${res.text}`);
}
await new Promise((r) => setTimeout(r, 50)); // the last response's close event
const events = stack.events.slice(before);
await stack.admin.usage.flush();

t.test('one event per request, denials included, with every field', async (t) => {
  t.equal(events.length, plan.length, `${plan.length} requests, ${plan.length} events`);
  t.same(events.map((e) => e.status), plan.map((p) => p.status), 'in order, with their statuses');
  const first = events[0]!;
  t.equal(first.key_id, id);
  t.equal(first.api, 'emails');
  t.equal(first.route, null, 'no rule matched GET /v1/emails/list: no route template');
  t.equal(first.country, 'DE', 'country from the configured header, upper-cased');
  t.equal(events[2]!.country, null, 'a value that is not a two-letter code is not a country');
  t.equal(events[2]!.bytes_in, 1234, 'bytes in: the request body');
  t.ok(first.bytes_out > 0, 'bytes out: what was written');
  t.equal(events[4]!.route, '/v1/emails/send', 'the route template, not the raw path');
  t.equal(events[4]!.outcome, 'insufficient_permissions');
  t.equal(events[9]!.tenant, 'a', "the key's tenant");
  for (const e of events) {
    t.ok(e.latency_ms >= 0 && typeof e.request_id === 'string' && e.request_id.length > 0, `${e.status}: latency and request id`);
  }
});

t.test('key records count exactly the events of their key', async (t) => {
  for (const k of [id, other.id, tenantKey.id]) {
    const mine = events.filter((e) => e.key_id === k);
    const rec = (await stack.adminCall('GET', `/v1/keys/${k}`)).body;
    t.same(rec.usage, { total_requests: mine.length, error_count: mine.filter((e) => e.status >= 400).length }, `${k}: usage`);
    t.equal(rec.last_used_at, new Date(Math.max(...mine.map((e) => e.time))).toISOString(), `${k}: last used`);
  }
});

t.test('GET /v1/usage: totals, statuses, endpoints, keys and countries match the events', async (t) => {
  const res = await stack.adminCall('GET', '/v1/usage?range=1h');
  t.equal(res.status, 200);
  const u = res.body;
  const n = events.length;
  const ok = events.filter((e) => e.status < 400).length;
  t.same(u.range.granularity, 'minute');
  t.equal(u.totals.requests, n);
  t.equal(u.totals.successes, ok);
  t.equal(u.totals.errors, n - ok);
  t.equal(u.totals.client_errors, events.filter((e) => e.status >= 400 && e.status < 500).length);
  t.equal(u.totals.server_errors, events.filter((e) => e.status >= 500).length);
  t.equal(u.totals.success_rate, Math.round((ok / n) * 10_000) / 10_000);
  const sum = (f: (e: (typeof events)[number]) => number) => events.reduce((a, e) => a + f(e), 0);
  t.equal(u.totals.avg_latency_ms, Math.round((sum((e) => e.latency_ms) / n) * 1000) / 1000, 'average latency');
  t.equal(u.totals.bytes_in, sum((e) => e.bytes_in));
  t.equal(u.totals.bytes_out, sum((e) => e.bytes_out));
  t.ok(u.totals.p50_latency_ms <= u.totals.p95_latency_ms && u.totals.p95_latency_ms <= u.totals.p99_latency_ms, 'percentiles in order');
  const maxLatency = Math.max(...events.map((e) => e.latency_ms));
  t.ok(u.totals.p99_latency_ms >= maxLatency && u.totals.p99_latency_ms <= maxLatency * 1.2 + 0.1, 'p99 within a histogram bin of the slowest');
  const statuses: Record<string, number> = {};
  for (const e of events) statuses[e.status] = (statuses[e.status] ?? 0) + 1;
  t.same(u.status_codes, statuses, 'status breakdown');
  t.same(u.errors_by_status, Object.fromEntries(Object.entries(statuses).filter(([s]) => Number(s) >= 400)));
  t.same(u.countries, { DE: 2 });
  t.equal(u.rate_limit.exceeded, 1);
  t.equal(u.rate_limit.peak_requests_per_minute, n, 'all in one minute of the manual clock');
  const list = u.endpoints.find((e: { route: string | null; method: string }) => e.route === null && e.method === 'GET');
  const listEvents = events.filter((e) => e.api === 'emails' && e.method === 'GET' && e.route === null);
  t.equal(list.requests, listEvents.length, 'endpoint: requests');
  t.equal(list.errors, listEvents.filter((e) => e.status >= 400).length, 'endpoint: errors');
  t.same(
    u.keys.find((k: { key_id: string }) => k.key_id === id),
    { key_id: id, requests: 4, errors: 1 },
    'usage by key',
  );
  t.equal(u.series.length, 60, 'one point a minute for the hour');
  t.equal(u.series.reduce((a: number, p: { requests: number }) => a + p.requests, 0), n, 'the series adds up to the total');
});

t.test("GET /v1/keys/{id}/usage: the key's own figures and its limit", async (t) => {
  const u = (await stack.adminCall('GET', `/v1/keys/${id}/usage?range=24h`)).body;
  t.equal(u.key_id, id);
  t.equal(u.totals.requests, 4);
  t.equal(u.totals.errors, 1);
  t.same(u.status_codes, { 200: 3, 429: 1 });
  t.same(u.rate_limit, { exceeded: 1, would_have_been_refused: 0, peak_requests_per_minute: 4, limit_per_minute: 3 });
  t.equal(u.keys, undefined, 'no usage by key for one key');
  const days = (await stack.adminCall('GET', `/v1/keys/${id}/usage?range=30d`)).body;
  t.equal(days.range.granularity, 'day');
  t.equal(days.totals.requests, 4, 'the day buckets hold the same');
  t.equal(days.rate_limit.peak_requests_per_minute, 4, 'peak per minute from the minute buckets');
  const empty = (await stack.adminCall('GET', `/v1/keys/${id}/usage?from=2020-01-01T00:00:00Z&to=2020-01-01T01:00:00Z`)).body;
  t.equal(empty.totals.requests, 0, 'a range without traffic');
  t.equal(empty.totals.success_rate, null);
  const bad = await stack.adminCall('GET', `/v1/keys/${id}/usage?range=2h`);
  t.equal(bad.status, 400);
  t.equal(bad.body.error, 'validation_failed');
  t.equal((await stack.adminCall('GET', `/v1/keys/${id}/usage?range=1h&from=2026-01-01T00:00:00Z`)).status, 400, 'range and from/to together');
  t.equal((await stack.adminCall('GET', '/v1/keys/key_nope/usage')).status, 404);
});

t.test('a tenant sees its own traffic only', async (t) => {
  const u = (await stack.adminCall('GET', '/v1/usage?range=1h', undefined, TENANT_A_TOKEN)).body;
  t.equal(u.totals.requests, 1);
  t.same(u.keys, [{ key_id: tenantKey.id, requests: 1, errors: 0 }]);
  t.equal((await stack.adminCall('GET', `/v1/keys/${id}/usage`, undefined, TENANT_A_TOKEN)).status, 404, "another tenant's key");
  const errors = (await stack.adminCall('GET', '/v1/usage/errors', undefined, TENANT_A_TOKEN)).body;
  t.same(errors.data, [], 'and none of the others’ errors');
});

t.test('GET /v1/usage/errors: newest first, and CSV that parses', async (t) => {
  const failed = events.filter((e) => e.status >= 400).reverse();
  const res = await stack.adminCall('GET', '/v1/usage/errors?range=1h');
  t.same(
    res.body.data.map((e: { request_id: string; status: number }) => [e.request_id, e.status]),
    failed.map((e) => [e.request_id, e.status]),
  );
  const limited = res.body.data.find((e: { status: number }) => e.status === 429);
  t.match(limited, { key_id: id, api: 'emails', method: 'GET', error: 'rate_limit_exceeded', message: /rate limit is used up/ });
  const unknown = res.body.data.find((e: { reason: string | null }) => e.reason === 'not_found');
  t.match(unknown.message, /^This API key does not exist;/, 'the message its reason renders');
  const byKey = (await stack.adminCall('GET', `/v1/usage/errors?key_id=${id}`)).body.data;
  t.equal(byKey.length, 1);

  const csv = await request(`${stack.adminUrl}/v1/usage/errors?format=csv&range=1h`, { headers: { authorization: `Bearer ${'test-admin-token-0123456789'}` } });
  t.equal(csv.statusCode, 200);
  t.match(String(csv.headers['content-type']), /^text\/csv/);
  const rows = parseCsv(await csv.body.text());
  t.same(rows[0], ['occurred_at', 'request_id', 'key_id', 'api', 'method', 'route', 'status', 'error', 'reason', 'message'], 'a header row');
  t.equal(rows.length - 1, failed.length, 'one row per error');
  t.same(
    rows.slice(1).map((r) => [r[1], Number(r[6])]),
    failed.map((e) => [e.request_id, e.status]),
  );
  t.ok(rows.every((r) => r.length === 10), 'every row has every column');
});

/** RFC 4180: quoted fields may hold commas, quotes (doubled) and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows;
}
