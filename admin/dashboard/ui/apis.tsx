import { useState } from 'preact/hooks';
import { api, type ApiCatalog, type ApiRoute, type RateLimit } from './api';
import { CopyButton, ErrorNote, fmt, Scopes, useLoad } from './ui';

type Api = ApiCatalog['data'][number];
type Lang = 'curl' | 'fetch' | 'python';
const LANGS: [Lang, string][] = [
  ['curl', 'curl'],
  ['fetch', 'JavaScript (fetch)'],
  ['python', 'Python (requests)'],
];
/** Methods whose example carries a JSON body. */
const WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);
/** What Try it shows of an answer's body, at most. */
const MAX_SHOWN = 20_000;

/** What the page needs to write a request: where, with which header. */
interface Target {
  base: string;
  credential: ApiCatalog['credential'];
}

function bytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${fmt.format(n / (1024 * 1024))} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${fmt.format(n / 1024)} KiB`;
  return `${fmt.format(n)} bytes`;
}

export function limitText(l: RateLimit): string {
  const per = l.window_seconds === 60 ? 'minute' : l.window_seconds === 3600 ? 'hour' : l.window_seconds === 1 ? 'second' : `${fmt.format(l.window_seconds)} s`;
  return `${fmt.format(l.limit)} per ${per}${l.burst === null ? '' : `, burst ${fmt.format(l.burst)}`}`;
}

/**
 * The APIs and routes of the configuration (GET /v1/apis), each with examples in three
 * languages and "Try it", which sends a request through the gateway with a key pasted here. The
 * key lives in this component's state only: never stored, never sent to the admin plane.
 */
export function ApisPage() {
  const catalog = useLoad(() => api.get<ApiCatalog>('/v1/apis'), []);
  const [env, setEnv] = useState<string | null>(null);
  const [lang, setLang] = useState<Lang>('curl');
  const [key, setKey] = useState('');
  const c = catalog.data;
  const envs = c ? Object.keys(c.gateway_urls) : [];
  const chosen = env ?? envs[0] ?? null;
  const target: Target | null = c && chosen !== null ? { base: c.gateway_urls[chosen]!, credential: c.credential } : null;
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">API docs</h1>
      <ErrorNote error={catalog.error} />
      {c && (
        <>
          <div class="card">
            <div class="filters docs-settings">
              <label>
                Environment
                <select value={chosen ?? ''} onChange={(e) => setEnv(e.currentTarget.value)}>
                  {envs.map((e) => (
                    <option key={e} value={e}>
                      {e} — {c.gateway_urls[e]}
                    </option>
                  ))}
                </select>
              </label>
              <label>
                Examples in
                <select value={lang} onChange={(e) => setLang(e.currentTarget.value as Lang)}>
                  {LANGS.map(([v, label]) => (
                    <option key={v} value={v}>
                      {label}
                    </option>
                  ))}
                </select>
              </label>
              <label>
                Key for Try it
                <input
                  type="password"
                  autocomplete="off"
                  spellcheck={false}
                  placeholder="Paste a key"
                  value={key}
                  aria-describedby="key-note"
                  onInput={(e) => setKey(e.currentTarget.value.trim())}
                />
              </label>
            </div>
            <p id="key-note" class="muted small">
              Send your key in the <code>{c.credential.header}</code> header{c.credential.scheme ? ` as "${c.credential.scheme} <key>"` : ''}. A key pasted here stays
              in this page: it is not stored, and it goes only to the gateway, with the requests you send.
            </p>
            {target === null && <p class="warning">No listener serves any environment: there is no gateway to send requests to.</p>}
          </div>
          {c.data.length === 0 && <p class="empty">The gateway serves no API yet.</p>}
          {c.data.map((a) => (
            <ApiCard key={a.name} api={a} target={target} lang={lang} secret={key} />
          ))}
          {c.plans.length > 0 && (
            <div class="card">
              <h2>Rate-limit plans</h2>
              <p class="muted small">A key counts against its plan, or its own limit; a route with a limit of its own counts against that too.</p>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Plan</th>
                    <th scope="col">Limit</th>
                  </tr>
                </thead>
                <tbody>
                  {c.plans.map((p) => (
                    <tr key={p.name}>
                      <td>
                        <code>{p.name}</code>
                      </td>
                      <td>{limitText(p)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}

function ApiCard({ api: a, target, lang, secret }: { api: Api; target: Target | null; lang: Lang; secret: string }) {
  const unlisted =
    a.unlisted.policy === 'deny' ? 'are refused (404 route_not_found)' : a.unlisted.policy === 'allow' ? 'go through with any key' : `need the scopes ${a.unlisted.scopes.join(', ')}`;
  return (
    <div class="card api" aria-labelledby={`api-${a.name}`}>
      <h2 id={`api-${a.name}`}>
        {a.name} <code class="muted">{a.path_prefix}</code>
      </h2>
      <p class="muted small">
        {a.host ? (
          <>
            Answers on the host <code>{a.host}</code>.{' '}
          </>
        ) : null}
        Requests under <code>{a.path_prefix}</code> that match no route below {unlisted}. Bodies up to {bytes(a.max_body_bytes)}.
      </p>
      {a.routes.length === 0 ? (
        <p class="empty">No route rules.</p>
      ) : (
        <ul class="routes">
          {a.routes.map((r, i) => (
            <li key={`${r.method} ${r.path} ${i}`}>
              <RouteDoc api={a} route={r} target={target} lang={lang} secret={secret} />
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function RouteDoc({ api: a, route: r, target, lang, secret }: { api: Api; route: ApiRoute; target: Target | null; lang: Lang; secret: string }) {
  const method = r.method === '*' ? 'GET' : r.method;
  const example = target ? exampleOf(lang, target, a, method, r.example_path) : null;
  return (
    <details>
      <summary>
        <span class={`method m-${r.method === '*' ? 'any' : r.method.toLowerCase()}`}>{r.method === '*' ? 'ANY' : r.method}</span> <code>{r.path}</code>{' '}
        <Scopes scopes={r.scopes} />
        {r.rate_limit && <span class="badge limit">{limitText(r.rate_limit)}</span>}
        {r.plan && <span class="badge limit">plan {r.plan}</span>}
      </summary>
      <div class="route-body">
        {r.name && <p class="muted small">{r.name}</p>}
        <p class="small">
          {r.scopes.length === 0 ? 'Any key of this API may call it.' : `The key needs ${r.scopes.length === 1 ? 'the scope' : 'every one of the scopes'} ${r.scopes.join(', ')}.`}{' '}
          {r.rate_limit ? `This route allows ${limitText(r.rate_limit)} per key.` : r.plan ? `This route counts against the plan ${r.plan}.` : 'It counts against the key’s plan.'}
        </p>
        {example && (
          <div class="secret">
            <pre>
              <code>{example}</code>
            </pre>
            <CopyButton text={example} label={`Copy the ${lang} example for ${r.method} ${r.path}`} />
          </div>
        )}
        {target && <TryIt api={a} route={r} method={method} target={target} secret={secret} />}
      </div>
    </details>
  );
}

/** A request example; the key comes from the environment variable KEYGATE_KEY. */
function exampleOf(lang: Lang, t: Target, a: Api, method: string, path: string): string {
  const url = t.base + path;
  const body = WITH_BODY.has(method);
  const name = t.credential.header === 'authorization' ? 'Authorization' : t.credential.header;
  const scheme = t.credential.scheme ? `${t.credential.scheme} ` : '';
  if (lang === 'curl') {
    const parts = ['curl'];
    if (method !== 'GET') parts.push(`-X ${method}`);
    parts.push(`-H "${name}: ${scheme}$KEYGATE_KEY"`);
    if (a.host) parts.push(`-H "Host: ${a.host}"`);
    if (body) parts.push(`-H "Content-Type: application/json" -d '{}'`);
    parts.push(`"${url}"`);
    return parts.join(' \\\n  ');
  }
  if (lang === 'fetch') {
    const headers = [`"${name}": \`${scheme}\${process.env.KEYGATE_KEY}\``];
    if (a.host) headers.push(`"Host": "${a.host}"`);
    if (body) headers.push(`"Content-Type": "application/json"`);
    return [
      `const res = await fetch("${url}", {`,
      `  method: "${method}",`,
      `  headers: { ${headers.join(', ')} },`,
      ...(body ? ['  body: JSON.stringify({}),'] : []),
      '});',
      'console.log(res.status, await res.text());',
    ].join('\n');
  }
  const headers = [`"${name}": f"${scheme}{os.environ['KEYGATE_KEY']}"`];
  if (a.host) headers.push(`"Host": "${a.host}"`);
  return [
    'import os',
    'import requests',
    '',
    `res = requests.request(`,
    `    "${method}",`,
    `    "${url}",`,
    `    headers={${headers.join(', ')}},`,
    ...(body ? ['    json={},'] : []),
    ')',
    'print(res.status_code, res.text)',
  ].join('\n');
}

/** A JSON answer indented, to be read; anything else as it came. */
function pretty(text: string, type: string | null): string {
  if (!type?.includes('json') || text.length > MAX_SHOWN) return text;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

interface Answer {
  status: number;
  statusText: string;
  ms: number;
  headers: [string, string][];
  body: string;
}

/**
 * Sends one request through the gateway from this browser: a cross-origin request, so the
 * API's CORS rules decide whether the page may send it and read the answer.
 */
function TryIt({ api: a, route: r, method: fixed, target, secret }: { api: Api; route: ApiRoute; method: string; target: Target; secret: string }) {
  const [method, setMethod] = useState(fixed);
  const [path, setPath] = useState(r.example_path);
  const [body, setBody] = useState(WITH_BODY.has(fixed) ? '{}' : '');
  const [answer, setAnswer] = useState<Answer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const origin = location.origin;
  const corsOk = a.cors !== null && (a.cors.origins.includes('*') || a.cors.origins.includes(origin.toLowerCase()));
  const id = `try-${a.name}-${r.method}-${r.path}`.replace(/[^A-Za-z0-9_-]/g, '_');
  const url = (() => {
    // The key goes to the gateway and nowhere else: a path that would leave its origin is refused.
    if (!path.startsWith('/') || path.startsWith('//')) return null;
    try {
      const u = new URL(target.base + path);
      return u.origin === new URL(target.base).origin ? u : null;
    } catch {
      return null;
    }
  })();
  // A header value is one line of visible ASCII; anything else fetch refuses before sending.
  const keyOk = /^[\x21-\x7e]*$/.test(secret);
  const send = async (e: Event) => {
    e.preventDefault();
    if (url === null || secret === '' || !keyOk) return;
    setBusy(true);
    setError(null);
    setAnswer(null);
    const headers: Record<string, string> = { [target.credential.header]: target.credential.scheme ? `${target.credential.scheme} ${secret}` : secret };
    const withBody = WITH_BODY.has(method) && body !== '';
    if (withBody) headers['content-type'] = 'application/json';
    const started = performance.now();
    try {
      const res = await fetch(url, { method, headers, body: withBody ? body : undefined, mode: 'cors', credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' });
      const text = pretty(await res.text(), res.headers.get('content-type'));
      setAnswer({
        status: res.status,
        statusText: res.statusText,
        ms: Math.round(performance.now() - started),
        headers: [...res.headers.entries()],
        body: text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}\n… (${fmt.format(text.length - MAX_SHOWN)} more characters)` : text,
      });
    } catch {
      setError(
        `The browser did not let this page send the request or read its answer. Most often the gateway's CORS rules do not list this page's origin (${origin}) ` +
          `for the API ${a.name}; otherwise the gateway at ${url.origin} cannot be reached from this browser.`,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="try" onSubmit={send} aria-labelledby={`${id}-title`}>
      <h3 id={`${id}-title`}>Try it</h3>
      {!corsOk && (
        <p class="warning small">
          The API {a.name} does not list this page's origin ({origin}) in its CORS rules, so the browser will refuse the request. An operator adds it under{' '}
          <code>apis[].cors.origins</code> (docs/dashboard.md).
        </p>
      )}
      <div class="try-line">
        {r.method === '*' ? (
          <label>
            Method
            <select value={method} onChange={(e) => setMethod(e.currentTarget.value)}>
              {['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </label>
        ) : (
          <span class={`method m-${method.toLowerCase()}`}>{method}</span>
        )}
        <label class="grow">
          Path
          <input value={path} aria-invalid={url === null} onInput={(e) => setPath(e.currentTarget.value)} spellcheck={false} />
        </label>
      </div>
      {url === null && <p class="field-error small">A path on the gateway, starting with a single "/".</p>}
      {WITH_BODY.has(method) && (
        <label>
          Body (JSON)
          <textarea rows={3} value={body} onInput={(e) => setBody(e.currentTarget.value)} spellcheck={false} />
        </label>
      )}
      <div class="actions start">
        <button type="submit" disabled={busy || url === null || secret === '' || !keyOk}>
          Send request
        </button>
        {secret === '' && <span class="muted small">Paste a key above to send.</span>}
        {!keyOk && <span class="field-error small">A key is one word of visible ASCII characters.</span>}
      </div>
      {error && (
        <div class="error" role="alert">
          <p>{error}</p>
        </div>
      )}
      {answer && (
        <div class="answer" role="status">
          <p>
            <strong class={answer.status < 400 ? 'ok-text' : 'err-text'}>
              {answer.status} {answer.statusText}
            </strong>{' '}
            <span class="muted">in {answer.ms} ms</span>
          </p>
          {/* Focusable, so that a keyboard can scroll a long answer. */}
          <pre class="headers" tabIndex={0} aria-label="Response headers">
            <code>{answer.headers.map(([k, v]) => `${k}: ${v}`).join('\n')}</code>
          </pre>
          <pre class="body" tabIndex={0} aria-label="Response body">
            <code>{answer.body || '(empty body)'}</code>
          </pre>
        </div>
      )}
    </form>
  );
}
