import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyService } from '../../admin/keys.js';
import { parseConfig } from '../../config/load.js';
import { systemClock } from '../../core/clock.js';
import { Logger } from '../../core/log.js';
import { FileStore } from '../../core/store/file-store.js';
import { RequestContext } from '../../gateway/context.js';
import { buildRuntime } from '../../gateway/runtime.js';
import { hasherFor } from '../../gateway/server.js';
import { createClientIpStage } from '../../gateway/stages/client-ip.js';
import { createRouteStage } from '../../gateway/stages/route.js';
import { createParseKeyStage } from '../../gateway/stages/parse-key.js';
import { createResolveKeyStage } from '../../gateway/stages/resolve-key.js';
import { createStatusStage } from '../../gateway/stages/status.js';
import { createEnvironmentStage } from '../../gateway/stages/environment.js';
import { createApiStage } from '../../gateway/stages/api.js';
import { createIpAllowlistStage } from '../../gateway/stages/ip-allowlist.js';
import { createScopesStage } from '../../gateway/stages/scopes.js';
import { createRateLimitStage } from '../../gateway/stages/rate-limit.js';
import { setKeyHeaders } from '../../gateway/respond.js';
import { randomUUID } from 'node:crypto';
/**
 * Nanoseconds per call of every check stage on a cached key, and of the whole run of checks
 * with the rate-limit headers, on a hand-built request (no sockets).
 *   node --import=tsx bench/micro/checks.ts
 */
const config = parseConfig({
  listeners: [{ port: 0, host: '127.0.0.1', environment: 'production' }],
  plans: { default: { limit: 1_000_000_000, window_seconds: 1 } },
  scopes: { catalog: ['read'] },
  apis: [{ name: 'bench', path_prefix: '/', upstream: 'http://127.0.0.1:1', routes: [{ method: 'GET', path: '/*', scopes: ['read'] }] }],
  admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
});
const store = await FileStore.open({ dir: mkdtempSync(join(tmpdir(), 'kgm-')) });
const hasher = hasherFor(config);
const { key } = await new KeyService(config, store, systemClock, hasher).create({ name: 'b', description: null, environment: 'production', scopes: ['read'], apis: ['bench'], plan: null, rate_limit: null, ip_allowlist: ['127.0.0.0/8'], expires_at: null, not_before: null, meta: {}, application: null, policy: null }, { name: 'b', role: 'admin', tenant: null, ip: '127.0.0.1', request_id: 'bench' });
const rt = buildRuntime(config, { clock: systemClock, log: new Logger({ level: 'error' }), store, hasher });
const stages = [createClientIpStage(rt), createRouteStage(rt), createParseKeyStage(rt), createResolveKeyStage(rt), createStatusStage(), createEnvironmentStage(), createApiStage(rt), createIpAllowlistStage(), createScopesStage(), createRateLimitStage(rt)];
const names = ['client-ip','route','parse-key','resolve-key','status','env','api','ip','scopes','rate'];
const req: any = { url: '/bench', method: 'GET', headers: { host: 'x', authorization: `Bearer ${key}` }, socket: { remoteAddress: '127.0.0.1' } };
const listener = { environment: 'production' };
// warm: fill cache
{ const ctx = new RequestContext(req, null as any, null, null, listener, 0); for (const s of stages) { const r = s(ctx); if (r instanceof Promise) await r; } }
const N = 300_000;
const per = new Float64Array(stages.length);
for (let round = 0; round < 3; round++) {
  per.fill(0);
  let total = 0n;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const ctx = new RequestContext(req, null as any, null, null, listener, 0);
    ctx.requestId = randomUUID(); ctx.now = Date.now();
    for (let j = 0; j < stages.length; j++) { const r = stages[j]!(ctx); if (r !== undefined) throw new Error(names[j] + JSON.stringify(r)); }
    const h: Record<string, unknown> = {}; setKeyHeaders(rt, ctx, h);
  }
  total = process.hrtime.bigint() - t0;
  console.log(`all checks + headers: ${(Number(total) / N).toFixed(0)} ns/request`);
}
for (let j = 0; j < stages.length; j++) {
  const ctx = new RequestContext(req, null as any, null, null, listener, 0); ctx.now = Date.now();
  for (let k = 0; k < j; k++) stages[k]!(ctx);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) stages[j]!(ctx);
  console.log(names[j], (Number(process.hrtime.bigint() - t0) / N).toFixed(0), 'ns');
}
process.exit(0);
