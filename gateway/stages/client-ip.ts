import { inAnyCidr, normalizePeer, parseAddress } from '../../core/ip.js';
import type { RequestContext, Stage } from '../context.js';
import type { Runtime } from '../runtime.js';

/**
 * The client is the socket peer, unless the peer is a trusted proxy: then it is the
 * right-most `X-Forwarded-For` entry that is not itself a trusted proxy. A malformed entry
 * becomes the client as written, so that no allowlist can match it.
 */
export function createClientIpStage(rt: Runtime): Stage {
  const trusted = rt.trusted;
  const isTrusted = (ip: string): boolean => {
    const addr = parseAddress(ip);
    return addr !== null && inAnyCidr(addr, trusted);
  };
  return function clientIp(ctx: RequestContext) {
    const peer = normalizePeer(ctx.req.socket.remoteAddress);
    ctx.peer = peer;
    ctx.clientIp = peer;
    if (trusted.length === 0 || !isTrusted(peer)) return undefined;
    ctx.peerTrusted = true;
    const xff: string | string[] | undefined = ctx.req.headers['x-forwarded-for'];
    if (xff === undefined || xff === '') return undefined;
    const entries = (Array.isArray(xff) ? xff.join(',') : xff).split(',');
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = normalizePeer(entries[i]!.trim());
      ctx.clientIp = entry;
      if (!isTrusted(entry)) return undefined;
    }
    return undefined;
  };
}
