import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { parse } from 'yaml';
import { ROOT, startKeygate } from './lib/cli.js';
import { freePort } from './lib/redis.js';
import { bearer } from './lib/stack.js';
import { startUpstream } from './lib/upstream.js';

// docs/observability/: the Prometheus rules pass promtool (check and their unit tests), the
// Grafana dashboard is well formed, and every metric the dashboard and the rules query is
// served by a real Keygate process on its status listener or admin listener.

const DIR = join(ROOT, 'docs', 'observability');
const RULE_FILES = ['recording-rules.yml', 'alerting-rules.yml'];

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}
const rules: Rule[] = RULE_FILES.flatMap((f) => (parse(readFileSync(join(DIR, f), 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules));
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));

interface Panel {
  type: string;
  id: number;
  title: string;
  datasource?: { uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; datasource: { uid: string } }[];
}
const dashboard = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
};
const panels = dashboard.panels.filter((p) => p.type !== 'row');
const dashboardExprs = panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr));
const variableQueries = dashboard.templating.list.filter((v) => v.type === 'query').map((v) => (typeof v.query === 'string' ? v.query : v.query.query));

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers that are not functions (followed
 * by `(`), keywords or label names (matchers, `by (...)` lists), once strings, matchers, range
 * and subquery brackets and Grafana's `$variables` are taken out. Grafana's
 * `label_values(metric{...}, label)` is read as its metric.
 */
export function metricNames(expr: string): string[] {
  let e = expr.replace(/label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?[^,)]*,\s*\w+\s*\)/g, ' $1 ');
  e = e
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+-?\w+/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names: string[] = [];
  for (const m of e.matchAll(/(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = e.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.push(m[0]);
  }
  return names;
}

t.test('metricNames reads the metrics of PromQL as the dashboard and rules write it', async (t) => {
  t.same(metricNames('histogram_quantile(0.99, sum by (api, le) (rate(a_bucket{x="y", z=~"$api"}[$__rate_interval])))'), ['a_bucket']);
  t.same(metricNames('sum(rate(a_total[5m])) without (instance) / ignoring (le) group_left b:c:d > 0.5 and on (api) c offset 5m'), ['a_total', 'b:c:d', 'c']);
  t.same(metricNames('up{job=~"keygate.*"} == 0 unless bool e'), ['up', 'e']);
  t.same(metricNames('label_values(keygate_requests_total{job=~"$job"}, api)'), ['keygate_requests_total']);
  t.same(metricNames('1e3 * count_values("version", x)'), ['x']);
});

t.test('promtool check rules: both rule files are valid', async (t) => {
  for (const file of RULE_FILES) {
    const r = spawnSync('promtool', ['check', 'rules', file], { cwd: DIR, encoding: 'utf8' });
    t.equal(r.error, undefined, 'promtool is installed (Debian package prometheus; .ci/deps installs it)');
    t.equal(r.status, 0, `${file}: ${r.stdout}${r.stderr}`);
    t.match(r.stdout, /SUCCESS: \d+ rules found/);
    t.notMatch(`${r.stdout}${r.stderr}`, /WARNING/);
  }
});

t.test('promtool test rules: the alerts fire on what they describe (docs/observability/rules-test.yml)', async (t) => {
  const r = spawnSync('promtool', ['test', 'rules', 'rules-test.yml'], { cwd: DIR, encoding: 'utf8' });
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  t.match(r.stdout, /SUCCESS/);
});

t.test('the rules: each alert has a severity and a summary; recorded series are defined before use', async (t) => {
  const alerts = rules.filter((r) => r.alert) as (Rule & { labels?: { severity?: string }; annotations?: { summary?: string } })[];
  for (const a of alerts) {
    t.ok(['critical', 'warning', 'info'].includes(a.labels?.severity ?? ''), `${a.alert}: severity`);
    t.ok(a.annotations?.summary, `${a.alert}: summary`);
  }
  for (const topic of ['HighErrorRate', 'HighLatencyP99', 'RateLimitRefusals', 'KeyCacheHitRatio', 'Degraded', 'StoreDown', 'UsageEventsDropped']) {
    t.ok(alerts.some((a) => a.alert!.includes(topic)), `an alert for ${topic}`);
  }
  for (const r of rules) for (const name of metricNames(r.expr)) if (name.includes(':')) t.ok(recorded.has(name), `${r.alert ?? r.record} reads ${name}, which a recording rule defines`);
});

t.test('the dashboard: well formed, one data source variable, every topic of the kit', async (t) => {
  t.equal(dashboard.uid, 'keygate-overview');
  const ids = dashboard.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of panels) {
    t.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: within the 24-column grid`);
    t.ok((p.targets ?? []).length > 0, `${p.title}: queries something`);
    for (const target of p.targets ?? []) t.equal(target.datasource.uid, '${datasource}', `${p.title}: uses the data source variable`);
  }
  const titles = panels.map((p) => p.title).join('\n');
  for (const topic of [/Request rate/, /Error rate/, /p50 latency by API and route/, /p99 latency by API and route/, /Rate-limit refusals/, /Key-cache hit ratio/, /Store health/, /Usage events/, /In flight/]) {
    t.match(titles, topic);
  }
});

t.test('every metric the dashboard and the rules query is served by a live Keygate', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = mkdtempSync(join(tmpdir(), 'keygate-observability-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const statusPort = await freePort();
  const path = join(dir, 'gateway.yaml');
  writeFileSync(
    path,
    `listeners: [{ port: 0, host: 127.0.0.1, environment: production }]
scopes: { catalog: [read] }
apis: [{ name: emails, path_prefix: /v1/emails, upstream: "${upstream.url}", unlisted: allow }]
admin: { port: 0, host: 127.0.0.1, tokens: [{ name: ops, token: "observability-test-token-0123", role: admin }] }
store: { type: file, path: ${JSON.stringify(join(dir, 'data'))} }
status_listener: { port: ${statusPort}, host: 127.0.0.1 }
demo_upstream: null
`,
  );
  const kg = await startKeygate(path);
  t.teardown(() => kg.stop());
  const created = await request(`${kg.adminUrl}/v1/keys`, {
    method: 'POST',
    headers: { authorization: 'Bearer observability-test-token-0123', 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'o', scopes: ['read'] }),
  });
  const { key } = (await created.body.json()) as { key: string };
  await (await request(`${kg.gw.production}/v1/emails/a`, { headers: bearer(key) })).body.dump();

  const served = new Set<string>();
  for (const url of [`http://127.0.0.1:${statusPort}`, kg.adminUrl]) {
    const text = await (await request(`${url}/metrics`)).body.text();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const [, name, type] = m;
      served.add(name!);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) served.add(name! + s);
      if (type === 'summary') for (const s of ['_sum', '_count']) served.add(name! + s);
    }
  }
  t.ok(served.has('keygate_requests_total') && served.has('keygate_usage_events_pending'), 'both planes scraped');

  const queried = new Map<string, string>();
  const note = (where: string, expr: string) => {
    for (const name of metricNames(expr)) if (!queried.has(name)) queried.set(name, where);
  };
  for (const p of panels) for (const target of p.targets ?? []) note(`dashboard panel "${p.title}"`, target.expr);
  for (const q of variableQueries) note('dashboard variable', q);
  for (const r of rules) note(`rule ${r.alert ?? r.record}`, r.expr);
  t.ok(queried.size >= 20, `the kit queries ${queried.size} metrics`);
  for (const expected of ['keygate_requests_total', 'keygate_request_duration_seconds_bucket', 'keygate_key_cache_hits_total', 'keygate_requests_in_flight', 'keygate_store_up', 'keygate_usage_events_dropped_total', 'keygate_build_info']) {
    t.ok(queried.has(expected), `the kit reads ${expected}`);
  }
  for (const [name, where] of queried) {
    if (name.includes(':')) t.ok(recorded.has(name), `${where}: ${name} is a recording rule's`);
    else if (name === 'up') t.pass(`${where}: up is written by Prometheus for each target`);
    else t.ok(served.has(name), `${where}: ${name} is served`);
  }
});
