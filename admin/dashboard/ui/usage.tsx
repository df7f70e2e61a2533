import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import { ErrorNote, fmt, Link, useLoad } from './ui';

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
  rate_limit: { exceeded: number; peak_requests_per_minute: number };
  keys?: { key_id: string; requests: number; errors: number }[];
}

const RANGES = [
  ['1h', 'Last hour'],
  ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
] as const;

/** How often the page asks again while it is open. */
const REFRESH_MS = 10_000;

export function UsagePage() {
  const [range, setRange] = useState<string>('24h');
  const usage = useLoad(() => api.get<UsageSummary>(`/v1/usage?range=${range}`), [range]);
  useEffect(() => {
    const timer = setInterval(usage.reload, REFRESH_MS);
    return () => clearInterval(timer);
  }, [range]);
  const u = usage.data;
  return (
    <section aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title">Usage</h1>
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
      </div>
      <ErrorNote error={usage.error} />
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
              {u.endpoints.length === 0 ? (
                <p class="empty">No requests in this range.</p>
              ) : (
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
                    {u.endpoints.map((e) => (
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
              )}
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
        </>
      )}
    </section>
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
export function VolumeChart({ series: raw }: { series: UsageSummary['series'] }) {
  const series = bins(raw, 60);
  const W = 800;
  const H = 200;
  const max = Math.max(1, ...series.map((s) => s.requests));
  const bar = W / Math.max(1, series.length);
  const total = series.reduce((n, s) => n + s.requests, 0);
  const errors = series.reduce((n, s) => n + s.errors, 0);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H + 20}`} role="img" aria-label={`Request volume: ${fmt.format(total)} requests, ${fmt.format(errors)} errors, peak ${fmt.format(max)} per bucket`}>
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
