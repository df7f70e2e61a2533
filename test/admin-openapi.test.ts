import { createConfig, lintFromString } from '@redocly/openapi-core';
import { Document, Spectral, type RulesetDefinition } from '@stoplight/spectral-core';
import Parsers from '@stoplight/spectral-parsers';
import { oas } from '@stoplight/spectral-rulesets';
import { generateKeyPairSync, sign } from 'node:crypto';
import t from 'tap';
import { request } from 'undici';
import { ADMIN_TOKEN, bearer, call, startStack } from './lib/stack.js';
import { waitFor } from './lib/within.js';

// The admin plane's OpenAPI document as SDK generators read it (issue 17): linted with Redocly's
// recommended ruleset and with Spectral's `oas` ruleset, with zero results from either (errors,
// warnings, info and hints alike); readable operationIds, tags, named schemas, documented 4xx
// answers, a `requestBody.required` that says what the server does, and answers that match
// their schemas.

// GitHub's side of POST /v1/leaks: a signing key whose public half the configuration holds.
const github = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const stack = await startStack({
  overrides: () => ({
    leaks: { github_public_keys: [{ id: 'docs-key', pem: github.publicKey.export({ type: 'spki', format: 'pem' }).toString() }] },
    policies: { rotating: { description: 'Rotates monthly', rotation: { every_days: 30, grace_seconds: 60, webhook: { url: 'http://127.0.0.1:1/hook', secret: 'hook-secret-0123456789abcdef' } } } },
  }),
});
t.teardown(() => stack.close());

const served = await request(`${stack.adminUrl}/openapi.json`);
const text = await served.body.text();
const doc = JSON.parse(text) as any;

type Operation = { operationId: string; tags: string[]; summary: string; description: string; requestBody?: any; responses: Record<string, any>; parameters?: any[] };
const operations: { method: string; path: string; op: Operation }[] = Object.entries(doc.paths as Record<string, Record<string, Operation>>).flatMap(
  ([path, item]) => Object.entries(item).map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
);
const byId = new Map(operations.map((o) => [o.op.operationId, o]));
const deref = (node: any): any => (typeof node?.$ref === 'string' ? deref(node.$ref.split('/').slice(1).reduce((n: any, k: string) => n[k], doc)) : node);

/** Redocly's `recommended` ruleset: its problems as `severity rule pointer: message`. */
async function redocly(source: string): Promise<{ rule: string; line: string }[]> {
  const config = await createConfig({ extends: ['recommended'] });
  const problems = await lintFromString({ source, absoluteRef: 'openapi.json', config });
  return problems.map((p) => ({ rule: p.ruleId, line: `${p.severity} ${p.ruleId} ${p.location[0]?.pointer ?? ''}: ${p.message}` }));
}

const SEVERITY = ['error', 'warn', 'info', 'hint'];

/** Spectral's `oas` ruleset (what `extends: ["spectral:oas"]` runs): its results, every severity, as `severity rule path: message`. */
async function spectral(source: string): Promise<{ rule: string; line: string }[]> {
  const linter = new Spectral();
  // Its published declaration widens each rule's `severity` to number or string, which
  // RulesetDefinition's literal union does not take; the object itself is the ruleset.
  linter.setRuleset(oas as RulesetDefinition);
  const results = await linter.run(new Document(source, Parsers.Json, 'openapi.json'));
  return results.map((r) => ({ rule: String(r.code), line: `${SEVERITY[r.severity]} ${r.code} ${r.path.join('.')}: ${r.message}` }));
}

t.test('lint: the served document has no result, errors to hints, under Redocly recommended and Spectral oas', async (t) => {
  t.same((await redocly(text)).map((p) => p.line), [], 'Redocly recommended: zero problems');
  t.same((await spectral(text)).map((r) => r.line), [], 'Spectral oas: zero results');

  // Both linters do find what issue 17 reported, so the zeros above mean something.
  const broken = structuredClone(doc);
  const create = broken.paths['/v1/keys'].post;
  for (const status of Object.keys(create.responses)) if (status.startsWith('4')) delete create.responses[status];
  delete create.description;
  delete create.tags;
  delete broken.info.license;
  delete broken.info.contact;
  const brokenText = JSON.stringify(broken);
  const byRedocly = new Set((await redocly(brokenText)).map((p) => p.rule));
  for (const rule of ['operation-4xx-response', 'info-license']) t.ok(byRedocly.has(rule), `Redocly reports a document without it: ${rule}`);
  const bySpectral = new Set((await spectral(brokenText)).map((r) => r.rule));
  for (const rule of ['operation-description', 'operation-tags', 'info-contact']) t.ok(bySpectral.has(rule), `Spectral reports a document without it: ${rule}`);
});

const EXPECTED_IDS = [
  'getHealth', 'getReadiness', 'createKey', 'listKeys', 'getKey', 'updateKey', 'regenerateKey', 'revokeKey', 'suspendKey',
  'reactivateKey', 'listKeyEvents', 'createApplication', 'listApplications', 'getApplication', 'updateApplication',
  'suspendApplication', 'reactivateApplication', 'listAuditEntries', 'listPolicies', 'listApis', 'getScopeCatalog', 'getKeyUsage',
  'getUsage', 'listUsageErrors', 'ingestUsageEvents', 'getOpenApi', 'getMetrics', 'reportLeakedKey', 'receiveGithubLeakAlert',
  'listAlerts', 'getAlert', 'listAlertDeliveries', 'reloadConfiguration', 'changeKeyCredits', 'changeApplicationCredits',
];

t.test('shape: readable operationIds, tags, summaries, descriptions, named schemas, every 4xx with the error schema', async (t) => {
  t.same([...byId.keys()].sort(), [...EXPECTED_IDS].sort(), 'one readable operationId per operation');
  const tags = new Set((doc.tags as { name: string; description: string }[]).map((x) => x.name));
  for (const tag of doc.tags) t.ok(tag.description, `tag ${tag.name} is described`);
  for (const { method, path, op } of operations) {
    const name = `${method} ${path}`;
    t.equal(op.tags.length, 1, `${name}: one tag`);
    t.ok(tags.has(op.tags[0]!), `${name}: its tag is listed`);
    t.ok(op.summary && op.description, `${name}: summary and description`);
    const fours = Object.keys(op.responses).filter((s) => /^4\d\d$/.test(s));
    t.ok(fours.includes('400'), `${name}: documents 400`);
    if (op.responses['401'] === undefined) t.same((op as any).security, [], `${name}: documents 401 unless it needs no token`);
    for (const status of [...fours, 'default']) {
      t.same(deref(op.responses[status]).content?.['application/json']?.schema, { $ref: '#/components/schemas/Error' }, `${name}: ${status} has the error schema`);
    }
    for (const [status, res] of Object.entries(op.responses)) {
      if (!status.startsWith('2')) continue;
      for (const media of Object.values(deref(res).content ?? {}) as { schema: any }[]) {
        if (media.schema.$ref === undefined) t.not(media.schema.type, 'object', `${name}: a JSON answer has a named schema`);
      }
    }
  }
  for (const name of Object.keys(doc.components.schemas)) t.match(name, /^[A-Z][A-Za-z]+$/, `schema ${name} has a name, not a number`);
  t.notOk(/schema\d/.test(text), 'no schema0');
  t.equal(JSON.parse(text).paths['/v1/audit'].get.parameters.find((p: { name: string }) => p.name === 'application_id').deprecated, true, 'application_id is marked deprecated');
});

t.test('requestBody.required says whether the server accepts an empty body', async (t) => {
  const withBody = operations.filter((o) => o.op.requestBody);
  t.same(withBody.map((o) => o.op.operationId).sort(), [
    'changeApplicationCredits', 'changeKeyCredits', 'createApplication', 'createKey', 'ingestUsageEvents', 'regenerateKey', 'reportLeakedKey', 'revokeKey', 'suspendApplication', 'suspendKey', 'updateApplication', 'updateKey',
  ]);
  for (const { method, path, op } of withBody) {
    // A fresh record for each call: regenerating or revoking ends a key.
    const ids: Record<string, string> = {
      Keys: (await stack.createKey({ name: 'empty bodies' })).id,
      Applications: (await stack.adminCall('POST', '/v1/applications', { name: 'empty bodies' })).body.id,
    };
    const url = path.replace('{id}', ids[op.tags[0]!]!);
    const res = await request(`${stack.adminUrl}${url}`, { method: method as 'POST', headers: bearer(ADMIN_TOKEN) });
    await res.body.dump();
    if (op.requestBody.required) t.equal(res.statusCode, 400, `${op.operationId}: required, and an empty body is 400`);
    else t.ok(res.statusCode >= 200 && res.statusCode < 300, `${op.operationId}: optional, and an empty body is ${res.statusCode}`);
  }
});

/** Where `value` departs from `schema` (a subset of JSON Schema: the one the document uses). Objects are closed: an undocumented field is a departure. */
function departures(value: unknown, schema: any, at = ''): string[] {
  schema = deref(schema);
  if (schema.allOf) {
    const parts = schema.allOf.map(deref);
    return departures(value, { type: 'object', properties: Object.assign({}, ...parts.map((p: any) => p.properties)), required: parts.flatMap((p: any) => p.required ?? []) }, at);
  }
  if (schema.oneOf) return schema.oneOf.filter((s: any) => departures(value, s, at).length === 0).length === 1 ? [] : [`${at}: not exactly one of oneOf`];
  if (schema.anyOf) return schema.anyOf.some((s: any) => departures(value, s, at).length === 0) ? [] : [`${at}: none of anyOf`];
  const out: string[] = [];
  if (schema.enum && !schema.enum.includes(value)) out.push(`${at}: ${JSON.stringify(value)} not in enum`);
  if (schema.type) {
    const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
    const actual = value === null ? 'null' : Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : typeof value;
    if (!types.includes(actual) && !(actual === 'integer' && types.includes('number'))) return [`${at}: ${actual}, documented ${types.join('|')}`];
  }
  if (schema.format === 'date-time' && typeof value === 'string' && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(value)) out.push(`${at}: not RFC 3339 UTC`);
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const name of schema.required ?? []) if (!(name in value)) out.push(`${at}.${name}: missing`);
    for (const [name, v] of Object.entries(value)) {
      const declared = schema.properties?.[name];
      if (declared) out.push(...departures(v, declared, `${at}.${name}`));
      else if (typeof schema.additionalProperties === 'object') out.push(...departures(v, schema.additionalProperties, `${at}.${name}`));
      else if (schema.additionalProperties !== true && schema.properties) out.push(`${at}.${name}: not documented`);
    }
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => out.push(...departures(v, schema.items, `${at}[${i}]`)));
  return out;
}

t.test('answers: every operation answers with its documented status and a body its schema describes', async (t) => {
  const app = (await stack.adminCall('POST', '/v1/applications', { name: 'documented', credits: { remaining: 1000 } })).body.id as string;
  const created = await stack.createKey({
    name: 'documented',
    scopes: ['send_email'],
    rate_limit: { limit: 5, window_seconds: 60 },
    quota: { limit: 100, period: 'day', refund_on: ['5xx'] },
    expires_at: new Date(stack.clock.now() + 86_400_000).toISOString(),
    application: app,
    meta: { team: 'docs', nested: [1, { a: null, b: true }] },
  });
  const spare = await stack.createKey({ name: 'spare', policy: 'rotating' });
  await call(`${stack.gw['production']}/v1/emails/list`, { headers: bearer(created.key) });
  await call(`${stack.gw['production']}/v1/emails/list`);
  await waitFor(() => stack.events.length >= 2, 2000, 'two usage events');
  await stack.admin.usage.flush();
  const event = { time: stack.clock.now(), request_id: 'doc-1', key_id: null, api: null, method: 'GET', route: null, status: 404, outcome: 'route_not_found', latency_ms: 1 };

  const revoked = await stack.createKey({ name: 'revoked for its alert' });
  await stack.adminCall('POST', `/v1/keys/${revoked.id}/revoke`, {});
  const alertId = (await stack.adminCall('GET', `/v1/alerts?key_id=${revoked.id}`)).body.data[0].id as string;
  const leaky = await stack.createKey({ name: 'leaky' });
  const alert = JSON.stringify([{ token: leaky.key, type: 'keygate_api_key', url: 'https://github.com/o/r', source: 'content' }]);
  const calls: Record<string, { path: string; body?: unknown; raw?: string; headers?: Record<string, string> }> = {
    getHealth: { path: '/healthz' },
    getReadiness: { path: '/readyz' },
    createKey: { path: '/v1/keys', body: { name: 'another', application: app } },
    listKeys: { path: '/v1/keys?limit=2' },
    getKey: { path: `/v1/keys/${created.id}` },
    changeKeyCredits: { path: `/v1/keys/${created.id}/credits`, body: { add: 5 } },
    updateKey: { path: `/v1/keys/${created.id}`, body: { description: 'documented' } },
    suspendKey: { path: `/v1/keys/${spare.id}/suspend`, body: { reason: 'docs' } },
    reactivateKey: { path: `/v1/keys/${spare.id}/reactivate` },
    regenerateKey: { path: `/v1/keys/${spare.id}/regenerate`, body: { grace_period_seconds: 60 } },
    revokeKey: { path: `/v1/keys/${spare.id}/revoke`, body: { reason: 'docs' } },
    listKeyEvents: { path: `/v1/keys/${spare.id}/events` },
    getKeyUsage: { path: `/v1/keys/${created.id}/usage?range=1h` },
    createApplication: { path: '/v1/applications', body: { name: 'documented 2', meta: { k: 'v' } } },
    listApplications: { path: '/v1/applications' },
    getApplication: { path: `/v1/applications/${app}` },
    updateApplication: { path: `/v1/applications/${app}`, body: { description: 'docs' } },
    suspendApplication: { path: `/v1/applications/${app}/suspend`, body: { reason: 'docs' } },
    reactivateApplication: { path: `/v1/applications/${app}/reactivate` },
    changeApplicationCredits: { path: `/v1/applications/${app}/credits`, body: { add: 5 } },
    listAuditEntries: { path: '/v1/audit?limit=100' },
    listPolicies: { path: '/v1/policies' },
    listApis: { path: '/v1/apis' },
    getScopeCatalog: { path: '/v1/scopes' },
    getUsage: { path: '/v1/usage?range=1h' },
    listUsageErrors: { path: '/v1/usage/errors?limit=1' },
    ingestUsageEvents: { path: '/v1/usage/events', body: { id: 'doc-batch', events: [event] } },
    getOpenApi: { path: '/openapi.json' },
    getMetrics: { path: '/metrics' },
    reloadConfiguration: { path: '/v1/admin/reload' },
    listAlerts: { path: '/v1/alerts?limit=5' },
    getAlert: { path: `/v1/alerts/${alertId}` },
    listAlertDeliveries: { path: `/v1/alerts/${alertId}/deliveries` },
    reportLeakedKey: { path: '/v1/keys/leaked', body: { key: created.key, source: 'docs' } },
    receiveGithubLeakAlert: {
      path: '/v1/leaks',
      raw: alert,
      headers: {
        'github-public-key-identifier': 'docs-key',
        'github-public-key-signature': sign('sha256', Buffer.from(alert), { key: github.privateKey, dsaEncoding: 'der' }).toString('base64'),
      },
    },
  };
  t.same(Object.keys(calls).sort(), [...byId.keys()].sort(), 'a call for every documented operation');
  for (const [id, c] of Object.entries(calls)) {
    const { method, op } = byId.get(id)!;
    stack.clock.advance(1000);
    const res = await request(`${stack.adminUrl}${c.path}`, {
      method: method as 'GET',
      headers: { ...bearer(ADMIN_TOKEN), ...(c.body === undefined && c.raw === undefined ? {} : { 'content-type': 'application/json' }), ...c.headers },
      body: c.raw ?? (c.body === undefined ? undefined : JSON.stringify(c.body)),
    });
    const body = await res.body.text();
    const documented = Object.keys(op.responses).filter((s) => s.startsWith('2'));
    t.same([String(res.statusCode)], documented, `${id}: the documented ${documented.join(', ')} (got ${res.statusCode} ${body.slice(0, 200)})`);
    const content = deref(op.responses[String(res.statusCode)])?.content ?? {};
    const type = String(res.headers['content-type']).split(';')[0]!;
    t.ok(content[type], `${id}: ${type} is documented`);
    if (type === 'application/json' && content[type]?.schema.$ref) {
      t.same(departures(JSON.parse(body), content[type].schema), [], `${id}: the body matches ${content[type].schema.$ref}`);
    }
  }
});

t.test('answers: a refused call answers a documented 4xx with an error body the Error schema describes', async (t) => {
  for (const { method, path, op } of operations) {
    const res = await request(`${stack.adminUrl}${path.replace('{id}', 'key_nope')}?unknown=1`, { method: method as 'GET', headers: bearer(ADMIN_TOKEN) });
    const body = JSON.parse(await res.body.text());
    t.ok(op.responses[String(res.statusCode)], `${op.operationId}: ${res.statusCode} is documented`);
    t.same(departures(body, { $ref: '#/components/schemas/Error' }), [], `${op.operationId}: the error body matches Error`);
  }
});
