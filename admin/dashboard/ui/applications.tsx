import { useState } from 'preact/hooks';
import { api, type Application, type ApplicationWithBalance, type Key, type Page, type SessionInfo } from './api';
import { BalanceDialog, BalanceIndicator, QuotaCard, QuotaEditor } from './quota';
import { ErrorNote, fmt, Link, Modal, Pager, ReasonInput, StatusBadge, useCursorPages, useLoad, When } from './ui';

const PAGE = 20;

/**
 * The consumer applications that own keys (GET /v1/applications). Admins create them and
 * suspend or reactivate them, which suspends or reactivates their keys with them; the API
 * allows those to admins only, so the page offers them to admins only. Each links to its own
 * page (ApplicationPage) with the quota its keys share.
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
                    <strong>
                      <Link href={`/dashboard/applications/${encodeURIComponent(a.id)}`}>{a.name}</Link>
                    </strong>
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
                    <BalanceIndicator k={a} of="application" />
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

/** The rate limit the application's keys share (docs/admin-api.md, "An application's shared limit"). */
function SharedLimit({ app }: { app: Application }) {
  const r = app.rate_limit;
  if (r) return <span>{`${r.limit} requests / ${r.window_seconds} s${r.burst === null ? '' : `, burst ${r.burst}`}`}</span>;
  if (app.plan) return <span>{`plan ${app.plan}`}</span>;
  // With a shared quota and no rate limit, "none" would read as no bound at all.
  return <span class="muted">{app.quota || app.credits ? 'no rate limit' : 'none'}</span>;
}

/**
 * One application (`GET /v1/applications/{id}`): its details, its shared rate limit, and the
 * quota or credits its keys spend together, with the key page's Quota card, editor and top-up
 * dialog. PATCH and the credits route take the admin role (admin/routes.ts), a tenant's admin
 * within the tenant: other roles see the card without its buttons.
 */
export function ApplicationPage({ me, id }: { me: SessionInfo; id: string }) {
  const path = `/v1/applications/${encodeURIComponent(id)}`;
  const app = useLoad(() => api.get<ApplicationWithBalance>(path), [path]);
  const [editing, setEditing] = useState(false);
  const [toppingUp, setToppingUp] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  const canWrite = me.user.role === 'admin';
  if (app.error) {
    return (
      <section aria-labelledby="page-title">
        <h1 id="page-title">Application not found</h1>
        <ErrorNote error={app.error} />
        <Link href="/dashboard/applications">Back to the applications</Link>
      </section>
    );
  }
  const a = app.data;
  if (!a) return <p aria-busy="true">Loading…</p>;
  return (
    <section aria-labelledby="page-title">
      <nav aria-label="Breadcrumb" class="crumbs">
        <Link href="/dashboard/applications">Applications</Link> / {a.name}
      </nav>
      <div class="page-head">
        <h1 id="page-title">
          {a.name} <StatusBadge status={a.status} />
        </h1>
      </div>
      <div class="card">
        <h2>Details</h2>
        <dl class="meta">
          <dt>Id</dt>
          <dd>
            <code>{a.id}</code>
          </dd>
          <dt>Description</dt>
          <dd>{a.description ?? <span class="muted">none</span>}</dd>
          {a.tenant && (
            <>
              <dt>Tenant</dt>
              <dd>{a.tenant}</dd>
            </>
          )}
          <dt>Shared rate limit</dt>
          <dd>
            <SharedLimit app={a} />
          </dd>
          <dt>Created</dt>
          <dd>
            <When at={a.created_at} />
            {a.created_by ? ` by ${a.created_by}` : ''}
          </dd>
          {a.suspended_at && (
            <>
              <dt>Suspended</dt>
              <dd>
                <When at={a.suspended_at} />
                {a.suspended_reason ? `: ${a.suspended_reason}` : ''}
              </dd>
            </>
          )}
        </dl>
      </div>
      <QuotaCard k={a} of="application" editable={canWrite} note={note} onEdit={() => setEditing(true)} onTopUp={() => setToppingUp(true)} />
      {editing && (
        <QuotaEditor
          keyRecord={a}
          of="application"
          onClose={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            setNote('The shared quota of this application changed; the gateways apply it to all its keys from the next request.');
            app.reload();
          }}
        />
      )}
      {toppingUp && (
        <BalanceDialog
          k={a}
          of="application"
          onClose={() => setToppingUp(false)}
          onDone={(b) => {
            setToppingUp(false);
            setNote(`The shared balance of this application is now ${fmt.format(b.remaining)}, for every gateway at once.`);
            app.reload();
          }}
        />
      )}
    </section>
  );
}
