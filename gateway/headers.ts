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

/** Removes hop-by-hop headers, and those the response's `Connection` names, in place. */
export function stripResponseHeaders(headers: Record<string, string | string[] | undefined>): void {
  const named = connectionNamed(headers['connection']);
  if (named !== null) for (const name of named) delete headers[name];
  // Deleting only what is there keeps the object in V8's fast mode in the common case.
  for (const name of HOP_BY_HOP) if (headers[name] !== undefined) delete headers[name];
}
