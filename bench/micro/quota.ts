import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../config/load.js';
import { systemClock } from '../../core/clock.js';
import { KeyHasher } from '../../core/key-hash.js';
import { Logger } from '../../core/log.js';
import { applyQuota, periodStart, type QuotaState } from '../../core/quota.js';
import { SqliteStore } from '../../core/store/sqlite-store.js';
import { compileKey } from '../../gateway/compiled-key.js';
import { RequestContext } from '../../gateway/context.js';
import { setKeyHeaders } from '../../gateway/respond.js';
import { buildRuntime } from '../../gateway/runtime.js';
import { createQuotaStage } from '../../gateway/stages/quota.js';
import { createRateLimitStage } from '../../gateway/stages/rate-limit.js';
import { keyRecord } from '../../test/lib/records.js';
import { measure, report } from './lib.js';

/**
 * What quotas (docs/quotas.md) cost the hot path. The quota stage for a key without a quota
 * (most keys: one property read), beside the rate-limit stage it follows; the rate-limit
 * headers without and with a quota item; the balance arithmetic (core/quota.ts applyQuota) the
 * file and SQLite stores run inside their write. A key with a quota also pays one store
 * operation a request; its time on the SQLite store, µs, is a note (it is a write, not a
 * hot function).
 *   node --import=tsx bench/micro/quota.ts
 */
const dir = mkdtempSync(join(tmpdir(), 'kgq-'));
const config = parseConfig({
  listeners: [{ port: 0, host: '127.0.0.1', environment: 'production' }],
  plans: { default: { limit: 1_000_000_000, window_seconds: 1 } },
  apis: [{ name: 'bench', path_prefix: '/', upstream: 'http://127.0.0.1:1', routes: [{ method: 'GET', path: '/*' }] }],
  admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
});
const store = await SqliteStore.open({ path: join(dir, 'keygate.db') });
const rt = buildRuntime(config, { clock: systemClock, log: new Logger({ level: 'error' }), store, hasher: new KeyHasher(null) });
const hasher = new KeyHasher(null);
const plain = compileKey(keyRecord('gw_live_x', hasher, Date.now()), rt.plans);
const metered = compileKey(keyRecord('gw_live_y', hasher, Date.now(), { quota: { limit: 1_000_000_000, period: 'day', refill: true, mode: 'enforce', refund_on: [] } }), rt.plans);
const quotaStage = createQuotaStage(rt);
const rateStage = createRateLimitStage(rt);
const req = { socket: {}, headers: {} } as unknown as IncomingMessage;

function context(key: typeof plain): RequestContext {
  const ctx = new RequestContext(req, null, null, null, { environment: 'production' }, 0);
  ctx.key = key;
  ctx.now = Date.now();
  return ctx;
}

const plainCtx = context(plain);
if (rateStage(plainCtx) !== undefined || quotaStage(plainCtx) !== undefined) throw new Error('a key without a quota must pass synchronously');
const meteredCtx = context(metered);
rateStage(meteredCtx);
await quotaStage(meteredCtx);
if (meteredCtx.quotaRemaining < 0) throw new Error('the metered key must report its balance');

const terms = metered.quota!;
const start = periodStart(Date.now(), terms.every);
let state: QuotaState | null = null;
const cases = [
  measure('quota stage, key without a quota', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (quotaStage(plainCtx) === undefined) s++;
    return s;
  }),
  measure('rate-limit stage, for comparison (1 hot key)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (rateStage(plainCtx) === undefined) s++;
    return s;
  }),
  measure('rate-limit headers, key without a quota', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const h: Record<string, unknown> = {};
      setKeyHeaders(rt, plainCtx, h);
      s += (h['ratelimit'] as string).length;
    }
    return s;
  }),
  measure('rate-limit headers, key with a quota (one more item each)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const h: Record<string, unknown> = {};
      setKeyHeaders(rt, meteredCtx, h);
      s += (h['ratelimit'] as string).length;
    }
    return s;
  }),
  measure('applyQuota, a spend (the stores’ arithmetic)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const r = applyQuota(state, terms, 'spend', 1, start);
      state = r.state;
      s += r.remaining;
    }
    return s;
  }),
];

const ops = 2_000;
const t0 = performance.now();
for (let i = 0; i < ops; i++) await store.quota(metered.account, terms, 'spend', 1, Date.now());
const storeUs = ((performance.now() - t0) * 1000) / ops;
await store.close();
rt.limiter.close();
rmSync(dir, { recursive: true, force: true });
report('quota: gateway/stages/quota.ts and core/quota.ts', cases, [
  `A key with a quota: one SQLite store operation (Store.quota, one immediate transaction) a request, ${storeUs.toFixed(1)} µs each (${ops} in a row).`,
]);
