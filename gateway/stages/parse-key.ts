import { parseKey } from '../../core/key-format.js';
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
 * False when no part of `query` can name the parameter `name` (lower case) once decoded and
 * folded: the cheap test that keeps a query without the credential off the slow path.
 */
function mayName(query: string, name: string): boolean {
  if (query === '') return false;
  if (query.includes(name) || query.includes('%') || (query.includes('+') && name.includes(' '))) return true;
  return query.toLowerCase().includes(name);
}

/**
 * A query part's name as the frameworks behind the gateway may read it: decoded, in lower
 * case (ASP.NET and others bind query names without regard to case), and without a trailing
 * `[...]` (PHP and Rack read `api_key[]` and `api_key[x]` as `api_key`). So `API_KEY=` or
 * `api_key[]=` cannot carry a second key past the gateway.
 */
function partName(part: string): string {
  const eq = part.indexOf('=');
  let name = decodeComponent(eq === -1 ? part : part.slice(0, eq)).toLowerCase();
  const bracket = name.indexOf('[');
  if (bracket > 0) name = name.slice(0, bracket);
  return name;
}

/**
 * The value of the query parameter `name` (lower case), matched by its decoded, folded name
 * (`api%5Fkey`, `API_KEY` and `api_key[]` are `api_key`: partName); null when absent,
 * undefined when it is given several times with different values. `query` starts with `?`.
 */
export function queryParamValue(query: string, name: string): string | null | undefined {
  if (!mayName(query, name)) return null;
  let found: string | null = null;
  for (const part of query.slice(1).split('&')) {
    if (partName(part) !== name) continue;
    const eq = part.indexOf('=');
    const value = eq === -1 ? '' : decodeComponent(part.slice(eq + 1));
    if (found !== null && found !== value) return undefined;
    found = value;
  }
  return found;
}

/** `query` without any spelling of the parameter `name` (lower case, as partName folds); other parameters stay byte for byte. */
export function withoutQueryParam(query: string, name: string): string {
  if (!mayName(query, name)) return query;
  const parts = query.slice(1).split('&');
  const kept = parts.filter((part) => partName(part) !== name);
  if (kept.length === parts.length) return query;
  return kept.length === 0 ? '' : `?${kept.join('&')}`;
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
