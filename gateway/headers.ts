import { isCorsHeader } from './cors.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy never forwards, in either direction. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
]);

const CONNECTION_DEFAULTS = new Set(['close', 'keep-alive']);

/**
 * The extra header names a `Connection` header makes hop-by-hop; null when it names none,
 * which is the usual `keep-alive` or `close`.
 */
export function connectionNamed(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined || value === 'keep-alive' || value === 'close') return null;
  let named: Set<string> | null = null;
  for (const part of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '' || CONNECTION_DEFAULTS.has(name)) continue;
    (named ??= new Set()).add(name);
  }
  return named;
}

/**
 * The upstream's response headers without the hop-by-hop ones and those its `Connection`
 * names, as a new object; without its Access-Control-* headers too when `dropCors` (an API
 * with `cors`, whose CORS headers the gateway alone sets: docs/cors.md). Copying beats
 * deleting in place: a `delete` that is not of the last-added property turns the object into
 * a slow dictionary, which every later step (adding the gateway's headers, writeHead's walk
 * over them) then pays for.
 */
export function forwardableResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
  dropCors: boolean,
): Record<string, string | string[] | undefined> {
  const named = connectionNamed(headers['connection']);
  const out: Record<string, string | string[] | undefined> = {};
  for (const name in headers) {
    // `__proto__` would set the copy's prototype rather than add a header.
    if (HOP_BY_HOP.has(name) || (named !== null && named.has(name)) || name === '__proto__') continue;
    if (dropCors && isCorsHeader(name)) continue;
    out[name] = headers[name];
  }
  return out;
}
