import { parseKey } from '../../core/key-format.js';
import { foldName } from '../../core/query-name.js';
import type { Denial, RequestContext, Stage } from '../context.js';
import type { Runtime } from '../runtime.js';

const MISSING: Denial = Object.freeze({ code: 'missing_token' });
const MALFORMED: Denial = Object.freeze({ code: 'invalid_token', reason: 'malformed' });
const NOT_BEARER: Denial = Object.freeze({
  code: 'invalid_token',
  reason: 'malformed',
  message: 'Send the API key with the Bearer scheme: "Authorization: Bearer <key>".',
});
// Several different values of the credential parameter: which one the gateway checks and
// which one a later reader (the upstream, a log) takes would differ. RFC 6750 §3.1 names a
// repeated parameter an `invalid_request`, answered 400; DESIGN.md §4's 400 `bad_request` is
// the "malformed request the proxy refuses", not a key that was checked and found wanting (401).
const AMBIGUOUS: Denial = Object.freeze({
  code: 'bad_request',
  message: 'The API key query parameter is given more than once with different values.',
});

/** A query component decoded as forms are (`+` is a space); undecodable text stays as sent. */
function decodeComponent(s: string): string {
  if (!s.includes('%') && !s.includes('+')) return s;
  try {
    return decodeURIComponent(s.replaceAll('+', ' '));
  } catch {
    return s;
  }
}

/**
 * False when no part of `query` can name the parameter `name` (folded) once decoded and
 * folded: the cheap test that keeps a query without the credential off the slow path.
 */
function mayName(query: string, name: string): boolean {
  if (query === '') return false;
  if (query.includes(name) || query.includes('%') || query.includes('+')) return true;
  return query.toUpperCase().toLowerCase().replace(/[. [\]]/g, '_').includes(name);
}

function partName(part: string): string {
  const eq = part.indexOf('=');
  return foldName(decodeComponent(eq === -1 ? part : part.slice(0, eq)));
}

/**
 * The query's parameters, split at `&` and at `;` (which Go before 1.17, Python before 3.9.2
 * and servlet containers also take as a separator), each with the separator before it.
 */
function params(query: string): { sep: string; part: string }[] {
  const out: { sep: string; part: string }[] = [];
  let sep = '';
  let from = 1;
  for (let i = 1; i <= query.length; i++) {
    const c = i === query.length ? 38 : query.charCodeAt(i);
    if (c !== 38 /* & */ && c !== 59 /* ; */) continue;
    out.push({ sep, part: query.slice(from, i) });
    sep = query[i] ?? '';
    from = i + 1;
  }
  return out;
}

/**
 * The value of the query parameter `name` (folded: foldName), matched by its decoded, folded
 * name (`api%5Fkey`, `API_KEY`, `api.key` and `api_key[]` are `api_key`); null when absent,
 * undefined when it is given several times with different values. `query` starts with `?`.
 */
export function queryParamValue(query: string, name: string): string | null | undefined {
  if (!mayName(query, name)) return null;
  let found: string | null = null;
  for (const { part } of params(query)) {
    if (partName(part) !== name) continue;
    const eq = part.indexOf('=');
    const value = eq === -1 ? '' : decodeComponent(part.slice(eq + 1));
    if (found !== null && found !== value) return undefined;
    found = value;
  }
  return found;
}

/** `query` without any spelling of the parameter `name` (folded); other parameters stay byte for byte. */
export function withoutQueryParam(query: string, name: string): string {
  if (!mayName(query, name)) return query;
  const all = params(query);
  const kept = all.filter(({ part }) => partName(part) !== name);
  if (kept.length === all.length) return query;
  if (kept.length === 0) return '';
  let out = '?';
  kept.forEach(({ sep, part }, i) => (out += i === 0 ? part : (sep || '&') + part));
  return out;
}

const BEARER = 'bearer ';
/** Whether `value` starts with `Bearer ` in any case, read in place (no lower-cased copy). */
function isBearer(value: string): boolean {
  if (value.length < 7) return false;
  for (let i = 0; i < 6; i++) if ((value.charCodeAt(i) | 0x20) !== BEARER.charCodeAt(i)) return false;
  return value.charCodeAt(6) === 32;
}

/** Takes the key from the configured header (Bearer scheme for Authorization) or query parameter. */
export function createParseKeyStage(rt: Runtime): Stage {
  const { header, query_param: param, prefix } = rt.config.keys;
  const bearer = header === 'authorization';
  const brake = rt.brake;
  return function parseKeyStage(ctx: RequestContext) {
    let raw = ctx.req.headers[header];
    if (Array.isArray(raw)) raw = raw[0];
    let token: string | null = null;
    if (raw !== undefined && raw !== '') {
      if (bearer) {
        if (!isBearer(raw)) return NOT_BEARER;
        // One slice in the usual case; trim() only when there is whitespace to trim.
        token = raw.charCodeAt(7) > 32 && raw.charCodeAt(raw.length - 1) > 32 ? raw.slice(7) : raw.slice(7).trim();
      } else {
        token = raw.trim();
      }
    } else if (param !== null) {
      const value = queryParamValue(ctx.query, param);
      if (value === undefined) return AMBIGUOUS;
      token = value;
    }
    if (token === null || token === '') return MISSING;
    ctx.token = token;
    const tag = parseKey(token, prefix);
    // A bad shape or checksum counts towards the invalid-key brake; a key sent the wrong way
    // (no Bearer scheme, or twice) is a client's mistake, not a guess, and does not.
    if (tag === null || !rt.tagToEnv.has(tag)) return brake === null ? MALFORMED : brake.refuse(ctx, MALFORMED);
    return undefined;
  };
}
