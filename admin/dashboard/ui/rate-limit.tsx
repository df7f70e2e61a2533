import { useEffect, useState } from 'preact/hooks';
import { api, serverNow, type ApiCatalog, type Key, type RateLimit } from './api';
import { limitText } from './apis';
import { ErrorNote, fmt, Link, useLoad } from './ui';
import type { UsageSummary } from './usage';

const REFRESH_MS = 10_000;

/** The limit a key counts against: its own, else its plan's (the plans of GET /v1/apis). */
export function keyLimit(k: Key, plans: ApiCatalog['plans']): { plan: string; limit: RateLimit } | null {
  if (k.rate_limit) return { plan: 'its own limit', limit: k.rate_limit };
  const name = k.plan ?? 'default';
  const p = plans.find((x) => x.name === name);
  return p ? { plan: name, limit: p } : null;
}

/**
 * Requests in the key's current window, from its usage by the minute: the window's last
 * minutes, the current one included. The gateway's token bucket refills continuously, so this
 * is its use as the usage records see it (they arrive every few seconds), not the bucket itself.
 */
export function windowUse(series: UsageSummary['series'], windowSeconds: number): number {
  const minutes = Math.max(1, Math.ceil(windowSeconds / 60));
  return series.slice(-minutes).reduce((n, s) => n + s.requests, 0);
}

/** A rate-limit status card for one of `keys`, chosen in the card. */
export function RateLimitCard({ keys }: { keys: Key[] }) {
  // The most recently used first: the key whose limit is most likely being met.
  const usable = keys.filter((k) => k.status !== 'revoked').sort((a, b) => (b.last_used_at ?? '').localeCompare(a.last_used_at ?? ''));
  const [chosen, setChosen] = useState<string | null>(null);
  const id = chosen ?? usable[0]?.id ?? null;
  const key = usable.find((k) => k.id === id) ?? null;
  const catalog = useLoad(() => api.get<ApiCatalog>('/v1/apis'), []);
  const usage = useLoad(() => (id === null ? Promise.resolve(null) : api.get<UsageSummary>(`/v1/keys/${encodeURIComponent(id)}/usage?range=1h`)), [id]);
  const [, tick] = useState(0);
  useEffect(() => {
    const second = setInterval(() => tick((n) => n + 1), 1000);
    const refresh = setInterval(usage.reload, REFRESH_MS);
    return () => {
      clearInterval(second);
      clearInterval(refresh);
    };
  }, [id]);
  const limit = key && catalog.data ? keyLimit(key, catalog.data.plans) : null;
  const used = limit && usage.data ? windowUse(usage.data.series, limit.limit.window_seconds) : null;
  const share = used !== null && limit ? used / limit.limit.limit : 0;
  // The oldest minute of the window leaves it at the next minute boundary.
  const resetsIn = 60 - Math.floor((serverNow() / 1000) % 60);
  return (
    <div class="card" aria-labelledby="rate-limit-title">
      <div class="page-head">
        <h2 id="rate-limit-title">Rate limit</h2>
        {usable.length > 0 && (
          <label class="inline-select">
            Key
            <select value={id ?? ''} onChange={(e) => setChosen(e.currentTarget.value)}>
              {usable.map((k) => (
                <option key={k.id} value={k.id}>
                  {k.name}
                </option>
              ))}
            </select>
          </label>
        )}
      </div>
      <ErrorNote error={catalog.error ?? usage.error} />
      {usable.length === 0 && <p class="empty">No key to show yet.</p>}
      {key && limit === null && catalog.data && <p class="muted">This key names a plan the configuration does not have.</p>}
      {key && limit && (
        <>
          <dl class="meta">
            <dt>Plan</dt>
            <dd>{limit.plan}</dd>
            <dt>Limit</dt>
            <dd>{limitText({ ...limit.limit, burst: null })}</dd>
            <dt>Burst</dt>
            <dd>{limit.limit.burst === null ? <span class="muted">none: at most the limit at once</span> : `up to ${fmt.format(limit.limit.burst)} at once`}</dd>
          </dl>
          {used !== null && (
            <div class="use">
              <progress max={limit.limit.limit} value={Math.min(used, limit.limit.limit)} aria-label={`Rate-limit use of ${key.name}`} class={share >= 0.95 ? 'high' : share >= 0.8 ? 'warm' : ''} />
              <p data-testid="rate-limit-use">
                <strong>
                  {fmt.format(used)} / {fmt.format(limit.limit.limit)} ({Math.round(share * 100)}%)
                </strong>{' '}
                <span class="muted">{used === 0 ? 'in the current window' : `in the current window · resets in ${resetsIn} s`}</span>
              </p>
              <p class="muted small">
                As the usage records count it, by the minute. <Link href={`/dashboard/keys/${encodeURIComponent(key.id)}`}>Key details</Link>
              </p>
            </div>
          )}
        </>
      )}
    </div>
  );
}
