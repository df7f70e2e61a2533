import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, session, type SessionInfo } from './api';
import { ApisPage } from './apis';
import { ApplicationPage, ApplicationsPage } from './applications';
import { AuditPage } from './audit';
import { KeyPage } from './key';
import { KeysPage } from './keys';
import { OverviewPage } from './overview';
import { PoliciesPage } from './policies';
import { ErrorNote, Link, navigate } from './ui';
import { UsagePage } from './usage';
import './style.css';

const PAGES = [
  ['/dashboard', 'Overview'],
  ['/dashboard/keys', 'Keys'],
  ['/dashboard/usage', 'Usage'],
  ['/dashboard/apis', 'API docs'],
  ['/dashboard/applications', 'Applications'],
  ['/dashboard/policies', 'Policies'],
  ['/dashboard/audit', 'Audit log'],
] as const;

function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const on = () => setPath(location.pathname);
    addEventListener('popstate', on);
    return () => removeEventListener('popstate', on);
  }, []);
  return path.replace(/\/+$/, '') || '/dashboard';
}

function App() {
  const [me, setMe] = useState<SessionInfo | null | undefined>(undefined);
  const path = usePath();
  useEffect(() => {
    session.current().then(setMe, (err: unknown) => (err instanceof ApiError && err.status === 401 ? setMe(null) : setMe(null)));
  }, []);
  useEffect(() => {
    const title = PAGES.find(([p]) => p === path)?.[1] ?? (path.startsWith('/dashboard/keys/') ? 'Key' : path.startsWith('/dashboard/applications/') ? 'Application' : 'Dashboard');
    document.title = `${me ? title : 'Sign in'} · Keygate`;
  }, [path, me]);
  if (me === undefined) return null;
  if (me === null) return <SignIn onSignedIn={setMe} />;

  let page;
  const keyId = /^\/dashboard\/keys\/([^/]+)$/.exec(path)?.[1];
  const appId = /^\/dashboard\/applications\/([^/]+)$/.exec(path)?.[1];
  if (keyId) page = <KeyPage me={me} id={decodeURIComponent(keyId)} />;
  else if (appId) page = <ApplicationPage me={me} id={decodeURIComponent(appId)} />;
  else if (path === '/dashboard/keys') page = <KeysPage me={me} />;
  else if (path === '/dashboard/usage') page = <UsagePage />;
  else if (path === '/dashboard/apis') page = <ApisPage />;
  else if (path === '/dashboard/applications') page = <ApplicationsPage me={me} />;
  else if (path === '/dashboard/policies') page = <PoliciesPage />;
  else if (path === '/dashboard/audit') page = <AuditPage />;
  else if (path === '/dashboard') page = <OverviewPage me={me} />;
  else
    page = (
      <section aria-labelledby="page-title">
        <h1 id="page-title">Not found</h1>
        <p>
          No dashboard page here. <Link href="/dashboard">Go to the overview</Link>.
        </p>
      </section>
    );

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Keygate</span>
        <nav aria-label="Dashboard">
          {PAGES.map(([href, label]) => (
            <Link key={href} href={href} aria-current={path === href || (href !== '/dashboard' && path.startsWith(href)) ? 'page' : undefined}>
              {label}
            </Link>
          ))}
        </nav>
        <div class="who">
          <span>
            {me.user.name} · {me.user.role}
            {me.user.tenant ? ` · tenant ${me.user.tenant}` : ''}
          </span>
          <button
            type="button"
            class="secondary"
            onClick={async () => {
              await session.signOut().catch(() => {});
              setMe(null);
              navigate('/dashboard');
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main">{page}</main>
    </>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (s: SessionInfo) => void }) {
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main id="main" class="sign-in">
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            onSignedIn(await session.signIn(mode === 'password' ? { email, password } : { token }));
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Sign in to Keygate</h1>
        {mode === 'password' ? (
          <>
            <label>
              Email
              <input type="email" name="email" autocomplete="username" value={email} onInput={(e) => setEmail(e.currentTarget.value)} required />
            </label>
            <label>
              Password
              <input type="password" name="password" autocomplete="current-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} required />
            </label>
          </>
        ) : (
          <label>
            Admin token
            <input type="password" name="token" autocomplete="off" value={token} onInput={(e) => setToken(e.currentTarget.value)} required />
          </label>
        )}
        <ErrorNote error={error} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        <button type="button" class="link" onClick={() => setMode(mode === 'password' ? 'token' : 'password')}>
          {mode === 'password' ? 'Sign in with an admin token instead' : 'Sign in with email and password instead'}
        </button>
      </form>
    </main>
  );
}

render(<App />, document.getElementById('app')!);
