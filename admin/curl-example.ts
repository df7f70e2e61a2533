import type { ApiConfig, Config } from '../config/schema.js';

/** What the example depends on of a key. */
export interface ExampleKey {
  id: string;
  environment: string;
  scopes: readonly string[];
  /** null: every API. */
  apis: readonly string[] | null;
}

/** One request the gateway would let through for a key holding `scopes`. */
interface Target {
  api: string;
  host: string | null;
  method: string;
  path: string;
  scopes: readonly string[];
}

/**
 * The `curl` example of a newly issued key: a request the gateway lets that key make, to an API
 * it may call, on a route whose scopes it holds, at the listener of its environment. Safe
 * methods are preferred (running the example should not send an email), then routes without
 * parameters, then the configuration's order. When the key may call nothing (no listener for
 * its environment, no API, no route its scopes open), the example is a shell comment that says
 * so, rather than a request that would be refused.
 *
 * The targets are worked out once, from the configuration; each key only picks among them.
 */
export function curlExamples(config: Config, gatewayUrls: Readonly<Record<string, string>>): (key: ExampleKey, plaintext: string) => string {
  const targets = exampleTargets(config.apis);
  const header = config.keys.header;
  return (rec, plaintext) => {
    const base = gatewayUrls[rec.environment] ?? listenerUrl(config, rec.environment);
    if (base === null) {
      return `# No listener serves the ${rec.environment} environment, so no request can use this key yet; add one under listeners.`;
    }
    const held = new Set(rec.scopes);
    const target = targets.find((t) => (rec.apis === null || rec.apis.includes(t.api)) && t.scopes.every((s) => held.has(s)));
    if (target === undefined) {
      const apis = rec.apis === null ? 'any API' : rec.apis.length === 0 ? 'no API' : `the APIs ${rec.apis.join(', ')}`;
      const scopes = rec.scopes.length === 0 ? 'no scopes' : `the scopes ${rec.scopes.join(', ')}`;
      return `# No route this key may call: it may call ${apis} and holds ${scopes}, which open no configured route. Grant what a route needs with PATCH /v1/keys/${rec.id}.`;
    }
    const credential = header === 'authorization' ? `Authorization: Bearer ${plaintext}` : `${header}: ${plaintext}`;
    const parts = ['curl'];
    if (target.method !== 'GET') parts.push('-X', target.method);
    parts.push('-H', shellQuote(credential));
    if (target.host !== null) parts.push('-H', shellQuote(`Host: ${target.host}`));
    parts.push(shellQuote(base + target.path));
    return parts.join(' ');
  };
}

/** Every request worth showing, best first: safe methods, then literal paths, then config order. */
function exampleTargets(apis: readonly ApiConfig[]): Target[] {
  const ranked: { target: Target; rank: number; order: number }[] = [];
  const add = (target: Target, hasParam: boolean) => {
    if (claimedBy(apis, target.host, target.path) !== target.api) return;
    const rank = (target.method === 'GET' ? 0 : 2) + (hasParam ? 1 : 0);
    ranked.push({ target, rank, order: ranked.length });
  };
  for (const api of apis) {
    for (const rule of api.routes) {
      const method = rule.method === '*' ? 'GET' : rule.method;
      const path = concretePath(rule.path);
      // A request for this path is judged by the first rule it matches, which may not be this one.
      if (firstRule(api, method, path) !== rule) continue;
      add({ api: api.name, host: api.host, method, path, scopes: rule.scopes }, rule.path.split('/').some((s) => s.startsWith(':')));
    }
    if (api.unlisted !== 'deny' && firstRule(api, 'GET', api.path_prefix) === null) {
      add({ api: api.name, host: api.host, method: 'GET', path: api.path_prefix, scopes: api.unlisted === 'allow' ? [] : api.unlisted.scopes }, false);
    }
  }
  return ranked.sort((a, b) => a.rank - b.rank || a.order - b.order).map((r) => r.target);
}

/** A rule's path as a request path: `:name` segments as NAME placeholders, a trailing `*` as nothing. */
export function concretePath(template: string): string {
  const segments = template.split('/');
  if (segments[segments.length - 1] === '*') segments.pop();
  const path = segments.map((s) => (s.startsWith(':') ? s.slice(1).toUpperCase() || 'ID' : s)).join('/');
  return path === '' ? '/' : path;
}

/** The API the gateway picks for a path: the longest prefix, a host-bound API before a host-less one. */
function claimedBy(apis: readonly ApiConfig[], host: string | null, path: string): string | null {
  const lower = path.toLowerCase();
  let best: ApiConfig | null = null;
  for (const api of apis) {
    if (api.host !== null && api.host.toLowerCase() !== host?.toLowerCase()) continue;
    const prefix = api.path_prefix.toLowerCase();
    const under = prefix === '/' || lower === prefix || lower.startsWith(`${prefix}/`);
    if (!under) continue;
    if (best === null || prefix.length > best.path_prefix.length || (prefix.length === best.path_prefix.length && api.host !== null && best.host === null)) best = api;
  }
  return best?.name ?? null;
}

/** The first of the API's rules that a request matches (`:name` one segment, a trailing `*` the rest), as the gateway routes it. */
function firstRule(api: ApiConfig, method: string, path: string): ApiConfig['routes'][number] | null {
  const fold = (s: string) => (api.case_sensitive ? s : s.toLowerCase());
  const want = fold(path).split('/').filter((s) => s !== '');
  for (const rule of api.routes) {
    if (rule.method !== '*' && rule.method !== method) continue;
    const parts = fold(rule.path).split('/').filter((s) => s !== '');
    const rest = parts[parts.length - 1] === '*';
    if (rest) parts.pop();
    if (rest ? want.length < parts.length : want.length !== parts.length) continue;
    if (parts.every((p, i) => p.startsWith(':') || p === want[i])) return rule;
  }
  return null;
}

/** The listener of an environment as a URL a client on this machine can reach; null when there is none. */
export function listenerUrl(config: Config, environment: string): string | null {
  const l = config.listeners.find((x) => x.environment === environment);
  if (!l) return null;
  const host = l.host === '0.0.0.0' ? '127.0.0.1' : l.host === '::' ? '[::1]' : l.host.includes(':') ? `[${l.host}]` : l.host;
  return `http://${host}:${l.port}`;
}

/** A word the shell passes through unchanged. */
function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
