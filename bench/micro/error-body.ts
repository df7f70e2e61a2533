import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../config/load.js';
import { systemClock } from '../../core/clock.js';
import { KeyHasher } from '../../core/key-hash.js';
import { Logger } from '../../core/log.js';
import { FileStore } from '../../core/store/file-store.js';
import { compileKey, type CompiledKey } from '../../gateway/compiled-key.js';
import { RequestContext, type Stage } from '../../gateway/context.js';
import { renderDenial } from '../../gateway/respond.js';
import { buildRuntime } from '../../gateway/runtime.js';
import { createIpAllowlistStage } from '../../gateway/stages/ip-allowlist.js';
import { createParseKeyStage } from '../../gateway/stages/parse-key.js';
import { createRateLimitStage } from '../../gateway/stages/rate-limit.js';
import { createScopesStage } from '../../gateway/stages/scopes.js';
import { createApiStage } from '../../gateway/stages/api.js';
import { createStatusStage } from '../../gateway/stages/status.js';
import { keyRecord } from '../../test/lib/records.js';
import { measure, report } from './lib.js';

/**
 * Nanoseconds per refusal on the gateway's hot refusal paths (401, 403, 429): the stage that
 * refuses, then gateway/respond.ts renderDenial building the JSON body and its headers, as a
 * client flooding bad or over-limit requests makes the gateway do for each one. No socket is
 * written; the stage and the rendering are all that is timed.
 *   node --import=tsx bench/micro/error-body.ts
 */
const config = parseConfig({
  listeners: [{ port: 0, host: '127.0.0.1', environment: 'production' }],
  plans: { default: { limit: 1, window_seconds: 3600 } },
  apis: [{ name: 'bench', path_prefix: '/', upstream: 'http://127.0.0.1:1' }],
  admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
  keys: { invalid_key_brake: null },
});
const hasher = new KeyHasher(null);
const dir = mkdtempSync(join(tmpdir(), 'kgm-errors-'));
// The stages timed here never reach the store.
const store = await FileStore.open({ dir });
const rt = buildRuntime(config, { clock: systemClock, log: new Logger({ level: 'error' }), store, hasher });
const now = Date.now();
const key = (over: Parameters<typeof keyRecord>[3]): CompiledKey => compileKey(keyRecord('gw_live_x', hasher, now, over), rt.plans);

const req = { socket: {}, headers: {}, method: 'GET', url: '/x' } as unknown as IncomingMessage;
function context(setup: (ctx: RequestContext) => void): RequestContext {
  const ctx = new RequestContext(req, null, null, null, { environment: 'production' }, 0);
  ctx.requestId = '0b6f3a44-8e0f-4c5e-9a43-5d2b8f1f2c17';
  ctx.now = now;
  ctx.clientIp = '198.51.100.7';
  ctx.api = rt.apis[0]!;
  setup(ctx);
  return ctx;
}

function refusalCase(name: string, status: number, stage: Stage, ctx: RequestContext, reset: (ctx: RequestContext) => void = () => {}) {
  const first = stage(ctx);
  if (first === undefined || first instanceof Promise || renderDenial(rt, ctx, first).status !== status) {
    throw new Error(`${name}: expected a synchronous ${status}`);
  }
  return measure(name, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      reset(ctx);
      const denial = stage(ctx) as Exclude<ReturnType<Stage>, Promise<unknown> | undefined>;
      s += renderDenial(rt, ctx, denial).body.length;
    }
    return s;
  });
}

const limited = key({});
rt.limiter.take(limited.id, limited.policy, now, context(() => {}).rate);

const cases = [
  refusalCase('401 missing_token (no credential)', 401, createParseKeyStage(rt), context(() => {})),
  refusalCase('401 invalid_token, reason revoked', 401, createStatusStage(), context((ctx) => (ctx.key = key({ revoked_at: now - 1 })))),
  refusalCase('403 api_not_allowed', 403, createApiStage(rt), context((ctx) => (ctx.key = key({ apis: ['other'] })))),
  refusalCase(
    '403 insufficient_permissions (1 of 2 scopes missing)',
    403,
    createScopesStage(),
    context((ctx) => {
      ctx.key = key({ scopes: ['read_contacts'] });
      ctx.route = { name: 'r', method: 'POST', template: '/x', scopes: ['read_contacts', 'send_email'], policy: null, maxBody: undefined };
    }),
  ),
  refusalCase(
    '403 ip_not_allowed (IPv4 client, one CIDR)',
    403,
    createIpAllowlistStage(),
    context((ctx) => (ctx.key = key({ ip_allowlist: ['203.0.113.0/24'] }))),
    (ctx) => (ctx.clientAddr = undefined),
  ),
  refusalCase(
    '429 rate_limit_exceeded (key bucket empty)',
    429,
    createRateLimitStage(rt),
    context((ctx) => (ctx.key = limited)),
  ),
];
await store.close();
rmSync(dir, { recursive: true, force: true });
report('error-body: the refusing stage + gateway/respond.ts renderDenial', cases);
