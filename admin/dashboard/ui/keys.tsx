import { useState } from 'preact/hooks';
import { api, type IssuedKey, type Key, type Page, type ScopeCatalog, type SessionInfo } from './api';
import { parseAllowlist, ScopePicker } from './key-fields';
import { useSudo } from './sudo';
import { CopyButton, ErrorNote, fmt, Link, Modal, Pager, Scopes, StatusBadge, useCursorPages, useLoad, When } from './ui';

const STATUSES = ['active', 'pending', 'suspended', 'expired', 'revoked'];
const PAGE = 20;

export function KeysPage({ me }: { me: SessionInfo }) {
  const [q, setQ] = useState('');
  const [status, setStatus] = useState('');
  const [environment, setEnvironment] = useState('');
  const [sort, setSort] = useState('created_at:desc');
  const pages = useCursorPages();
  const [creating, setCreating] = useState(false);
  const canWrite = me.user.role !== 'viewer';

  const params = new URLSearchParams();
  if (q.trim()) params.set('q', q.trim());
  if (status) params.set('status', status);
  if (environment) params.set('environment', environment);
  const [by, order] = sort.split(':') as [string, string];
  params.set('sort', by);
  params.set('order', order);
  params.set('limit', String(PAGE));
  if (pages.cursor) params.set('cursor', pages.cursor);
  const query = params.toString();
  const page = useLoad(() => api.get<Page<Key>>(`/v1/keys?${query}`), [query]);

  const refilter = pages.refilter;

  return (
    <section aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title">API keys</h1>
        {canWrite && (
          <button type="button" onClick={() => setCreating(true)}>
            Create key
          </button>
        )}
      </div>
      <div class="filters" role="search">
        <label>
          Search
          <input type="search" placeholder="Name or id" value={q} onInput={refilter(setQ)} />
        </label>
        <label>
          Status
          <select value={status} onChange={refilter(setStatus)}>
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Environment
          <select value={environment} onChange={refilter(setEnvironment)}>
            <option value="">Any</option>
            {Object.keys(me.gateway_urls).map((e) => (
              <option key={e} value={e}>
                {e}
              </option>
            ))}
          </select>
        </label>
        <label>
          Sort by
          <select value={sort} onChange={refilter(setSort)}>
            <option value="created_at:desc">Newest</option>
            <option value="created_at:asc">Oldest</option>
            <option value="last_used_at:desc">Last used</option>
            <option value="name:asc">Name</option>
          </select>
        </label>
      </div>
      <ErrorNote error={page.error} />
      {page.data && <KeyTable keys={page.data.data} />}
      <Pager label="Pages of keys" pages={pages} next={page.data?.next_cursor} />
      {creating && <CreateKey me={me} onClose={() => setCreating(false)} onCreated={page.reload} />}
    </section>
  );
}

export function KeyTable({ keys, compact = false }: { keys: Key[]; compact?: boolean }) {
  if (keys.length === 0) return <p class="empty">No keys match.</p>;
  return (
    <div class="table-wrap">
      <table class="keys">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Key</th>
            <th scope="col">Status</th>
            {!compact && <th scope="col">Scopes</th>}
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            {!compact && (
              <th scope="col" class="num">
                Requests
              </th>
            )}
            {!compact && (
              <th scope="col" class="num">
                Errors
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr key={k.id} class={k.status === 'revoked' ? 'revoked' : ''} data-key-id={k.id}>
              <td>
                <Link href={`/dashboard/keys/${encodeURIComponent(k.id)}`}>{k.name}</Link>
                <div class="muted small">{k.environment}</div>
              </td>
              <td class="masked">
                <code>{k.masked}</code> <CopyButton text={k.masked} label={`Copy the masked key of ${k.name}`} />
              </td>
              <td>
                <StatusBadge status={k.status} />
              </td>
              {!compact && (
                <td>
                  <Scopes scopes={k.scopes} />
                </td>
              )}
              <td>
                <When at={k.created_at} />
                <div class="muted small">by {k.created_by}</div>
              </td>
              <td>
                <When at={k.last_used_at} />
              </td>
              {!compact && <td class="num">{fmt.format(k.usage.total_requests)}</td>}
              {!compact && (
                <td class="num">
                  {fmt.format(k.usage.error_count)}
                  {k.usage.total_requests > 0 && <div class="muted small">{((100 * k.usage.error_count) / k.usage.total_requests).toFixed(1)}%</div>}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const EXPIRIES: [string, number | null][] = [
  ['Never', null],
  ['30 days', 30],
  ['90 days', 90],
  ['1 year', 365],
];

/** Create a key, in steps; the success view shows the key once. */
export function CreateKey({ me, onClose, onCreated }: { me: SessionInfo; onClose: () => void; onCreated: () => void }) {
  const catalog = useLoad(() => api.get<ScopeCatalog>('/v1/scopes'), []);
  const environments = Object.keys(me.gateway_urls);
  const [step, setStep] = useState(1);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [environment, setEnvironment] = useState(environments[0] ?? '');
  const [scopes, setScopes] = useState<Set<string>>(new Set());
  const [expiry, setExpiry] = useState<number | null>(null);
  const [ips, setIps] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [issued, setIssued] = useState<IssuedKey | null>(null);
  const sudo = useSudo(me.via);

  const { list: ipList, bad: badIp } = parseAllowlist(ips);

  const submit = () =>
    sudo.run(async () => {
      setError(null);
      try {
        const body: Record<string, unknown> = { name, description: description || null, environment, scopes: [...scopes] };
        if (expiry !== null) body['expires_at'] = new Date(Date.now() + expiry * 86_400_000).toISOString();
        if (ipList.length > 0) body['ip_allowlist'] = ipList;
        setIssued(await api.post<IssuedKey>('/v1/keys', body));
        onCreated();
      } catch (err) {
        setError(err);
      }
    });

  if (issued) {
    return (
      <Modal title="Your new key" onClose={onClose} wide>
        <div class="issued">
          <p class="warning" role="status">
            Copy this key now: it will not be shown again. Keygate keeps only a hash of it.
          </p>
          <div class="secret">
            <code data-testid="new-key">{issued.key}</code>
            <CopyButton text={issued.key} label="Copy the new key" />
          </div>
          {issued.curl && (
            <>
              <h3>Try it</h3>
              <div class="secret">
                <pre>
                  <code>{issued.curl}</code>
                </pre>
                <CopyButton text={issued.curl} label="Copy the curl example" />
              </div>
            </>
          )}
          <div class="actions">
            <button type="button" onClick={onClose}>
              I've saved my key
            </button>
          </div>
        </div>
      </Modal>
    );
  }

  return (
    <Modal title={`Create a key — step ${step} of 3`} onClose={onClose} wide>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (step < 3) setStep(step + 1);
          else submit();
        }}
      >
        <ol class="steps" aria-label="Steps">
          {['Name', 'Permissions', 'Limits'].map((s, i) => (
            <li key={s} class={i + 1 === step ? 'current' : ''} aria-current={i + 1 === step ? 'step' : undefined}>
              {s}
            </li>
          ))}
        </ol>
        {step === 1 && (
          <>
            <label>
              Name
              <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} required maxLength={200} />
            </label>
            <label>
              Description
              <textarea name="description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} maxLength={1000} rows={2} />
            </label>
            <fieldset>
              <legend>Environment</legend>
              {environments.map((env) => (
                <label class="inline" key={env}>
                  <input type="radio" name="environment" value={env} checked={environment === env} onChange={() => setEnvironment(env)} /> {env}
                </label>
              ))}
            </fieldset>
          </>
        )}
        {step === 2 && (
          <>
            <ErrorNote error={catalog.error} />
            {catalog.data && <ScopePicker catalog={catalog.data} scopes={scopes} onChange={setScopes} />}
          </>
        )}
        {step === 3 && (
          <>
            <fieldset>
              <legend>Expires</legend>
              {EXPIRIES.map(([label, days]) => (
                <label class="inline" key={label}>
                  <input type="radio" name="expiry" checked={expiry === days} onChange={() => setExpiry(days)} /> {label}
                </label>
              ))}
            </fieldset>
            <label>
              Allowed IP addresses (comma-separated IPs and CIDRs; empty: any)
              <input name="ip_allowlist" value={ips} onInput={(e) => setIps(e.currentTarget.value)} aria-invalid={badIp !== undefined} aria-describedby="ip-help" />
            </label>
            <p id="ip-help" class={badIp ? 'field-error' : 'muted small'}>
              {badIp ? `"${badIp}" is not an IP address or CIDR` : 'For example 203.0.113.0/24, 2001:db8::1'}
            </p>
          </>
        )}
        <ErrorNote error={error} />
        <div class="actions">
          {step > 1 && (
            <button type="button" class="secondary" onClick={() => setStep(step - 1)}>
              Back
            </button>
          )}
          <button type="submit" disabled={step === 3 && badIp !== undefined}>
            {step < 3 ? 'Next' : 'Create key'}
          </button>
        </div>
      </form>
      {sudo.dialog}
    </Modal>
  );
}
