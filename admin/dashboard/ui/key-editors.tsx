import { useState } from 'preact/hooks';
import { api, serverNow, type ApiCatalog, type ScopeCatalog } from './api';
import { EditForm, type Editor, type EditorProps } from './edit-form';
import { parseAllowlist, ScopePicker } from './key-fields';
import { QuotaEditor } from './quota';
import { ErrorNote, fmt, useLoad, When } from './ui';
import { localValue, utc } from './usage';

export type { Editor } from './edit-form';

/** The editor of one of the key page's settings (the dialogs are in this file; the quota's in quota.tsx). */

export function KeyEditor(props: EditorProps & { editor: Editor }) {
  switch (props.editor) {
    case 'permissions':
      return <PermissionsEditor {...props} />;
    case 'rate limit':
      return <RateLimitEditor {...props} />;
    case 'IP allowlist':
      return <AllowlistEditor {...props} />;
    case 'expiry':
      return <ExpiryEditor {...props} />;
    case 'quota':
      return <QuotaEditor {...props} />;
  }
}

const list = (items: string[]) => items.map((s, i) => [i > 0 ? (i === items.length - 1 ? ' and ' : ', ') : '', <code key={s}>{s}</code>]);

function PermissionsEditor(props: EditorProps) {
  const k = props.keyRecord;
  const catalog = useLoad(() => api.get<ScopeCatalog>('/v1/scopes'), []);
  const [scopes, setScopes] = useState(() => new Set(k.scopes));
  const removed = k.scopes.filter((s) => !scopes.has(s));
  const added = [...scopes].filter((s) => !k.scopes.includes(s));
  const changed = removed.length + added.length > 0;
  return (
    <EditForm
      {...props}
      editor="permissions"
      wide
      body={() => (changed ? { scopes: [...scopes] } : null)}
      consequence={
        !changed ? (
          <p class="muted">No change yet.</p>
        ) : (
          <>
            {removed.length > 0 && (
              <p class="warning">
                Requests needing {list(removed)} will be refused from the next request.
              </p>
            )}
            {added.length > 0 && <p>Requests needing {list(added)} will be allowed from the next request.</p>}
            {scopes.size === 0 && <p>With no scopes, the key reaches only routes that need none.</p>}
          </>
        )
      }
    >
      <ErrorNote error={catalog.error} />
      {catalog.data ? <ScopePicker catalog={catalog.data} scopes={scopes} onChange={setScopes} /> : !catalog.error && <p aria-busy="true">Loading the scopes…</p>}
    </EditForm>
  );
}

const positiveInt = (s: string) => /^\d+$/.test(s.trim()) && Number(s) >= 1;

function RateLimitEditor(props: EditorProps) {
  const k = props.keyRecord;
  const apis = useLoad(() => api.get<ApiCatalog>('/v1/apis'), []);
  const currentPlan = k.plan ?? 'default';
  const [kind, setKind] = useState<'plan' | 'own'>(k.rate_limit ? 'own' : 'plan');
  const [plan, setPlan] = useState(currentPlan);
  const [limit, setLimit] = useState(String(k.rate_limit?.limit ?? ''));
  const [windowSeconds, setWindowSeconds] = useState(String(k.rate_limit?.window_seconds ?? 60));
  const [burst, setBurst] = useState(k.rate_limit?.burst ? String(k.rate_limit.burst) : '');
  const badLimit = kind === 'own' && !positiveInt(limit);
  const badWindow = kind === 'own' && !(Number(windowSeconds) > 0);
  const badBurst = kind === 'own' && burst.trim() !== '' && !positiveInt(burst);
  const plans = apis.data?.plans ?? [];
  const chosen = plans.find((p) => p.name === plan);
  const body = (): Record<string, unknown> | null => {
    if (kind === 'plan') return plan === currentPlan && k.rate_limit === null ? null : { rate_limit: null, plan: plan === currentPlan ? k.plan : plan };
    if (badLimit || badWindow || badBurst) return null;
    return { rate_limit: { limit: Number(limit), window_seconds: Number(windowSeconds), burst: burst.trim() ? Number(burst) : null } };
  };
  return (
    <EditForm
      {...props}
      editor="rate limit"
      body={body}
      consequence={
        kind === 'plan' ? (
          chosen && (
            <p>
              The key will be limited to {fmt.format(chosen.limit)} requests per {chosen.window_seconds} s{chosen.burst ? `, up to ${fmt.format(chosen.burst)} at once` : ''}, by the plan {chosen.name}, from the next request.
            </p>
          )
        ) : (
          !badLimit &&
          !badWindow && (
            <p>
              The key will be limited to {fmt.format(Number(limit))} requests per {windowSeconds} s from the next request, whatever its plan; the gateway's <code>RateLimit</code> headers say so.
            </p>
          )
        )
      }
    >
      <ErrorNote error={apis.error} />
      <fieldset>
        <legend>Limit</legend>
        <label class="inline">
          <input type="radio" name="limit-kind" checked={kind === 'plan'} onChange={() => setKind('plan')} /> Use a plan
        </label>
        <label class="inline">
          <input type="radio" name="limit-kind" checked={kind === 'own'} onChange={() => setKind('own')} /> Its own limit
        </label>
      </fieldset>
      {kind === 'plan' ? (
        <label>
          Plan
          <select name="plan" value={plan} onChange={(e) => setPlan(e.currentTarget.value)}>
            {plans.map((p) => (
              <option key={p.name} value={p.name}>
                {p.name}: {fmt.format(p.limit)} per {p.window_seconds} s
              </option>
            ))}
          </select>
        </label>
      ) : (
        <div class="fields">
          <label>
            Requests
            <input name="limit" inputMode="numeric" value={limit} onInput={(e) => setLimit(e.currentTarget.value)} aria-invalid={badLimit} required />
          </label>
          <label>
            Per (seconds)
            <input name="window_seconds" inputMode="decimal" value={windowSeconds} onInput={(e) => setWindowSeconds(e.currentTarget.value)} aria-invalid={badWindow} required />
          </label>
          <label>
            Burst (optional)
            <input name="burst" inputMode="numeric" value={burst} onInput={(e) => setBurst(e.currentTarget.value)} aria-invalid={badBurst} />
          </label>
        </div>
      )}
      {(badLimit || badWindow || badBurst) && (
        <p class="field-error">
          {badLimit ? 'The number of requests must be a whole number of at least 1.' : badWindow ? 'The window must be a positive number of seconds.' : 'The burst must be a whole number of at least 1, or empty.'}
        </p>
      )}
    </EditForm>
  );
}

function AllowlistEditor(props: EditorProps) {
  const k = props.keyRecord;
  const [text, setText] = useState((k.ip_allowlist ?? []).join(', '));
  const { list: ips, bad } = parseAllowlist(text);
  const same = ips.join(',') === (k.ip_allowlist ?? []).join(',');
  return (
    <EditForm
      {...props}
      editor="IP allowlist"
      body={() => (bad !== undefined || same ? null : { ip_allowlist: ips.length ? ips : null })}
      consequence={
        same ? (
          <p class="muted">No change yet.</p>
        ) : ips.length ? (
          <p class="warning">Requests from any other address will be refused from the next request.</p>
        ) : (
          <p>Requests from any address will be accepted from the next request.</p>
        )
      }
    >
      <label>
        Allowed IP addresses (comma-separated IPs and CIDRs; empty: any)
        <input name="ip_allowlist" value={text} onInput={(e) => setText(e.currentTarget.value)} aria-invalid={bad !== undefined} aria-describedby="allowlist-help" />
      </label>
      <p id="allowlist-help" class={bad ? 'field-error' : 'muted small'}>
        {bad ? `"${bad}" is not an IP address or CIDR` : 'For example 203.0.113.0/24, 2001:db8::1'}
      </p>
    </EditForm>
  );
}

const EXPIRIES: [string, number | null][] = [
  ['Never', null],
  ['30 days', 30],
  ['90 days', 90],
  ['1 year', 365],
];

function ExpiryEditor(props: EditorProps) {
  const k = props.keyRecord;
  // 'date': the date field; a number: days from now; null: never.
  const [choice, setChoice] = useState<number | null | 'date'>(k.expires_at === null ? null : 'date');
  const [date, setDate] = useState(() => localValue(k.expires_at !== null ? Date.parse(k.expires_at) : serverNow() + 30 * 86_400_000));
  const iso = choice === 'date' ? utc(date) : null;
  const badDate = choice === 'date' && (iso === null || Date.parse(iso) <= serverNow());
  const target = choice === null ? null : choice === 'date' ? iso : new Date(serverNow() + choice * 86_400_000).toISOString();
  const same = choice === 'date' ? iso !== null && k.expires_at !== null && Date.parse(iso) === Date.parse(k.expires_at) : choice === null && k.expires_at === null;
  const exact = (at: string) => new Date(at).toLocaleString('en-GB', { timeZone: 'UTC', dateStyle: 'medium', timeStyle: 'short' }) + ' UTC';
  return (
    <EditForm
      {...props}
      editor="expiry"
      body={() => (badDate || same ? null : { expires_at: target })}
      consequence={
        same ? (
          <p class="muted">No change yet.</p>
        ) : badDate ? null : target === null ? (
          <p>The key will not expire: it works until it is revoked.</p>
        ) : (
          <p>From {exact(target)} requests with this key will be refused.</p>
        )
      }
    >
      <p>
        Now: {k.expires_at === null ? 'never expires' : <>expires <When at={k.expires_at} /> ({exact(k.expires_at)})</>}
      </p>
      <fieldset>
        <legend>Expires</legend>
        {EXPIRIES.map(([label, days]) => (
          <label class="inline" key={label}>
            <input type="radio" name="expiry" checked={choice === days} onChange={() => setChoice(days)} /> {label}
          </label>
        ))}
        <label class="inline">
          <input type="radio" name="expiry" checked={choice === 'date'} onChange={() => setChoice('date')} /> A date
        </label>
      </fieldset>
      {choice === 'date' && (
        <label>
          Expires at (UTC)
          <input type="datetime-local" name="expires_at" value={date} onInput={(e) => setDate(e.currentTarget.value)} aria-invalid={badDate} aria-describedby="expiry-help" />
        </label>
      )}
      {choice === 'date' && (
        <p id="expiry-help" class={badDate ? 'field-error' : 'muted small'}>
          {badDate ? 'The date must be in the future.' : 'A time in UTC, as every time on these pages.'}
        </p>
      )}
    </EditForm>
  );
}
