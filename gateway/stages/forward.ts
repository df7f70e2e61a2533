import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Denial, RequestContext } from '../context.js';
import { connectionNamed, HOP_BY_HOP, stripResponseHeaders } from '../headers.js';
import { sendDenial, setKeyHeaders } from '../respond.js';
import { stripPrefix, type CompiledApi } from '../routes.js';
import type { Runtime } from '../runtime.js';
import { withoutQueryParam } from './parse-key.js';

const BAD_GATEWAY: Denial = Object.freeze({ code: 'bad_gateway' });
const TIMEOUT: Denial = Object.freeze({ code: 'gateway_timeout' });
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** How an upstream failure is answered: 504 when it timed out, else 502. */
export function upstreamFailure(err: Error): Denial {
  const code = (err as { code?: string }).code;
  return code !== undefined && TIMEOUT_CODES.has(code) ? TIMEOUT : BAD_GATEWAY;
}

/** Request headers never forwarded as the client sent them: hop-by-hop, and those the gateway sets. */
function dropSet(rt: Runtime, api: CompiledApi): Set<string> {
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
 * Proxies the request through the API's undici Pool. Bodies stream both ways with
 * backpressure (undici writes into the ServerResponse and pauses when it is full); nothing is
 * buffered whole. Headers are rebuilt from rawHeaders so duplicates and case survive.
 *
 * The client's request doubles as undici's abort signal (undici takes any EventEmitter): the
 * pipeline emits `abort` on it when the response closes unfinished, so a client that leaves
 * while the upstream still works cancels the upstream request, at no cost per request.
 */
export function createForwardStage(rt: Runtime): (ctx: RequestContext) => void {
  const drops = new Map<CompiledApi, Set<string>>();
  for (const api of rt.apis) drops.set(api, dropSet(rt, api));
  const h = rt.config.headers;
  const param = rt.config.keys.query_param;
  const paramStrip = param !== null && rt.apis.some((a) => !a.config.forward_credential);

  function factory(data: Dispatcher.StreamFactoryData<RequestContext>) {
    const ctx = data.opaque;
    const res = ctx.res!;
    const headers = data.headers as Record<string, string | string[] | undefined>;
    stripResponseHeaders(headers);
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
    const drop = drops.get(api)!;
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

    let path = api.config.strip_prefix ? stripPrefix(ctx.path, api.prefix) : ctx.path;
    if (api.basePath !== '') path = path === '/' ? api.basePath : api.basePath + path;
    let query = ctx.query;
    if (paramStrip && !api.config.forward_credential) query = withoutQueryParam(query, param!);

    const te = reqHeaders['transfer-encoding'];
    const cl = reqHeaders['content-length'];
    const hasBody = te !== undefined || (cl !== undefined && cl !== '0');
    ctx.upstreamStartedAt = performance.now();
    api.pool.stream(
      {
        path: path + query,
        method: req.method as Dispatcher.HttpMethod,
        headers: out,
        body: hasBody ? req : null,
        signal: req,
        opaque: ctx,
      },
      factory,
      done,
    );
  };
}
