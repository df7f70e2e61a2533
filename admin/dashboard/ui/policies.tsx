import { api, type Policy } from './api';
import { limitText } from './apis';
import { ErrorNote, fmt, useLoad } from './ui';

function duration(seconds: number): string {
  if (seconds === 0) return 'none';
  if (seconds % 86_400 === 0) return `${fmt.format(seconds / 86_400)} ${seconds === 86_400 ? 'day' : 'days'}`;
  if (seconds % 3600 === 0) return `${fmt.format(seconds / 3600)} ${seconds === 3600 ? 'hour' : 'hours'}`;
  if (seconds % 60 === 0) return `${fmt.format(seconds / 60)} min`;
  return `${fmt.format(seconds)} s`;
}

/**
 * The policy templates of the configuration (GET /v1/policies): what a key created with one
 * gets. They change with the configuration, not here, so the page only shows them.
 */
export function PoliciesPage() {
  const policies = useLoad(() => api.get<{ data: Policy[] }>('/v1/policies'), []);
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Policies</h1>
      <p class="muted">
        Templates a key names in <code>policy</code> when it is created: fields the request leaves out come from the policy. They are set in the configuration
        (<code>policies</code>).
      </p>
      <ErrorNote error={policies.error} />
      {policies.data && policies.data.data.length === 0 && <p class="empty">The configuration has no policies.</p>}
      {policies.data && policies.data.data.length > 0 && (
        <div class="grid">
          {policies.data.data.map((p) => (
            <div class="card" key={p.name} aria-labelledby={`policy-${p.name}`}>
              <h2 id={`policy-${p.name}`}>
                <code>{p.name}</code>
              </h2>
              {p.description && <p>{p.description}</p>}
              <dl class="meta">
                <dt>Rate limit</dt>
                <dd>{p.rate_limit ? limitText(p.rate_limit) : p.plan ? `plan ${p.plan}` : <span class="muted">the default plan</span>}</dd>
                <dt>Keys expire</dt>
                <dd>{p.expires_in_seconds === null ? <span class="muted">never</span> : `${duration(p.expires_in_seconds)} after creation`}</dd>
                <dt>IP allowlist</dt>
                <dd>{p.ip_allowlist === null ? <span class="muted">anywhere</span> : p.ip_allowlist.map((c) => <code key={c}>{c} </code>)}</dd>
                <dt>Regenerate</dt>
                <dd>{p.allow_regeneration ? `allowed; the old key works ${p.regeneration_grace_seconds === 0 ? 'no longer' : `${duration(p.regeneration_grace_seconds)} more`} by default` : 'not by hand'}</dd>
                <dt>Rotation</dt>
                <dd>
                  {p.rotation === null ? (
                    <span class="muted">none</span>
                  ) : (
                    `every ${fmt.format(p.rotation.every_days)} ${p.rotation.every_days === 1 ? 'day' : 'days'}, the old key working ${duration(p.rotation.grace_seconds)} more`
                  )}
                </dd>
              </dl>
            </div>
          ))}
        </div>
      )}
    </section>
  );
}
