import { LRUCache } from 'lru-cache';
import { inAnyCidr, parseAddress, type Address } from '../../core/ip.js';
import type { Denial, RequestContext, Stage } from '../context.js';

const MALFORMED = Symbol('malformed');

/**
 * The client address is parsed only for keys that carry an allowlist, and parsed addresses
 * are kept in a small LRU: clients repeat, and a parse costs about a microsecond. The last
 * refusal is kept too, as a refused client tends to repeat itself.
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
  let last = outside('');
  return function ipAllowlist(ctx: RequestContext) {
    const cidrs = ctx.key!.cidrs;
    if (cidrs === null) return undefined;
    if (ctx.clientAddr === undefined) ctx.clientAddr = lookup(ctx.clientIp);
    if (ctx.clientAddr !== null && inAnyCidr(ctx.clientAddr, cidrs)) return undefined;
    if (last.extra!['client_ip'] !== ctx.clientIp) last = outside(ctx.clientIp);
    return last;
  };
}

/**
 * The refusal names the address the gateway saw (after the trusted-proxy rule), so the key
 * holder can tell a wrong allowlist from a proxy or NAT that changes their address.
 */
function outside(ip: string): Denial {
  return Object.freeze({
    code: 'ip_not_allowed',
    message: `This API key may not be used from ${ip}, the address this request came from; call from an address its allowlist holds, or ask the API's owner to add this one.`,
    extra: Object.freeze({ client_ip: ip }),
  });
}
