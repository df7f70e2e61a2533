import type { IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../config/load.js';
import { systemClock } from '../../core/clock.js';
import { generateKey } from '../../core/key-format.js';
import { Logger } from '../../core/log.js';
import { FileStore } from '../../core/store/file-store.js';
import { RequestContext } from '../../gateway/context.js';
import { clientOf } from '../../core/ip.js';
import { buildRuntime } from '../../gateway/runtime.js';
import { hasherFor } from '../../gateway/server.js';
import { createResolveKeyStage } from '../../gateway/stages/resolve-key.js';
import { keyRecord } from '../../test/lib/records.js';
import { measure, report } from './lib.js';

/**
 * What the invalid-key brake (gateway/invalid-key-brake.ts) costs. Nanoseconds per call of
 * the resolve-key stage on a cached known key with the brake at its defaults and with it off
 * (`keys.invalid_key_brake: null`), built the same way, in the same process: a known key in
 * the cache never reaches the brake, so the two should not differ. Then the brake's own cost
 * on the path of an invalid key (check and count, IPv4 and an IPv6 /64; the count stays
 * below the limit, so every call is answered 401 as the first twenty of a window are), and
 * the /64 read from an IPv6 address's text alone.
 *   node --import=tsx bench/micro/invalid-key-brake.ts
 */
const dir = mkdtempSync(join(tmpdir(), 'kgm-brake-'));
const store = await FileStore.open({ dir });
const base = {
  listeners: [{ port: 0, host: '127.0.0.1', environment: 'production' }],
  apis: [{ name: 'bench', path_prefix: '/', upstream: 'http://127.0.0.1:1' }],
  admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
};
const on = parseConfig(base);
const off = parseConfig({ ...base, keys: { invalid_key_brake: null } });
const hasher = hasherFor(on);
const key = Buffer.from(`Bearer ${generateKey('gw', 'live')}`).toString().slice(7);
await store.putKey(keyRecord(key, hasher, Date.now()), 0);
const log = new Logger({ level: 'error' });
const req = { socket: {}, headers: {} } as unknown as IncomingMessage;
const context = (clientIp: string) => {
  const ctx = new RequestContext(req, null, null, null, { environment: 'production' }, 0);
  ctx.clientIp = clientIp;
  ctx.token = key;
  return ctx;
};

async function resolveCase(name: string, config: typeof on) {
  const rt = buildRuntime(config, { clock: systemClock, log, store, hasher });
  const stage = createResolveKeyStage(rt);
  const ctx = context('198.51.100.7');
  const first = stage(ctx);
  if (first instanceof Promise) await first;
  if (stage(ctx) !== undefined || ctx.key === null) throw new Error(`${name}: the key is not a cache hit`);
  return measure(name, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (stage(ctx) === undefined) s++;
    return s;
  });
}

const brake = buildRuntime(on, { clock: systemClock, log, store, hasher }).brake!;
function brakeCase(name: string, clientIp: (n: string) => string) {
  const ctx = context(clientIp('0'));
  const denial = { code: 'invalid_token', reason: 'not_found' } as const;
  return measure(name, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      // A fresh client every 20 calls: each stays under the limit, as a window's first keys do.
      if (i % 20 === 0) ctx.clientIp = clientIp((i & 0xffff).toString(16));
      if (brake.refuse(ctx, denial) === denial) s++;
    }
    return s;
  });
}

const cases = [
  await resolveCase('resolve-key, cached known key, brake on (defaults)', on),
  await resolveCase('resolve-key, cached known key, brake off', off),
  await resolveCase('resolve-key, cached known key, brake on (again)', on),
  brakeCase('brake check + count of an invalid key, IPv4', (n) => `198.51.${n.length}.${parseInt(n, 16) & 0xff}`),
  brakeCase('brake check + count of an invalid key, IPv6 (its /64)', (n) => `2001:db8:1:${n}::5`),
  measure('clientOf, an IPv6 address to its /64', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += clientOf(i & 1 ? '2001:db8:1:2::5' : '2001:db8:85a3:8d3:1319:8a2e:370:7348').length;
    return s;
  }),
];
await store.close();
rmSync(dir, { recursive: true, force: true });
report('invalid-key-brake: the brake on the hot path and off it', cases);
