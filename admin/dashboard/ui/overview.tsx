import { useState } from 'preact/hooks';
import { AlertsCard } from './alerts';
import { api, type Key, type Page, type SessionInfo } from './api';
import { CreateKey, KeyTable } from './keys';
import { RateLimitCard } from './rate-limit';
import { CopyButton, ErrorNote, Link, useLoad } from './ui';

export function OverviewPage({ me }: { me: SessionInfo }) {
  const recent = useLoad(() => api.get<Page<Key>>('/v1/keys?limit=5'), []);
  const [creating, setCreating] = useState(false);
  const [env, url] = Object.entries(me.gateway_urls)[0] ?? ['production', 'https://gateway.example.com'];
  const curl = `curl -H "Authorization: Bearer $KEYGATE_KEY" ${url}/`;
  const canWrite = me.user.role !== 'viewer';
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Overview</h1>
      <div class="grid">
        <div class="card">
          <h2>Getting started</h2>
          <ol class="getting-started">
            <li>
              {canWrite ? (
                <button type="button" class="link" onClick={() => setCreating(true)}>
                  Create a key
                </button>
              ) : (
                'Ask a developer or admin for a key'
              )}{' '}
              and copy it: it is shown once.
            </li>
            <li>
              Send a first request to the {env} gateway, with a path of one of your APIs:
              <div class="secret">
                <pre>
                  <code>{curl}</code>
                </pre>
                <CopyButton text={curl} label="Copy the first request" />
              </div>
            </li>
            <li>
              Watch it on the <Link href="/dashboard/usage">usage page</Link>.
            </li>
          </ol>
        </div>
        {recent.data && <RateLimitCard keys={recent.data.data} />}
        <AlertsCard />
        <div class="card">
          <h2>Signed in</h2>
          <dl class="meta">
            <dt>As</dt>
            <dd>{me.user.name}</dd>
            <dt>Role</dt>
            <dd>{me.user.role}</dd>
            <dt>Tenant</dt>
            <dd>{me.user.tenant ?? <span class="muted">all tenants</span>}</dd>
          </dl>
        </div>
      </div>
      <div class="card">
        <div class="page-head">
          <h2>Recent keys</h2>
          <Link href="/dashboard/keys">All keys</Link>
        </div>
        <ErrorNote error={recent.error} />
        {recent.data && <KeyTable keys={recent.data.data} compact />}
      </div>
      {creating && <CreateKey me={me} onClose={() => setCreating(false)} onCreated={recent.reload} />}
    </section>
  );
}
