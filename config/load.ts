import { existsSync, readFileSync } from 'node:fs';
import { ConfigError } from '../core/internal-errors.js';
import { checkTlsFiles, type TlsSettings } from '../core/tls.js';
import { didYouMean, formatPath, type ConfigDetail, type Detail } from '../core/validation.js';
import { parsePartially, type PartialParse, type Path, type Problem } from './partial.js';
import { configSchema, type Config } from './schema.js';
import { readYaml, type Position, type YamlSource } from './source.js';

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

const WHOLE_VAR = /^\$\{[^}]+\}$/;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string value, reporting unset variables
 * (one problem per value, naming each variable it lacks).
 * A value that is one reference and nothing else takes the type its text has in YAML, so
 * `port: ${ADMIN_PORT}` becomes a number and `access: ${ACCESS_LOG}` a boolean.
 */
function substitute(value: unknown, path: PropertyKey[], env: NodeJS.ProcessEnv, problems: Problem[]): unknown {
  if (typeof value === 'string') {
    const unset: string[] = [];
    const text = value.replace(VAR, (_, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      if (!unset.includes(name)) unset.push(name);
      return '';
    });
    if (unset.length > 0) {
      const names = unset.join(', ');
      problems.push({ path, message: `environment variable${unset.length > 1 ? 's' : ''} ${names} ${unset.length > 1 ? 'are' : 'is'} not set` });
    }
    if (!WHOLE_VAR.test(value)) return text;
    if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
    if (text === 'true' || text === 'false') return text === 'true';
    return text;
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, [...path, i], env, problems));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substitute(v, [...path, k], env, problems);
    return out;
  }
  return value;
}

/**
 * Rules that span several fields, run on every part that parsed (`p.value`), so one `--check`
 * reports schema and cross-field problems together. A rule reads only what the input gave
 * (`p.known`), never a default standing in for a refused part, and a reference is checked
 * against every name the input declares (`raw`, after substitution), so a plan that is there
 * but invalid is one problem, not one more per route naming it.
 */
function crossCheck(p: PartialParse<Config>, raw: unknown): Problem[] {
  const c = p.value;
  const problems: Problem[] = [];
  const add = (path: Path, message: string) => problems.push({ path: p.origin(path), message });
  /** A path as the input writes it, for messages that point at a second place. */
  const written = (path: Path) => formatPath(p.origin(path));
  const known = (...paths: Path[]) => paths.every((path) => p.known(path));
  /** The names the input declares in the record or name list at `path`, or null when unreadable. */
  const declared = (path: Path, fallback: Iterable<string>): Set<string> | null => {
    if (!p.known(path)) return null;
    const given = valueAt(raw, p.origin(path));
    if (given === undefined) return new Set(fallback);
    if (Array.isArray(given)) return new Set(given.flatMap((e) => (typeof e === 'string' ? [e] : isRecord(e) && typeof e['name'] === 'string' ? [e['name']] : [])));
    return isRecord(given) ? new Set(Object.keys(given)) : null;
  };
  /** How many entries the input gives at `path` (0 when absent), or null when unreadable. */
  const count = (path: Path): number | null => {
    if (!p.known(path)) return null;
    const given = valueAt(raw, p.origin(path));
    return given === undefined ? 0 : Array.isArray(given) ? given.length : null;
  };
  const role = known(['role']) ? c.role : null;

  const envs = declared(['keys', 'environments'], Object.keys(c.keys.environments));
  if (envs?.size === 0) add(['keys', 'environments'], 'must name at least one environment');
  if (known(['keys', 'environments'])) {
    const tags = new Set<string>();
    for (const [env, tag] of Object.entries(c.keys.environments)) {
      if (tags.has(tag)) add(['keys', 'environments', env], `tag "${tag}" is used twice`);
      tags.add(tag);
    }
  }

  const ports = new Set<string>();
  const bind = (path: Path, host: string, port: number) => {
    if (port === 0 || !known([...path, 'host'], [...path, 'port'])) return;
    const id = `${host}:${port}`;
    if (ports.has(id)) add([...path, 'port'], `${id} is bound twice`);
    ports.add(id);
  };
  c.listeners.forEach((l, i) => {
    if (envs && !envs.has(l.environment) && known(['listeners', i, 'environment'])) {
      add(['listeners', i, 'environment'], `must be one of: ${[...envs].join(', ')}${didYouMean(l.environment, envs)}`);
    }
    bind(['listeners', i], l.host, l.port);
  });
  if (role !== null && role !== 'gateway') bind(['admin'], c.admin.host, c.admin.port);
  if (role !== null && role !== 'admin' && c.status_listener) bind(['status_listener'], c.status_listener.host, c.status_listener.port);
  const verify = c.status_listener?.verify;
  if (verify && known(['status_listener', 'verify'])) {
    if (verify.token !== null && verify.token_file !== null) add(['status_listener', 'verify', 'token_file'], 'give token or token_file, not both');
    if (verify.environment !== null && envs && !envs.has(verify.environment)) {
      add(['status_listener', 'verify', 'environment'], `must be one of: ${[...envs].join(', ')}${didYouMean(verify.environment, envs)}`);
    }
  }
  if (c.demo_upstream) bind(['demo_upstream'], c.demo_upstream.host, c.demo_upstream.port);
  if (role !== null && role !== 'admin' && count(['listeners']) === 0) add(['listeners'], 'the gateway needs at least one listener');
  // The files of every TLS block this process would serve: exist, parse, match, in date.
  const tlsFiles = (path: Path, tls: TlsSettings & { hsts?: { max_age: number; include_subdomains: boolean; preload: boolean } | null }) => {
    if (!known([...path, 'tls'])) return;
    if (tls.client_auth !== 'none' && tls.ca === null) add([...path, 'tls', 'client_auth'], 'needs tls.ca, the CA that signs client certificates');
    const h = tls.hsts;
    if (h?.preload && (!h.include_subdomains || h.max_age < 31_536_000)) {
      add([...path, 'tls', 'hsts', 'preload'], 'preload lists need include_subdomains: true and max_age of at least 31536000 (a year)');
    }
    for (const problem of checkTlsFiles(tls)) add([...path, 'tls', ...problem.path], problem.message);
  };
  if (role !== 'admin') c.listeners.forEach((l, i) => l.tls && tlsFiles(['listeners', i], l.tls));
  if (role !== null && role !== 'gateway' && c.admin.tls) tlsFiles(['admin'], c.admin.tls);
  if (role !== null && role !== 'admin' && c.status_listener?.tls) tlsFiles(['status_listener'], c.status_listener.tls);
  if (known(['workers'], ['store', 'type']) && c.workers > 1 && c.store.type === 'file') {
    add(['workers'], 'more than one gateway worker needs the sqlite or redis store (a file store has one owner)');
  }

  const plans = declared(['plans'], Object.keys(c.plans));
  if (plans && !plans.has('default')) add(['plans'], 'must define a "default" plan');
  const plan = (path: Path, name: string | null) => {
    if (name !== null && plans && !plans.has(name)) add(path, `"${name}" is not a plan${didYouMean(name, plans)}`);
  };

  const catalog = declared(['scopes', 'catalog'], c.scopes.catalog.map((e) => e.name));
  const scope = (path: Path, name: string) => {
    if (catalog && !catalog.has(name)) add(path, `"${name}" is not in scopes.catalog${didYouMean(name, catalog)}`);
  };
  if (known(['scopes', 'catalog'])) {
    const seen = new Set<string>();
    c.scopes.catalog.forEach((e, i) => {
      if (!known(['scopes', 'catalog', i, 'name'])) return;
      if (seen.has(e.name)) add(['scopes', 'catalog', i], `"${e.name}" is listed twice`);
      seen.add(e.name);
    });
  }
  for (const [preset, scopes] of Object.entries(c.scopes.presets)) {
    if (catalog?.has(preset)) add(['scopes', 'presets', preset], 'has the name of a scope');
    scopes.forEach((s, i) => scope(['scopes', 'presets', preset, i], s));
  }

  const apiNames = new Set<string>();
  const prefixes = new Map<string, number>();
  c.apis.forEach((api, i) => {
    if (known(['apis', i, 'name'])) {
      if (apiNames.has(api.name)) add(['apis', i, 'name'], `"${api.name}" is used twice`);
      apiNames.add(api.name);
    }
    if (known(['apis', i, 'host'], ['apis', i, 'path_prefix'])) {
      // Prefixes are matched without ASCII case (docs/architecture.md, Route rules).
      const prefix = `${api.host ?? ''} ${api.path_prefix.toLowerCase()}`;
      const other = prefixes.get(prefix);
      if (other !== undefined && c.apis[other]!.path_prefix !== api.path_prefix) {
        add(['apis', i, 'path_prefix'], `differs from ${written(['apis', other, 'path_prefix'])} only by case`);
      }
      prefixes.set(prefix, i);
    }
    if (typeof api.unlisted === 'object') api.unlisted.scopes.forEach((s, k) => scope(['apis', i, 'unlisted', 'scopes', k], s));
    const folded = new Map<string, number>();
    const byCase = !api.case_sensitive && known(['apis', i, 'case_sensitive']);
    api.routes.forEach((r, j) => {
      const route = ['apis', i, 'routes', j];
      r.scopes.forEach((s, k) => scope([...route, 'scopes', k], s));
      plan([...route, 'plan'], r.plan);
      if (r.plan !== null && r.rate_limit !== null) add(route, 'set either plan or rate_limit, not both');
      if (!byCase || !known([...route, 'method'], [...route, 'path'])) return;
      // Without case, the later of two such rules is never reached: a config meant for a
      // case-sensitive upstream, which must say so.
      const key = `${r.method} ${r.path.toLowerCase()}`;
      const first = folded.get(key);
      if (first !== undefined && api.routes[first]!.path !== r.path) {
        const firstPath = written(['apis', i, 'routes', first]);
        add([...route, 'path'], `differs from ${firstPath.slice(firstPath.lastIndexOf('.') + 1)} only by case; rules match without case unless the API sets case_sensitive: true`);
      }
      if (first === undefined) folded.set(key, j);
    });
  });

  for (const [name, policy] of Object.entries(c.policies)) {
    plan(['policies', name, 'plan'], policy.plan);
    if (policy.plan !== null && policy.rate_limit !== null) add(['policies', name], 'set either plan or rate_limit, not both');
    if (policy.quota !== null && policy.credits !== null) add(['policies', name], 'set either quota or credits, not both');
  }
  for (const [name, p] of Object.entries(c.plans)) {
    if (p.quota !== null && p.credits !== null) add(['plans', name], 'set either quota or credits, not both');
  }

  const tokenNames = new Set<string>();
  const tokenValues = new Set<string>();
  c.admin.tokens.forEach((t, i) => {
    if (known(['admin', 'tokens', i, 'name'])) {
      if (tokenNames.has(t.name)) add(['admin', 'tokens', i, 'name'], `"${t.name}" is used twice`);
      tokenNames.add(t.name);
    }
    if (known(['admin', 'tokens', i, 'token'])) {
      if (tokenValues.has(t.token)) add(['admin', 'tokens', i, 'token'], 'is the same as another token');
      tokenValues.add(t.token);
    }
  });
  const emails = new Set<string>();
  c.dashboard.users.forEach((u, i) => {
    if (!known(['dashboard', 'users', i, 'email'])) return;
    if (emails.has(u.email)) add(['dashboard', 'users', i, 'email'], `"${u.email}" is used twice`);
    emails.add(u.email);
  });
  if (role !== null && role !== 'gateway' && count(['admin', 'tokens']) === 0) add(['admin', 'tokens'], 'the admin plane needs at least one token');
  return problems;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function valueAt(root: unknown, path: Path): unknown {
  let node = root;
  for (const seg of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[seg];
  }
  return node;
}

/**
 * What a valid config allows but an operator should know, printed by `--check` and logged at
 * start-up.
 */
export function configWarnings(c: Config): Detail[] {
  return warnings(c).map((w) => ({ path: formatPath(w.path), message: w.message }));
}

function warnings(c: Config): Problem[] {
  const out: Problem[] = [];
  c.apis.forEach((api, i) => {
    if (api.unlisted === 'allow') {
      out.push({ path: ['apis', i, 'unlisted'], message: 'allow: requests that match no route rule are forwarded and need no scope' });
    }
  });
  if (c.store.type === 'file') {
    out.push({
      path: ['store', 'type'],
      message: `file: the file store is deprecated and goes in a later release; move to sqlite with \`keygate migrate --from file:${c.store.path} --to sqlite:${c.store.path}/keygate.db\` (docs/operations.md, "Moving from the file store")`,
    });
  }
  if (c.tracing.enabled && c.tracing.otlp === null) {
    out.push({
      path: ['tracing', 'otlp'],
      message: "null with tracing enabled: the upstream's spans will name Keygate's spans as parents, and no backend will have them; set tracing.otlp, or turn tracing off to pass traceparent through as sent",
    });
  }
  if (c.role !== 'gateway' && !isLoopback(c.admin.host)) {
    c.admin.tokens.forEach((t, i) => {
      if (t.token === EXAMPLE_ADMIN_TOKEN) {
        out.push({
          path: ['admin', 'tokens', i, 'token'],
          message: `is the example's token, and the admin API listens on ${c.admin.host}, beyond this machine: set KEYGATE_ADMIN_TOKEN to a secret of your own`,
        });
      }
    });
  }
  return out;
}

/** The admin token gateway.yaml.example falls back to when KEYGATE_ADMIN_TOKEN is unset. */
const EXAMPLE_ADMIN_TOKEN = 'dev-admin-token-change-me';

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v)) deepFreeze(child);
  }
  return v;
}

/** Every problem of a parsed document (schema, environment and cross-field), and what parsed. */
function validate(raw: unknown, env: NodeJS.ProcessEnv): { config: Config; problems: Problem[] } {
  const problems: Problem[] = [];
  const substituted = substitute(raw ?? {}, [], env, problems);
  const parsed = parsePartially(configSchema, substituted, problems.map((p) => p.path));
  problems.push(...parsed.problems, ...crossCheck(parsed, substituted));
  return { config: parsed.value, problems };
}

/** Each problem once, placed in the text when there is one, in the order they are written. */
function details(problems: readonly (Problem & { position?: Position })[], yaml?: YamlSource): ConfigDetail[] {
  const seen = new Set<string>();
  const out: ConfigDetail[] = [];
  for (const p of problems) {
    const path = formatPath(p.path);
    const id = `${path}\0${p.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const at = p.position ?? yaml?.locate(p.path, p.atKey);
    out.push(at ? { path, message: p.message, line: at.line, column: at.column } : { path, message: p.message });
  }
  const order = (d: ConfigDetail) => (d.line === undefined ? Infinity : d.line * 1e6 + (d.column ?? 0));
  return out.sort((a, b) => order(a) - order(b));
}

/**
 * Validates a parsed document; every problem is reported at once (docs/configuration.md,
 * "Checking a configuration"). The result is frozen.
 */
export function parseConfig(raw: unknown, source = 'config', env: NodeJS.ProcessEnv = process.env): Config {
  const { config, problems } = validate(raw, env);
  if (problems.length > 0) throw new ConfigError(source, details(problems));
  return deepFreeze(config);
}

/** The configuration in YAML `text`, and its warnings; problems and warnings carry their line. */
export function checkConfigText(text: string, source = 'config', env: NodeJS.ProcessEnv = process.env): { config: Config; warnings: ConfigDetail[] } {
  const yaml = readYaml(text);
  if (yaml.value === undefined && yaml.problems.length > 0) throw new ConfigError(source, details(yaml.problems, yaml));
  const { config, problems } = validate(yaml.value, env);
  if (yaml.problems.length + problems.length > 0) throw new ConfigError(source, details([...yaml.problems, ...problems], yaml));
  return { config: deepFreeze(config), warnings: details(warnings(config), yaml) };
}

export function parseConfigText(text: string, source = 'config', env: NodeJS.ProcessEnv = process.env): Config {
  return checkConfigText(text, source, env).config;
}

export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  return parseConfigText(readFileSync(path, 'utf8'), path, env);
}

/** {@link checkConfigText} of the file at `path`. */
export function checkConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): { config: Config; warnings: ConfigDetail[] } {
  return checkConfigText(readFileSync(path, 'utf8'), path, env);
}

/** `--config` when given, else `gateway.yaml` in the working directory, else the example. */
export function defaultConfigPath(explicit: string | undefined, cwd = process.cwd()): string {
  if (explicit) return explicit;
  const local = `${cwd}/gateway.yaml`;
  return existsSync(local) ? local : `${cwd}/gateway.yaml.example`;
}
