import { useState } from 'preact/hooks';
import { api, type Page } from './api';
import { ErrorNote, Link, Pager, useCursorPages, useLoad, When } from './ui';

interface AuditEntry {
  id: string;
  occurred_at: string;
  actor: string;
  role: string;
  tenant: string | null;
  ip: string | null;
  action: string;
  target_type: string;
  target_id: string;
  changes: Record<string, { from: unknown; to: unknown }>;
}

const PAGE = 50;

/** Each audit action (core/audit.ts AUDIT_ACTIONS) as a person reads it; the code stays under it for searching and the API. */
const ACTIONS: Record<string, string> = {
  'key.created': 'Key created',
  'key.updated': 'Key edited',
  'key.suspended': 'Key suspended',
  'key.reactivated': 'Key reactivated',
  'key.regenerated': 'Key regenerated',
  'key.rotated': 'Key rotated',
  'key.revoked': 'Key revoked',
  'key.activated': 'Key activated',
  'key.expired': 'Key expired',
  'key.grace_ended': 'Old key’s grace period ended',
  'key.leaked': 'Key reported leaked',
  'key.credits_changed': 'Key balance topped up or set',
  'application.created': 'Application created',
  'application.updated': 'Application edited',
  'application.suspended': 'Application suspended',
  'application.reactivated': 'Application reactivated',
  'application.credits_changed': 'Application’s shared balance topped up or set',
  'config.reloaded': 'Configuration reloaded',
  'config.reload_refused': 'Configuration reload refused',
};

/** Where an entry's target lives on the dashboard, if it has a page. */
function Target({ e }: { e: AuditEntry }) {
  if (e.target_type === 'key') return <Link href={`/dashboard/keys/${encodeURIComponent(e.target_id)}`}>{e.target_id}</Link>;
  if (e.target_type === 'application') return <Link href={`/dashboard/applications/${encodeURIComponent(e.target_id)}`}>{e.target_id}</Link>;
  return <code>{e.target_id}</code>;
}

/** The audit log from GET /v1/audit: who did what to which key or application, newest first. */
export function AuditPage() {
  const [actor, setActor] = useState('');
  const pages = useCursorPages();
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (actor.trim()) params.set('actor', actor.trim());
  if (pages.cursor) params.set('cursor', pages.cursor);
  const query = params.toString();
  const page = useLoad(() => api.get<Page<AuditEntry>>(`/v1/audit?${query}`), [query]);
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Audit log</h1>
      <div class="filters" role="search">
        <label>
          Actor
          <input
            type="search"
            placeholder="User or token name"
            value={actor}
            onInput={pages.refilter(setActor)}
          />
        </label>
      </div>
      <ErrorNote error={page.error} />
      {page.data && page.data.data.length === 0 && <p class="empty">No entries.</p>}
      {page.data && page.data.data.length > 0 && (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">Changes</th>
              </tr>
            </thead>
            <tbody>
              {page.data.data.map((e) => (
                <tr key={e.id}>
                  <td>
                    <When at={e.occurred_at} />
                  </td>
                  <td>
                    {e.actor}
                    <div class="muted small">
                      {e.role}
                      {e.ip ? ` · ${e.ip}` : ''}
                    </div>
                  </td>
                  <td>
                    {ACTIONS[e.action] ?? e.action}
                    {ACTIONS[e.action] && (
                      <div class="muted small">
                        <code>{e.action}</code>
                      </div>
                    )}
                  </td>
                  <td>
                    <Target e={e} />
                  </td>
                  <td class="small">
                    {Object.entries(e.changes).map(([field, c]) => (
                      <div key={field}>
                        <code>{field}</code>: {JSON.stringify(c.from)} → {JSON.stringify(c.to)}
                      </div>
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager label="Pages of the audit log" pages={pages} next={page.data?.next_cursor} />
    </section>
  );
}
