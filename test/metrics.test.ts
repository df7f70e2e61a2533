import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { ProcessMetrics } from '../core/metrics.js';
import { generateKey } from '../core/key-format.js';
import { listenOn } from '../core/listen.js';
import { createOpsServer } from '../gateway/ops.js';
import { startKeygate } from './lib/cli.js';
import { freePort } from './lib/redis.js';
import { bearer, call, startStack } from './lib/stack.js';
import { startUpstream } from './lib/upstream.js';
import { within } from './lib/within.js';

// Prometheus metrics on both planes: counts that match the traffic, labels bounded by the
// config (API, route template) and fixed lists (method, status class, outcome), no per-key
// label, the build's identity, and promtool's check (Debian package prometheus; CI installs
// it) clean for the whole exposition, process metrics included.

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
const stack = await startStack();
t.teardown(() => stack.close());
const ops = createOpsServer(stack.gateway.runtime, () => false, new ProcessMetrics());
const opsUrl = (await listenOn(ops, 0, '127.0.0.1')).url;
t.teardown(() => ops.close());
const prod = stack.gw.production!;

const scrape = async (url: string) => (await request(`${url}/metrics`)).body.text();

/** The value of one sample, `name{labels}`, with labels in any order. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) return Number(m[3]);
  }
  return 0;
}

/** Scrapes `url` until `check` holds for the text (metrics are counted once each response is over). */
async function scrapeUntil(url: string, check: (text: string) => boolean, what: string): Promise<string> {
  let text = '';
  await within(
    (async () => {
      while (!check((text = await scrape(url)))) await new Promise((r) => setImmediate(r));
    })(),
    5_000,
    what,
  );
  return text;
}

t.test('gateway metrics count the requests by API, route template, method, status class and outcome', async (t) => {
  const { key } = await stack.createKey({ scopes: ['read_campaigns'], rate_limit: { limit: 2, window_seconds: 60 } });
  const before = await scrape(opsUrl);
  // GET /v1/emails/list matches no rule of the emails API (unlisted: allow): its route label is the API's prefix and `*`.
  const ok = { api: 'emails', route: '/v1/emails/*', method: 'GET', status_class: '2xx', outcome: 'ok' };
  const base = sample(before, 'keygate_requests_total', ok);
  for (let i = 0; i < 2; i++) t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 200);
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 429);
  t.equal((await call(`${prod}/v1/emails/send`, { method: 'POST', headers: bearer(key) })).status, 403);
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(generateKey('gw', 'live')) })).status, 401);
  t.equal((await call(`${prod}/v1/nowhere`, { headers: bearer(key) })).status, 404);
  const text = await scrapeUntil(opsUrl, (x) => sample(x, 'keygate_requests_total', { api: 'none', route: 'none', method: 'GET', status_class: '4xx', outcome: 'route_not_found' }) >= 1, 'the 404 counted');
  t.equal(sample(text, 'keygate_requests_total', ok) - base, 2, '2 forwarded');
  t.equal(sample(text, 'keygate_requests_total', { ...ok, status_class: '4xx', outcome: 'rate_limit_exceeded' }), 1);
  t.equal(
    sample(text, 'keygate_requests_total', { api: 'emails', route: '/v1/emails/send', method: 'POST', status_class: '4xx', outcome: 'insufficient_permissions' }),
    1,
    'by route template and method',
  );
  t.ok(sample(text, 'keygate_requests_total', { ...ok, status_class: '4xx', outcome: 'invalid_token' }) >= 1);
  t.equal(sample(text, 'keygate_requests_total', { api: 'none', route: 'none', method: 'GET', status_class: '4xx', outcome: 'route_not_found' }), 1, 'no API: none');
  t.ok(sample(text, 'keygate_request_duration_seconds_count', { api: 'emails', route: '/v1/emails/*', method: 'GET', status_class: '2xx' }) >= 2, 'latency by route and status class');
  t.ok(sample(text, 'keygate_request_duration_seconds_count', { api: 'emails', route: '/v1/emails/*', method: 'GET', status_class: '4xx' }) >= 2);
  t.equal(sample(text, 'keygate_request_duration_seconds_count', { api: 'emails', route: '/v1/emails/send', method: 'POST', status_class: '4xx' }), 1);
  t.equal(
    sample(text, 'keygate_upstream_duration_seconds_count', { api: 'emails', route: '/v1/emails/*' }),
    sample(text, 'keygate_gateway_overhead_seconds_count', { api: 'emails', route: '/v1/emails/*' }),
    'upstream and overhead histograms count the forwarded requests',
  );
  t.ok(sample(text, 'keygate_gateway_overhead_seconds_count', { api: 'emails', route: '/v1/emails/*' }) >= 2);
  t.ok(sample(text, 'keygate_rate_limit_decisions_total', { decision: 'limited' }) >= 1);
  t.ok(sample(text, 'keygate_rate_limit_decisions_total', { decision: 'allowed' }) >= 2);
  t.ok(sample(text, 'keygate_key_cache_hits_total') >= 3, 'cache hits');
  t.ok(sample(text, 'keygate_key_cache_misses_total') >= 2, 'cache misses');
  t.ok(sample(text, 'keygate_key_cache_entries') >= 1, 'the known key');
  t.ok(sample(text, 'keygate_key_cache_unknown_entries') >= 1, 'the unknown key, apart');
  t.equal(sample(text, 'keygate_degraded'), 0);
  t.equal(sample(text, 'keygate_store_up'), 1);
  t.ok(sample(text, 'process_cpu_seconds_total') > 0, 'process metrics');
  t.notMatch(text, /key_[A-Za-z0-9]{6}|gw_live_|gw_test_/, 'no key id and no key in any label');
});

t.test('labels stay bounded: no raw path, methods outside the list are OTHER', async (t) => {
  const { key } = await stack.createKey({ scopes: ['read_campaigns'] });
  for (const p of ['/v1/emails/raw-path-4f1d', '/v1/emails/raw-path-9c2e?x=1', '/v1/nowhere-7a3b']) await call(`${prod}${p}`, { headers: bearer(key) });
  t.equal((await call(`${prod}/v1/emails/dav`, { method: 'PROPFIND', headers: bearer(key) })).status, 200);
  const other = { api: 'emails', route: '/v1/emails/*', method: 'OTHER', status_class: '2xx', outcome: 'ok' };
  const text = await scrapeUntil(opsUrl, (x) => sample(x, 'keygate_requests_total', other) === 1, 'PROPFIND counted as OTHER');
  t.notMatch(text, /PROPFIND/, 'the method itself is no label value');
  t.notMatch(text, /raw-path|nowhere-7a3b|x=1/, 'no raw path is a label value');
  const routes = new Set([...text.matchAll(/route="([^"]*)"/g)].map((m) => m[1]));
  const templates = new Set(['none', ...stack.config.apis.flatMap((a) => [`${a.path_prefix}/*`, ...a.routes.map((r) => r.path)])]);
  for (const r of routes) t.ok(templates.has(r!), `route label ${r} is a template of the config`);
  const classes = new Set([...text.matchAll(/status_class="([^"]*)"/g)].map((m) => m[1]));
  t.same([...classes].filter((c) => !['1xx', '2xx', '3xx', '4xx', '5xx'].includes(c!)), [], 'status classes only');
});

t.test('the in-flight gauge counts requests waiting on the upstream', async (t) => {
  const { key } = await stack.createKey({ scopes: ['read_campaigns'] });
  const idle = await scrapeUntil(opsUrl, (x) => sample(x, 'keygate_requests_in_flight') === 0, 'nothing in flight');
  t.match(idle, /^# TYPE keygate_requests_in_flight gauge$/m);
  const aborter = new AbortController();
  // The upstream never answers …/slow… (and contacts waits 30 s for it): in flight until the client leaves.
  const pending = request(`${prod}/v1/contacts/slow-hold`, { headers: bearer(key), signal: aborter.signal }).catch(() => null);
  await scrapeUntil(opsUrl, (x) => sample(x, 'keygate_requests_in_flight') === 1, 'one request in flight');
  aborter.abort();
  await pending;
  await scrapeUntil(opsUrl, (x) => sample(x, 'keygate_requests_in_flight') === 0, 'none once the client left');
  t.pass('1 while waiting, 0 once it is over');
});

t.test('keygate_build_info names the version of package.json and the Node.js running it, on both planes', async (t) => {
  for (const url of [opsUrl, stack.adminUrl]) {
    const res = await request(`${url}/metrics`);
    await res.body.dump();
    t.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/, 'Prometheus text format');
  }
  const labels = { version, node_version: process.version, platform: process.platform, arch: process.arch };
  t.equal(sample(await scrape(opsUrl), 'keygate_build_info', labels), 1, 'gateway');
  t.equal(sample(await scrape(stack.adminUrl), 'keygate_build_info', labels), 1, 'admin');
});

t.test('admin metrics count calls by documented route', async (t) => {
  const { id } = await stack.createKey();
  await stack.adminCall('GET', `/v1/keys/${id}`);
  await stack.adminCall('GET', '/v1/keys/key_nope');
  const text = await scrape(stack.adminUrl);
  t.ok(sample(text, 'keygate_admin_requests_total', { route: '/v1/keys', method: 'POST', status: '201' }) >= 1);
  t.ok(sample(text, 'keygate_admin_requests_total', { route: '/v1/keys/{id}', method: 'GET', status: '200' }) >= 1, 'by template, not by id');
  t.ok(sample(text, 'keygate_admin_requests_total', { route: '/v1/keys/{id}', method: 'GET', status: '404' }) >= 1);
  t.notMatch(text, new RegExp(id), 'no key id in a label');
  t.equal(sample(text, 'keygate_store_up'), 1);
});

t.test('admin metrics: a method outside the list is OTHER, not a label value of its own', async (t) => {
  await request(`${stack.adminUrl}/v1/keys`, { method: 'PROPFIND' as 'GET' }).then((r) => r.body.dump());
  const text = await scrape(stack.adminUrl);
  t.equal(sample(text, 'keygate_admin_requests_total', { route: 'unmatched', method: 'OTHER', status: '405' }), 1, 'PROPFIND /v1/keys: 405, method OTHER');
  t.notMatch(text, /PROPFIND/, 'the method itself is no label value');
});

t.test('promtool check metrics passes the whole exposition of both planes of a real process, nothing filtered', async (t) => {
  const promtool = spawnSync('promtool', ['--version']);
  t.equal(promtool.error, undefined, 'promtool is installed (Debian package prometheus; .ci/deps installs it)');
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = mkdtempSync(join(tmpdir(), 'keygate-metrics-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const statusPort = await freePort();
  const path = join(dir, 'gateway.yaml');
  writeFileSync(
    path,
    `listeners: [{ port: 0, host: 127.0.0.1, environment: production }]
scopes: { catalog: [read] }
apis: [{ name: emails, path_prefix: /v1/emails, upstream: "${upstream.url}", unlisted: allow, routes: [{ method: POST, path: /v1/emails/send, scopes: [read] }] }]
admin: { port: 0, host: 127.0.0.1, tokens: [{ name: ops, token: "metrics-test-admin-token-0123", role: admin }] }
store: { type: file, path: ${JSON.stringify(join(dir, 'data'))} }
status_listener: { port: ${statusPort}, host: 127.0.0.1 }
demo_upstream: null
`,
  );
  const kg = await startKeygate(path);
  t.teardown(() => kg.stop());
  const auth = { authorization: 'Bearer metrics-test-admin-token-0123', 'content-type': 'application/json' };
  const created = await request(`${kg.adminUrl}/v1/keys`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'm', scopes: ['read'] }) });
  const { key } = (await created.body.json()) as { key: string };
  for (const [method, p] of [['GET', '/v1/emails/a'], ['POST', '/v1/emails/send'], ['PROPFIND', '/v1/emails/b'], ['GET', '/nowhere']] as const) {
    await (await request(`${kg.gw.production}${p}`, { method: method as 'GET', headers: bearer(key) })).body.dump();
  }
  const statusUrl = `http://127.0.0.1:${statusPort}`;
  await scrapeUntil(statusUrl, (x) => /keygate_requests_total\{[^}]*route="none"/.test(x), 'the last request counted');
  for (const [plane, url] of [['gateway', statusUrl], ['admin', kg.adminUrl]] as const) {
    const text = await scrape(url);
    t.match(text, /^keygate_build_info\{/m, `${plane}: build info`);
    t.match(text, /^keygate_store_operation_duration_seconds_bucket\{/m, `${plane}: store round trips`);
    t.match(text, /^nodejs_active_handles\{/m, `${plane}: process metrics`);
    if (plane === 'gateway') t.match(text, /^keygate_request_duration_seconds_bucket\{.*method="OTHER"/m, `${plane}: latency histograms with their labels`);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    t.equal(`${r.stdout}${r.stderr}`, '', `${plane}: promtool finds nothing`);
    t.equal(r.status, 0, `${plane}: promtool exits 0`);
  }
});
