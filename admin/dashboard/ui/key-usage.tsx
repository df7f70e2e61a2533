import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { api } from './api';
import { ErrorNote, fmt, useLoad } from './ui';
import { EndpointTable, ErrorRateChart, perHour, STATUS_TEXT, VolumeChart, type UsageSummary } from './usage';

const RANGES = [
  ['24h', '24 hours'],
  ['7d', '7 days'],
  ['30d', '30 days'],
] as const;
type Range = (typeof RANGES)[number][0];

const region = typeof Intl.DisplayNames === 'function' ? new Intl.DisplayNames(['en'], { type: 'region' }) : null;
const countryName = (code: string) => {
  try {
    return region?.of(code.toUpperCase()) ?? code;
  } catch {
    return code;
  }
};

/**
 * One key's traffic over 24 hours (by the hour), 7 or 30 days (by the day), from
 * `GET /v1/keys/{id}/usage?range=`: requests, error rate, top endpoints, status codes, countries.
 */
export function KeyUsage({ keyId }: { keyId: string }) {
  const [range, setRange] = useState<Range>('24h');
  const usage = useLoad(() => api.get<UsageSummary>(`/v1/keys/${encodeURIComponent(keyId)}/usage?range=${range}`), [keyId, range]);
  const u = usage.data;
  const per = range === '24h' ? 'hour' : 'day';
  const series = u ? (u.range.granularity === 'minute' ? perHour(u.series) : u.series) : [];
  return (
    <section class="card" aria-labelledby="usage-title">
      <div class="page-head">
        <h2 id="usage-title">Usage</h2>
        <div class="segmented" role="group" aria-label="Usage range">
          {RANGES.map(([v, label]) => (
            <button type="button" key={v} class={range === v ? '' : 'secondary'} aria-pressed={range === v} onClick={() => setRange(v)}>
              {label}
            </button>
          ))}
        </div>
      </div>
      <ErrorNote error={usage.error} />
      {!u && !usage.error && <p aria-busy="true">Loading…</p>}
      {u && (
        <>
          <dl class="stats">
            <div>
              <dt>Requests</dt>
              <dd data-testid="key-requests">{fmt.format(u.totals.requests)}</dd>
            </div>
            <div>
              <dt>Errors</dt>
              <dd data-testid="key-errors">{fmt.format(u.totals.errors)}</dd>
            </div>
            <div>
              <dt>Success rate</dt>
              <dd>{u.totals.success_rate === null ? '—' : `${(u.totals.success_rate * 100).toFixed(1)}%`}</dd>
            </div>
            <div>
              <dt>p95 latency</dt>
              <dd>{u.totals.p95_latency_ms === null ? '—' : `${Math.round(u.totals.p95_latency_ms)} ms`}</dd>
            </div>
            <div>
              <dt>Rate limit exceeded</dt>
              <dd>{fmt.format(u.rate_limit.exceeded)}</dd>
            </div>
          </dl>
          <div class="grid charts">
            <div>
              <h3>Requests per {per}</h3>
              <VolumeChart series={series} per={per} />
            </div>
            <div>
              <h3>Error rate</h3>
              <ErrorRateChart series={series} per={per} />
            </div>
          </div>
          <h3>Top endpoints</h3>
          <div class="table-wrap spaced">
            <EndpointTable endpoints={u.endpoints} />
          </div>
          <div class="grid">
            <div>
              <h3>Status codes</h3>
              <Counts rows={u.status_codes} label="Status" testid="key-status-codes" name={(code) => `${code} ${STATUS_TEXT[code] ?? ''}`.trim()} empty="No requests in this range." />
            </div>
            <div>
              <h3>Countries</h3>
              <Counts
                rows={u.countries}
                label="Country"
                testid="key-countries"
                name={(c) => `${countryName(c)} (${c})`}
                empty={
                  <>
                    No country recorded in this range. The gateway learns a request's country only from the header named by <code>usage.country_header</code> (for example{' '}
                    <code>cf-ipcountry</code>, set by a CDN in front of it); without it, none is counted.
                  </>
                }
              />
            </div>
          </div>
        </>
      )}
    </section>
  );
}

/** Requests by some property, busiest first, with their share. */
function Counts(props: { rows: Record<string, number>; label: string; name: (k: string) => string; empty: ComponentChildren; testid: string }) {
  const rows = Object.entries(props.rows).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const total = rows.reduce((n, [, v]) => n + v, 0);
  if (total === 0) return <p class="empty">{props.empty}</p>;
  return (
    <table data-testid={props.testid}>
      <thead>
        <tr>
          <th scope="col">{props.label}</th>
          <th scope="col" class="num">
            Requests
          </th>
          <th scope="col" class="num">
            Share
          </th>
        </tr>
      </thead>
      <tbody>
        {rows.map(([k, n]) => (
          <tr key={k}>
            <td>{props.name(k)}</td>
            <td class="num">{fmt.format(n)}</td>
            <td class="num">{((n / total) * 100).toFixed(1)}%</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
