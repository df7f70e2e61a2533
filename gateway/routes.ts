import type { Pool } from 'undici';
import type { ApiConfig } from '../config/schema.js';
import type { LimitPolicy } from '../core/limiter.js';

export interface CompiledRoute {
  readonly name: string;
  readonly method: string;
  readonly pattern: RegExp;
  readonly scopes: readonly string[];
  /** A limit of its own, on top of the key's; null when the route has none. */
  readonly policy: LimitPolicy | null;
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

export function matchRoute(api: CompiledApi, method: string, path: string): CompiledRoute | null {
  for (const route of api.routes) {
    if ((route.method === '*' || route.method === method) && route.pattern.test(path)) return route;
  }
  return null;
}

const UNRESERVED = /%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])/g;

/**
 * The path routes are matched against: percent-encoded unreserved characters decoded
 * (RFC 3986 §6.2.2.2 says they are equivalent), so `/v1/s%65nd` cannot dodge a `/v1/send` rule.
 */
export function matchablePath(path: string): string {
  return path.includes('%') ? path.replace(UNRESERVED, (m) => String.fromCharCode(Number.parseInt(m.slice(1), 16))) : path;
}

/**
 * True when a segment of the path is `.` or `..`, written plainly or percent-encoded, or
 * split by an encoded or back slash. Such paths are refused: upstreams resolve them in
 * different ways, and one that climbs out of the API's prefix would reach what the key was
 * never granted.
 */
export function hasDotSegment(path: string): boolean {
  if (!path.includes('.') && !path.includes('%') && !path.includes('\\')) return false;
  const decoded = path.replace(/%2[eE]/g, '.').replace(/%2[fF]|%5[cC]|\\/g, '/');
  for (const seg of decoded.split('/')) if (seg === '.' || seg === '..') return true;
  return false;
}
