import { useEffect, useState } from 'preact/hooks';
import { api, serverNow, type Page } from './api';
import { ErrorNote, fmt, Link, useLoad, When } from './ui';

export interface UsageSummary {
  range: { from: string; to: string; granularity: 'minute' | 'day' };
  totals: {
    requests: number;
    successes: number;
    errors: number;
    success_rate: number | null;
    avg_latency_ms: number | null;
    p95_latency_ms: number | null;
  };
  series: { starts_at: string; requests: number; successes: number; errors: number }[];
  endpoints: { api: string | null; method: string; route: string | null; requests: number; errors: number; success_rate: number; avg_latency_ms: number }[];
  status_codes: Record<string, number>;
  errors_by_status: Record<string, number>;
  countries: Record<string, number>;
  rate_limit: { exceeded: number; peak_requests_per_minute: number; limit_per_minute?: number | null };
  keys?: { key_id: string; requests: number; errors: number }[];
}

const RANGES = [
  ['1h', 'Last hour'],
  ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['custom', 'Custom'],
] as const;

interface ErrorSample {
  occurred_at: string;
  request_id: string;
  key_id: string | null;
  api: string | null;
  method: string;
  route: string | null;
  status: number;
  error: string;
  reason: string | null;
  message: string;
}

export const STATUS_TEXT: Record<string, string> = {
  '200': 'OK',
  '201': 'Created',
  '204': 'No Content',
  '304': 'Not Modified',
  '400': 'Bad Request',
  '401': 'Unauthorized',
  '403': 'Forbidden',
  '404': 'Not Found',
  '405': 'Method Not Allowed',
  '408': 'Request Timeout',
  '413': 'Content Too Large',
  '429': 'Too Many Requests',
  '499': 'Client Closed Request',
  '500': 'Internal Server Error',
  '502': 'Bad Gateway',
  '503': 'Service Unavailable',
  '504': 'Gateway Timeout',
};

/** A datetime-local value, read as UTC (the dashboard shows times in UTC), as RFC 3339. */
export function utc(local: string): string | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(local)) return null;
  const t = Date.parse(`${local}:00Z`);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
}
export const localValue = (ms: number) => new Date(ms).toISOString().slice(0, 16);

/** How often the page asks again while it is open. */
const REFRESH_MS = 10_000;

export function UsagePage() {
  const [range, setRange] = useState<string>('24h');
  const [from, setFrom] = useState(() => localValue(serverNow() - 86_400_000));
  const [to, setTo] = useState(() => localValue(serverNow()));
  const custom = range === 'custom';
  const fromIso = utc(from);
  const toIso = utc(to);
  const badRange = custom && (fromIso === null || toIso === null || fromIso >= toIso);
  const query = custom ? (badRange ? null : `from=${encodeURIComponent(fromIso!)}&to=${encodeURIComponent(toIso!)}`) : `range=${range}`;
  const usage = useLoad(() => (query === null ? Promise.resolve(null) : api.get<UsageSummary>(`/v1/usage?${query}`)), [query]);
  const errors = useLoad(() => (query === null ? Promise.resolve(null) : api.get<Page<ErrorSample>>(`/v1/usage/errors?${query}&limit=20`)), [query]);
  useEffect(() => {
    if (custom) return;
    const timer = setInterval(() => {
      usage.reload();
      errors.reload();
    }, REFRESH_MS);
    return () => clearInterval(timer);
  }, [range]);
  const u = usage.data;
  return (
    <section aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title">Usage</h1>
        <div class="range">
          <label>
            Time range
            <select value={range} onChange={(e) => setRange(e.currentTarget.value)}>
              {RANGES.map(([v, label]) => (
                <option key={v} value={v}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          {custom && (
            <>
              <label>
                From (UTC)
                <input type="datetime-local" value={from} aria-invalid={badRange} onChange={(e) => setFrom(e.currentTarget.value)} />
              </label>
              <label>
                To (UTC)
                <input type="datetime-local" value={to} aria-invalid={badRange} onChange={(e) => setTo(e.currentTarget.value)} />
              </label>
            </>
          )}
        </div>
      </div>
      {badRange && <p class="field-error">The range must start before it ends.</p>}
      <ErrorNote error={usage.error ?? errors.error} />
      {u && (
        <>
          <dl class="cards">
            <Card label="Total requests" value={fmt.format(u.totals.requests)} testid="total-requests" />
            <Card label="Success rate" value={u.totals.success_rate === null ? '—' : `${(u.totals.success_rate * 100).toFixed(1)}%`} />
            <Card label="Average latency" value={u.totals.avg_latency_ms === null ? '—' : `${Math.round(u.totals.avg_latency_ms)} ms`} />
            <Card label="p95 latency" value={u.totals.p95_latency_ms === null ? '—' : `${Math.round(u.totals.p95_latency_ms)} ms`} />
            <Card label="Rate limit exceeded" value={`${fmt.format(u.rate_limit.exceeded)} times`} />
          </dl>
          <div class="card">
            <h2>Requests</h2>
            <VolumeChart series={u.series} />
          </div>
          <div class="grid">
            <div class="card">
              <h2>Top endpoints</h2>
              <EndpointTable endpoints={u.endpoints} />
            </div>
            <div class="card">
              <h2>Busiest keys</h2>
              {(u.keys ?? []).length === 0 ? (
                <p class="empty">No requests in this range.</p>
              ) : (
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Key</th>
                      <th scope="col" class="num">
                        Requests
                      </th>
                      <th scope="col" class="num">
                        Errors
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {u.keys!.map((k) => (
                      <tr key={k.key_id}>
                        <td>
                          <Link href={`/dashboard/keys/${encodeURIComponent(k.key_id)}`}>{k.key_id}</Link>
                        </td>
                        <td class="num">{fmt.format(k.requests)}</td>
                        <td class="num">{fmt.format(k.errors)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </div>
          </div>
          <div class="grid">
            <div class="card">
              <h2>Errors by status</h2>
              <ErrorBreakdown byStatus={u.errors_by_status} />
            </div>
            <RateLimitUse keys={u.keys ?? []} query={query!} />
          </div>
          <div class="card">
            <div class="page-head">
              <h2>Recent errors</h2>
              <a class="button secondary" href={`/v1/usage/errors?${query}&format=csv&limit=10000`} download="keygate-errors.csv">
                Export CSV
              </a>
            </div>
            <RecentErrors page={errors.data} />
          </div>
        </>
      )}
    </section>
  );
}

/** The busiest endpoints with their success rate and average latency. */
export function EndpointTable({ endpoints }: { endpoints: UsageSummary['endpoints'] }) {
  if (endpoints.length === 0) return <p class="empty">No requests in this range.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Endpoint</th>
          <th scope="col" class="num">
            Requests
          </th>
          <th scope="col" class="num">
            Success
          </th>
          <th scope="col" class="num">
            Latency
          </th>
        </tr>
      </thead>
      <tbody>
        {endpoints.map((e) => (
          <tr key={`${e.api}${e.method}${e.route}`}>
            <td>
              <code>
                {e.method} {e.route ?? '(unlisted)'}
              </code>
            </td>
            <td class="num">{fmt.format(e.requests)}</td>
            <td class="num">{(e.success_rate * 100).toFixed(1)}%</td>
            <td class="num">{Math.round(e.avg_latency_ms)} ms</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function ErrorBreakdown({ byStatus }: { byStatus: Record<string, number> }) {
  const rows = Object.entries(byStatus).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const total = rows.reduce((n, [, v]) => n + v, 0);
  if (total === 0) return <p class="empty">No errors in this range.</p>;
  return (
    <table data-testid="errors-by-status">
      <thead>
        <tr>
          <th scope="col">Status</th>
          <th scope="col" class="num">
            Requests
          </th>
          <th scope="col" class="num">
            Share of errors
          </th>
        </tr>
      </thead>
      <tbody>
        {rows.map(([status, n]) => (
          <tr key={status}>
            <td>
              <code>{status}</code> {STATUS_TEXT[status] ?? ''}
            </td>
            <td class="num">{fmt.format(n)}</td>
            <td class="num">{((n / total) * 100).toFixed(1)}%</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RecentErrors({ page }: { page: Page<ErrorSample> | null }) {
  if (page === null) return null;
  if (page.data.length === 0) return <p class="empty">No errors in this range.</p>;
  return (
    <div class="table-wrap">
      <table data-testid="recent-errors">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Status</th>
            <th scope="col">Request</th>
            <th scope="col">Key</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {page.data.map((e) => (
            <tr key={e.request_id}>
              <td>
                <When at={e.occurred_at} />
              </td>
              <td>
                <code>{e.status}</code>
              </td>
              <td>
                <code>
                  {e.method} {e.route ?? '(unlisted)'}
                </code>
                <div class="muted small">{e.request_id}</div>
              </td>
              <td>{e.key_id ? <Link href={`/dashboard/keys/${encodeURIComponent(e.key_id)}`}>{e.key_id}</Link> : <span class="muted">none</span>}</td>
              <td>
                <code>{e.error}</code>
                {e.reason ? <code> ({e.reason})</code> : null}
                <div class="small">{e.message}</div>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/**
 * One key's requests per minute over the range as a share of its limit per minute, with lines at
 * 80% and 95%, and how often it was refused (429). Per key: each key has its own limit.
 */
function RateLimitUse({ keys, query }: { keys: { key_id: string }[]; query: string }) {
  const [chosen, setChosen] = useState<string | null>(null);
  const id = chosen ?? keys[0]?.key_id ?? null;
  const usage = useLoad(() => (id === null ? Promise.resolve(null) : api.get<UsageSummary>(`/v1/keys/${encodeURIComponent(id)}/usage?${query}`)), [id, query]);
  const u = usage.data;
  return (
    <div class="card">
      <div class="page-head">
        <h2>Rate-limit use</h2>
        {keys.length > 0 && (
          <label class="inline-select">
            Key
            <select value={id ?? ''} onChange={(e) => setChosen(e.currentTarget.value)}>
              {keys.map((k) => (
                <option key={k.key_id} value={k.key_id}>
                  {k.key_id}
                </option>
              ))}
            </select>
          </label>
        )}
      </div>
      <ErrorNote error={usage.error} />
      {id === null && <p class="empty">No key made requests in this range.</p>}
      {u && (
        <>
          <p data-testid="rate-limit-exceeded">
            Limit exceeded <strong>{fmt.format(u.rate_limit.exceeded)}</strong> {u.rate_limit.exceeded === 1 ? 'time' : 'times'}
            {u.rate_limit.limit_per_minute ? <span class="muted"> · limit {fmt.format(u.rate_limit.limit_per_minute)} per minute</span> : null}
          </p>
          {u.rate_limit.limit_per_minute ? <UseChart series={u.series} perMinute={u.rate_limit.limit_per_minute} minutes={u.range.granularity === 'minute' ? 1 : 1440} /> : <p class="muted">This key has no rate limit.</p>}
        </>
      )}
    </div>
  );
}

/** Use of the limit per bucket, as bars, with the 80% and 95% lines. */
function UseChart({ series: raw, perMinute, minutes }: { series: UsageSummary['series']; perMinute: number; minutes: number }) {
  // At most 60 bars; a bar of several buckets shows the busiest of them, as peaks are what a limit meets.
  const per = Math.max(1, Math.ceil(raw.length / 60));
  const series: UsageSummary['series'] = [];
  const shares: number[] = [];
  for (let i = 0; i < raw.length; i += per) {
    const group = raw.slice(i, i + per);
    series.push(group[0]!);
    shares.push(Math.max(...group.map((s) => s.requests)) / (perMinute * minutes));
  }
  const W = 800;
  const H = 160;
  const top = Math.max(1, ...shares);
  const y = (share: number) => H - (share / top) * H;
  const bar = W / Math.max(1, series.length);
  const peak = Math.max(0, ...shares);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H + 20}`} role="img" aria-label={`Rate-limit use: peak ${Math.round(peak * 100)}% of the limit`}>
        {shares.map((share, i) => (
          <rect key={series[i]!.starts_at} x={i * bar + 1} y={y(share)} width={Math.max(1, bar - 2)} height={H - y(share)} class={share >= 0.95 ? 'err' : share >= 0.8 ? 'warm' : 'ok'}>
            <title>{`${series[i]!.starts_at.slice(0, 16).replace('T', ' ')} UTC: ${Math.round(share * 100)}% of the limit`}</title>
          </rect>
        ))}
        <line x1="0" y1={H} x2={W} y2={H} class="axis" />
        <line x1="0" y1={y(0.8)} x2={W} y2={y(0.8)} class="line80" />
        <line x1="0" y1={y(0.95)} x2={W} y2={y(0.95)} class="line95" />
        <text x={W - 4} y={y(0.8) + 14} class="tick" text-anchor="end">
          80%
        </text>
        <text x={W - 4} y={y(0.95) - 4} class="tick" text-anchor="end">
          95%
        </text>
      </svg>
      <figcaption>
        Requests per {minutes === 1 ? 'minute' : 'day'} as a share of the key's limit{per > 1 ? `, the busiest of every ${per}` : ''}; peak {Math.round(peak * 100)}%.
      </figcaption>
    </figure>
  );
}

function Card({ label, value, testid }: { label: string; value: string; testid?: string }) {
  return (
    <div class="card stat">
      <dt>{label}</dt>
      <dd data-testid={testid}>{value}</dd>
    </div>
  );
}

/** Requests per bucket as stacked bars (successes, errors), drawn as SVG: no chart library needed for this. */
export function VolumeChart({ series: raw, per }: { series: UsageSummary['series']; per?: 'hour' | 'day' }) {
  const series = bins(raw, 60);
  const W = 800;
  const H = 200;
  const max = Math.max(1, ...series.map((s) => s.requests));
  const bar = W / Math.max(1, series.length);
  const total = series.reduce((n, s) => n + s.requests, 0);
  const errors = series.reduce((n, s) => n + s.errors, 0);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H + 20}`} role="img" aria-label={`Request volume${per ? ` per ${per}` : ''}: ${fmt.format(total)} requests, ${fmt.format(errors)} errors, peak ${fmt.format(max)} per bucket`}>
        <line x1="0" y1={H} x2={W} y2={H} class="axis" />
        {series.map((s, i) => {
          const hOk = (s.successes / max) * H;
          const hErr = (s.errors / max) * H;
          return (
            <g key={s.starts_at}>
              <title>{`${new Date(s.starts_at).toISOString().slice(0, 16).replace('T', ' ')} UTC: ${s.requests} requests, ${s.errors} errors`}</title>
              <rect x={i * bar + 1} y={H - hOk} width={Math.max(1, bar - 2)} height={hOk} class="ok" />
              <rect x={i * bar + 1} y={H - hOk - hErr} width={Math.max(1, bar - 2)} height={hErr} class="err" />
            </g>
          );
        })}
        <text x="0" y={H + 16} class="tick">
          {series[0] ? new Date(series[0].starts_at).toISOString().slice(5, 16).replace('T', ' ') : ''}
        </text>
        <text x={W} y={H + 16} class="tick" text-anchor="end">
          {series.length ? new Date(series[series.length - 1]!.starts_at).toISOString().slice(5, 16).replace('T', ' ') : ''}
        </text>
        <text x="4" y="14" class="tick">
          {fmt.format(max)}
        </text>
      </svg>
      <figcaption>
        <span class="legend ok" /> successes <span class="legend err" /> errors
      </figcaption>
    </figure>
  );
}

/** At most `n` bars: consecutive buckets summed, so that 24 hours of minutes stay readable. */
function bins(series: UsageSummary['series'], n: number): UsageSummary['series'] {
  if (series.length <= n) return series;
  const per = Math.ceil(series.length / n);
  const out: UsageSummary['series'] = [];
  for (let i = 0; i < series.length; i += per) {
    const group = series.slice(i, i + per);
    out.push({
      starts_at: group[0]!.starts_at,
      requests: group.reduce((a, s) => a + s.requests, 0),
      successes: group.reduce((a, s) => a + s.successes, 0),
      errors: group.reduce((a, s) => a + s.errors, 0),
    });
  }
  return out;
}

/** Minute buckets summed by the hour (UTC), so that a day reads as 24 or 25 bars. */
export function perHour(series: UsageSummary['series']): UsageSummary['series'] {
  const out: UsageSummary['series'] = [];
  for (const s of series) {
    const hour = new Date(Math.floor(Date.parse(s.starts_at) / 3_600_000) * 3_600_000).toISOString();
    const last = out[out.length - 1];
    if (last && last.starts_at === hour) {
      last.requests += s.requests;
      last.successes += s.successes;
      last.errors += s.errors;
    } else out.push({ ...s, starts_at: hour });
  }
  return out;
}

/**
 * Errors over requests per bucket as a line, 0 to 100%; buckets without requests leave a gap
 * rather than drawing a 0% that nothing measured.
 */
export function ErrorRateChart({ series: raw, per }: { series: UsageSummary['series']; per: 'hour' | 'day' }) {
  const series = bins(raw, 60);
  const W = 800;
  const H = 200;
  const rates = series.map((s) => (s.requests > 0 ? s.errors / s.requests : null));
  // The scale ends at the first of 5%, 10%, 25%, 50%, 100% above the peak, so that a trend of small rates shows.
  const top = [0.05, 0.1, 0.25, 0.5, 1].find((t) => t >= Math.max(0, ...rates.map((r) => r ?? 0))) ?? 1;
  // At the middle of the bar the volume chart draws for the same bucket.
  const x = (i: number) => ((i + 0.5) * W) / Math.max(1, series.length);
  const y = (rate: number) => H - (rate / top) * H;
  // Runs of measured buckets, each one polyline.
  const runs: [number, number][][] = [];
  rates.forEach((r, i) => {
    if (r === null) return;
    const prev = rates[i - 1];
    if (i === 0 || prev === null || prev === undefined) runs.push([]);
    runs[runs.length - 1]!.push([x(i), y(r)]);
  });
  const measured = rates.filter((r): r is number => r !== null);
  const requests = series.reduce((n, s) => n + s.requests, 0);
  const errors = series.reduce((n, s) => n + s.errors, 0);
  const overall = requests ? errors / requests : null;
  const peak = measured.length ? Math.max(...measured) : null;
  const pct = (r: number) => `${(r * 100).toFixed(1)}%`;
  const label =
    overall === null ? 'Error rate: no requests in this range' : `Error rate per ${per}: ${pct(overall)} overall, peak ${pct(peak!)}, in ${measured.length} ${per === 'hour' ? 'hours' : 'days'} with requests`;
  return (
    <figure class="chart">
      <svg viewBox={`0 -6 ${W} ${H + 26}`} role="img" aria-label={label}>
        <line x1="0" y1={H} x2={W} y2={H} class="axis" />
        <line x1="0" y1={y(top / 2)} x2={W} y2={y(top / 2)} class="grid-line" />
        <line x1="0" y1={y(top)} x2={W} y2={y(top)} class="grid-line" />
        <text x="4" y="14" class="tick">
          {pct(top).replace('.0%', '%')}
        </text>
        <text x="4" y={y(top / 2) - 4} class="tick">
          {pct(top / 2).replace('.0%', '%')}
        </text>
        {runs.map((pts, i) => (
          <polyline key={i} points={pts.map(([a, b]) => `${a},${b}`).join(' ')} class="rate" />
        ))}
        {series.map((s, i) =>
          rates[i] === null ? null : (
            <circle key={s.starts_at} cx={x(i)} cy={y(rates[i]!)} r="3" class="rate">
              <title>{`${s.starts_at.slice(0, 16).replace('T', ' ')} UTC: ${pct(rates[i]!)} (${s.errors} of ${s.requests})`}</title>
            </circle>
          ),
        )}
        <text x="0" y={H + 16} class="tick">
          {series[0] ? series[0].starts_at.slice(5, 16).replace('T', ' ') : ''}
        </text>
        <text x={W} y={H + 16} class="tick" text-anchor="end">
          {series.length ? series[series.length - 1]!.starts_at.slice(5, 16).replace('T', ' ') : ''}
        </text>
      </svg>
      <figcaption>Errors (4xx and 5xx answers) as a share of the requests of each {per}; a gap where there were none.</figcaption>
    </figure>
  );
}
