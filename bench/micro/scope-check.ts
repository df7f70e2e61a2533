import type { IncomingMessage } from 'node:http';
import { KeyHasher } from '../../core/key-hash.js';
import { compilePolicy } from '../../core/limiter.js';
import { compileKey } from '../../gateway/compiled-key.js';
import { RequestContext } from '../../gateway/context.js';
import type { CompiledRoute } from '../../gateway/routes.js';
import { createScopesStage } from '../../gateway/stages/scopes.js';
import { keyRecord } from '../../test/lib/records.js';
import { measure, report } from './lib.js';

/**
 * Nanoseconds per request of the scopes stage (gateway/stages/scopes.ts): the route's required
 * scopes against the cached key's scope Set, for a key holding the six scopes of
 * gateway.yaml.example's catalog.
 *   node --import=tsx bench/micro/scope-check.ts
 */
const hasher = new KeyHasher(null);
const plans = new Map([['default', compilePolicy('default', { limit: 1_000_000_000, window_seconds: 1, burst: null })]]);
const catalog = ['read_campaigns', 'write_campaigns', 'read_contacts', 'write_contacts', 'send_email', 'read_analytics'];
const key = compileKey(keyRecord('gw_live_x', hasher, Date.now(), { scopes: catalog }), plans);
const readOnly = compileKey(keyRecord('gw_live_x', hasher, Date.now(), { scopes: ['read_campaigns', 'read_contacts', 'read_analytics'] }), plans);

const stage = createScopesStage();
const req = { socket: {}, headers: {} } as unknown as IncomingMessage;
const route = (scopes: string[]): CompiledRoute => ({ name: 'r', method: 'POST', template: '/x', scopes, policy: null, maxBody: undefined });

function stageCase(name: string, held: typeof key, required: string[], allowed: boolean) {
  const ctx = new RequestContext(req, null, null, null, { environment: 'production' }, 0);
  ctx.key = held;
  ctx.route = route(required);
  if ((stage(ctx) === undefined) !== allowed) throw new Error(`${name}: expected ${allowed ? 'allowed' : 'denied'}`);
  return measure(name, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (stage(ctx) === undefined) s++;
    return s;
  });
}

const cases = [
  stageCase('route requires no scope', key, [], true),
  stageCase('route requires 1 scope, held', key, ['send_email'], true),
  stageCase('route requires 3 scopes, all held', key, ['read_campaigns', 'write_contacts', 'read_analytics'], true),
  stageCase('route requires 2 scopes, 1 missing (denied, builds the error)', readOnly, ['read_contacts', 'write_contacts'], false),
];
report('scope-check: gateway/stages/scopes.ts on a cached key', cases);
