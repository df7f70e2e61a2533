import { normalizePeer } from '../../core/ip.js';
import type { RequestContext, Stage } from '../context.js';
import type { Runtime } from '../runtime.js';

/** The client address under the `trusted_proxies` rule (core/ip.ts TrustedProxies). */
export function createClientIpStage(rt: Runtime): Stage {
  const proxies = rt.trusted;
  return function clientIp(ctx: RequestContext) {
    const peer = normalizePeer(ctx.req.socket.remoteAddress);
    ctx.peer = peer;
    if (proxies.empty) {
      ctx.clientIp = peer;
      return undefined;
    }
    const { ip, trusted } = proxies.resolve(peer, ctx.req.headers['x-forwarded-for']);
    ctx.clientIp = ip;
    ctx.peerTrusted = trusted;
    return undefined;
  };
}
