import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { Logger } from '../core/log.js';
import { ConfigReloader, planReload } from '../core/reload.js';
import { startKeygate, type RunningKeygate } from './lib/cli.js';
import { startStack, testConfig } from './lib/stack.js';
import { freePort } from './lib/redis.js';
import { createTestPki } from './lib/tls-certs.js';
import { tlsCall } from './lib/tls-client.js';
import { within } from './lib/within.js';

// Reload without restart (docs/operations.md, "Reloading the configuration"), against real
// keygate processes: SIGHUP and POST /v1/admin/reload apply a changed file for new requests,
// refuse an invalid one whole, name what needs a restart, let a request under way finish on
// the configuration it started on, pick up a renewed certificate while an open connection
// carries on, drop no request across 20 reloads under wrk's load (an invalid file among them
// changing nothing), and reach every gateway worker.

const ADMIN = 'reload-admin-token-0123456789';
const VIEWER = 'reload-viewer-token-0123456789';
const TENANT_ADMIN = 'reload-tenant-admin-token-0123456789';

/** An upstream whose /hold requests wait until released; anything else answers 200 at once. */
const held: ServerResponse[] = [];
/** How many requests for /v1/emails/list the upstream received. */
let listed = 0;
const upstream = createServer((req, res) => {
  req.resume();
  if (req.url?.includes('/hold')) return void held.push(res);
  if (req.url === '/v1/emails/list') listed++;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end('{"ok":true}');
});
await new Promise<void>((ok) => upstream.listen(0, '127.0.0.1', ok));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
t.teardown(() => {
  upstream.closeAllConnections();
  upstream.close();
});

const dir = mkdtempSync(join(tmpdir(), 'keygate-reload-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// Two certificates of one CA for the TLS listener: it starts on A, whose files B replaces.
const pki = createTestPki();
t.teardown(() => pki.close());
const ca = pki.read(pki.ca.cert);
const certA = pki.leaf('cert-a', { subject: '/CN=cert-a.test', dns: ['localhost'], ips: ['127.0.0.1'] });
const certB = pki.leaf('cert-b', { subject: '/CN=cert-b.test', dns: ['localhost'], ips: ['127.0.0.1'] });
const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
copyFileSync(certA.cert, live.cert);
copyFileSync(certA.key, live.key);

interface Variant {
  /** Scopes GET /v1/emails/list needs. */
  listScopes?: string[];
  /** Whether GET /v1/emails/new is a route. */
  newRoute?: boolean;
  limit?: number;
  catalog?: string[];
  requestIdHeader?: string;
  /** Written as is at the end (a section that needs a restart, or a broken one). */
  extra?: string;
  gwPort: number;
  /** A TLS gateway listener on the live certificate's files, when given. */
  tlsPort?: number;
  adminPort: number;
  db: string;
  workers?: number;
  logLevel?: string;
}

function yaml(v: Variant): string {
  return `workers: ${v.workers ?? 1}
listeners:
  - { port: ${v.gwPort}, host: 127.0.0.1, environment: production }
${v.tlsPort === undefined ? '' : `  - { port: ${v.tlsPort}, host: 127.0.0.1, environment: production, tls: { cert: ${JSON.stringify(live.cert)}, key: ${JSON.stringify(live.key)} } }\n`}scopes: { catalog: [${(v.catalog ?? ['read', 'write']).join(', ')}] }
plans:
  default: { limit: ${v.limit ?? 100000}, window_seconds: 60 }
headers: { request_id: ${v.requestIdHeader ?? 'x-request-id'} }
apis:
  - name: emails
    path_prefix: /v1/emails
    upstream: "${upstreamUrl}"
    timeout_ms: 10000
    routes:
      - { method: GET, path: /v1/emails/hold }
      - { method: GET, path: /v1/emails/list, scopes: [${(v.listScopes ?? ['read']).join(', ')}] }
${v.newRoute ? '      - { method: GET, path: /v1/emails/new }\n' : ''}admin:
  port: ${v.adminPort}
  host: 127.0.0.1
  tokens:
    - { name: ops, token: "${ADMIN}", role: admin }
    - { name: watcher, token: "${VIEWER}", role: viewer }
    - { name: tenant-ops, token: "${TENANT_ADMIN}", role: admin, tenant: acme }
store: { type: sqlite, path: ${JSON.stringify(v.db)} }
scheduler: { enabled: false }
log: { level: ${v.logLevel ?? 'info'} }
${v.extra ?? ''}`;
}

async function call(url: string, options: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const res = await request(url, {
    method: (options.method ?? 'GET') as 'GET',
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text.startsWith('{') ? (JSON.parse(text) as Record<string, any>) : text };
}

/** Polls `check` until it holds; a condition, not a sleep. */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  await within(
    (async () => {
      while (!(await check())) await new Promise((r) => setTimeout(r, 20));
    })(),
    ms,
    what,
  );
}

/** The admin plane's `name` gauge (the process's own, in /metrics). */
async function gauge(adminUrl: string, name: string): Promise<number> {
  const text = (await call(`${adminUrl}/metrics`)).body as string;
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (m === null) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}

async function createKey(adminUrl: string, scopes: string[]) {
  return call(`${adminUrl}/v1/keys`, { method: 'POST', token: ADMIN, body: { name: 'reload test', scopes } });
}

// Both processes start at once: a start under tsx takes seconds, most of this file's time.
const one = { gwPort: await freePort(), tlsPort: await freePort(), adminPort: await freePort(), path: join(dir, 'one.yaml') };
const many = { gwPort: await freePort(), adminPort: await freePort(), path: join(dir, 'workers.yaml') };
const oneBase: Variant = { gwPort: one.gwPort, tlsPort: one.tlsPort, adminPort: one.adminPort, db: join(dir, 'one', 'keygate.db') };
const manyBase: Variant = { gwPort: many.gwPort, adminPort: many.adminPort, db: join(dir, 'workers', 'keygate.db'), workers: 2 };
writeFileSync(one.path, yaml(oneBase));
writeFileSync(many.path, yaml(manyBase));
const [oneKg, manyKg] = await Promise.all([startKeygate(one.path), startKeygate(many.path)]);
t.teardown(() => Promise.all([oneKg.stop(), manyKg.stop()]));

t.test('one process', async (t) => {
  const { gwPort, path } = one;
  const base = oneBase;
  const kg: RunningKeygate = oneKg;
  const gw = `http://127.0.0.1:${gwPort}`;
  const admin = kg.adminUrl;
  const created = await createKey(admin, ['read']);
  t.equal(created.status, 201);
  const key = (created.body as { key: string }).key;
  const get = (p: string, headers: Record<string, string> = {}) => call(`${gw}${p}`, { token: key, headers });
  const reload = (token = ADMIN) => call(`${admin}/v1/admin/reload`, { method: 'POST', token });

  t.equal(await gauge(admin, 'keygate_config_generation'), 1, 'generation 1 as started');
  t.equal(await gauge(admin, 'keygate_config_last_reload_success'), 1);

  await t.test('SIGHUP applies a changed route rule and a new route to new requests', async (t) => {
    t.equal((await get('/v1/emails/list')).status, 200, 'read is enough before');
    t.equal((await get('/v1/emails/new')).status, 404, 'no such route before');
    writeFileSync(path, yaml({ ...base, listScopes: ['write'], newRoute: true }));
    kg.proc.child.kill('SIGHUP');
    await until(async () => (await gauge(admin, 'keygate_config_generation')) === 2, 15_000, 'generation 2');
    const denied = await get('/v1/emails/list');
    t.equal(denied.status, 403, 'the route now needs write');
    t.equal((denied.body as Record<string, unknown>).error, 'insufficient_permissions');
    t.same((denied.body as Record<string, unknown>).missing_scopes, ['write']);
    t.equal((await get('/v1/emails/new')).status, 200, 'the new route is served');
    const line = await kg.proc.waitForLog((l) => l.msg === 'configuration reloaded' && l.generation === 2);
    t.same(line.changed, ['apis'], 'the log names the sections changed');
    t.equal(await gauge(admin, 'keygate_config_last_reload_success'), 1);
  });

  await t.test('POST /v1/admin/reload applies a plan and a scope catalog change', async (t) => {
    t.match((await get('/v1/emails/new')).headers['ratelimit-policy'], /q=100000/);
    t.equal((await createKey(admin, ['extra'])).status, 400, 'extra is not a scope yet');
    writeFileSync(path, yaml({ ...base, listScopes: ['write'], newRoute: true, limit: 50000, catalog: ['read', 'write', 'extra'] }));
    const res = await reload();
    t.equal(res.status, 200);
    t.match(res.body, { ok: true, generation: 3, changed: ['plans', 'scopes'], restart_required: [], errors: [] });
    t.notOk('workers' in (res.body as object), 'no workers, no workers field');
    // The answer comes once the reload is applied: no wait needed.
    t.match((await get('/v1/emails/new')).headers['ratelimit-policy'], /q=50000/, 'cached key compiled again with the new plan');
    t.equal((await createKey(admin, ['extra'])).status, 201, 'the admin plane takes the new scope');
    const scopes = await call(`${admin}/v1/scopes`, { token: ADMIN });
    t.ok((scopes.body as { data: { name: string }[] }).data.some((s) => s.name === 'extra'), 'GET /v1/scopes lists it');
  });

  await t.test('an invalid file changes nothing and every problem is reported', async (t) => {
    const good = yaml({ ...base, listScopes: ['write'], newRoute: true, limit: 50000, catalog: ['read', 'write', 'extra'] });
    // Two problems: a route naming an unknown plan, a plan with a negative limit; and a changed
    // listener that must not be taken for applied either.
    writeFileSync(
      path,
      yaml({ ...base, gwPort: gwPort + 1, limit: -5, listScopes: ['nosuch'], newRoute: false, catalog: ['read'] }),
    );
    const res = await reload();
    t.equal(res.status, 422);
    const body = res.body as Record<string, any>;
    t.equal(body.error, 'config_invalid');
    t.equal(body.ok, false);
    t.equal(body.generation, 3, 'the running generation is kept');
    const paths = (body.details as { path: string }[]).map((d) => d.path);
    t.ok(paths.includes('plans.default.limit'), `the bad limit is named (${paths.join(', ')})`);
    t.ok(paths.some((p) => p.startsWith('apis[0].routes[1].scopes')), 'the unknown scope is named');
    t.ok((body.details as { line?: number }[]).every((d) => typeof d.line === 'number'), 'each placed in the file');
    t.equal(await gauge(admin, 'keygate_config_generation'), 3);
    t.equal(await gauge(admin, 'keygate_config_last_reload_success'), 0, 'the refusal shows in the metric');
    t.equal((await get('/v1/emails/new')).status, 200, 'the route removed by the refused file is still served');
    t.match((await get('/v1/emails/new')).headers['ratelimit-policy'], /q=50000/, 'the plan as it was');
    t.equal((await get('/v1/emails/list')).status, 403, 'the rule as it was');

    // SIGHUP with the same file: logged, problem by problem, as the POST's refusal was.
    const refusals = () => kg.proc.logs().filter((l) => l.msg === 'configuration reload refused; the running configuration is kept');
    t.equal(refusals().length, 1, 'the POST’s refusal is logged');
    kg.proc.child.kill('SIGHUP');
    await until(async () => refusals().length === 2, 15_000, 'the SIGHUP’s refusal is logged');
    t.match(refusals()[1], { level: 'error', generation: 3 });
    t.ok(refusals()[1]!.errors >= 2, 'with the count of problems');
    const problems = kg.proc.logs().filter((l) => l.msg === 'configuration reload: problem' && l.path === 'plans.default.limit');
    t.equal(problems.length, 2, 'each problem logged with its path, once per refusal');
    writeFileSync(path, good);
  });

  await t.test('a change that needs a restart is named and not applied', async (t) => {
    const [otherGw, otherAdmin] = [await freePort(), await freePort()];
    writeFileSync(
      path,
      yaml({ ...base, gwPort: otherGw, adminPort: otherAdmin, db: join(dir, 'elsewhere.db'), listScopes: ['read'], newRoute: true, limit: 50000, catalog: ['read', 'write', 'extra'] }),
    );
    const res = await reload();
    t.equal(res.status, 200, 'the reloadable part is applied');
    const body = res.body as Record<string, any>;
    t.same(body.changed, ['apis']);
    t.same(
      (body.restart_required as { path: string }[]).map((r) => r.path).sort(),
      ['admin.port', 'listeners[0].port', 'store.path'],
      'each restart-only change named',
    );
    t.equal((await get('/v1/emails/list')).status, 200, 'the route change applied');
    await t.rejects(request(`http://127.0.0.1:${otherGw}/v1/emails/list`), 'the new listener port is not bound');
    const warned = await kg.proc.waitForLog((l) => l.msg === 'configuration reload: not applied, needs a restart' && l.path === 'listeners[0].port');
    t.equal(warned.level, 'warn');
  });

  await t.test('a request under way finishes on the configuration it started on', async (t) => {
    const before = held.length;
    const slow = get('/v1/emails/hold');
    await until(async () => held.length > before, 10_000, 'the upstream holds the request');
    writeFileSync(path, yaml({ ...base, listScopes: ['read'], newRoute: true, limit: 50000, catalog: ['read', 'write', 'extra'], requestIdHeader: 'x-trace-id' }));
    const res = await reload();
    t.equal(res.status, 200);
    const fresh = await get('/v1/emails/list');
    t.ok(fresh.headers['x-trace-id'], 'a new request carries the new request-id header');
    t.notOk(fresh.headers['x-request-id']);
    held.shift()!.end('{"held":true}');
    const old = await slow;
    t.equal(old.status, 200, 'the held request completes');
    t.ok(old.headers['x-request-id'], 'answered with the header name it started with');
    t.notOk(old.headers['x-trace-id']);
  });

  await t.test('SIGHUP picks up a renewed certificate; a connection opened before carries on', async (t) => {
    const tlsUrl = `https://127.0.0.1:${one.tlsPort}`;
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca, servername: 'localhost' });
    t.teardown(() => agent.destroy());
    /** GET /v1/emails/list on the agent's one keep-alive connection. */
    const onKept = () =>
      new Promise<{ status: number; cn: string; reused: boolean }>((resolve, reject) => {
        const req = httpsRequest(`${tlsUrl}/v1/emails/list`, { agent, headers: { authorization: `Bearer ${key}` } }, (res) => {
          const cn = String((res.socket as TLSSocket).getPeerCertificate().subject.CN);
          res.resume();
          res.once('end', () => resolve({ status: res.statusCode!, cn, reused: req.reusedSocket }));
        });
        req.once('error', reject);
        req.end();
      });
    /** The certificate a new connection is shown. */
    const fresh = async () => (await tlsCall(tlsUrl, { ca, path: '/v1/emails/list', headers: { authorization: `Bearer ${key}` } })).peer.subject.CN;

    const before = await onKept();
    t.match(before, { status: 200, cn: 'cert-a.test', reused: false }, 'the kept connection opens on certificate A');
    t.equal(await fresh(), 'cert-a.test');
    copyFileSync(certB.cert, live.cert);
    copyFileSync(certB.key, live.key);
    kg.proc.child.kill('SIGHUP');
    await until(async () => (await fresh()) === 'cert-b.test', 15_000, 'a new connection shown certificate B');
    t.pass('a new connection is shown certificate B');
    const after = await onKept();
    t.equal(after.status, 200, 'the connection opened before the reload still serves');
    t.ok(after.reused, 'on the same connection');
    t.equal(after.cn, 'cert-a.test', 'which keeps the certificate it was opened with');
  });

  await t.test('no request fails across 20 reloads under wrk; an invalid file among them changes nothing', async (t) => {
    const variants = [
      yaml({ ...base, listScopes: ['read'], newRoute: true, limit: 50000, catalog: ['read', 'write', 'extra'] }),
      yaml({ ...base, listScopes: ['read'], newRoute: true, limit: 60000, catalog: ['read', 'write', 'extra'], logLevel: 'warn' }),
    ];
    // Refused for its plan; applied, its rule would answer wrk's key (scope read) 403.
    const invalid = yaml({ ...base, listScopes: ['write'], newRoute: true, limit: -5, catalog: ['read', 'write', 'extra'] });
    // wrk counts only statuses over 399 as errors: the script counts every non-2xx per thread
    // and reports them, with the socket errors, as one JSON line at the end.
    const script = join(dir, 'count.lua');
    writeFileSync(
      script,
      `local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function() non2xx = 0 end
response = function(status) if status < 200 or status > 299 then non2xx = non2xx + 1 end end
done = function(summary)
  local n = 0
  for _, thread in ipairs(threads) do n = n + thread:get("non2xx") end
  local e = summary.errors
  io.write(string.format('{"requests":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\\n', summary.requests, n, e.connect, e.read, e.write, e.timeout))
end
`,
    );
    // Bounded: stopped (SIGINT, after which wrk reports) once the reloads are done; 30 s at most.
    // The timeout is generous so that a busy host's slow answer is not counted as a failure.
    const wrk = spawn('wrk', ['-t1', '-c8', '-d30s', '--timeout', '10s', '-s', script, '-H', `Authorization: Bearer ${key}`, `${gw}/v1/emails/list`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    wrk.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    wrk.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    // Not installed: the first wait below fails, saying why (.ci/deps installs it).
    wrk.once('error', (err) => (out += `wrk: ${err.message}\n`));
    const wrkDone = new Promise<number | null>((resolve) => wrk.once('close', resolve));
    t.teardown(() => void (wrk.exitCode === null && wrk.signalCode === null && wrk.kill('SIGKILL')));

    const from = await gauge(admin, 'keygate_config_generation');
    const reloads: string[] = [];
    for (let i = 0; i < 20; i++) {
      // wrk's requests between each two reloads, so that every swap lands among requests under way.
      const mark = listed;
      await until(async () => listed >= mark + 10, 10_000, 'wrk requests answered since the last reload').catch((err: Error) => {
        throw new Error(`${err.message}; wrk said: ${out}`);
      });
      if (i === 10) {
        writeFileSync(path, invalid);
        const refused = await reload();
        t.equal(refused.status, 422, 'the invalid file is refused');
        t.equal((refused.body as Record<string, unknown>).generation, from + 10, 'the running generation is kept');
        t.equal(await gauge(admin, 'keygate_config_last_reload_success'), 0, 'the refusal shows in the metric');
        const probe = await get('/v1/emails/list');
        t.equal(probe.status, 200, 'the rule as it was');
        t.match(probe.headers['ratelimit-policy'], /q=60000/, 'the plan as it was');
        const mark2 = listed;
        await until(async () => listed >= mark2 + 10, 10_000, 'wrk requests answered after the refusal');
      }
      writeFileSync(path, variants[i % 2]!);
      const res = await reload();
      if (res.status !== 200) reloads.push(`reload ${i}: ${res.status}`);
    }
    wrk.kill('SIGINT');
    const code = await within(wrkDone, 10_000, 'wrk reporting');
    t.equal(code, 0, 'wrk ran to its report');
    t.same(reloads, [], 'every valid reload applied');
    t.equal(await gauge(admin, 'keygate_config_generation'), from + 20, '20 reloads applied, the refused one not counted');
    const line = out.split('\n').find((l) => l.startsWith('{'));
    t.ok(line, `wrk's report:\n${out}`);
    const report = JSON.parse(line!) as Record<string, number>;
    t.ok(report.requests! >= 200, `requests kept flowing (${report.requests} answered)`);
    t.same(report, { ...report, non2xx: 0, connect: 0, read: 0, write: 0, timeout: 0 }, 'no socket error and no non-2xx response');
  });

  await t.test('only an admin token of no tenant may reload; each reload is audited', async (t) => {
    const generation = await gauge(admin, 'keygate_config_generation');
    const viewer = await reload(VIEWER);
    t.equal(viewer.status, 403);
    t.equal((viewer.body as Record<string, unknown>).error, 'forbidden');
    const tenant = await reload(TENANT_ADMIN);
    t.equal(tenant.status, 403, 'a tenant’s admin is refused');
    t.match((tenant.body as Record<string, unknown>).message, /tenant/);
    t.equal((await call(`${admin}/v1/admin/reload`, { method: 'POST' })).status, 401);
    t.equal(await gauge(admin, 'keygate_config_generation'), generation, 'nothing reloaded');
    const audit = await call(`${admin}/v1/audit?action=config.reloaded`, { token: ADMIN });
    const entries = (audit.body as { data: Record<string, any>[] }).data;
    t.ok(entries.length >= 20, 'applied reloads are in the audit log');
    t.match(entries[0], { actor: 'ops', action: 'config.reloaded', target_type: 'config', changes: { generation: { to: generation } } });
    const refused = await call(`${admin}/v1/audit?action=config.reload_refused`, { token: ADMIN });
    t.equal((refused.body as { data: unknown[] }).data.length, 2, 'the refused ones too (the invalid file, and the one under wrk)');
  });
});

t.test('with workers, every worker reloads', async (t) => {
  const { gwPort, adminPort, path } = many;
  const base = manyBase;
  const kg = manyKg;
  await kg.proc.waitForLog((l) => l.msg === 'keygate started' && l.worker === null, 60_000);
  const gw = `http://127.0.0.1:${gwPort}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  const key = ((await createKey(admin, ['read'])).body as { key: string }).key;
  /** Statuses of requests on new connections, which node:cluster spreads over the workers. */
  const fresh = async (n: number) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push((await call(`${gw}/v1/emails/list`, { token: key, headers: { connection: 'close' } })).status);
    return out;
  };
  t.same(await fresh(6), [200, 200, 200, 200, 200, 200]);

  writeFileSync(path, yaml({ ...base, listScopes: ['write'] }));
  const res = await call(`${admin}/v1/admin/reload`, { method: 'POST', token: ADMIN });
  t.equal(res.status, 200);
  const workers = (res.body as { workers: Record<string, any>[] }).workers;
  t.same(
    workers.map((w) => [w.worker, w.ok, w.generation, w.changed]),
    [
      [1, true, 2, ['apis']],
      [2, true, 2, ['apis']],
    ],
    'each worker answers, generation 2',
  );
  t.same(await fresh(6), [403, 403, 403, 403, 403, 403], 'every worker applies the new rule');

  writeFileSync(path, yaml({ ...base, listScopes: ['read'] }));
  kg.proc.child.kill('SIGHUP');
  await kg.proc.waitForLog((l) => l.msg === 'configuration reloaded' && l.generation === 3 && l.changed?.[0] === 'apis', 30_000);
  await until(async () => kg.proc.logs().filter((l) => l.msg === 'configuration reloaded' && l.generation === 3).length === 3, 30_000, 'the primary and both workers at generation 3');
  t.same(await fresh(6), [200, 200, 200, 200, 200, 200], 'SIGHUP to the primary reached both workers');
});

t.test('planReload: reloadable sections applied, the others kept and named by path only', async (t) => {
  const running = testConfig('http://127.0.0.1:9');
  const next = testConfig('http://127.0.0.1:9', {
    plans: { default: { limit: 7, window_seconds: 60 } },
    admin: { port: 0, tokens: [{ name: 'ops', token: 'a-new-secret-token-0123456789', role: 'admin' }] },
    listeners: [{ port: 0, host: '127.0.0.1', environment: 'production' }],
  });
  const plan = planReload(running, next);
  t.same(plan.changed, ['plans']);
  t.equal(plan.effective.plans, next.plans, 'plans from the new file');
  t.equal(plan.effective.admin, running.admin, 'admin as it runs');
  t.equal(plan.effective.listeners, running.listeners, 'listeners as they run');
  const paths = plan.restartRequired.map((r) => r.path);
  t.ok(paths.includes('listeners[1]'), `the listener removed is named (${paths.join(', ')})`);
  t.ok(paths.includes('admin.tokens[0].token'), 'a changed token is named');
  t.notOk(JSON.stringify(plan.restartRequired).includes('a-new-secret'), 'never its value');
  t.same(planReload(running, running), { effective: running, changed: [], restartRequired: [] }, 'the same file changes nothing');
});

t.test('in one process: a refused part leaves every part as it was; a replaced pool closes after its last request', async (t) => {
  // The emails API in front of the upstream that holds /hold requests until released.
  const stack = await startStack({ overrides: (up) => ({ apis: testConfig(up).apis.map((a) => (a.name === 'emails' ? { ...a, upstream: upstreamUrl } : a)) }) });
  t.teardown(() => stack.close());
  const before = stack.gateway.runtime;
  const log = new Logger({ write: () => undefined });
  const state = { generation: 1, lastSuccess: 1 as 0 | 1, lastAt: 0 };
  let text = JSON.stringify({ ...stack.config, plans: { default: { limit: 9, window_seconds: 60 } } });
  const reloader = new ConfigReloader({ initial: stack.config, read: () => text, source: 'test', adjust: (c) => c, log, state });
  reloader.add({ name: 'gateway', prepare: (next) => stack.gateway.prepareReload(next) });
  reloader.add({
    name: 'certificates',
    prepare: () => {
      throw new Error('cert.pem: no such file');
    },
  });
  const refused = await reloader.reload();
  t.match(refused, { ok: false, generation: 1, errors: [{ path: 'certificates', message: 'cert.pem: no such file' }] });
  t.equal(stack.gateway.runtime, before, 'the gateway runs what it ran');
  t.equal(state.lastSuccess, 0);

  // The emails API moves to another origin: its pool is replaced, and closes once the request
  // that started on it is over.
  const other = createServer((req, res) => res.end('other'));
  await new Promise<void>((ok) => other.listen(0, '127.0.0.1', ok));
  t.teardown(() => other.close());
  const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  const reloaderOk = new ConfigReloader({ initial: stack.config, read: () => text, source: 'test', adjust: (c) => c, log, state });
  reloaderOk.add({ name: 'gateway', prepare: (next) => stack.gateway.prepareReload(next) });
  const { key } = await stack.createKey({ name: 'pool' });
  const oldPool = before.apis.find((a) => a.name === 'emails')!.pool;
  const waiting = held.length;
  const slow = request(`${stack.gw['production']}/v1/emails/hold`, { headers: { authorization: `Bearer ${key}` } });
  await until(async () => held.length > waiting, 5_000, 'the upstream holds the request');
  text = JSON.stringify({ ...stack.config, apis: stack.config.apis.map((a) => (a.name === 'emails' ? { ...a, upstream: otherUrl } : a)) });
  t.match(await reloaderOk.reload(), { ok: true, generation: 2, changed: ['apis'] });
  const now = stack.gateway.runtime;
  t.not(now.apis.find((a) => a.name === 'emails')!.pool, oldPool, 'a new pool for the new origin');
  t.equal(now.apis.find((a) => a.name === 'contacts')!.pool, before.apis.find((a) => a.name === 'contacts')!.pool, 'an unchanged API keeps its pool');
  const fresh = await request(`${stack.gw['production']}/v1/emails/x`, { headers: { authorization: `Bearer ${key}` } });
  t.equal(await fresh.body.text(), 'other', 'a new request goes to the new origin');
  t.equal(oldPool.closed, false, 'the old pool stays open while its request runs');
  held.shift()!.end('held');
  const old = await slow;
  t.equal(await old.body.text(), 'held', 'the request under way ends on the old origin');
  await until(async () => oldPool.closed, 5_000, 'the old pool closes after its last request');
});

t.test('a reloaded log level reaches every child logger', async (t) => {
  const lines: string[] = [];
  const log = new Logger({ level: 'info', write: (l) => lines.push(l) });
  const child = log.child({ worker: 1 });
  child.debug('hidden');
  log.setLevel('debug');
  child.debug('shown');
  log.setLevel('error');
  child.warn('hidden too');
  t.same(lines.map((l) => JSON.parse(l).msg), ['shown']);
});
