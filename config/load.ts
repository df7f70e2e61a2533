import { existsSync, readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { formatPath, issuesToDetails, type Detail } from '../core/validation.js';
import { ConfigError } from '../core/internal-errors.js';
import { configSchema, type Config } from './schema.js';

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

const WHOLE_VAR = /^\$\{[^}]+\}$/;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string value, reporting unset variables.
 * A value that is one reference and nothing else takes the type its text has in YAML, so
 * `port: ${ADMIN_PORT}` becomes a number and `access: ${ACCESS_LOG}` a boolean.
 */
function substitute(value: unknown, path: PropertyKey[], env: NodeJS.ProcessEnv, errors: Detail[]): unknown {
  if (typeof value === 'string') {
    const text = value.replace(VAR, (_, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      errors.push({ path: formatPath(path), message: `environment variable ${name} is not set` });
      return '';
    });
    if (!WHOLE_VAR.test(value)) return text;
    if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
    if (text === 'true' || text === 'false') return text === 'true';
    return text;
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, [...path, i], env, errors));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substitute(v, [...path, k], env, errors);
    return out;
  }
  return value;
}

type Section = keyof Config;

/**
 * Rules that span several fields. They run on a partially valid config too, so one `--check`
 * reports schema and cross-field errors together: `invalid` names the top-level sections that
 * failed the schema (they hold their defaults here), and a rule that reads one of them is
 * skipped rather than reporting errors that only follow from the first.
 */
function crossCheck(c: Config, invalid: ReadonlySet<Section>): Detail[] {
  const errors: Detail[] = [];
  const valid = (...sections: Section[]) => sections.every((s) => !invalid.has(s));
  const envNames = Object.keys(c.keys.environments);
  if (valid('keys')) {
    if (envNames.length === 0) errors.push({ path: 'keys.environments', message: 'must name at least one environment' });
    const tags = new Set<string>();
    for (const [env, tag] of Object.entries(c.keys.environments)) {
      if (tags.has(tag)) errors.push({ path: `keys.environments.${env}`, message: `tag "${tag}" is used twice` });
      tags.add(tag);
    }
  }
  const ports = new Set<string>();
  const bind = (p: string, host: string, port: number) => {
    if (port === 0) return;
    const id = `${host}:${port}`;
    if (ports.has(id)) errors.push({ path: p, message: `${id} is bound twice` });
    ports.add(id);
  };
  if (valid('listeners')) {
    c.listeners.forEach((l, i) => {
      if (valid('keys') && !(l.environment in c.keys.environments)) {
        errors.push({ path: `listeners[${i}].environment`, message: `must be one of: ${envNames.join(', ')}` });
      }
      bind(`listeners[${i}].port`, l.host, l.port);
    });
  }
  if (valid('role', 'admin') && c.role !== 'gateway') bind('admin.port', c.admin.host, c.admin.port);
  if (valid('demo_upstream') && c.demo_upstream) bind('demo_upstream.port', c.demo_upstream.host, c.demo_upstream.port);
  if (valid('role', 'listeners') && c.role !== 'admin' && c.listeners.length === 0) {
    errors.push({ path: 'listeners', message: 'the gateway needs at least one listener' });
  }
  if (valid('workers', 'store') && c.workers > 1 && c.store.type !== 'redis') {
    errors.push({ path: 'workers', message: 'more than one gateway worker needs the redis store (a file store has one owner)' });
  }
  if (valid('plans')) {
    if (!('default' in c.plans)) errors.push({ path: 'plans', message: 'must define a "default" plan' });
    for (const [name, p] of Object.entries(c.plans)) {
      if (p.burst !== null && p.burst < 1) errors.push({ path: `plans.${name}.burst`, message: 'must be at least 1' });
    }
  }
  const catalog = new Set(c.scopes.catalog.map((e) => e.name));
  if (valid('scopes')) {
    if (catalog.size !== c.scopes.catalog.length) errors.push({ path: 'scopes.catalog', message: 'names a scope twice' });
    for (const [preset, scopes] of Object.entries(c.scopes.presets)) {
      if (catalog.has(preset)) errors.push({ path: `scopes.presets.${preset}`, message: 'has the name of a scope' });
      scopes.forEach((s, i) => {
        if (!catalog.has(s)) errors.push({ path: `scopes.presets.${preset}[${i}]`, message: `"${s}" is not in scopes.catalog` });
      });
    }
  }
  if (valid('apis')) checkApis(c, valid, catalog, errors);
  if (valid('policies', 'plans')) {
    for (const [name, p] of Object.entries(c.policies)) {
      if (p.plan !== null && !(p.plan in c.plans)) errors.push({ path: `policies.${name}.plan`, message: `"${p.plan}" is not a plan` });
      if (p.plan !== null && p.rate_limit !== null) errors.push({ path: `policies.${name}`, message: 'set either plan or rate_limit, not both' });
    }
  }
  if (valid('admin')) {
    const tokenNames = new Set<string>();
    const tokenValues = new Set<string>();
    c.admin.tokens.forEach((t, i) => {
      if (tokenNames.has(t.name)) errors.push({ path: `admin.tokens[${i}].name`, message: `"${t.name}" is used twice` });
      if (tokenValues.has(t.token)) errors.push({ path: `admin.tokens[${i}].token`, message: 'is the same as another token' });
      tokenNames.add(t.name);
      tokenValues.add(t.token);
    });
    if (valid('role') && c.role !== 'gateway' && c.admin.tokens.length === 0) {
      errors.push({ path: 'admin.tokens', message: 'the admin plane needs at least one token' });
    }
  }
  return errors;
}

function checkApis(c: Config, valid: (...sections: Section[]) => boolean, catalog: ReadonlySet<string>, errors: Detail[]): void {
  const apiNames = new Set<string>();
  const prefixes = new Map<string, number>();
  c.apis.forEach((api, i) => {
    if (apiNames.has(api.name)) errors.push({ path: `apis[${i}].name`, message: `"${api.name}" is used twice` });
    apiNames.add(api.name);
    // Prefixes are matched without ASCII case (docs/architecture.md, Route rules).
    const prefix = `${api.host ?? ''} ${api.path_prefix.toLowerCase()}`;
    const other = prefixes.get(prefix);
    if (other !== undefined && c.apis[other]!.path_prefix !== api.path_prefix) {
      errors.push({ path: `apis[${i}].path_prefix`, message: `differs from apis[${other}].path_prefix only by case` });
    }
    prefixes.set(prefix, i);
    if (valid('scopes') && typeof api.unlisted === 'object') {
      api.unlisted.scopes.forEach((s, k) => {
        if (!catalog.has(s)) errors.push({ path: `apis[${i}].unlisted.scopes[${k}]`, message: `"${s}" is not in scopes.catalog` });
      });
    }
    const folded = new Map<string, number>();
    api.routes.forEach((r, j) => {
      r.scopes.forEach((s, k) => {
        if (valid('scopes') && !catalog.has(s)) {
          errors.push({ path: `apis[${i}].routes[${j}].scopes[${k}]`, message: `"${s}" is not in scopes.catalog` });
        }
      });
      if (valid('plans') && r.plan !== null && !(r.plan in c.plans)) {
        errors.push({ path: `apis[${i}].routes[${j}].plan`, message: `"${r.plan}" is not a plan` });
      }
      if (r.plan !== null && r.rate_limit !== null) {
        errors.push({ path: `apis[${i}].routes[${j}]`, message: 'set either plan or rate_limit, not both' });
      }
      if (api.case_sensitive) return;
      // Without case, the later of two such rules is never reached: a config meant for a
      // case-sensitive upstream, which must say so.
      const key = `${r.method} ${r.path.toLowerCase()}`;
      const first = folded.get(key);
      if (first !== undefined && api.routes[first]!.path !== r.path) {
        errors.push({
          path: `apis[${i}].routes[${j}].path`,
          message: `differs from routes[${first}] only by case; rules match without case unless the API sets case_sensitive: true`,
        });
      }
      if (first === undefined) folded.set(key, j);
    });
  });
}

/**
 * What a valid config allows but an operator should know, printed by `--check` and logged at
 * start-up.
 */
export function configWarnings(c: Config): Detail[] {
  const warnings: Detail[] = [];
  c.apis.forEach((api, i) => {
    if (api.unlisted === 'allow') {
      warnings.push({ path: `apis[${i}].unlisted`, message: 'allow: requests that match no route rule are forwarded and need no scope' });
    }
  });
  if (c.role !== 'gateway' && !isLoopback(c.admin.host)) {
    c.admin.tokens.forEach((t, i) => {
      if (t.token === EXAMPLE_ADMIN_TOKEN) {
        warnings.push({
          path: `admin.tokens[${i}].token`,
          message: `is the example's token, and the admin API listens on ${c.admin.host}, beyond this machine: set KEYGATE_ADMIN_TOKEN to a secret of your own`,
        });
      }
    });
  }
  return warnings;
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

/**
 * The schema applied section by section (each top-level key on its own), so one bad section
 * leaves the others parsed for the cross checks. A section that fails holds its default and
 * is named in `invalid`. The errors are the same as one parse of the whole schema gives.
 */
function parseSections(input: unknown, errors: Detail[]): { config: Config; invalid: Set<Section> } {
  const shape = configSchema.shape;
  const names = Object.keys(shape) as Section[];
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    const whole = configSchema.safeParse(input);
    if (!whole.success) errors.push(...issuesToDetails(whole.error.issues));
    return { config: configSchema.parse({}), invalid: new Set(names) };
  }
  const given = input as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const invalid = new Set<Section>();
  for (const name of names) {
    const section = shape[name].safeParse(given[name]);
    if (section.success) {
      out[name] = section.data;
      continue;
    }
    errors.push(...issuesToDetails(section.error.issues, [name]));
    invalid.add(name);
    const fallback = shape[name].safeParse(undefined);
    out[name] = fallback.success ? fallback.data : undefined;
  }
  for (const name of Object.keys(given)) if (!(name in shape)) errors.push({ path: name, message: 'unknown key' });
  return { config: out as Config, invalid };
}

/**
 * Validates a parsed document; every problem is reported at once, schema and cross-field
 * errors together (crossCheck skips only the rules that read a section the schema refused).
 * The result is frozen.
 */
export function parseConfig(raw: unknown, source = 'config', env: NodeJS.ProcessEnv = process.env): Config {
  const errors: Detail[] = [];
  const substituted = substitute(raw ?? {}, [], env, errors);
  const { config, invalid } = parseSections(substituted, errors);
  errors.push(...crossCheck(config, invalid));
  if (errors.length > 0) throw new ConfigError(source, errors);
  return deepFreeze(config);
}

export function parseConfigText(text: string, source = 'config', env: NodeJS.ProcessEnv = process.env): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({ path: e.linePos ? `line ${e.linePos[0].line}` : '(yaml)', message: e.message.split('\n')[0] ?? e.message })),
    );
  }
  return parseConfig(doc.toJS(), source, env);
}

export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  return parseConfigText(readFileSync(path, 'utf8'), path, env);
}

/** `--config` when given, else `gateway.yaml` in the working directory, else the example. */
export function defaultConfigPath(explicit: string | undefined, cwd = process.cwd()): string {
  if (explicit) return explicit;
  const local = `${cwd}/gateway.yaml`;
  return existsSync(local) ? local : `${cwd}/gateway.yaml.example`;
}
