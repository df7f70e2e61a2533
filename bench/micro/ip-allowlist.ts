import type { IncomingMessage } from 'node:http';
import { inAnyCidr, parseAddress } from '../../core/ip.js';
import { KeyHasher } from '../../core/key-hash.js';
import { compilePolicy } from '../../core/limiter.js';
import { compileKey, type CompiledKey } from '../../gateway/compiled-key.js';
import { RequestContext } from '../../gateway/context.js';
import { createIpAllowlistStage } from '../../gateway/stages/ip-allowlist.js';
import { keyRecord } from '../../test/lib/records.js';
import { measure, report } from './lib.js';

/**
 * Nanoseconds per request of the ip-allowlist stage (gateway/stages/ip-allowlist.ts) on a
 * cached key: the client address comes from the stage's small LRU of parsed addresses (as for
 * a returning client), then is matched against the key's CIDRs (core/ip.ts inAnyCidr, ipaddr.js).
 * Also the parse the LRU saves, and a candidate match on 32-bit integers.
 *   node --import=tsx bench/micro/ip-allowlist.ts
 */
const hasher = new KeyHasher(null);
const plans = new Map([['default', compilePolicy('default', { limit: 1_000_000_000, window_seconds: 1, burst: null })]]);
const compiled = (allowlist: string[] | null): CompiledKey =>
  compileKey(keyRecord('gw_live_x', hasher, Date.now(), { ip_allowlist: allowlist }), plans);
const ten = Array.from({ length: 9 }, (_, i) => `10.${i}.0.0/16`);

const stage = createIpAllowlistStage();
const req = { socket: {}, headers: {} } as unknown as IncomingMessage;
/** A request context as the earlier stages leave it: key resolved, client address not yet parsed. */
function context(key: CompiledKey, clientIp: string): RequestContext {
  const ctx = new RequestContext(req, null, null, null, { environment: 'production' }, 0);
  ctx.key = key;
  ctx.clientIp = clientIp;
  return ctx;
}

function stageCase(name: string, key: CompiledKey, clientIp: string, allowed: boolean) {
  const ctx = context(key, clientIp);
  if ((stage(ctx) === undefined) !== allowed) throw new Error(`${name}: expected ${allowed ? 'allowed' : 'denied'}`);
  return measure(name, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      ctx.clientAddr = undefined;
      if (stage(ctx) === undefined) s++;
    }
    return s;
  });
}

/**
 * The candidate (not Keygate code): IPv4 CIDRs compiled into (network, mask) integer pairs in
 * one Int32Array per key, and the client's dotted quad turned into an integer once.
 */
function ipv4ToInt(s: string): number {
  let n = 0;
  let part = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      n = (n << 8) | part;
      part = 0;
      dots++;
    } else part = part * 10 + (c - 48);
  }
  return dots === 3 ? (n << 8) | part : 0;
}
function compileV4(cidrs: string[]): Int32Array {
  const out = new Int32Array(cidrs.length * 2);
  cidrs.forEach((c, i) => {
    const [a, bits] = c.split('/');
    const mask = Number(bits) === 0 ? 0 : -1 << (32 - Number(bits));
    out[2 * i] = ipv4ToInt(a!) & mask;
    out[2 * i + 1] = mask;
  });
  return out;
}
function inV4(addr: number, nets: Int32Array): boolean {
  for (let i = 0; i < nets.length; i += 2) if ((addr & nets[i + 1]!) === nets[i]) return true;
  return false;
}

const v4one = compiled(['127.0.0.0/8']);
const v4ten = compiled([...ten, '127.0.0.0/8']);
const v6 = compiled(['2001:db8:1::/64']);
const addrs = ['127.0.0.1', '10.1.2.3', '192.168.7.200', '2001:db8:1::42'];
const parsedOne = parseAddress('127.0.0.1')!;
const intsTen = compileV4([...ten, '127.0.0.0/8']);
const clientInt = ipv4ToInt('127.0.0.1');

const cases = [
  stageCase('stage, key without an allowlist', compiled(null), '127.0.0.1', true),
  stageCase('stage, 1 IPv4 CIDR, client inside', v4one, '127.0.0.1', true),
  stageCase('stage, 10 IPv4 CIDRs, client in the last', v4ten, '127.0.0.1', true),
  stageCase('stage, 10 IPv4 CIDRs, client outside (denied)', v4ten, '192.168.7.200', false),
  stageCase('stage, 1 IPv6 /64, client inside', v6, '2001:db8:1::42', true),
  measure('  of which inAnyCidr, 10 IPv4 CIDRs, pre-parsed client', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (inAnyCidr(parsedOne, v4ten.cidrs!)) s++;
    return s;
  }),
  measure('  parseAddress (what the stage\'s LRU saves), mixed v4/v6', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (parseAddress(addrs[i & 3]!) !== null) s++;
    return s;
  }),
  measure('candidate: 10 IPv4 CIDRs as int pairs, client parsed to an int per call', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (inV4(ipv4ToInt(addrs[i & 1]!), intsTen)) s++;
    return s;
  }),
  measure('candidate: 10 IPv4 CIDRs as int pairs, client int known', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (inV4(clientInt, intsTen)) s++;
    return s;
  }),
];
report('ip-allowlist: gateway/stages/ip-allowlist.ts on a cached key', cases, [
  'The candidate rows are not Keygate code: a proposal for core/ip.ts and gateway/compiled-key.ts (IPv4 CIDRs as integer pairs).',
]);
