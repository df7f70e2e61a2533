/**
 * Usage aggregates: per scope (everything, a tenant, a key), per minute and per day, additive
 * counters in flat field maps, so that a batch of requests becomes a handful of increments and
 * any store can add them (a Redis hash, a map in memory). Field names:
 *
 *   n ok c4 c5 rl          requests, successes (status < 400), 4xx, 5xx, rate-limited (429)
 *   ipd rev                refused: from outside the key's allowlist; with a revoked key
 *   lat up upn bi bo       latency sum (ms), upstream latency sum (ms) and count, bytes in, out
 *   s:<status>             requests per status code
 *   h:<bin>                latency histogram (see latencyBin)
 *   e:<n|err|lat>|<api>|<method>|<route>   per endpoint (route template, not the raw path)
 *   k:<key_id> ke:<key_id> requests and errors per key (tenant and overall scopes only)
 *   wd                     requests a limit in shadow mode would have refused (docs/quotas.md)
 *   kr: ki: kv:<key_id>    per key: rate-limited, ip-denied, revoked-key requests (overall minutes only)
 *   kw:<key_id>            per key: requests a shadow limit would have refused (overall minutes only)
 *   cc:<country>           requests per country, when the request carried one
 */
export type Fields = Record<string, number>;

export type Granularity = 'm' | 'd';
export const MINUTE = 60_000;
export const DAY = 86_400_000;

export interface BucketDelta {
  /** `*` (everything), `t:<tenant>`, or a key id. */
  scope: string;
  gran: Granularity;
  /** Start of the minute or UTC day, ms. */
  start: number;
  fields: Fields;
}

/** The parts of a usage event that aggregates and error samples read. */
export interface AggregatedEvent {
  time: number;
  request_id: string;
  key_id: string | null;
  /** The key's tenant, for per-tenant usage. */
  tenant: string | null;
  api: string | null;
  method: string;
  /** The route rule's path template, not the raw path (bounded cardinality); null: no rule. */
  route: string | null;
  status: number;
  /** `ok`, the error code answered, or `client_closed_request`. */
  outcome: string;
  reason: string | null;
  latency_ms: number;
  upstream_ms: number | null;
  /** Request body bytes (Content-Length, or as read), response bytes written (headers included). */
  bytes_in: number;
  bytes_out: number;
  /** From `usage.country_header`, when the request carried a two-letter code. */
  country: string | null;
  /**
   * The refusal a limit in `mode: shadow` would have answered (`rate_limit_exceeded`,
   * `quota_exceeded`) for a request it let through; null or absent when none would have.
   */
  would_deny?: string | null;
}

/** One request answered with an error, as `GET /v1/usage/errors` lists it. */
export type ErrorSample = Pick<AggregatedEvent, 'time' | 'request_id' | 'key_id' | 'tenant' | 'api' | 'method' | 'route' | 'status' | 'reason'> & {
  /** The error code answered (the event's outcome). */
  error: string;
};

/** Histogram bins a quarter-octave wide from 0.1 ms: bin i holds latencies up to 0.1 × 2^(i/4) ms. */
const BINS = 80;
export function latencyBin(ms: number): number {
  if (!(ms > 0.1)) return 0;
  return Math.min(BINS, Math.ceil(4 * Math.log2(ms / 0.1)));
}
export function binUpper(bin: number): number {
  return 0.1 * 2 ** (bin / 4);
}

export function bucketStart(time: number, gran: Granularity): number {
  const size = gran === 'm' ? MINUTE : DAY;
  return time - (time % size);
}

function add(fields: Fields, name: string, by: number): void {
  fields[name] = (fields[name] ?? 0) + by;
}

/** The endpoint of a request: its API, method and route template. */
export function endpointOf(e: { api: string | null; method: string; route: string | null }): string {
  return `${e.api ?? '-'}|${e.method}|${e.route ?? '*'}`;
}

/**
 * The requests of one key (or of no key) in one minute, as the fields that every scope and
 * granularity they count in adds alike: a request is folded once (`foldRow`), not once per
 * scope and granularity, and `expandRow` spreads the sums over the buckets and adds the
 * per-key fields (`k:`, `ke:`) of the overall and tenant scopes. The buckets come out as if
 * each request had been added to each of them.
 */
export interface UsageRow {
  key_id: string | null;
  tenant: string | null;
  /** Start of the minute. */
  start: number;
  fields: Fields;
}

/** Field names built once and reused: the same string each time also hashes once. */
const MAX_CACHED_NAMES = 10_000;
const BIN_NAMES = Array.from({ length: BINS + 1 }, (_, i) => `h:${i}`);
const statusNames = new Map<number, string>();
const countryNames = new Map<string, string>();
interface EndpointNames {
  n: string;
  lat: string;
  err: string;
}
/** api → method → route (nulls as '-' and '*') → names; events from the HTTP ingest can name anything, hence the bound. */
const endpointNames = new Map<string, Map<string, Map<string, EndpointNames>>>();
let endpointsCached = 0;

function cached<K>(cache: Map<K, string>, key: K, make: (key: K) => string): string {
  let name = cache.get(key);
  if (name === undefined) {
    name = make(key);
    if (cache.size < MAX_CACHED_NAMES) cache.set(key, name);
  }
  return name;
}

function namesOf(e: { api: string | null; method: string; route: string | null }): EndpointNames {
  const api = e.api ?? '-';
  const route = e.route ?? '*';
  let methods = endpointNames.get(api);
  let routes = methods?.get(e.method);
  let names = routes?.get(route);
  if (names !== undefined) return names;
  const endpoint = endpointOf(e);
  names = { n: `e:n|${endpoint}`, lat: `e:lat|${endpoint}`, err: `e:err|${endpoint}` };
  if (endpointsCached < MAX_CACHED_NAMES) {
    endpointsCached++;
    if (methods === undefined) endpointNames.set(api, (methods = new Map()));
    if (routes === undefined) methods.set(e.method, (routes = new Map()));
    routes.set(route, names);
  }
  return names;
}

/** Adds one request to a row's fields (see UsageRow). */
export function foldRow(f: Fields, e: AggregatedEvent): void {
  const error = e.status >= 400;
  add(f, 'n', 1);
  if (!error) add(f, 'ok', 1);
  else if (e.status < 500) add(f, 'c4', 1);
  else add(f, 'c5', 1);
  if (e.outcome === 'rate_limit_exceeded') add(f, 'rl', 1);
  else if (e.outcome === 'ip_not_allowed') add(f, 'ipd', 1);
  else if (e.outcome === 'invalid_token' && e.reason === 'revoked') add(f, 'rev', 1);
  if (e.would_deny != null) add(f, 'wd', 1);
  add(f, 'lat', e.latency_ms);
  if (e.upstream_ms !== null) {
    add(f, 'up', e.upstream_ms);
    add(f, 'upn', 1);
  }
  add(f, 'bi', e.bytes_in);
  add(f, 'bo', e.bytes_out);
  add(f, cached(statusNames, e.status, (s) => `s:${s}`), 1);
  add(f, BIN_NAMES[latencyBin(e.latency_ms)]!, 1);
  const names = namesOf(e);
  add(f, names.n, 1);
  add(f, names.lat, e.latency_ms);
  if (error) add(f, names.err, 1);
  if (e.country !== null) add(f, cached(countryNames, e.country, (c) => `cc:${c}`), 1);
}

/** Adds a row to the bucket deltas of every scope and granularity its requests count in. */
export function expandRow(deltas: Map<string, BucketDelta>, row: UsageRow): void {
  const scopes = ['*'];
  if (row.tenant !== null) scopes.push(`t:${row.tenant}`);
  if (row.key_id !== null) scopes.push(row.key_id);
  const n = row.fields['n'] ?? 0;
  const errors = n - (row.fields['ok'] ?? 0);
  for (const scope of scopes) {
    for (const gran of ['m', 'd'] as const) {
      const start = bucketStart(row.start, gran);
      const id = `${scope}\u0000${gran}\u0000${start}`;
      let d = deltas.get(id);
      if (d === undefined) deltas.set(id, (d = { scope, gran, start, fields: {} }));
      const f = d.fields;
      for (const name in row.fields) add(f, name, row.fields[name]!);
      if (row.key_id !== null && scope !== row.key_id) {
        add(f, `k:${row.key_id}`, n);
        if (errors > 0) add(f, `ke:${row.key_id}`, errors);
        // What the alerts watch per key (admin/alerts/watch.ts), in the overall minutes only.
        if (scope === '*' && gran === 'm') {
          const rl = row.fields['rl'];
          const ipd = row.fields['ipd'];
          const rev = row.fields['rev'];
          const wd = row.fields['wd'];
          if (rl !== undefined) add(f, `kr:${row.key_id}`, rl);
          if (wd !== undefined) add(f, `kw:${row.key_id}`, wd);
          if (ipd !== undefined) add(f, `ki:${row.key_id}`, ipd);
          if (rev !== undefined) add(f, `kv:${row.key_id}`, rev);
        }
      }
    }
  }
}

export function errorSample(e: AggregatedEvent): ErrorSample {
  return {
    time: e.time,
    request_id: e.request_id,
    key_id: e.key_id,
    tenant: e.tenant,
    api: e.api,
    method: e.method,
    route: e.route,
    status: e.status,
    error: e.outcome,
    reason: e.reason,
  };
}

export interface Bucket {
  start: number;
  fields: Fields;
}

export interface UsageSummary {
  range: { from: string; to: string; granularity: 'minute' | 'day' };
  totals: {
    requests: number;
    successes: number;
    errors: number;
    client_errors: number;
    server_errors: number;
    success_rate: number | null;
    avg_latency_ms: number | null;
    p50_latency_ms: number | null;
    p95_latency_ms: number | null;
    p99_latency_ms: number | null;
    avg_upstream_latency_ms: number | null;
    bytes_in: number;
    bytes_out: number;
  };
  series: { starts_at: string; requests: number; successes: number; errors: number }[];
  endpoints: { api: string | null; method: string; route: string | null; requests: number; errors: number; success_rate: number; avg_latency_ms: number }[];
  status_codes: Record<string, number>;
  errors_by_status: Record<string, number>;
  keys?: { key_id: string; requests: number; errors: number }[];
  countries: Record<string, number>;
  rate_limit: { exceeded: number; would_have_been_refused: number; peak_requests_per_minute: number; limit_per_minute?: number | null };
}

const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;

/** Latency at quantile q from histogram bins: the upper edge of the bin that holds it. */
export function quantile(hist: Map<number, number>, total: number, q: number): number | null {
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (const bin of [...hist.keys()].sort((a, b) => a - b)) {
    seen += hist.get(bin)!;
    if (seen >= rank) return round(binUpper(bin));
  }
  return null;
}

/**
 * One summary of the buckets of a range (already restricted to `from` ≤ start < `to`), with a
 * point for every bucket of the series, empty ones included. `minutes` are minute buckets of
 * the same range, for the peak requests per minute (day buckets cannot tell it).
 */
export function summarize(
  buckets: readonly Bucket[],
  range: { from: number; to: number; gran: Granularity },
  minutes: readonly Bucket[],
  options: { perKey: boolean; topEndpoints?: number; topKeys?: number },
): UsageSummary {
  const total: Fields = {};
  for (const b of buckets) for (const [name, v] of Object.entries(b.fields)) add(total, name, v);
  const get = (name: string) => total[name] ?? 0;
  const n = get('n');
  const hist = new Map<number, number>();
  const statuses: Record<string, number> = {};
  const errorsByStatus: Record<string, number> = {};
  const countries: Record<string, number> = {};
  const endpoints = new Map<string, { requests: number; errors: number; lat: number }>();
  const keys = new Map<string, { requests: number; errors: number }>();
  for (const [name, v] of Object.entries(total)) {
    if (name.startsWith('h:')) hist.set(Number(name.slice(2)), v);
    else if (name.startsWith('s:')) {
      statuses[name.slice(2)] = v;
      if (Number(name.slice(2)) >= 400) errorsByStatus[name.slice(2)] = v;
    } else if (name.startsWith('cc:')) countries[name.slice(3)] = v;
    else if (name.startsWith('e:')) {
      const bar = name.indexOf('|');
      const what = name.slice(2, bar);
      const endpoint = name.slice(bar + 1);
      let ep = endpoints.get(endpoint);
      if (ep === undefined) endpoints.set(endpoint, (ep = { requests: 0, errors: 0, lat: 0 }));
      if (what === 'n') ep.requests += v;
      else if (what === 'err') ep.errors += v;
      else if (what === 'lat') ep.lat += v;
    } else if (name.startsWith('k:') || name.startsWith('ke:')) {
      const id = name.slice(name.indexOf(':') + 1);
      let k = keys.get(id);
      if (k === undefined) keys.set(id, (k = { requests: 0, errors: 0 }));
      if (name.startsWith('k:')) k.requests += v;
      else k.errors += v;
    }
  }
  const size = range.gran === 'm' ? MINUTE : DAY;
  const byStart = new Map(buckets.map((b) => [b.start, b.fields]));
  const series: UsageSummary['series'] = [];
  for (let s = bucketStart(range.from, range.gran); s < range.to && series.length < 100_000; s += size) {
    const f = byStart.get(s) ?? {};
    const req = f['n'] ?? 0;
    const ok = f['ok'] ?? 0;
    series.push({ starts_at: new Date(s).toISOString(), requests: req, successes: ok, errors: req - ok });
  }
  const summary: UsageSummary = {
    range: { from: new Date(range.from).toISOString(), to: new Date(range.to).toISOString(), granularity: range.gran === 'm' ? 'minute' : 'day' },
    totals: {
      requests: n,
      successes: get('ok'),
      errors: n - get('ok'),
      client_errors: get('c4'),
      server_errors: get('c5'),
      success_rate: n === 0 ? null : round(get('ok') / n, 4),
      avg_latency_ms: n === 0 ? null : round(get('lat') / n),
      p50_latency_ms: quantile(hist, n, 0.5),
      p95_latency_ms: quantile(hist, n, 0.95),
      p99_latency_ms: quantile(hist, n, 0.99),
      avg_upstream_latency_ms: get('upn') === 0 ? null : round(get('up') / get('upn')),
      bytes_in: get('bi'),
      bytes_out: get('bo'),
    },
    series,
    endpoints: [...endpoints.entries()]
      .sort((a, b) => b[1].requests - a[1].requests || (a[0] < b[0] ? -1 : 1))
      .slice(0, options.topEndpoints ?? 20)
      .map(([endpoint, ep]) => {
        const [api, method, route] = splitEndpoint(endpoint);
        return {
          api,
          method,
          route,
          requests: ep.requests,
          errors: ep.errors,
          success_rate: ep.requests === 0 ? 0 : round((ep.requests - ep.errors) / ep.requests, 4),
          avg_latency_ms: ep.requests === 0 ? 0 : round(ep.lat / ep.requests),
        };
      }),
    status_codes: statuses,
    errors_by_status: errorsByStatus,
    countries,
    rate_limit: { exceeded: get('rl'), would_have_been_refused: get('wd'), peak_requests_per_minute: Math.max(0, ...minutes.map((m) => m.fields['n'] ?? 0)) },
  };
  if (options.perKey) {
    summary.keys = [...keys.entries()]
      .sort((a, b) => b[1].requests - a[1].requests || (a[0] < b[0] ? -1 : 1))
      .slice(0, options.topKeys ?? 50)
      .map(([key_id, k]) => ({ key_id, ...k }));
  }
  return summary;
}

function splitEndpoint(endpoint: string): [string | null, string, string | null] {
  const a = endpoint.indexOf('|');
  const b = endpoint.indexOf('|', a + 1);
  const api = endpoint.slice(0, a);
  const route = endpoint.slice(b + 1);
  return [api === '-' ? null : api, endpoint.slice(a + 1, b), route === '*' ? null : route];
}
