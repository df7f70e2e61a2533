import { isUtf8 } from 'node:buffer';
import type { Pool } from 'undici';
import type { ApiConfig } from '../config/schema.js';
import type { LimitPolicy } from '../core/limiter.js';
import type { CompiledCors } from './cors.js';

export interface CompiledRoute {
  readonly name: string;
  readonly method: string;
  /** The rule's path as configured (`/v1/emails/:id`): what usage and metrics name it by. */
  readonly template: string;
  readonly scopes: readonly string[];
  /** A limit of its own, on top of the key's; null when the route has none. */
  readonly policy: LimitPolicy | null;
  /** Its own body limit (null: none); undefined: the API's. */
  readonly maxBody: number | null | undefined;
  /** Quota units a request of this rule spends; undefined: 1. */
  readonly cost?: number;
}

export interface CompiledApi {
  readonly name: string;
  readonly host: string | null;
  readonly prefix: string;
  /** The route template of a request matching none of the rules (unlistedTemplate), for metrics and logs. */
  readonly unlistedTemplate: string;
  readonly upstream: URL;
  /** The upstream URL's own path, without a trailing slash, prepended to forwarded paths. */
  readonly basePath: string;
  readonly config: ApiConfig;
  readonly routes: RouteTable;
  /** Scopes a request matching no rule needs (`unlisted`); null when such a request is refused. */
  readonly unlisted: readonly string[] | null;
  readonly pool: Pool;
  /** Largest request body forwarded (null: no limit). */
  readonly maxBody: number | null;
  /** Upstream requests one key may have in flight here (stages/concurrency.ts). */
  readonly keyShare: number;
  /** Key id → its upstream requests in flight to this API; a key with none has no entry. */
  readonly inFlight: Map<string, number>;
  /** Cross-origin access (cors.ts); null: none, and no CORS header is added. */
  readonly cors: CompiledCors | null;
}

/**
 * How metrics and the access log name the route of a request to an API matching none of its
 * rules: the API's prefix as configured, with the rule syntax's trailing `*` (`/v1/emails/*`).
 */
export function unlistedTemplate(pathPrefix: string): string {
  return pathPrefix === '/' ? '/*' : `${pathPrefix}/*`;
}

/** The largest request body forwarded for a request to `api` matching `route` (null: no limit). */
export function bodyLimit(api: CompiledApi, route: CompiledRoute | null): number | null {
  return route !== null && route.maxBody !== undefined ? route.maxBody : api.maxBody;
}

/** APIs tried longest prefix first, host-bound ones before host-less ones of the same prefix. */
export function orderApis(apis: CompiledApi[]): CompiledApi[] {
  return apis.sort((a, b) => b.prefix.length - a.prefix.length || (b.host ? 1 : 0) - (a.host ? 1 : 0));
}

/**
 * The API whose prefix the path starts with, ignoring ASCII case, a suffix on the prefix's last
 * segment included when that is the path's last (`/v1/emails.json`): an upstream that routes
 * `/V1/EMAILS` or `/v1/emails.json` as `/v1/emails` must not see them arrive through another
 * API's rules (docs/architecture.md, Route rules).
 */
export function matchApi(apis: readonly CompiledApi[], host: string | null, path: string): CompiledApi | null {
  for (const api of apis) {
    if (api.host !== null && api.host !== host) continue;
    const p = api.prefix;
    if (p === '/' || (startsWithFolded(path, p) && endsSegment(path, p.length))) return api;
  }
  return null;
}

function endsSegment(path: string, at: number): boolean {
  if (at === path.length) return true;
  const c = path.charCodeAt(at);
  if (c === 47 /* / */) return true;
  if (c !== 46 /* . */) return false;
  const slash = path.indexOf('/', at);
  return slash === -1 || slash === path.length - 1;
}

/** Whether `s` starts with `lower` (lower-case already), ASCII letters of `s` folded. */
function startsWithFolded(s: string, lower: string): boolean {
  if (s.length < lower.length) return false;
  for (let i = 0; i < lower.length; i++) if (foldAscii(s.charCodeAt(i)) !== lower.charCodeAt(i)) return false;
  return true;
}

function foldAscii(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

/**
 * A rule list compiled into a trie of path segments, so that matching costs the same with ten
 * rules or ten thousand: a node has literal children (by a hash of the segment), one `:param`
 * child and the rules ending there; a rule with a trailing `*` sits on the node of the segments
 * before it and matches that node and everything below. Each rule keeps its index in the list;
 * the match is the lowest index among the matching rules, which is "first match wins".
 */
export interface RouteTable {
  readonly rules: readonly CompiledRoute[];
  readonly caseSensitive: boolean;
  readonly root: TrieNode;
}

interface TrieNode {
  /** The literal segment that leads here, folded as the table folds ('' for the root and params). */
  readonly text: string;
  /** Literal children by segmentHash; the rare children sharing a hash chain through `sibling`. */
  readonly literals: Map<number, TrieNode>;
  sibling: TrieNode | null;
  param: TrieNode | null;
  /** Rules whose path ends here. */
  readonly ends: Methods;
  /** Rules whose trailing `*` starts here. */
  readonly rests: Methods;
  /** The lowest rule index in this subtree: a walk that has found a lower one skips it. */
  min: number;
}

/** The lowest rule index per method, NONE where there is none. */
interface Methods {
  any: number;
  readonly byMethod: Map<string, number>;
}

const NONE = 0x3fffffff;

function newNode(text: string): TrieNode {
  return { text, literals: new Map(), sibling: null, param: null, ends: newMethods(), rests: newMethods(), min: NONE };
}

function newMethods(): Methods {
  return { any: NONE, byMethod: new Map() };
}

function addMethod(m: Methods, method: string, index: number): void {
  if (method === '*') m.any = Math.min(m.any, index);
  else m.byMethod.set(method, Math.min(m.byMethod.get(method) ?? NONE, index));
}

/**
 * `/v1/emails/:id/send`: `:id` is any one segment; a trailing `*` is the rest of the path, none
 * included; empty segments (a trailing slash) are ignored. Literal segments are put in the form
 * requests are matched in (matchForm).
 */
export function buildRouteTable(rules: readonly CompiledRoute[], caseSensitive: boolean): RouteTable {
  const root = newNode('');
  rules.forEach((rule, index) => {
    const parts = rule.template.split('/').filter((p) => p !== '');
    let node = root;
    node.min = Math.min(node.min, index);
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part === '*' && i === parts.length - 1) {
        addMethod(node.rests, rule.method, index);
        return;
      }
      node = part.startsWith(':') ? (node.param ??= newNode('')) : literalChild(node, matchForm(part, caseSensitive));
      node.min = Math.min(node.min, index);
    }
    addMethod(node.ends, rule.method, index);
  });
  return { rules, caseSensitive, root };
}

function literalChild(node: TrieNode, text: string): TrieNode {
  const hash = segmentHash(text);
  const first = node.literals.get(hash) ?? null;
  for (let c = first; c !== null; c = c.sibling) if (c.text === text) return c;
  const made = newNode(text);
  made.sibling = first;
  node.literals.set(hash, made);
  return made;
}

/**
 * A rule's literal segment in the form of a matched request path: escapes decoded
 * (docs/architecture.md, Route rules), characters beyond ASCII as their UTF-8 bytes,
 * surrounding spaces trimmed, and lower-cased unless the API is case-sensitive.
 */
export function matchForm(segment: string, caseSensitive: boolean): string {
  const bytes = trimSpaces(decodeEscapes(segment)).replace(/[^\x00-\xff]/g, (c) => Buffer.from(c, 'utf8').toString('latin1'));
  return caseSensitive ? bytes : (foldNonAscii(bytes) ?? bytes.toLowerCase());
}

// FNV-1a over the segment's characters, kept a small integer; walk() computes the same inline,
// ASCII letters folded when the table folds them.
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function segmentHash(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h & 0x3fffffff;
}

function literalAt(node: TrieNode, hash: number, path: string, from: number, to: number, fold: boolean): TrieNode | null {
  let c = node.literals.get(hash) ?? null;
  for (; c !== null; c = c.sibling) {
    const text = c.text;
    if (text.length !== to - from) continue;
    let i = 0;
    while (i < text.length && (fold ? foldAscii(path.charCodeAt(from + i)) : path.charCodeAt(from + i)) === text.charCodeAt(i)) i++;
    if (i === text.length) return c;
  }
  return null;
}

function lowest(m: Methods, method: string, head: boolean, bound: number): number {
  let best = m.any < bound ? m.any : bound;
  if (m.byMethod.size === 0) return best;
  const own = m.byMethod.get(method);
  if (own !== undefined && own < best) best = own;
  if (head) {
    const get = m.byMethod.get('GET');
    if (get !== undefined && get < best) best = get;
  }
  return best;
}

/**
 * The lowest index below `bound` of a rule matching the path's segments from `pos` (a "/" or
 * `end`) to `end`. Depth first: the literal child, then the param child, each skipped when
 * nothing in it could beat what is found.
 */
function walk(node: TrieNode, path: string, pos: number, end: number, method: string, head: boolean, fold: boolean, bound: number): number {
  if (node.min >= bound) return bound;
  bound = lowest(node.rests, method, head, bound);
  if (pos >= end) return lowest(node.ends, method, head, bound);
  // One pass finds the segment's end and hashes it.
  let next = pos + 1;
  let hash = FNV_OFFSET;
  for (; next < end; next++) {
    const c = path.charCodeAt(next);
    if (c === 47) break;
    hash = Math.imul(hash ^ (fold ? foldAscii(c) : c), FNV_PRIME);
  }
  const literal = node.literals.size === 0 ? null : literalAt(node, hash & 0x3fffffff, path, pos + 1, next, fold);
  if (literal !== null) bound = walk(literal, path, next, end, method, head, fold, bound);
  if (node.param !== null) bound = walk(node.param, path, next, end, method, head, fold, bound);
  return bound;
}

/** The last segment's forms name different rules; the route stage refuses the request. */
export const AMBIGUOUS = 'ambiguous';

/**
 * The first rule whose method and path match `path` (the matched form: canonicalPath's `match`,
 * or the plain path itself), null when none does. HEAD is matched as GET (RFC 9110 §9.3.2: a
 * HEAD is a GET without the body), so a rule list that guards a GET guards its HEAD too; a HEAD
 * rule listed before the GET rule still wins, as first match wins.
 *
 * As lenient as the routers behind (docs/architecture.md, Route rules): ASCII case is ignored
 * unless the API is case-sensitive, a trailing slash is ignored, and the last segment is also
 * tried up to each of its dots (`send.json` is also `send`, as Rails formats and Spring suffix
 * patterns read it). When those forms match different rules, the answer is AMBIGUOUS rather
 * than a choice.
 */
export function matchRoute(table: RouteTable, method: string, path: string): CompiledRoute | null | typeof AMBIGUOUS {
  const head = method === 'HEAD';
  const fold = !table.caseSensitive;
  let end = path.length;
  if (path.charCodeAt(end - 1) === 47) end--;
  let found = walk(table.root, path, 0, end, method, head, fold, NONE);
  const last = path.lastIndexOf('/', end - 1);
  for (let dot = path.indexOf('.', last + 2); dot !== -1 && dot < end; dot = path.indexOf('.', dot + 1)) {
    const shorter = walk(table.root, path, 0, dot, method, head, fold, NONE);
    if (shorter === NONE || shorter === found) continue;
    if (found !== NONE) return AMBIGUOUS;
    found = shorter;
  }
  return found === NONE ? null : table.rules[found]!;
}

// Characters beyond ASCII whose simple case mappings are ASCII letters (İ, ı, ſ, the Kelvin
// sign): a router comparing without case may read `ſend` as `send`, another not.
const ASCII_LOOKALIKE = /[\u0130\u0131\u017f\u212a]/;

/**
 * For a case-insensitive API, a matched path holding bytes beyond ASCII (decoded escapes): read
 * as UTF-8 and lower-cased (`%C3%89` as `é`), back in bytes. Null when it holds a character whose
 * case forms include an ASCII letter: routers disagree on those, so the request is refused.
 */
export function foldNonAscii(path: string): string | null {
  const text = Buffer.from(path, 'latin1').toString('utf8');
  if (ASCII_LOOKALIKE.test(text)) return null;
  return Buffer.from(text.toLowerCase(), 'utf8').toString('latin1');
}

/** Whether the string holds a character beyond ASCII. */
export function hasNonAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 128) return true;
  return false;
}

/** The path as the upstream receives it, and the path routes are matched against. */
export interface CanonicalPath {
  readonly forward: string;
  readonly match: string;
}

/** What makes a path unfit to forward; the route stage renders each as a 400. */
export type PathFault = 'character' | 'escape' | 'separator' | 'dot_segment' | 'parameters' | 'blank' | 'encoding';

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

const HEX = /^[0-9A-Fa-f]{2}$/;
// Percent-encoded ";" ends a segment's name too where dot segments are concerned: an upstream
// that decodes before it strips parameters would read `..%3B` as `..`.
const PARAMS = /;|%3[bB]/;
const ESCAPE = /%([0-9A-Fa-f]{2})/g;

/** Every escape decoded, each to the character of its byte's code (`%C3` to `Ã`): bytes, not text. */
function decodeEscapes(s: string): string {
  return s.includes('%') ? s.replace(ESCAPE, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))) : s;
}

/** Spaces around a segment removed: frameworks that trim path tokens (Spring's) would not see them. */
function trimSpaces(s: string): string {
  let from = 0;
  let to = s.length;
  while (from < to && s.charCodeAt(from) === 32) from++;
  while (to > from && s.charCodeAt(to - 1) === 32) to--;
  return from === 0 && to === s.length ? s : s.slice(from, to);
}

/**
 * The one rule for paths (docs/architecture.md, Paths), applied to what is matched and to what is
 * forwarded:
 *
 * - Empty segments are dropped (`/v1//admin` is `/v1/admin`) in both: upstreams disagree on
 *   them (nginx merges slashes, most frameworks do not), so the upstream gets the path the
 *   gateway matched. A trailing slash is kept.
 * - Every escape is decoded for matching (`/v1/%61dmin` and `/v1/%41dmin` are `/v1/admin` and
 *   `/v1/Admin`; most frameworks route on the decoded path), forwarded as sent. Bytes beyond
 *   ASCII stay bytes, one character each.
 * - `;` parameters are removed from each segment for matching (`/v1/admin;x/y` is
 *   `/v1/admin/y`, as servlet containers read it), forwarded as sent.
 * - Spaces around a decoded segment are removed for matching (`/v1/admin%20` is `/v1/admin`).
 * - Refused, never forwarded, because upstreams read them in different ways and some of
 *   those ways climb out of the API or dodge a route: `.` and `..` segments, plain,
 *   percent-encoded, with parameters or spaces (`..;`, `%2e%2e`, `..%20`); encoded `/` or `\`
 *   (`%2F`, `%5C`) and their double encodings (`%252F`, `%252e`); encoded control characters
 *   (`%00`); a `%` without two hex digits; escaped bytes that are not UTF-8, overlong forms
 *   included (`%C0%AE`); a segment of parameters only (`/;x/`) or of spaces only (`/%20/`).
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
    let high = false;
    for (let p = seg.indexOf('%'); p !== -1; p = seg.indexOf('%', p + 1)) {
      const hex = seg.slice(p + 1, p + 3);
      if (!HEX.test(hex)) return 'escape';
      const code = Number.parseInt(hex, 16);
      if (code === 0x2f || code === 0x5c || code < 0x20 || code === 0x7f) return 'separator';
      if (code === 0x25 && /^(2[eEfF]|5[cC]|00)/.test(seg.slice(p + 3, p + 5))) return 'separator';
      if (code >= 0x80) high = true;
    }
    // Escaped bytes beyond ASCII must spell UTF-8. An overlong form (`%C0%AF` for "/",
    // `%C0%AE` for ".") is read by some decoders as the character it imitates.
    if (high && !isUtf8(Buffer.from(decodeEscapes(seg), 'latin1'))) return 'encoding';
    const semi = seg.indexOf(';');
    if (semi === 0) return 'parameters';
    const matched = trimSpaces(decodeEscapes(semi === -1 ? seg : seg.slice(0, semi)));
    const params = seg.search(PARAMS);
    const name = params === semi ? matched : trimSpaces(decodeEscapes(seg.slice(0, params)));
    if (name === '.' || name === '..') return 'dot_segment';
    if (matched === '') return 'blank';
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
