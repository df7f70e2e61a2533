import { inAnyCidr, parseAddress } from '../../core/ip.js';
import type { Denial, RequestContext, Stage } from '../context.js';

const OUTSIDE: Denial = Object.freeze({ code: 'ip_not_allowed' });

/** The client address is parsed only for keys that carry an allowlist. */
export function createIpAllowlistStage(): Stage {
  return function ipAllowlist(ctx: RequestContext) {
    const cidrs = ctx.key!.cidrs;
    if (cidrs === null) return undefined;
    if (ctx.clientAddr === undefined) ctx.clientAddr = parseAddress(ctx.clientIp);
    return ctx.clientAddr !== null && inAnyCidr(ctx.clientAddr, cidrs) ? undefined : OUTSIDE;
  };
}
