import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Denial, RequestContext } from '../context.js';
import { connectionNamed, forwardableResponseHeaders, HOP_BY_HOP } from '../headers.js';
import { sendDenial, setKeyHeaders } from '../respond.js';
import { stripPrefix, type CompiledApi } from '../routes.js';
import type { Runtime } from '../runtime.js';
import { withoutQueryParam } from './parse-key.js';

const BAD_GATEWAY: Denial = Object.freeze({ code: 'bad_gateway' });
const TIMEOUT: Denial = Object.freeze({ code: 'gateway_timeout' });
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

/** How an upstream failure is answered: 504 when it timed out, else 502. */
export function upstreamFailure(err: Error): Denial {
  const code = (err as { code?: string }).code;
  return code !== undefined && TIMEOUT_CODES.has(code) ? TIMEOUT : BAD_GATEWAY;
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
  ]);
  if (!api.config.preserve_host) drop.add('host');
  if (!api.config.forward_credential) drop.add(rt.config.keys.header);
  return drop;
}

/**
 * The headers the upstream receives, as a flat name/value list rebuilt from rawHeaders so
 * duplicates and case survive: the client's minus `drop` and the headers its `Connection`
 * names, plus the forwarding, request id and identity headers.
 */
export function upstreamHeaders(rt: Runtime, ctx: RequestContext, drop: ReadonlySet<string>): string[] {
  const h = rt.config.headers;
  const req = ctx.req;
  const raw = req.rawHeaders;
  const reqHeaders: IncomingHttpHeaders = req.headers;
  const named = connectionNamed(reqHeaders.connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (drop.has(lower) || (named !== null && named.has(lower))) {
      if (lower === 'te' && raw[i + 1]!.toLowerCase().includes('trailers')) out.push('te', 'trailers');
      continue;
    }
    out.push(name, raw[i + 1]!);
  }
  const xff = reqHeaders['x-forwarded-for'];
  out.push('x-forwarded-for', ctx.peerTrusted && xff ? `${xff}, ${ctx.peer}` : ctx.peer);
  const proto = reqHeaders['x-forwarded-proto'];
  out.push('x-forwarded-proto', ctx.peerTrusted && typeof proto === 'string' ? proto : 'http');
  const fwdHost = reqHeaders['x-forwarded-host'];
  const host = ctx.peerTrusted && typeof fwdHost === 'string' ? fwdHost : reqHeaders.host;
  if (host !== undefined) out.push('x-forwarded-host', host);
  out.push(h.request_id, ctx.requestId);
  const key = ctx.key!;
  out.push(h.key_id, key.id, h.key_environment, key.environment, h.key_scopes, key.scopesHeader);
  if (key.application !== null) out.push(h.application_id, key.application);
  return out;
}

/**
 * The path and query the upstream receives: the route stage's path (as the client wrote it,
 * in canonical segments), the prefix removed when `strip_prefix` says so, under the
 * upstream's base path; the credential parameter removed unless the API forwards it.
 */
export function upstreamTarget(rt: Runtime, ctx: RequestContext): string {
  const api = ctx.api!;
  let path = api.config.strip_prefix ? stripPrefix(ctx.path, api.prefix) : ctx.path;
  if (api.basePath !== '') path = path === '/' ? api.basePath : api.basePath + path;
  const param = rt.config.keys.query_param;
  return param === null || api.config.forward_credential ? path + ctx.query : path + withoutQueryParam(ctx.query, param);
}

/**
 * Proxies the request through the API's undici Pool. Bodies stream both ways with
 * backpressure (undici writes into the ServerResponse and pauses when it is full); nothing is
 * buffered whole.
 *
 * The client's request doubles as undici's abort signal (undici takes any EventEmitter): the
 * pipeline emits `abort` on it when the response closes unfinished, so a client that leaves
 * while the upstream still works cancels the upstream request, at no cost per request.
 */
export function createForwardStage(rt: Runtime): (ctx: RequestContext) => void {
  const drops = new Map<CompiledApi, Set<string>>();
  for (const api of rt.apis) drops.set(api, dropSet(rt, api));
  const h = rt.config.headers;

  function factory(data: Dispatcher.StreamFactoryData<RequestContext>) {
    const ctx = data.opaque;
    const res = ctx.res!;
    const headers = forwardableResponseHeaders(data.headers as Record<string, string | string[] | undefined>);
    headers[h.request_id] = ctx.requestId;
    setKeyHeaders(rt, ctx, headers);
    ctx.status = data.statusCode;
    ctx.upstreamMs = performance.now() - ctx.upstreamStartedAt;
    res.writeHead(data.statusCode, headers as OutgoingHttpHeaders);
    return res;
  }

  function done(err: Error | null, data: { opaque: RequestContext }) {
    if (err === null) return;
    const ctx = data.opaque;
    const res = ctx.res!;
    if (res.headersSent) {
      // The status is already on the wire: all that is left is to cut the response short,
      // never to end it as if complete. The record stage finds the error on res.errored.
      res.destroy(err);
      return;
    }
    // The client left first; the record stage counts it as 499.
    if (res.destroyed) return;
    const code = (err as { code?: string }).code;
    rt.log.warn('upstream request failed', { request_id: ctx.requestId, api: ctx.api?.name, code: code ?? err.name, err: err.message });
    sendDenial(rt, ctx, upstreamFailure(err));
  }

  return function forward(ctx: RequestContext): void {
    const api = ctx.api!;
    const req = ctx.req;
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    const hasBody = te !== undefined || (cl !== undefined && cl !== '0');
    ctx.upstreamStartedAt = performance.now();
    api.pool.stream(
      {
        path: upstreamTarget(rt, ctx),
        method: req.method as Dispatcher.HttpMethod,
        headers: upstreamHeaders(rt, ctx, drops.get(api)!),
        body: hasBody ? req : null,
        signal: req,
        opaque: ctx,
      },
      factory,
      done,
    );
  };
}
