import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';
import { DEFAULT_URL } from './http.js';

/** One option of a command: `--name VALUE`, or a flag. */
export interface Option {
  /** The value's placeholder in the usage (`NAME`, `a,b`); absent for a flag. */
  value?: string;
  help: string;
  required?: boolean;
  /** May be given more than once (`--meta k=v --meta k2=v2`). */
  multiple?: boolean;
}

export interface Parsed {
  /** Option values by name; a flag is `true` when given. */
  values: Record<string, string | string[] | boolean | undefined>;
  positionals: string[];
  url: string;
  /** Null when the command needs none (hash-password). */
  token: string | null;
  json: boolean;
  timeoutMs: number;
}

/** A command, `keygate <noun> <verb>`: its options, usage and examples, and what it does. */
export interface Command {
  /** `keys create`; a noun without verbs is the noun alone (`usage`). */
  name: string;
  summary: string;
  /** Positional arguments, all required: `['ID']`. */
  args?: readonly string[];
  options: Readonly<Record<string, Option>>;
  examples: readonly string[];
  /** False for commands that do not call the admin API. */
  api?: boolean;
  /** Extra lines after the options. */
  notes?: string;
  /** Why the command takes no (more) arguments, when it matters more than "unexpected argument". */
  noArguments?: string;
}

const COMMON: Readonly<Record<string, Option>> = {
  url: { value: 'URL', help: `the admin API (default: $KEYGATE_URL, else ${DEFAULT_URL})` },
  token: { value: 'TOKEN', help: 'admin token (default: $KEYGATE_TOKEN; prefer it: a command line is visible to other users in ps)' },
  json: { help: "print the API's JSON answer (one document) instead of a table" },
  timeout: { value: 'SECONDS', help: 'give up on the admin plane after this long (default 10)' },
};

function optionLines(options: Readonly<Record<string, Option>>): string[] {
  const left = Object.entries(options).map(([name, o]) => `  --${name}${o.value ? ` ${o.value}` : ''}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  return Object.values(options).map((o, i) => `${left[i]!.padEnd(width)}${o.help}${o.required ? ' (required)' : ''}${o.multiple ? ' (repeatable)' : ''}`);
}

/** The usage of one command: synopsis, options, common options, examples. */
export function usageOf(c: Command): string {
  const required = Object.entries(c.options)
    .filter(([, o]) => o.required)
    .map(([n, o]) => `--${n} ${o.value}`);
  const synopsis = ['keygate', c.name, ...(c.args ?? []), ...required, Object.keys(c.options).length > required.length || c.api !== false ? '[options]' : '']
    .filter(Boolean)
    .join(' ');
  const lines = [`usage: ${synopsis}`, '', c.summary, ''];
  if (Object.keys(c.options).length > 0) lines.push('options:', ...optionLines(c.options), '');
  lines.push('common options:', ...optionLines(c.api === false ? { help: { help: 'print this help' } } : { ...COMMON, help: { help: 'print this help' } }), '');
  if (c.notes) lines.push(c.notes, '');
  lines.push(c.examples.length === 1 ? 'example:' : 'examples:', ...c.examples.map((e) => `  ${e}`));
  return lines.join('\n') + '\n';
}

/**
 * Parses a command's arguments: its options, the common ones, and exactly its positionals.
 * Throws UsageError before anything is sent.
 */
export function parse(c: Command, argv: readonly string[], env: NodeJS.ProcessEnv, warn: (line: string) => void): Parsed {
  const all = c.api === false ? c.options : { ...c.options, ...COMMON };
  const spec: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const [name, o] of Object.entries(all)) spec[name] = { type: o.value ? 'string' : 'boolean', ...(o.multiple ? { multiple: true } : {}) };
  let values: Parsed['values'];
  let positionals: string[];
  try {
    const parsed = parseArgs({ args: [...argv], options: spec, strict: true, allowPositionals: true });
    values = parsed.values as Parsed['values'];
    positionals = parsed.positionals;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const want = c.args ?? [];
  if (positionals.length < want.length) throw new UsageError(`missing ${want.slice(positionals.length).join(' ')}`);
  if (positionals.length > want.length) throw new UsageError(c.noArguments ?? `unexpected argument "${positionals[want.length]}"`);
  for (const [name, o] of Object.entries(c.options)) {
    if (o.required && values[name] === undefined) throw new UsageError(`--${name} is required`);
  }
  const url = (values.url as string | undefined) ?? (env.KEYGATE_URL || DEFAULT_URL);
  if (c.api !== false) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new UsageError(`--url must be an http(s) URL, like ${DEFAULT_URL}; got "${url}"`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--url must be an http(s) URL, like ${DEFAULT_URL}; got "${url}"`);
  }
  let token: string | null = null;
  if (c.api !== false) {
    if (values.token !== undefined) {
      warn('warning: a token on the command line is visible to other users (ps) and lands in shell history; prefer KEYGATE_TOKEN');
    }
    token = (values.token as string | undefined) ?? (env.KEYGATE_TOKEN || null);
    if (!token) throw new UsageError('no admin token: set KEYGATE_TOKEN (or pass --token)');
  }
  const parsed: Parsed = { values, positionals, url, token, json: values.json === true, timeoutMs: 10_000 };
  if (c.api !== false) parsed.timeoutMs = (int(parsed, 'timeout', 1, 3600) ?? 10) * 1000;
  return parsed;
}

// Option values, checked before any request.

export const str = (p: Parsed, name: string): string | undefined => p.values[name] as string | undefined;

/** `a,b,c` → a list; empty entries refused. */
export function list(p: Parsed, name: string): string[] | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const items = v.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new UsageError(`--${name} takes a comma-separated list, like a,b; got "${v}"`);
  return items;
}

export function oneOf<T extends string>(p: Parsed, name: string, allowed: readonly T[]): T | undefined {
  const v = str(p, name);
  if (v !== undefined && !allowed.includes(v as T)) throw new UsageError(`--${name} must be one of: ${allowed.join(', ')}; got "${v}"`);
  return v as T | undefined;
}

export function int(p: Parsed, name: string, min: number, max: number): number | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}; got "${v}"`);
  return Number(v);
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

/** An RFC 3339 date-time, passed on as given (the API checks that the date is real). */
export function time(p: Parsed, name: string): string | undefined {
  const v = str(p, name);
  if (v !== undefined && (!RFC3339.test(v) || Number.isNaN(Date.parse(v)))) {
    throw new UsageError(`--${name} must be an RFC 3339 date-time, like 2027-01-31T12:00:00Z; got "${v}"`);
  }
  return v;
}

const SPAN: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400, w: 7 * 86_400, y: 365 * 86_400 };

/** Seconds: `3600`, or a number with a unit: `90s`, `15m`, `1h`, `7d`, `2w`, `1y`. */
export function seconds(p: Parsed, name: string): number | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const m = /^(\d+)([smhdwy]?)$/.exec(v);
  if (!m) throw new UsageError(`--${name} must be seconds or a duration, like 3600, 1h or 7d; got "${v}"`);
  return Number(m[1]) * SPAN[m[2] || 's']!;
}

/** `--expires`: an RFC 3339 time, or a span from now (`30d`, `90d`, `1y`, `12h`), as RFC 3339. */
export function expires(p: Parsed, name: string, now: number): string | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const m = /^(\d+)([hdwy])$/.exec(v);
  if (m) return new Date(now + Number(m[1]) * SPAN[m[2]!]! * 1000).toISOString();
  if (RFC3339.test(v) && !Number.isNaN(Date.parse(v))) return v;
  throw new UsageError(`--${name} must be an RFC 3339 date-time (2027-01-31T12:00:00Z) or a span from now (30d, 90d, 1y); got "${v}"`);
}

/** `--meta k=v`, repeatable, into an object of strings. */
export function meta(p: Parsed, name: string): Record<string, string> | undefined {
  const v = p.values[name] as string[] | undefined;
  if (v === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const pair of v) {
    const i = pair.indexOf('=');
    if (i <= 0) throw new UsageError(`--${name} takes KEY=VALUE; got "${pair}"`);
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

/** `--rate-limit 100/60` (requests per seconds) or `100/60/20` (with a burst). */
export function rateLimit(p: Parsed, name: string): { limit: number; window_seconds: number; burst: number | null } | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const m = /^(\d+)\/(\d+)(?:\/(\d+))?$/.exec(v);
  if (!m || Number(m[1]) === 0 || Number(m[2]) === 0 || m[3] === '0') {
    throw new UsageError(`--${name} must be LIMIT/WINDOW_SECONDS[/BURST], like 100/60; got "${v}"`);
  }
  return { limit: Number(m[1]), window_seconds: Number(m[2]), burst: m[3] === undefined ? null : Number(m[3]) };
}

/** Quota units: whole numbers up to 10^12, as the API takes them (docs/quotas.md). */
const MAX_UNITS = 1e12;
const units = (s: string | undefined, min: number) => s !== undefined && Number(s) >= min && Number(s) <= MAX_UNITS;

/** `--quota 10000/month`: LIMIT units an hour, day or month; `1000/once`: LIMIT units never refilled. */
export function quota(p: Parsed, name: string): { limit: number; period: 'hour' | 'day' | 'month' | null; refill: boolean } | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const m = /^(\d+)\/(hour|day|month|once)$/.exec(v);
  if (!m || !units(m[1], 1)) {
    throw new UsageError(`--${name} must be LIMIT/PERIOD: LIMIT a whole number from 1 to 10^12, PERIOD hour, day, month or once (never refilled), like 10000/month; got "${v}"`);
  }
  const once = m[2] === 'once';
  return { limit: Number(m[1]), period: once ? null : (m[2] as 'hour' | 'day' | 'month'), refill: !once };
}

/** `--credits 500`: a balance topped up by hand; `500/100/day`: starting at 500, set to 100 each day (or month). */
export function credits(p: Parsed, name: string): { remaining: number; refill: { amount: number; every: 'day' | 'month' } | null } | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const m = /^(\d+)(?:\/(\d+)\/(day|month))?$/.exec(v);
  if (!m || !units(m[1], 0) || (m[2] !== undefined && !units(m[2], 1))) {
    throw new UsageError(`--${name} must be BALANCE or BALANCE/REFILL/EVERY (EVERY day or month; whole numbers up to 10^12, REFILL at least 1), like 500 or 500/100/day; got "${v}"`);
  }
  return { remaining: Number(m[1]), refill: m[2] === undefined ? null : { amount: Number(m[2]), every: m[3] as 'day' | 'month' } };
}
