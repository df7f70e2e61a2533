import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { RequestContext } from '../context.js';
import { connectionNamed, HOP_BY_HOP } from '../headers.js';
import { sendDenial, setKeyHeaders } from '../respond.js';
import type { CompiledApi } from '../routes.js';
import type { Runtime } from '../runtime.js';
import { dropSet, upstreamFailure, upstreamHeaders, upstreamTarget } from '../upstream-request.js';

/** The upstream's response head, minus hop-by-hop headers, with the gateway's own added. */
function responseHead(rt: Runtime, ctx: RequestContext, res: IncomingMessage, upgraded: boolean): string {
  const status = res.statusCode ?? 502;
  let head = `HTTP/1.1 ${status} ${res.statusMessage ?? ''}\r\n`;
  const named = connectionNamed(res.headers.connection);
  const raw = res.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || (named !== null && named.has(lower))) continue;
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  head += upgraded ? `connection: Upgrade\r\nupgrade: ${String(res.headers.upgrade)}\r\n` : 'connection: close\r\n';
  const extra: Record<string, unknown> = { [rt.config.headers.request_id]: ctx.requestId };
  setKeyHeaders(rt, ctx, extra);
  for (const [name, value] of Object.entries(extra)) head += `${name}: ${String(value)}\r\n`;
  return `${head}\r\n`;
}

/**
 * WebSocket upgrades, once every check has passed, with node:http: the upgrade request is
 * rebuilt as an HTTP request is (the same headers dropped and added, the same path, the
 * credential parameter removed), `Connection: Upgrade` and `Upgrade` set again. The
 * upstream's 101 is relayed and the two sockets handed to the runtime's tunnels (tunnels.ts),
 * which relay them and close them when the key stops being usable; a refused upgrade is
 * relayed as the upstream answered it; a connect failure or timeout answers 502 or 504 JSON
 * on the socket. `ctx.status` holds what the client was answered, so the record is right in every case.
 */
export function createWebSocketForward(rt: Runtime): (ctx: RequestContext) => void {
  const drops = new Map<CompiledApi, Set<string>>();
  for (const api of rt.apis) drops.set(api, dropSet(rt, api));

  return function forwardWebSocket(ctx: RequestContext): void {
    const api = ctx.api!;
    const client = ctx.socket as Socket;
    const headers = upstreamHeaders(rt, ctx, drops.get(api)!);
    if (!Array.isArray(headers)) return sendDenial(rt, ctx, headers);
    headers.push('connection', 'Upgrade', 'upgrade', String(ctx.req.headers.upgrade));
    // With headers given as a list node:http adds no Host of its own.
    if (!api.config.preserve_host || ctx.req.headers.host === undefined) headers.push('host', api.upstream.host);
    const https = api.upstream.protocol === 'https:';
    ctx.upstreamStartedAt = performance.now();
    const up: ClientRequest = (https ? httpsRequest : httpRequest)({
      host: api.upstream.hostname.replace(/^\[|\]$/g, ''),
      port: api.upstream.port || (https ? 443 : 80),
      method: 'GET',
      path: upstreamTarget(rt, ctx),
      headers,
      agent: false,
      timeout: api.config.timeout_ms,
    });
    let answered = false;
    const clientGone = () => up.destroy();
    client.once('close', clientGone);

    up.once('timeout', () => up.destroy(Object.assign(new Error('upstream did not answer the upgrade in time'), { code: 'ETIMEDOUT' })));
    up.on('error', (err: NodeJS.ErrnoException) => {
      if (answered || client.destroyed) return;
      answered = true;
      rt.log.warn('websocket upstream failed', { request_id: ctx.requestId, api: api.name, code: err.code ?? err.name, err: err.message });
      sendDenial(rt, ctx, upstreamFailure(err));
    });
    up.once('response', (res) => {
      answered = true;
      if (client.destroyed) return void res.resume();
      ctx.status = res.statusCode ?? 502;
      ctx.upstreamMs = performance.now() - ctx.upstreamStartedAt;
      // The body is relayed as it comes and ends with the connection (no chunked framing).
      client.write(responseHead(rt, ctx, res, false));
      res.pipe(client);
      res.once('error', () => client.destroy());
    });
    up.once('upgrade', (res, upstream: Socket, upstreamHead: Buffer) => {
      answered = true;
      client.off('close', clientGone);
      if (client.destroyed) return void upstream.destroy();
      ctx.status = 101;
      ctx.upstreamMs = performance.now() - ctx.upstreamStartedAt;
      upstream.setTimeout(0);
      upstream.setNoDelay(true);
      client.setNoDelay(true);
      client.write(responseHead(rt, ctx, res, true));
      rt.tunnels.open(ctx, client, upstream, upstreamHead);
    });
    up.end();
  };
}
