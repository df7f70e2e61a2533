import type { IncomingMessage } from 'node:http';
import type { Config, CorsConfig } from '../config/schema.js';

/*
 * CORS per API (docs/cors.md), compiled once at start-up: the preflight's verdict and the
 * headers of an answer to a browser on an allowed origin. Shared by the preflight stage and
 * the two places a response is written (the forward stage, respond.ts).
 */

export interface CompiledCors {
  /** `origins: ["*"]`: any origin, answered `*` (the config refuses it with credentials). */
  readonly anyOrigin: boolean;
  readonly origins: ReadonlySet<string>;
  readonly methods: ReadonlySet<string>;
  /** Lower-case; the key header always among them. */
  readonly headers: ReadonlySet<string>;
  readonly credentials: boolean;
  /** The preflight answer's values, joined once. */
  readonly allowMethods: string;
  readonly allowHeaders: string;
  readonly maxAge: string;
  /** The gateway's own response headers and the configured `expose`, joined once. */
  readonly expose: string;
  /**
   * Longest Access-Control-Request-Headers worth reading: twice every allowed name with its
   * separator. Browsers send each name once, so a longer value names something not allowed and
   * is refused without being split.
   */
  readonly requestHeadersMax: number;
}

/** Why a preflight got no allow headers; the request's `reason` (access log, usage events). */
export type PreflightRefusal = 'cors_origin_not_allowed' | 'cors_method_not_allowed' | 'cors_headers_not_allowed';

export function compileCors(cors: CorsConfig | null, config: Config): CompiledCors | null {
  if (cors === null) return null;
  const headers = new Set([...cors.headers, config.keys.header]);
  const h = config.headers;
  const exposed = new Set([
    h.request_id,
    'ratelimit',
    'ratelimit-policy',
    'retry-after',
    'deprecation',
    'sunset',
    ...(h.legacy_rate_limit ? ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'] : []),
    ...cors.expose,
  ]);
  const methods = new Set(cors.methods);
  return {
    anyOrigin: cors.origins.includes('*'),
    origins: new Set(cors.origins),
    methods,
    headers,
    credentials: cors.credentials,
    allowMethods: [...methods].join(', '),
    allowHeaders: [...headers].join(', '),
    maxAge: String(cors.max_age),
    expose: [...exposed].join(', '),
    requestHeadersMax: 2 * [...headers].reduce((n, name) => n + name.length + 2, 0),
  };
}

/**
 * The method a CORS preflight announces (the Fetch standard's "CORS-preflight request"):
 * an OPTIONS with a non-empty Origin and Access-Control-Request-Method. Null when the request
 * is not one; it is then an OPTIONS like any other.
 */
export function preflightMethod(req: IncomingMessage): string | null {
  const origin = req.headers.origin;
  const method = req.headers['access-control-request-method'];
  return origin === undefined || origin === '' || method === undefined || method === '' || Array.isArray(method) ? null : method;
}

/** Whether an `Origin` value is allowed: exactly one of the listed origins, compared as sent. */
function originAllowed(cors: CompiledCors, origin: string | undefined): origin is string {
  return origin !== undefined && origin !== '' && (cors.anyOrigin || cors.origins.has(origin));
}

/** Whether every name in an Access-Control-Request-Headers value is allowed (names in any case, `,`-separated). */
function requestHeadersAllowed(cors: CompiledCors, value: string): boolean {
  if (value.length > cors.requestHeadersMax) return false;
  let from = 0;
  for (let i = 0; i <= value.length; i++) {
    if (i < value.length && value.charCodeAt(i) !== 44 /* , */) continue;
    const name = value.slice(from, i).trim().toLowerCase();
    from = i + 1;
    if (name !== '' && !cors.headers.has(name)) return false;
  }
  return true;
}

/** Why the preflight `req` (preflightMethod holds) is refused, or null when it is allowed. */
export function preflightRefusal(cors: CompiledCors, req: IncomingMessage): PreflightRefusal | null {
  if (!originAllowed(cors, req.headers.origin)) return 'cors_origin_not_allowed';
  if (!cors.methods.has(req.headers['access-control-request-method'] as string)) return 'cors_method_not_allowed';
  const asked = req.headers['access-control-request-headers'];
  if (asked !== undefined && !requestHeadersAllowed(cors, asked)) return 'cors_headers_not_allowed';
  return null;
}

/** What every preflight answer varies by, allowed or not, for caches between the browser and the gateway. */
export const PREFLIGHT_VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';

/** The allow headers of an allowed preflight's answer, added to `headers`. */
export function setPreflightHeaders(cors: CompiledCors, req: IncomingMessage, headers: Record<string, unknown>): void {
  headers['access-control-allow-origin'] = cors.anyOrigin ? '*' : req.headers.origin;
  if (cors.credentials) headers['access-control-allow-credentials'] = 'true';
  headers['access-control-allow-methods'] = cors.allowMethods;
  headers['access-control-allow-headers'] = cors.allowHeaders;
  headers['access-control-max-age'] = cors.maxAge;
}

/**
 * The CORS headers of an actual response (the upstream's, or the gateway's own error), added
 * to `headers`: `Vary: Origin` on every response of the API, so that no cache hands a response
 * made for one origin (or none) to another; and for an allowed origin, the origin echoed (or
 * `*`), credentials when configured, and the headers the browser may read. The method is not
 * checked: `methods` is what preflights allow, and browsers send no preflight for the others.
 */
export function setCorsHeaders(cors: CompiledCors, req: IncomingMessage, headers: Record<string, unknown>): void {
  addVaryOrigin(headers);
  const origin = req.headers.origin;
  if (!originAllowed(cors, origin)) return;
  headers['access-control-allow-origin'] = cors.anyOrigin ? '*' : origin;
  if (cors.credentials) headers['access-control-allow-credentials'] = 'true';
  headers['access-control-expose-headers'] = cors.expose;
}

const VARIES_BY_ORIGIN = /(?:^|,)\s*(?:origin|\*)\s*(?:,|$)/i;

/** `Origin` added to the response's Vary (the upstream's kept), unless it is there or Vary is `*`. */
function addVaryOrigin(headers: Record<string, unknown>): void {
  const vary = headers['vary'];
  if (vary === undefined) headers['vary'] = 'Origin';
  else if (Array.isArray(vary)) {
    if (!vary.some((v) => VARIES_BY_ORIGIN.test(String(v)))) headers['vary'] = [...(vary as unknown[]), 'Origin'];
  } else if (!VARIES_BY_ORIGIN.test(String(vary))) headers['vary'] = `${String(vary)}, Origin`;
}

/**
 * setCorsHeaders for a flat name/value list of lower-case names (the forward stage's): Origin
 * is added to the upstream's (last) Vary unless one of its Vary lines names it (or `*`), or a
 * Vary of its own is added when the upstream sent none.
 */
export function pushCorsHeaders(cors: CompiledCors, req: IncomingMessage, out: string[]): void {
  let vary = -1;
  for (let i = 0; i < out.length; i += 2) {
    if (out[i] !== 'vary') continue;
    if (VARIES_BY_ORIGIN.test(out[i + 1]!)) {
      vary = -2;
      break;
    }
    vary = i + 1;
  }
  if (vary === -1) out.push('vary', 'Origin');
  else if (vary >= 0) out[vary] += ', Origin';
  const origin = req.headers.origin;
  if (!originAllowed(cors, origin)) return;
  out.push('access-control-allow-origin', cors.anyOrigin ? '*' : origin);
  if (cors.credentials) out.push('access-control-allow-credentials', 'true');
  out.push('access-control-expose-headers', cors.expose);
}

/** Whether a response header is one of the Access-Control-* family, which the gateway alone sets for an API with `cors`. */
export function isCorsHeader(name: string): boolean {
  return name.length > 15 && name.startsWith('access-control-');
}
