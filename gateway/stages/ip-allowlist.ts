import { LRUCache } from 'lru-cache';
import { inAnyCidr, parseAddress, type Address } from '../../core/ip.js';
import type { Denial, RequestContext, Stage } from '../context.js';

const OUTSIDE: Denial = Object.freeze({ code: 'ip_not_allowed' });
const MALFORMED = Symbol('malformed');

/**
 * The client address is parsed only for keys that carry an allowlist, and parsed addresses
 * are kept in a small LRU: clients repeat, and a parse costs about a microsecond.
 */
export function createIpAllowlistStage(): Stage {
  const parsed = new LRUCache<string, Address | typeof MALFORMED>({ max: 10_000 });
  const lookup = (ip: string): Address | null => {
    let addr = parsed.get(ip);
    if (addr === undefined) {
      addr = parseAddress(ip) ?? MALFORMED;
      parsed.set(ip, addr);
    }
    return addr === MALFORMED ? null : addr;
  };
  return function ipAllowlist(ctx: RequestContext) {
    const cidrs = ctx.key!.cidrs;
    if (cidrs === null) return undefined;
    if (ctx.clientAddr === undefined) ctx.clientAddr = lookup(ctx.clientIp);
    return ctx.clientAddr !== null && inAnyCidr(ctx.clientAddr, cidrs) ? undefined : OUTSIDE;
  };
}
