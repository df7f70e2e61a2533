import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyService } from '../admin/keys.js';
import { parseConfig } from '../config/load.js';
import { systemClock } from '../core/clock.js';
import { Logger } from '../core/log.js';
import { FileStore } from '../core/store/file-store.js';
import { RequestContext } from '../gateway/context.js';
import { createGateway, hasherFor } from '../gateway/server.js';
import { buildRuntime } from '../gateway/runtime.js';
import { compileKey } from '../gateway/compiled-key.js';
import { createForwardStage } from '../gateway/stages/forward.js';

/**
 * One benchmark target in its own process: `bare` (the gateway's forwarding code with no
 * checks: it strips the credential, sets a request id and the identity and forwarding headers
 * as the gateway does) or `gateway` (full enforcement: scopes, API list, allowlist and rate
 * limit on an LRU hit). Prints `ready <key>` once listening.
 */
const [kind, portArg, upstream] = process.argv.slice(2);
const port = Number(portArg);
const config = parseConfig({
  listeners: [{ port, host: '127.0.0.1', environment: 'production' }],
  plans: { default: { limit: 1_000_000_000, window_seconds: 1 } },
  scopes: { catalog: ['read'] },
  apis: [{ name: 'bench', path_prefix: '/', upstream, routes: [{ method: 'GET', path: '/*', scopes: ['read'] }] }],
  admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
  log: { level: 'error' },
});
const log = new Logger({ level: 'error' });
const store = await FileStore.open({ dir: mkdtempSync(join(tmpdir(), 'keygate-bench-')) });
const hasher = hasherFor(config);
const keys = new KeyService(config, store, systemClock, hasher);
const { key, record } = await keys.create(
  {
    name: 'bench', description: null, environment: 'production', scopes: ['read'], apis: ['bench'], plan: null,
    rate_limit: null, ip_allowlist: ['127.0.0.0/8'], expires_at: null, not_before: null, meta: {}, application: null, policy: null,
  },
  { name: 'bench', role: 'admin', tenant: null, ip: '127.0.0.1', request_id: 'bench' },
);

if (kind === 'gateway') {
  await createGateway(config, { store, log, hasher }).listen();
} else if (kind === 'bare') {
  const rt = buildRuntime(config, { clock: systemClock, log, store, hasher });
  const forward = createForwardStage(rt);
  const compiled = compileKey(record, rt.plans);
  const api = rt.apis[0]!;
  const listener = { environment: 'production' };
  createServer((req, res) => {
    const ctx = new RequestContext(req, res, null, null, listener, 0);
    const url = req.url!;
    const q = url.indexOf('?');
    ctx.path = q === -1 ? url : url.slice(0, q);
    ctx.query = q === -1 ? '' : url.slice(q);
    ctx.peer = '127.0.0.1';
    ctx.requestId = randomUUID();
    ctx.api = api;
    ctx.key = compiled;
    forward(ctx);
  }).listen(port, '127.0.0.1');
} else {
  throw new Error(`unknown target ${kind}`);
}
process.stdout.write(`ready ${key}\n`);
// A clean exit on SIGINT lets `--cpu-prof` write its profile.
process.on('SIGINT', () => process.exit(0));
