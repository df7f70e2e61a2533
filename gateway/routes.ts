import type { Pool } from 'undici';
import type { ApiConfig } from '../config/schema.js';
import type { LimitPolicy } from '../core/limiter.js';

export interface CompiledRoute {
  readonly name: string;
  readonly method: string;
  /** The rule's path as configured (`/v1/emails/:id`): what usage and metrics name it by. */
  readonly template: string;
  readonly pattern: RegExp;
  readonly scopes: readonly string[];
  /** A limit of its own, on top of the key's; null when the route has none. */
  readonly policy: LimitPolicy | null;
  /** Its own body limit (null: none); undefined: the API's. */
  readonly maxBody: number | null | undefined;
}

export interface CompiledApi {
  readonly name: string;
  readonly host: string | null;
  readonly prefix: string;
  readonly upstream: URL;
  /** The upstream URL's own path, without a trailing slash, prepended to forwarded paths. */
  readonly basePath: string;
  readonly config: ApiConfig;
  readonly routes: readonly CompiledRoute[];
  readonly pool: Pool;
  /** Largest request body forwarded (null: no limit). */
  readonly maxBody: number | null;
  /** Upstream requests one key may have in flight here (stages/concurrency.ts). */
  readonly keyShare: number;
  /** Key id → its upstream requests in flight to this API; a key with none has no entry. */
  readonly inFlight: Map<string, number>;
}

/**
 * `/v1/emails/:id/send` → one segment for `:id`; a trailing `*` matches the rest of the path.
 * A trailing slash on the request is tolerated.
 */
export function compilePattern(path: string): RegExp {
  let src = '';
  const parts = path.split('/');
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '*' && i === parts.length - 1) {
      src += '(?:/.*)?';
      return new RegExp(`^${src}$`);
    }
    src += '/' + (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  }
  return new RegExp(`^${src === '/' ? '/' : `${src}/?`}$`);
}

/** APIs tried longest prefix first, host-bound ones before host-less ones of the same prefix. */
export function orderApis(apis: CompiledApi[]): CompiledApi[] {
  return apis.sort((a, b) => b.prefix.length - a.prefix.length || (b.host ? 1 : 0) - (a.host ? 1 : 0));
}

export function matchApi(apis: readonly CompiledApi[], host: string | null, path: string): CompiledApi | null {
  for (const api of apis) {
    if (api.host !== null && api.host !== host) continue;
    const p = api.prefix;
    if (p === '/' || (path.startsWith(p) && (path.length === p.length || path.charCodeAt(p.length) === 47))) {
      return api;
    }
  }
  return null;
}

/**
 * The first rule whose method and pattern match. HEAD is matched as GET (RFC 9110 §9.3.2: a
 * HEAD is a GET without the body), so a rule list that guards a GET guards its HEAD too; a
 * HEAD rule listed before the GET rule still wins, as first match wins.
 */
export function matchRoute(api: CompiledApi, method: string, path: string): CompiledRoute | null {
  const head = method === 'HEAD';
  for (const route of api.routes) {
    const m = route.method;
    if ((m === '*' || m === method || (head && m === 'GET')) && route.pattern.test(path)) return route;
  }
  return null;
}

/** The path as the upstream receives it, and the path routes are matched against. */
export interface CanonicalPath {
  readonly forward: string;
  readonly match: string;
}

/** What makes a path unfit to forward; the route stage renders each as a 400. */
export type PathFault = 'character' | 'escape' | 'separator' | 'dot_segment' | 'parameters';

// Bytes allowed in a path as sent: RFC 3986 pchar (unreserved, sub-delims, ":", "@"), "/" and
// "%" (checked for its two hex digits later). Anything else, "#" included, is a fault.
const PATH_BYTE = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/%") PATH_BYTE[c.charCodeAt(0)] = 1;

/**
 * One pass over the path. 'plain' means it is already canonical: only allowed bytes, no
 * "%", no ";", no empty segment and no segment starting with "." (the common case, which
 * costs no allocation). 'work' means canonicalPath() must look closer.
 */
export function scanPath(path: string): 'plain' | 'work' | 'character' {
  let work = false;
  let prev = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 128 || PATH_BYTE[c] === 0) return 'character';
    if (c === 37 /* % */ || c === 59 /* ; */ || (prev === 47 /* / */ && (c === 47 || c === 46 /* . */))) work = true;
    prev = c;
  }
  return work ? 'work' : 'plain';
}

const UNRESERVED = /%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])/g;
const HEX = /^[0-9A-Fa-f]{2}$/;
// Percent-encoded ";" ends a segment's name too where dot segments are concerned: an upstream
// that decodes before it strips parameters would read `..%3B` as `..`.
const PARAMS = /;|%3[bB]/;

function decodeUnreserved(s: string): string {
  return s.includes('%') ? s.replace(UNRESERVED, (m) => String.fromCharCode(Number.parseInt(m.slice(1), 16))) : s;
}

/**
 * The one rule for paths (DESIGN.md §4), applied to what is matched and to what is forwarded:
 *
 * - Empty segments are dropped (`/v1//admin` is `/v1/admin`) in both: upstreams disagree on
 *   them (nginx merges slashes, most frameworks do not), so the upstream gets the path the
 *   gateway matched. A trailing slash is kept.
 * - Percent-encoded unreserved characters are equivalent to the characters (RFC 3986
 *   §6.2.2.2): decoded for matching (`/v1/%61dmin` is `/v1/admin`), forwarded as sent.
 * - `;` parameters are removed from each segment for matching (`/v1/admin;x/y` is
 *   `/v1/admin/y`, as servlet containers read it), forwarded as sent.
 * - Refused, never forwarded, because upstreams read them in different ways and some of
 *   those ways climb out of the API or dodge a route: `.` and `..` segments, plain,
 *   percent-encoded or with parameters (`..;`, `%2e%2e`); encoded `/` or `\` (`%2F`,
 *   `%5C`) and their double encodings (`%252F`, `%252e`); encoded control characters (`%00`);
 *   a `%` without two hex digits; a segment of parameters only (`/;x/`).
 *
 * So the upstream never sees a segment structure other than the one the gateway matched.
 */
export function canonicalPath(path: string): CanonicalPath | PathFault {
  const segments = path.split('/');
  let forward = '';
  let match = '';
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const seg = segments[i]!;
    if (seg === '') {
      if (i === last) {
        forward += '/';
        match += '/';
      }
      continue;
    }
    for (let p = seg.indexOf('%'); p !== -1; p = seg.indexOf('%', p + 1)) {
      const hex = seg.slice(p + 1, p + 3);
      if (!HEX.test(hex)) return 'escape';
      const code = Number.parseInt(hex, 16);
      if (code === 0x2f || code === 0x5c || code < 0x20 || code === 0x7f) return 'separator';
      if (code === 0x25 && /^(2[eEfF]|5[cC]|00)/.test(seg.slice(p + 3, p + 5))) return 'separator';
    }
    const semi = seg.indexOf(';');
    if (semi === 0) return 'parameters';
    const matched = decodeUnreserved(semi === -1 ? seg : seg.slice(0, semi));
    const params = seg.search(PARAMS);
    const name = params === semi ? matched : decodeUnreserved(seg.slice(0, params));
    if (name === '.' || name === '..') return 'dot_segment';
    forward += `/${seg}`;
    match += `/${matched}`;
  }
  return { forward: forward === '' ? '/' : forward, match: match === '' ? '/' : match };
}

/**
 * The forwarded path with the API's prefix removed (`strip_prefix`). The prefix was matched
 * on the canonical path, which has the forwarded path's segments one for one, so the prefix's
 * segments are dropped from the forwarded path as the client wrote them: escapes reach the
 * upstream unchanged.
 */
export function stripPrefix(path: string, prefix: string): string {
  if (prefix === '/') return path;
  const n = prefix.length;
  if (path.startsWith(prefix) && (path.length === n || path.charCodeAt(n) === 47)) return path.length === n ? '/' : path.slice(n);
  let at = 0;
  for (let i = 0; i < n; i++) {
    if (prefix.charCodeAt(i) !== 47) continue;
    at = path.indexOf('/', at + 1);
    if (at === -1) return '/';
  }
  return path.slice(at);
}
