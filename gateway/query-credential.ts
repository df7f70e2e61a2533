import { foldName } from '../core/query-name.js';

/*
 * The credential's query parameter, read and removed as the frameworks behind the gateway
 * read query names (core/query-name.ts): the key stage reads it, the forward stages remove it.
 */

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
