import { useState } from 'preact/hooks';
import { api, type Application, type Key, type Page, type SessionInfo } from './api';
import { ErrorNote, Modal, Pager, ReasonInput, StatusBadge, useCursorPages, useLoad, When } from './ui';

const PAGE = 20;

/**
 * The consumer applications that own keys (GET /v1/applications). Admins create them and
 * suspend or reactivate them, which suspends or reactivates their keys with them; the API
 * allows those to admins only, so the page offers them to admins only.
 */
export function ApplicationsPage({ me }: { me: SessionInfo }) {
  const [q, setQ] = useState('');
  const [status, setStatus] = useState('');
  const pages = useCursorPages();
  const [creating, setCreating] = useState(false);
  const [confirming, setConfirming] = useState<{ app: Application; action: 'suspend' | 'reactivate' } | null>(null);
  const canWrite = me.user.role === 'admin';
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (q.trim()) params.set('q', q.trim());
  if (status) params.set('status', status);
  if (pages.cursor) params.set('cursor', pages.cursor);
  const query = params.toString();
  const page = useLoad(() => api.get<Page<Application>>(`/v1/applications?${query}`), [query]);
  const refilter = pages.refilter;
  return (
    <section aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title">Applications</h1>
        {canWrite && (
          <button type="button" onClick={() => setCreating(true)}>
            Create application
          </button>
        )}
      </div>
      <div class="filters two" role="search">
        <label>
          Search
          <input type="search" placeholder="Name or id" value={q} onInput={refilter(setQ)} />
        </label>
        <label>
          Status
          <select value={status} onChange={refilter(setStatus)}>
            <option value="">Any</option>
            <option value="active">active</option>
            <option value="suspended">suspended</option>
          </select>
        </label>
      </div>
      <ErrorNote error={page.error} />
      {page.data && page.data.data.length === 0 && <p class="empty">No applications{q || status ? ' match' : ' yet'}.</p>}
      {page.data && page.data.data.length > 0 && (
        <div class="table-wrap" tabIndex={0} role="region" aria-label="Applications table">
          <table class="apps">
            <thead>
              <tr>
                <th scope="col">Application</th>
                <th scope="col">Status</th>
                <th scope="col">Shared limit</th>
                <th scope="col">Created</th>
                {canWrite && (
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {page.data.data.map((a) => (
                <tr key={a.id} data-app-id={a.id}>
                  <td>
                    <strong>{a.name}</strong>
                    <div class="muted small">
                      <code>{a.id}</code>
                      {a.tenant ? ` · tenant ${a.tenant}` : ''}
                    </div>
                    {a.description && <div class="small">{a.description}</div>}
                  </td>
                  <td>
                    <StatusBadge status={a.status} />
                    {a.suspended_at && (
                      <div class="muted small">
                        <When at={a.suspended_at} />
                        {a.suspended_reason ? `: ${a.suspended_reason}` : ''}
                      </div>
                    )}
                  </td>
                  <td>
                    <SharedLimit app={a} />
                  </td>
                  <td>
                    <When at={a.created_at} />
                    {a.created_by && <div class="muted small">by {a.created_by}</div>}
                  </td>
                  {canWrite && (
                    <td class="actions-cell">
                      {a.status === 'active' ? (
                        <button type="button" class="secondary" aria-label={`Suspend ${a.name}`} onClick={() => setConfirming({ app: a, action: 'suspend' })}>
                          Suspend
                        </button>
                      ) : (
                        <button type="button" class="secondary" aria-label={`Reactivate ${a.name}`} onClick={() => setConfirming({ app: a, action: 'reactivate' })}>
                          Reactivate
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager label="Pages of applications" pages={pages} next={page.data?.next_cursor} />
      {creating && (
        <CreateApplication
          onClose={() => setCreating(false)}
          onCreated={() => {
            setCreating(false);
            page.reload();
          }}
        />
      )}
      {confirming && (
        <ConfirmApplication
          app={confirming.app}
          action={confirming.action}
          onClose={() => setConfirming(null)}
          onDone={() => {
            setConfirming(null);
            page.reload();
          }}
        />
      )}
    </section>
  );
}

function CreateApplication(props: { onClose: () => void; onCreated: () => void }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="Create an application" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await api.post<Application>('/v1/applications', { name: name.trim(), description: description.trim() || null });
            props.onCreated();
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label>
          Name
          <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} required maxLength={200} />
        </label>
        <label>
          Description (optional)
          <textarea name="description" rows={2} value={description} onInput={(e) => setDescription(e.currentTarget.value)} maxLength={1000} />
        </label>
        <p class="muted small">Keys name an application when they are created; suspending the application suspends its keys.</p>
        <ErrorNote error={error} />
        <div class="actions">
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" disabled={busy || name.trim() === ''}>
            Create application
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** Suspending or reactivating an application, with what it does to the application's keys. */
function ConfirmApplication(props: { app: Application; action: 'suspend' | 'reactivate'; onClose: () => void; onDone: () => void }) {
  const { app, action } = props;
  const [reason, setReason] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  // How many keys the change reaches: the first page of them is enough to say "100 or more".
  const keys = useLoad(() => api.get<Page<Key>>(`/v1/keys?application=${encodeURIComponent(app.id)}&limit=100`), [app.id]);
  const live = keys.data?.data.filter((k) => k.status !== 'revoked').length;
  const count = live === undefined ? 'every key' : `${live}${keys.data?.next_cursor ? ' or more' : ''} ${live === 1 ? 'key' : 'keys'}`;
  const consequence =
    action === 'suspend'
      ? `Suspends ${app.name} and, with it, ${count} it owns that ${live === 1 ? 'is' : 'are'} not revoked: requests with them are refused until the application is reactivated.`
      : `Reactivates ${app.name} and the keys suspended through it. Keys suspended on their own stay suspended.`;
  return (
    <Modal title={`${action === 'suspend' ? 'Suspend' : 'Reactivate'} ${app.name}?`} onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await api.post<Application>(`/v1/applications/${encodeURIComponent(app.id)}/${action}`, action === 'suspend' ? { reason: reason.trim() || null } : undefined);
            props.onDone();
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <p class={action === 'suspend' ? 'warning' : ''}>{consequence}</p>
        {action === 'suspend' && (
          <ReasonInput value={reason} onInput={setReason} />
        )}
        <ErrorNote error={error} />
        <div class="actions">
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" disabled={busy}>
            {action === 'suspend' ? 'Suspend application' : 'Reactivate application'}
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** The limit the application's keys share (docs/admin-api.md, "An application's shared limit"). */
function SharedLimit({ app }: { app: Application }) {
  const r = app.rate_limit;
  if (r) return <span>{`${r.limit} requests / ${r.window_seconds} s${r.burst === null ? '' : `, burst ${r.burst}`}`}</span>;
  if (app.plan) return <span>{`plan ${app.plan}`}</span>;
  return <span class="muted">none</span>;
}
