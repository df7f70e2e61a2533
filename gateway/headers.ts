import { util } from 'undici';
import { isCorsHeader } from './cors.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy never forwards, in either direction. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  // Connection-specific too (RFC 9113 §3.2.1 of h2c's upgrade); Node's HTTP/2 refuses it in a response.
  'http2-settings',
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

const { headerNameToString } = util;

/**
 * The upstream's response headers as undici hands them over (raw name and value buffers),
 * appended to `out` as a flat lower-case name/value list, which `writeHead` takes as it is:
 * without those named in `drop` (the hop-by-hop ones, and those the gateway sets itself: a
 * copy from the upstream would reach the client beside, or ahead of, the gateway's), those the
 * upstream's `Connection` lines name, and its Access-Control-* headers when `dropCors` (an API
 * with `cors`, whose CORS headers the gateway alone sets: docs/cors.md). Names known to undici
 * cost no allocation; nothing is built twice (no header object in between).
 */
export function pushResponseHeaders(raw: readonly Buffer[], drop: ReadonlySet<string>, dropCors: boolean, out: string[]): void {
  const from = out.length;
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = headerNameToString(raw[i]!);
    if (drop.has(name)) {
      if (name === 'connection') {
        const more = connectionNamed(raw[i + 1]!.toString('latin1'));
        if (more !== null) for (const n of more) (named ??= new Set()).add(n);
      }
      continue;
    }
    if (dropCors && isCorsHeader(name)) continue;
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  // Rare: the upstream's Connection named more headers; they go now that every name is known.
  if (named !== null) dropNamed(out, from, named);
}

/** Removes from `out`, at `from` and after, the entries whose name is in `names`. */
export function dropNamed(out: string[], from: number, names: ReadonlySet<string>): void {
  let to = from;
  for (let i = from; i < out.length; i += 2) {
    if (names.has(out[i]!)) continue;
    out[to++] = out[i]!;
    out[to++] = out[i + 1]!;
  }
  out.length = to;
}
