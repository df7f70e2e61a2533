import { useState } from 'preact/hooks';
import { KeyAlerts } from './alerts';
import { api, type IssuedKey, type Key, type KeyEvent, type KeyWithBalance, type SessionInfo } from './api';
import { KeyEditor, type Editor } from './key-editors';
import { KeyUsage } from './key-usage';
import { BalanceDialog, QuotaCard } from './quota';
import { useSudo } from './sudo';
import { CopyButton, ErrorNote, fmt, Link, Modal, ReasonInput, Scopes, StatusBadge, useLoad, When } from './ui';

type Action = 'suspend' | 'reactivate' | 'revoke' | 'regenerate';

const CONSEQUENCE: Record<Action, string> = {
  suspend: 'Requests with this key are refused until it is reactivated.',
  reactivate: 'The key works again from the next request.',
  revoke: 'Requests with this key are refused from the next request on. This cannot be undone.',
  regenerate: 'A new key with the same settings is issued and shown once.',
};

const GRACES: [string, number][] = [
  ['Revoke the old key now', 0],
  ['Keep the old key working for 1 hour', 3600],
  ['Keep the old key working for 24 hours', 86_400],
  ['Keep the old key working for 7 days', 7 * 86_400],
];

export function KeyPage({ me, id }: { me: SessionInfo; id: string }) {
  const path = `/v1/keys/${encodeURIComponent(id)}`;
  const key = useLoad(() => api.get<KeyWithBalance>(path), [path]);
  const events = useLoad(() => api.get<{ data: KeyEvent[]; scheduled: { type: string; scheduled_at: string }[] }>(`${path}/events`), [path, key.data?.updated_at]);
  const [confirming, setConfirming] = useState<Action | null>(null);
  const [editing, setEditing] = useState<Editor | null>(null);
  const [saved, setSaved] = useState<Editor | null>(null);
  const [issued, setIssued] = useState<IssuedKey | null>(null);
  const [toppingUp, setToppingUp] = useState(false);
  /** What the last top-up or set left: shown in the Quota card. */
  const [balanceNote, setBalanceNote] = useState<string | null>(null);
  const canWrite = me.user.role !== 'viewer';

  if (key.error) {
    return (
      <section aria-labelledby="page-title">
        <h1 id="page-title">Key not found</h1>
        <ErrorNote error={key.error} />
        <Link href="/dashboard/keys">Back to the keys</Link>
      </section>
    );
  }
  const k = key.data;
  if (!k) return <p aria-busy="true">Loading…</p>;
  const ended = k.status === 'revoked' || k.status === 'expired';
  // The API refuses to edit a revoked or expired key (409), so the page does not offer it.
  const editable = canWrite && !ended;
  const edit = (what: Editor) =>
    editable && (
      <button type="button" class="secondary small-button" onClick={() => setEditing(what)}>
        Edit<span class="visually-hidden"> {what}</span>
      </button>
    );
  const actions: Action[] = !canWrite || ended ? [] : [k.status === 'suspended' ? 'reactivate' : 'suspend', ...(k.replaced_by === null ? (['regenerate'] as const) : []), 'revoke'];

  return (
    <section aria-labelledby="page-title">
      <nav aria-label="Breadcrumb" class="crumbs">
        <Link href="/dashboard/keys">Keys</Link> / {k.name}
      </nav>
      <div class="page-head">
        <h1 id="page-title">
          {k.name} <StatusBadge status={k.status} />
        </h1>
        <div class="actions">
          {actions.map((a) => (
            <button type="button" key={a} class={a === 'revoke' ? 'danger' : 'secondary'} onClick={() => setConfirming(a)}>
              {a[0]!.toUpperCase() + a.slice(1)}
            </button>
          ))}
        </div>
      </div>
      <KeyAlerts keyId={k.id} />
      {k.status === 'revoked' && (
        <p class="banner revoked" role="status">
          Revoked <When at={k.revoked_at} />
          {k.revoked_reason ? `: ${k.revoked_reason}` : ''}. Requests with this key are refused.
        </p>
      )}
      <div class="grid">
        <div class="card">
          <h2>Details</h2>
          <dl class="meta">
            <dt>Id</dt>
            <dd>
              <code>{k.id}</code>
            </dd>
            <dt>Key</dt>
            <dd>
              <code>{k.masked}</code> <CopyButton text={k.masked} label="Copy the masked key" />
            </dd>
            <dt>Environment</dt>
            <dd>{k.environment}</dd>
            <dt>Description</dt>
            <dd>{k.description ?? <span class="muted">none</span>}</dd>
            <dt>Created</dt>
            <dd>
              <When at={k.created_at} /> by {k.created_by}
            </dd>
            <dt>Last used</dt>
            <dd>
              <When at={k.last_used_at} />
            </dd>
            <dt>All-time requests</dt>
            <dd>
              {fmt.format(k.usage.total_requests)} <span class="muted">({fmt.format(k.usage.error_count)} errors)</span>
            </dd>
            {k.replaced_by && (
              <>
                <dt>Replaced by</dt>
                <dd>
                  <Link href={`/dashboard/keys/${encodeURIComponent(k.replaced_by)}`}>{k.replaced_by}</Link>
                  {k.grace_ends_at && (
                    <>
                      {' '}
                      (old key works until <When at={k.grace_ends_at} />)
                    </>
                  )}
                </dd>
              </>
            )}
          </dl>
        </div>
        <section class="card" aria-labelledby="access-title">
          <h2 id="access-title">Access</h2>
          {saved && saved !== 'quota' && (
            <p class="saved" role="status">
              The {saved} of this key changed; the gateways apply it from the next request.
            </p>
          )}
          <dl class="settings">
            <div>
              <dt>Permissions</dt>
              <dd>
                <span data-testid="key-scopes">
                  <Scopes scopes={k.scopes} />
                </span>
                {edit('permissions')}
              </dd>
            </div>
            <div>
              <dt>Rate limit</dt>
              <dd>
                <span data-testid="key-rate-limit">
                {k.rate_limit ? (
                  <>
                    {fmt.format(k.rate_limit.limit)} per {k.rate_limit.window_seconds} s{k.rate_limit.burst ? `, burst ${fmt.format(k.rate_limit.burst)}` : ''} <span class="muted">(its own)</span>
                  </>
                ) : (
                  `plan ${k.plan ?? 'default'}`
                )}
                </span>
                {edit('rate limit')}
              </dd>
            </div>
            <div>
              <dt>IP allowlist</dt>
              <dd>
                <span data-testid="key-allowlist">{k.ip_allowlist?.length ? k.ip_allowlist.join(', ') : <span class="muted">any address</span>}</span>
                {edit('IP allowlist')}
              </dd>
            </div>
            <div>
              <dt>Expires</dt>
              <dd>
                <span data-testid="key-expires">
                  <When at={k.expires_at} never="never" />
                </span>
                {edit('expiry')}
              </dd>
            </div>
          </dl>
        </section>
      </div>
      <QuotaCard
        k={k}
        editable={editable}
        note={saved === 'quota' ? 'The quota of this key changed; the gateways apply it from the next request.' : balanceNote}
        onEdit={() => setEditing('quota')}
        onTopUp={() => setToppingUp(true)}
      />
      <KeyUsage keyId={k.id} />
      <div class="card">
        <h2>Timeline</h2>
        <ErrorNote error={events.error} />
        <ol class="timeline">
          {events.data?.scheduled.map((e) => (
            <li key={`s-${e.type}`} class="scheduled">
              <strong>{e.type}</strong> scheduled <When at={e.scheduled_at} />
            </li>
          ))}
          {events.data?.data
            .slice()
            .reverse()
            .map((e, i) => (
              <li key={i}>
                <strong>{e.type}</strong>
                {fieldsOf(e.detail) && <span> {fieldsOf(e.detail)}</span>} <When at={e.occurred_at ?? e.scheduled_at} />
                {e.actor && <span class="muted"> by {e.actor}</span>}
              </li>
            ))}
        </ol>
      </div>
      {editing && (
        <KeyEditor
          editor={editing}
          keyRecord={k}
          onClose={() => setEditing(null)}
          onSaved={(what) => {
            setEditing(null);
            setSaved(what);
            setBalanceNote(null);
            key.reload();
            // The timeline too: on a clock that has not moved, updated_at stays the same.
            events.reload();
          }}
        />
      )}
      {toppingUp && (
        <BalanceDialog
          k={k}
          onClose={() => setToppingUp(false)}
          onDone={(b) => {
            setToppingUp(false);
            setSaved(null);
            setBalanceNote(`The balance of this key is now ${fmt.format(b.remaining)}, for every gateway at once.`);
            key.reload();
            events.reload();
          }}
        />
      )}
      {confirming && (
        <Confirm
          me={me}
          action={confirming}
          keyRecord={k}
          onClose={() => setConfirming(null)}
          onDone={(result) => {
            setConfirming(null);
            if (result && 'key' in result) setIssued(result);
            key.reload();
            events.reload();
          }}
        />
      )}
      {issued && (
        <Modal title="The new key" onClose={() => setIssued(null)} wide>
          <p class="warning" role="status">
            Copy this key now: it will not be shown again.
          </p>
          <div class="secret">
            <code data-testid="new-key">{issued.key}</code>
            <CopyButton text={issued.key} label="Copy the new key" />
          </div>
          <p>
            <Link href={`/dashboard/keys/${encodeURIComponent(issued.id)}`}>Open the new key</Link>
          </p>
          <div class="actions">
            <button type="button" onClick={() => setIssued(null)}>
              I've saved my key
            </button>
          </div>
        </Modal>
      )}
    </section>
  );
}

/** The fields an edit changed, as its timeline event records them (`detail.fields`). */
function fieldsOf(detail: unknown): string | null {
  const fields = (detail as { fields?: unknown } | null)?.fields;
  return Array.isArray(fields) && fields.length ? fields.join(', ') : null;
}

function Confirm(props: { me: SessionInfo; action: Action; keyRecord: Key; onClose: () => void; onDone: (r: Key | IssuedKey | undefined) => void }) {
  const { action, keyRecord: k } = props;
  const [reason, setReason] = useState('');
  const [grace, setGrace] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const sudo = useSudo(props.me.via);
  const path = `/v1/keys/${encodeURIComponent(k.id)}/${action}`;
  const go = async () => {
    try {
      const body = action === 'regenerate' ? { grace_period_seconds: grace } : action === 'reactivate' ? undefined : { reason: reason || null };
      props.onDone(await api.post<Key | IssuedKey>(path, body));
    } catch (err) {
      setError(err);
    }
  };
  const needsSudo = action === 'revoke' || action === 'regenerate';
  const title = `${action[0]!.toUpperCase() + action.slice(1)} ${k.name}?`;
  return (
    <Modal title={title} onClose={props.onClose}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (needsSudo) sudo.run(go);
          else void go();
        }}
      >
        <p class={action === 'revoke' ? 'warning' : ''}>{CONSEQUENCE[action]}</p>
        {action === 'regenerate' && (
          <fieldset>
            <legend>The old key</legend>
            {GRACES.map(([label, s]) => (
              <label class="inline" key={s}>
                <input type="radio" name="grace" checked={grace === s} onChange={() => setGrace(s)} /> {label}
              </label>
            ))}
          </fieldset>
        )}
        {(action === 'revoke' || action === 'suspend') && (
          <ReasonInput value={reason} onInput={setReason} />
        )}
        <ErrorNote error={error} />
        <div class="actions">
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class={action === 'revoke' ? 'danger' : ''}>
            {action === 'revoke' ? 'Revoke key' : action === 'regenerate' ? 'Regenerate key' : action === 'suspend' ? 'Suspend key' : 'Reactivate key'}
          </button>
        </div>
      </form>
      {sudo.dialog}
    </Modal>
  );
}
