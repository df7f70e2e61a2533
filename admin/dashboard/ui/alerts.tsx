import { api, serverNow, type Page } from './api';
import { Link, useLoad, When } from './ui';

/** An alert as GET /v1/alerts answers it (docs/alerts.md). */
export interface Alert {
  id: string;
  type: string;
  created_at: string;
  tenant: string | null;
  key: { id: string; name: string; masked: string } | null;
  data: Record<string, unknown>;
}

const DAY = 86_400_000;
const n = (v: unknown) => (typeof v === 'number' ? v.toLocaleString('en-US') : String(v));
const pct = (v: unknown) => (typeof v === 'number' ? `${Math.round(v * 1000) / 10}%` : String(v));

/** What an alert says, in a line. */
export function alertText(a: Alert): string {
  const d = a.data;
  switch (a.type) {
    case 'key.expiring': {
      const days = Math.max(0, Math.round((Date.parse(String(d['expires_at'])) - serverNow()) / DAY));
      return days === 0 ? 'Expires today' : `Expires in ${days} day${days === 1 ? '' : 's'}`;
    }
    case 'key.expired':
      return 'Expired';
    case 'key.rotated':
      return d['grace_ends_at'] ? 'Rotated: the old key works until the grace ends' : 'Rotated';
    case 'key.revoked':
      return `Revoked${d['reason'] ? ` (${String(d['reason'])})` : ''}`;
    case 'key.leaked':
      return `Reported leaked${d['source'] ? ` by ${String(d['source'])}` : ''}: ${String(d['action'] ?? 'recorded')}`;
    case 'key.used_after_revocation':
      return `Still used after revocation: ${n(d['requests'])} request(s) in ${n(d['window_minutes'])} min`;
    case 'key.ip_denied':
      return `Used from outside its IP allowlist: ${n(d['requests'])} request(s) in ${n(d['window_minutes'])} min`;
    case 'key.rate_limited':
      return `Hit its rate limit ${n(d['requests'])} times in ${n(d['window_minutes'])} min`;
    case 'key.error_rate':
      return `${pct(d['share'])} of ${n(d['requests'])} requests failed in ${n(d['window_minutes'])} min`;
    case 'key.unusual_usage':
      return `Unusual traffic: ${n(d['requests'])} requests in an hour, ${n(d['factor'])}× its usual`;
    case 'usage.error_rate':
      return `${pct(d['share'])} of all requests failed in ${n(d['window_minutes'])} min`;
    default:
      return a.type;
  }
}

/** Alerts that still call for something: an expiry ahead, or trouble in the last day. */
function open(a: Alert): boolean {
  if (a.type === 'key.expiring') return Date.parse(String(a.data['expires_at'])) > serverNow();
  if (a.type === 'key.rotated' || a.type === 'key.revoked' || a.type === 'key.expired') return false;
  return serverNow() - Date.parse(a.created_at) < DAY;
}

/** A key's open alerts, as banners on its page. */
export function KeyAlerts({ keyId }: { keyId: string }) {
  const alerts = useLoad(() => api.get<Page<Alert>>(`/v1/alerts?key_id=${encodeURIComponent(keyId)}&limit=20`), [keyId]);
  const shown = (alerts.data?.data ?? []).filter(open);
  // One banner per type: the newest.
  const newest = shown.filter((a, i) => shown.findIndex((b) => b.type === a.type) === i);
  if (newest.length === 0) return null;
  return (
    <div class="alerts" role="status" aria-label="Alerts about this key">
      {newest.map((a) => (
        <p key={a.id} class="warning">
          {alertText(a)} <span class="muted small">(<When at={a.created_at} />)</span>
        </p>
      ))}
    </div>
  );
}

/** The overview's card of recent alerts (a week), newest first. */
export function AlertsCard() {
  const since = new Date(serverNow() - 7 * DAY).toISOString();
  const alerts = useLoad(() => api.get<Page<Alert>>(`/v1/alerts?limit=8&from=${encodeURIComponent(since)}`), []);
  const list = alerts.data?.data ?? [];
  return (
    <div class="card">
      <h2>Alerts</h2>
      {alerts.data && list.length === 0 && <p class="muted">No alerts in the last 7 days.</p>}
      {list.length > 0 && (
        <ul class="alert-list">
          {list.map((a) => (
            <li key={a.id} class={open(a) ? 'open' : ''}>
              {a.key ? <Link href={`/dashboard/keys/${encodeURIComponent(a.key.id)}`}>{a.key.name}</Link> : <strong>All traffic</strong>}
              {': '}
              {alertText(a)} <span class="muted small">(<When at={a.created_at} />)</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
