import { createProxyServer } from 'http-proxy-3';
import type { Socket } from 'node:net';
import type { RequestContext } from '../context.js';
import type { Runtime } from '../runtime.js';

/**
 * WebSocket upgrades go through http-proxy-3 once every check has passed. The request's
 * headers are rewritten as for HTTP: the credential removed, identity and forwarding headers set.
 */
export function createWebSocketForward(rt: Runtime): { forward(ctx: RequestContext): void; close(): void } {
  const proxy = createProxyServer({ ws: true, xfwd: false, prependPath: true });
  proxy.on('error', (err, req, socket) => {
    rt.log.warn('websocket upstream failed', { err: err.message, url: req.url });
    (socket as Socket | undefined)?.destroy();
  });
  const h = rt.config.headers;
  return {
    forward(ctx: RequestContext): void {
      const api = ctx.api!;
      const req = ctx.req;
      const key = ctx.key!;
      const headers = req.headers;
      if (!api.config.forward_credential) delete headers[rt.config.keys.header];
      for (const name of [h.key_id, h.key_environment, h.key_scopes, h.application_id]) delete headers[name];
      headers[h.key_id] = key.id;
      headers[h.key_environment] = key.environment;
      headers[h.key_scopes] = key.scopesHeader;
      if (key.application !== null) headers[h.application_id] = key.application;
      headers[h.request_id] = ctx.requestId;
      const xff = headers['x-forwarded-for'];
      headers['x-forwarded-for'] = ctx.peerTrusted && xff ? `${String(xff)}, ${ctx.peer}` : ctx.peer;
      if (!ctx.peerTrusted || headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = 'http';
      if (!ctx.peerTrusted || headers['x-forwarded-host'] === undefined) {
        if (headers.host !== undefined) headers['x-forwarded-host'] = headers.host;
      }
      const path = api.config.strip_prefix ? ctx.path.slice(api.prefix.length) || '/' : ctx.path;
      req.url = (path.startsWith('/') ? path : `/${path}`) + ctx.query;
      ctx.status = 101;
      proxy.ws(req, ctx.socket as Socket, ctx.head ?? Buffer.alloc(0), {
        target: api.upstream.href,
        changeOrigin: !api.config.preserve_host,
      });
    },
    close(): void {
      proxy.close();
    },
  };
}
