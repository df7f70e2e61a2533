import { useState } from 'preact/hooks';
import { api, serverNow, type Application, type IssuedKey, type Key, type Page, type Policy, type ScopeCatalog, type SessionInfo } from './api';
import { parseAllowlist, ScopePicker } from './key-fields';
import { BalanceIndicator, useQuotaForm } from './quota';
import { useSudo } from './sudo';
import { CopyButton, ErrorNote, fmt, Link, Modal, Pager, Scopes, StatusBadge, useCursorPages, useLoad, When } from './ui';

const STATUSES = ['active', 'pending', 'suspended', 'expired', 'revoked'];
const PAGE = 20;

export function KeysPage({ me }: { me: SessionInfo }) {
  const [q, setQ] = useState('');
  const [status, setStatus] = useState('');
  const [environment, setEnvironment] = useState('');
  const [application, setApplication] = useState('');
  const apps = useApplications();
  const [sort, setSort] = useState('created_at:desc');
  const pages = useCursorPages();
  const [creating, setCreating] = useState(false);
  const canWrite = me.user.role !== 'viewer';

  const params = new URLSearchParams();
  if (q.trim()) params.set('q', q.trim());
  if (status) params.set('status', status);
  if (environment) params.set('environment', environment);
  if (application) params.set('application', application);
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
        {apps.length > 0 && (
          <label>
            Application
            <select value={application} onChange={refilter(setApplication)}>
              <option value="">Any</option>
              {apps.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name}
                </option>
              ))}
            </select>
          </label>
        )}
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
                <BalanceIndicator k={k} />
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

/**
 * The applications a key may name, for pickers and filters: the first 100 the caller may see
 * (a tenant's user sees its tenant's). A deployment with more is better served by the search
 * on the applications page; the key page still shows any key's application.
 */
function useApplications(): Application[] {
  const apps = useLoad(() => api.get<Page<Application>>('/v1/applications?limit=100'), []);
  return apps.data?.data ?? [];
}

/** `default`: leave `expires_at` out, so the policy's expiry (or none) applies. */
type Expiry = 'default' | 'never' | 30 | 90 | 365 | 'date';
const EXPIRY_DAYS: [string, 30 | 90 | 365][] = [
  ['30 days', 30],
  ['90 days', 90],
  ['1 year', 365],
];
const DAY_MS = 86_400_000;
const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The end (UTC) of a YYYY-MM-DD day, or null when it is not one or is not after now. */
export function endOfDay(day: string, now: number): string | null {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return null;
  const t = Date.parse(`${day}T23:59:59.999Z`);
  return Number.isNaN(t) || t <= now || dayOf(t) !== day ? null : new Date(t).toISOString();
}

/** Create a key, in steps; the success view shows the key once. */
export function CreateKey({ me, onClose, onCreated }: { me: SessionInfo; onClose: () => void; onCreated: () => void }) {
  const catalog = useLoad(() => api.get<ScopeCatalog>('/v1/scopes'), []);
  const environments = Object.keys(me.gateway_urls);
  const [step, setStep] = useState(1);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [environment, setEnvironment] = useState(environments[0] ?? '');
  const [scopes, setScopes] = useState<Set<string>>(new Set());
  const [application, setApplication] = useState('');
  const [policyName, setPolicyName] = useState('');
  const apps = useApplications();
  const policies = useLoad(() => api.get<{ data: Policy[] }>('/v1/policies'), []);
  const policy = policies.data?.data.find((p) => p.name === policyName) ?? null;
  const [expiry, setExpiry] = useState<Expiry>('default');
  const [expiryDay, setExpiryDay] = useState('');
  const [ips, setIps] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [issued, setIssued] = useState<IssuedKey | null>(null);
  const sudo = useSudo(me.via);
  // Left at none, the policy's quota or credits (if any) apply.
  const quota = useQuotaForm({ quota: null, credits: null }, policy ? "None (the policy's, if it has one)" : 'None');

  const { list: ipList, bad: badIp } = parseAllowlist(ips);
  const expiresAt = expiry === 'date' ? endOfDay(expiryDay, serverNow()) : null;
  const badDay = expiry === 'date' && expiresAt === null;
  const policyExpiry = policy?.expires_in_seconds ? Math.round(policy.expires_in_seconds / 86_400) : null;

  const submit = () =>
    sudo.run(async () => {
      setError(null);
      try {
        const body: Record<string, unknown> = { name, description: description || null, environment, scopes: [...scopes] };
        if (application) body['application'] = application;
        if (policyName) body['policy'] = policyName;
        if (expiry === 'never') body['expires_at'] = null;
        else if (expiry === 'date') body['expires_at'] = expiresAt;
        else if (typeof expiry === 'number') body['expires_at'] = new Date(serverNow() + expiry * DAY_MS).toISOString();
        // Left empty, the policy's allowlist (if any) applies.
        if (ipList.length > 0) body['ip_allowlist'] = ipList;
        if (quota.spec) body[quota.kind] = quota.spec;
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
            {apps.length > 0 && (
              <label>
                Application (optional)
                <select name="application" value={application} onChange={(e) => setApplication(e.currentTarget.value)}>
                  <option value="">None</option>
                  {apps
                    .filter((a) => a.status === 'active')
                    .map((a) => (
                      <option key={a.id} value={a.id}>
                        {a.name}
                      </option>
                    ))}
                </select>
              </label>
            )}
            {policies.data && policies.data.data.length > 0 && (
              <label>
                Policy (optional)
                <select name="policy" value={policyName} onChange={(e) => setPolicyName(e.currentTarget.value)} aria-describedby="policy-help">
                  <option value="">None</option>
                  {policies.data.data.map((p) => (
                    <option key={p.name} value={p.name}>
                      {p.name}
                    </option>
                  ))}
                </select>
                <span id="policy-help" class="muted small">
                  {policy ? (policy.description ?? 'Limits, expiry and allowlist left unset come from the policy.') : 'A policy fills in the limits, expiry and allowlist you leave unset.'}
                </span>
              </label>
            )}
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
              <label class="inline">
                <input type="radio" name="expiry" checked={expiry === 'default'} onChange={() => setExpiry('default')} />{' '}
                {policyExpiry === null ? 'Never' : `As the policy sets (${fmt.format(policyExpiry)} days)`}
              </label>
              {policyExpiry !== null && (
                <label class="inline">
                  <input type="radio" name="expiry" checked={expiry === 'never'} onChange={() => setExpiry('never')} /> Never
                </label>
              )}
              {EXPIRY_DAYS.map(([label, days]) => (
                <label class="inline" key={label}>
                  <input type="radio" name="expiry" checked={expiry === days} onChange={() => setExpiry(days)} /> {label}
                </label>
              ))}
              <label class="inline">
                <input type="radio" name="expiry" checked={expiry === 'date'} onChange={() => setExpiry('date')} /> On a date
              </label>
              {expiry === 'date' && (
                <label>
                  Expires at the end of (UTC)
                  <input
                    type="date"
                    name="expires_on"
                    value={expiryDay}
                    min={dayOf(serverNow() + DAY_MS)}
                    aria-invalid={badDay}
                    aria-describedby="expiry-help"
                    onInput={(e) => setExpiryDay(e.currentTarget.value)}
                  />
                </label>
              )}
              {expiry === 'date' && (
                <p id="expiry-help" class={badDay && expiryDay ? 'field-error' : 'muted small'}>
                  {badDay && expiryDay ? 'Pick a day after today.' : 'The key stops working at 23:59:59 UTC that day.'}
                </p>
              )}
            </fieldset>
            <label>
              Allowed IP addresses (comma-separated IPs and CIDRs; empty: {policy?.ip_allowlist?.length ? `the policy's, ${policy.ip_allowlist.join(', ')}` : 'any'})
              <input name="ip_allowlist" value={ips} onInput={(e) => setIps(e.currentTarget.value)} aria-invalid={badIp !== undefined} aria-describedby="ip-help" />
            </label>
            <p id="ip-help" class={badIp ? 'field-error' : 'muted small'}>
              {badIp ? `"${badIp}" is not an IP address or CIDR` : 'For example 203.0.113.0/24, 2001:db8::1'}
            </p>
            {quota.fields}
          </>
        )}
        <ErrorNote error={error} />
        <div class="actions">
          {step > 1 && (
            <button type="button" class="secondary" onClick={() => setStep(step - 1)}>
              Back
            </button>
          )}
          <button type="submit" disabled={step === 3 && (badIp !== undefined || badDay || quota.problem !== null)}>
            {step < 3 ? 'Next' : 'Create key'}
          </button>
        </div>
      </form>
      {sudo.dialog}
    </Modal>
  );
}
