import ipaddr from 'ipaddr.js';
import { LRUCache } from 'lru-cache';

export type Address = ipaddr.IPv4 | ipaddr.IPv6;
export type Cidr = [Address, number];

/** ipaddr.js also accepts `1.2.3`, `16909060` and hex forms; only dotted quads and IPv6 are addresses here. */
export function strictAddress(s: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(s) || (s.includes(':') && ipaddr.IPv6.isValid(s));
}

/**
 * Parses `a.b.c.d`, `a.b.c.d/n`, IPv6 and IPv6/n strictly; null when invalid. IPv4-mapped
 * IPv6 forms are turned into IPv4 so they match IPv4 clients.
 */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  const addrPart = slash === -1 ? s : s.slice(0, slash);
  if (!strictAddress(addrPart)) return null;
  try {
    if (slash === -1) {
      const addr = parseAddress(addrPart);
      return addr ? [addr, addr.kind() === 'ipv4' ? 32 : 128] : null;
    }
    const bitsPart = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bitsPart)) return null;
    const [addr, bits] = ipaddr.parseCIDR(s);
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
      return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
    }
    return [addr, bits];
  } catch {
    return null;
  }
}

/** A strictly formed address, IPv4-mapped IPv6 turned into IPv4; null when malformed. */
export function parseAddress(s: string): Address | null {
  if (!strictAddress(s)) return null;
  try {
    const addr = ipaddr.parse(s);
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
      return (addr as ipaddr.IPv6).toIPv4Address();
    }
    return addr;
  } catch {
    return null;
  }
}

export function inAnyCidr(addr: Address, cidrs: readonly Cidr[]): boolean {
  const kind = addr.kind();
  for (const range of cidrs) {
    if (range[0].kind() === kind && addr.match(range)) return true;
  }
  return false;
}

/** The socket's peer address, IPv4-mapped IPv6 written as plain IPv4. */
export function normalizePeer(s: string | undefined): string {
  if (s === undefined) return '';
  return s.startsWith('::ffff:') && s.includes('.') ? s.slice(7) : s;
}

/**
 * The `trusted_proxies` rule, shared by both planes: the client is the socket peer, unless the
 * peer is a trusted proxy; then it is the right-most `X-Forwarded-For` entry that is not itself
 * trusted. A malformed entry becomes the client as written, so no allowlist can match it.
 * Verdicts per address are cached: peers repeat, and a parse costs about a microsecond.
 */
export class TrustedProxies {
  readonly #cidrs: readonly Cidr[];
  readonly #verdicts = new LRUCache<string, boolean>({ max: 10_000 });

  constructor(cidrs: readonly Cidr[]) {
    this.#cidrs = cidrs;
  }

  get empty(): boolean {
    return this.#cidrs.length === 0;
  }

  isTrusted(ip: string): boolean {
    let v = this.#verdicts.get(ip);
    if (v === undefined) {
      const addr = parseAddress(ip);
      v = addr !== null && inAnyCidr(addr, this.#cidrs);
      this.#verdicts.set(ip, v);
    }
    return v;
  }

  /** The client address for a peer and its X-Forwarded-For header; `trusted` tells whether the peer is a proxy. */
  resolve(peer: string, xff: string | string[] | undefined): { ip: string; trusted: boolean } {
    if (this.#cidrs.length === 0 || !this.isTrusted(peer)) return { ip: peer, trusted: false };
    if (xff === undefined || xff === '') return { ip: peer, trusted: true };
    const entries = (Array.isArray(xff) ? xff.join(',') : xff).split(',');
    let ip = peer;
    for (let i = entries.length - 1; i >= 0; i--) {
      ip = normalizePeer(entries[i]!.trim());
      if (!this.isTrusted(ip)) break;
    }
    return { ip, trusted: true };
  }
}

const HEXTET = /^[0-9A-Fa-f]{1,4}$/;

/**
 * What a client is counted as: an IPv4 address as it is, an IPv6 address by its /64 prefix.
 * The prefix is read from the text here: ipaddr.js's strict IPv6 check costs tens of
 * microseconds a call (bench/micro/invalid-key-brake.ts), which an attacker rotating through
 * addresses would make the gateway pay for every key or connection. Text that is no IPv6 address, and
 * addresses in ::/64 (IPv4-mapped and -compatible forms, loopback), count as written.
 */
export function clientOf(ip: string): string {
  if (!ip.includes(':')) return ip;
  const zone = ip.indexOf('%');
  const s = zone === -1 ? ip : ip.slice(0, zone);
  const gap = s.indexOf('::');
  if (gap !== s.lastIndexOf('::')) return ip;
  const head = gap === -1 ? s.split(':') : gap === 0 ? [] : s.slice(0, gap).split(':');
  const tail = gap === -1 || gap + 2 === s.length ? [] : s.slice(gap + 2).split(':');
  // A dotted IPv4 tail stands for the last two groups.
  const groups = head.length + tail.length + (s.includes('.') ? 1 : 0);
  if (gap === -1 ? groups !== 8 : groups > 7) return ip;
  let prefix = '';
  let zero = true;
  for (let i = 0; i < 4; i++) {
    // Past the head, the groups the gap stands for (zeros), then the tail's.
    const fromTail = i - head.length - (8 - groups);
    const group = i < head.length ? head[i]! : fromTail < 0 ? '0' : tail[fromTail]!;
    if (!HEXTET.test(group)) return ip;
    const value = parseInt(group, 16);
    if (value !== 0) zero = false;
    prefix += `${value.toString(16)}:`;
  }
  return zero ? ip : `${prefix}:/64`;
}
