import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { util } from 'undici';
import type { CompiledKey } from './compiled-key.js';
import type { TLSSocket } from 'node:tls';
import { verifiedSubject } from '../core/tls.js';
import type { Denial, RequestContext } from './context.js';
import { connectionNamed, HOP_BY_HOP } from './headers.js';
import { withoutQueryParam } from './query-credential.js';
import { stripPrefix, type CompiledApi } from './routes.js';
import type { Runtime } from './runtime.js';
import { pushTraceHeaders, TRACEPARENT, TRACESTATE } from './trace.js';

const { headerNameToString } = util;

/*
 * The request an upstream receives, shared by the HTTP and WebSocket forward stages, and how an
 * upstream's failure is answered (which the record stage also reads).
 */

const BAD_GATEWAY: Denial = Object.freeze({ code: 'bad_gateway' });
const TIMEOUT: Denial = Object.freeze({ code: 'gateway_timeout' });
const DUPLICATE_HOST: Denial = Object.freeze({ code: 'bad_request', message: 'The Host header must be given once.' });
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

/** How an upstream failure is answered: 504 when it timed out, else 502. */
export function upstreamFailure(err: Error): Denial {
  const code = (err as { code?: string }).code;
  return code !== undefined && TIMEOUT_CODES.has(code) ? TIMEOUT : BAD_GATEWAY;
}

/** The refusal of a body over the API's or route's `max_body_bytes`, declared or streamed. */
export function bodyTooLarge(limit: number): Denial {
  return { code: 'payload_too_large', message: `Request body is larger than this API accepts (${limit} bytes).` };
}

/** Request headers never forwarded as the client sent them: hop-by-hop, and those the gateway sets. */
export function dropSet(rt: Runtime, api: CompiledApi): Set<string> {
  const h = rt.config.headers;
  const drop = new Set([
    ...HOP_BY_HOP,
    // undici sets its own Expect handling and refuses the header.
    'expect',
    'x-forwarded-for',
    'x-forwarded-proto',
    'x-forwarded-host',
    h.request_id,
    // Identity headers come only from the gateway; a client must not be able to forge them.
    h.key_id,
    h.key_environment,
    h.key_scopes,
    h.application_id,
    // Every copy of the credential header goes; with forward_credential the one that was
    // checked is added back (upstreamHeaders), and nothing else.
    rt.config.keys.header,
    // Client-certificate subjects come only from a verified handshake (core/tls.ts); a copy the
    // client sent is dropped on every listener, with or without client certificates.
    ...rt.config.listeners.flatMap((l) => (l.tls?.client_subject_header ? [l.tls.client_subject_header] : [])),
  ]);
  if (!api.config.preserve_host) drop.add('host');
  // With tracing on the gateway sends its own (upstreamHeaders); off, the client's pass as sent.
  if (rt.tracer !== null) drop.add(TRACEPARENT).add(TRACESTATE);
  // Names are compared as upstreamHeaders reads the client's: "_" taken as "-".
  return new Set([...drop].map(dashed));
}

/** A lower-case header name with each `_` read as `-`. */
function dashed(name: string): string {
  return name.includes('_') ? name.replaceAll('_', '-') : name;
}

/** The credential as the key stage read it from its header, or null when it came from the query. */
function checkedHeader(req: IncomingMessage, header: string): string | null {
  const v = req.headers[header];
  const value = Array.isArray(v) ? v[0] : v;
  return value === undefined || value === '' ? null : value;
}

/**
 * The headers the upstream receives, as a flat name/value list rebuilt from rawHeaders so
 * duplicates and case survive: the client's minus `drop` and the headers its `Connection`
 * names, plus the forwarding, request id and identity headers. A header name with `_` is judged
 * as if each `_` were `-` (docs/operations.md, Security): CGI, WSGI and PHP upstreams fold both
 * spellings into one variable, so `X_Key_Id` would otherwise forge `X-Key-Id`. A request with
 * two Host headers is refused: the gateway routed by the first, an upstream may read the last.
 */
export function upstreamHeaders(rt: Runtime, ctx: RequestContext, drop: ReadonlySet<string>): string[] | Denial {
  const h = rt.config.headers;
  const req = ctx.req;
  const raw = req.rawHeaders;
  const reqHeaders: IncomingHttpHeaders = req.headers;
  const listed = connectionNamed(reqHeaders.connection);
  const named = listed === null ? null : new Set([...listed].map(dashed));
  const dropUnderscored = h.underscores === 'drop';
  let hosts = 0;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Known names (Host, Authorization, …) come lower-cased from undici's table, with no new string.
    let lower = headerNameToString(name);
    if (lower === 'host' && ++hosts > 1) return DUPLICATE_HOST;
    if (lower.includes('_')) {
      if (dropUnderscored) continue;
      lower = dashed(lower);
    }
    if (drop.has(lower) || (named !== null && named.has(lower))) {
      if (lower === 'te' && raw[i + 1]!.toLowerCase().includes('trailers')) out.push('te', 'trailers');
      continue;
    }
    out.push(name, raw[i + 1]!);
  }
  const xff = reqHeaders['x-forwarded-for'];
  out.push('x-forwarded-for', ctx.peerTrusted && xff ? `${xff}, ${ctx.peer}` : ctx.peer);
  const proto = reqHeaders['x-forwarded-proto'];
  out.push('x-forwarded-proto', ctx.peerTrusted && typeof proto === 'string' ? proto : ctx.listener.tls ? 'https' : 'http');
  const fwdHost = reqHeaders['x-forwarded-host'];
  const host = ctx.peerTrusted && typeof fwdHost === 'string' ? fwdHost : reqHeaders.host;
  if (host !== undefined) out.push('x-forwarded-host', host);
  out.push(h.request_id, ctx.requestId);
  if (ctx.trace !== null) pushTraceHeaders(out, ctx.trace);
  const subjectHeader = ctx.listener.subjectHeader;
  if (subjectHeader) {
    const subject = verifiedSubject(ctx.conn as TLSSocket);
    if (subject !== null) out.push(subjectHeader, subject);
  }
  pushIdentity(h, ctx.key!, out);
  if (ctx.api!.config.forward_credential) {
    const header = rt.config.keys.header;
    const checked = checkedHeader(req, header);
    if (checked !== null) out.push(header, checked);
  }
  return out;
}

/**
 * The identity headers (names from `headers`) as a flat name/value list: what the upstream
 * learns of the key. `/auth` hands the same ones to the proxy in front (gateway/verify.ts).
 */
export function pushIdentity(h: Runtime['config']['headers'], key: CompiledKey, out: string[]): void {
  out.push(h.key_id, key.id, h.key_environment, key.environment, h.key_scopes, key.scopesHeader);
  if (key.application !== null) out.push(h.application_id, key.application);
}

/**
 * The path and query the upstream receives: the route stage's path (as the client wrote it,
 * in canonical segments), the prefix removed when `strip_prefix` says so, under the
 * upstream's base path; the credential parameter removed, unless the API forwards the
 * credential and the key was read from it (then the query is as the client sent it: the key
 * stage refuses a query naming the parameter with two different values).
 */
export function upstreamTarget(rt: Runtime, ctx: RequestContext): string {
  const api = ctx.api!;
  let path = api.config.strip_prefix ? stripPrefix(ctx.path, api.prefix) : ctx.path;
  if (api.basePath !== '') path = path === '/' ? api.basePath : api.basePath + path;
  const { query_param: param, header } = rt.config.keys;
  if (param === null || (api.config.forward_credential && checkedHeader(ctx.req, header) === null)) return path + ctx.query;
  return path + withoutQueryParam(ctx.query, param);
}
