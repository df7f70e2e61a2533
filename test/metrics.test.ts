import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

// Prometheus metrics on both planes: counts that match the traffic, no per-key label, and
// promtool's check (Debian package prometheus; CI installs it) clean for Keygate's metrics.

const stack = await startStack();
t.teardown(() => stack.close());
const ops = createOpsServer(stack.gateway.runtime, () => false, new ProcessMetrics());
const opsUrl = (await listenOn(ops, 0, '127.0.0.1')).url;
t.teardown(() => ops.close());
const prod = stack.gw.production!;

const scrape = async (url: string) => {
  const res = await request(`${url}/metrics`);
  t.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return res.body.text();
};

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

t.test('gateway metrics count the requests by API, route, status class and outcome', async (t) => {
  const { key } = await stack.createKey({ scopes: ['read_campaigns'], rate_limit: { limit: 2, window_seconds: 60 } });
  const before = await scrape(opsUrl);
  const ok = { api: 'emails', route: 'none', status_class: '2xx', outcome: 'ok' };
  const base = sample(before, 'keygate_requests_total', ok);
  for (let i = 0; i < 2; i++) t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 200);
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 429);
  t.equal((await call(`${prod}/v1/emails/send`, { method: 'POST', headers: bearer(key) })).status, 403);
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(generateKey('gw', 'live')) })).status, 401);
  await new Promise((r) => setTimeout(r, 50));
  const text = await scrape(opsUrl);
  t.equal(sample(text, 'keygate_requests_total', ok) - base, 2, '2 forwarded');
  t.equal(sample(text, 'keygate_requests_total', { api: 'emails', route: 'none', status_class: '4xx', outcome: 'rate_limit_exceeded' }), 1);
  t.equal(sample(text, 'keygate_requests_total', { api: 'emails', route: '/v1/emails/send', status_class: '4xx', outcome: 'insufficient_permissions' }), 1, 'by route template');
  t.ok(sample(text, 'keygate_requests_total', { api: 'emails', route: 'none', status_class: '4xx', outcome: 'invalid_token' }) >= 1);
  t.ok(sample(text, 'keygate_request_duration_seconds_count', { api: 'emails' }) >= 5, 'request latency histogram');
  t.equal(
    sample(text, 'keygate_upstream_duration_seconds_count', { api: 'emails' }),
    sample(text, 'keygate_gateway_overhead_seconds_count', { api: 'emails' }),
    'upstream and overhead histograms count the forwarded requests',
  );
  t.ok(sample(text, 'keygate_gateway_overhead_seconds_count', { api: 'emails' }) >= 2);
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

t.test('promtool check metrics: no error and no lint finding for keygate_ metrics, on both planes of a real process', async (t) => {
  const promtool = spawnSync('promtool', ['--version']);
  t.equal(promtool.error, undefined, 'promtool is installed (Debian package prometheus; .ci/run installs it)');
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
apis: [{ name: emails, path_prefix: /v1/emails, upstream: "${upstream.url}", unlisted: allow }]
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
  for (const p of ['/v1/emails/a', '/v1/emails/b', '/nowhere']) await (await request(`${kg.gw.production}${p}`, { headers: bearer(key) })).body.dump();
  await new Promise((r) => setTimeout(r, 50));
  for (const [plane, url] of [['gateway', `http://127.0.0.1:${statusPort}`], ['admin', kg.adminUrl]] as const) {
    const text = await (await request(`${url}/metrics`)).body.text();
    t.match(text, /keygate_/, `${plane}: serves keygate metrics`);
    t.match(text, /keygate_store_operation_duration_seconds_bucket/, `${plane}: store round trips`);
    let out = '';
    let code = 0;
    try {
      out = execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      code = e.status;
      out = `${e.stdout}${e.stderr}`;
    }
    const ours = out.split('\n').filter((l) => /keygate_/.test(l));
    t.same(ours, [], `${plane}: promtool finds nothing in keygate_ metrics`);
    t.ok(code === 0 || ours.length === 0 && !/error/i.test(out), `${plane}: promtool exit ${code}: ${out.trim()}`);
  }
});
