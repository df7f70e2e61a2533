import t, { type Test } from 'tap';
import { request } from 'undici';
import { PLAN_AND_RATE_LIMIT } from '../admin/key-input.js';
import { AUDIT_ACTIONS } from '../core/audit.js';
import { ADMIN_TOKEN, bearer, call, startStack, type Stack } from './lib/stack.js';
import { waitFor } from './lib/within.js';

// One vocabulary across the admin API (issue 17): one name per concept in records, filters and
// the audit log; RFC 3339 for every time; reasons on the record and in the audit entry; plan and
// rate_limit not both; every filter validated; every growing list paged with a cursor. Through
// real sockets, with the stack's ManualClock.

const stack = await startStack();
t.teardown(() => stack.close());

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const iso = (ms: number) => new Date(ms).toISOString();
/** An admin call a second after the previous one, so that the audit log's newest-first order is the order made. */
const admin = (method: string, path: string, body?: unknown) => {
  stack.clock.advance(1000);
  return stack.adminCall(method, path, body);
};

/** The audit entries of one target, newest first. */
async function auditOf(targetId: string): Promise<any[]> {
  const res = await admin('GET', `/v1/audit?limit=100&key_id=${targetId}`);
  if (res.status !== 200) throw new Error(`audit: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.data;
}

/** A 400 validation_failed naming `path`, whose message matches `message`. */
function assertInvalid(t: Test, res: { status: number; body: any }, path: string, message: RegExp, label: string) {
  t.equal(res.status, 400, `${label}: 400 (${JSON.stringify(res.body)})`);
  t.equal(res.body?.error, 'validation_failed', `${label}: validation_failed`);
  const detail = (res.body?.details ?? []).find((d: { path: string }) => d.path === path);
  t.ok(detail, `${label}: a detail names ${path}`);
  if (detail) t.match(detail.message, message, `${label}: the detail says why`);
}

t.test('times: every time is RFC 3339 under a *_at name; audit, timeline, errors and series use no `time` or `at`', async (t) => {
  const expiresAt = stack.clock.now() + 86_400_000;
  const { id } = await stack.createKey({ name: 'times', expires_at: iso(expiresAt) });
  const suspendedAt = iso(stack.clock.now() + 1000); // admin() moves the clock a second first
  t.equal((await admin('POST', `/v1/keys/${id}/suspend`, { reason: 'probe' })).status, 200);

  const [suspended, created] = await auditOf(id);
  for (const e of [suspended, created]) {
    t.notOk(Object.hasOwn(e, 'time'), `${e.action}: no "time"`);
    t.match(e.occurred_at, RFC3339_UTC, `${e.action}: occurred_at is RFC 3339`);
  }
  t.equal(created.changes.expires_at.to, iso(expiresAt), 'an audited time holds RFC 3339, not epoch milliseconds');
  t.same(suspended.changes.suspended_at, { from: null, to: suspendedAt }, 'suspended_at in changes: RFC 3339');

  const timeline = (await admin('GET', `/v1/keys/${id}/events`)).body;
  for (const e of timeline.data) {
    t.notOk(Object.hasOwn(e, 'at'), `event ${e.type}: no "at"`);
    t.match(e.occurred_at, RFC3339_UTC, `event ${e.type}: occurred_at`);
  }

  const usage = (await admin('GET', `/v1/keys/${id}/usage?range=1h`)).body;
  t.ok(usage.series.length > 0);
  t.notOk(Object.hasOwn(usage.series[0], 'time'), 'usage series: no "time"');
  t.match(usage.series[0].starts_at, RFC3339_UTC, 'usage series: starts_at');

  await call(`${stack.gw['production']}/v1/emails/list`);
  await waitFor(() => stack.events.some((e) => e.status === 401), 2000, 'the usage event');
  await stack.admin.usage.flush();
  const errors = (await admin('GET', '/v1/usage/errors?limit=1')).body;
  t.notOk(Object.hasOwn(errors.data[0], 'time'), 'errors: no "time"');
  t.match(errors.data[0].occurred_at, RFC3339_UTC, 'errors: occurred_at');
});

t.test('reasons: suspend and revoke reasons show on the key record and in the audit entry', async (t) => {
  const { id } = await stack.createKey({ name: 'reasons' });
  const suspended = await admin('POST', `/v1/keys/${id}/suspend`, { reason: 'card declined' });
  t.equal(suspended.body.suspended_reason, 'card declined', 'suspend answers with the reason');
  t.equal((await admin('GET', `/v1/keys/${id}`)).body.suspended_reason, 'card declined', 'the record shows it');
  t.same((await auditOf(id))[0].changes.suspended_reason, { from: null, to: 'card declined' }, 'the audit entry shows it');

  const reactivated = await admin('POST', `/v1/keys/${id}/reactivate`);
  t.equal(reactivated.body.suspended_reason, null, 'reactivation clears it');
  t.same((await auditOf(id))[0].changes.suspended_reason, { from: 'card declined', to: null }, 'and the audit entry says so');

  const revoked = await admin('POST', `/v1/keys/${id}/revoke`, { reason: 'leaked in a public repository' });
  t.equal(revoked.body.revoked_reason, 'leaked in a public repository', 'revoke answers with the reason');
  t.equal((await admin('GET', `/v1/keys/${id}`)).body.revoked_reason, 'leaked in a public repository', 'the record shows it');
  const entry = (await auditOf(id))[0];
  t.equal(entry.action, 'key.revoked');
  t.same(entry.changes.revoked_reason, { from: null, to: 'leaked in a public repository' }, 'the audit entry shows it');

  const plain = await stack.createKey({ name: 'no reason' });
  t.equal((await admin('POST', `/v1/keys/${plain.id}/suspend`)).body.suspended_reason, null, 'no reason given: null');

  const old = await stack.createKey({ name: 'regenerated' });
  t.equal((await admin('POST', `/v1/keys/${old.id}/regenerate`, {})).status, 201);
  t.equal((await admin('GET', `/v1/keys/${old.id}`)).body.revoked_reason, 'regenerated', 'a key regenerated without grace: "regenerated"');

  const app = await admin('POST', '/v1/applications', { name: 'owner' });
  const owned = await stack.createKey({ name: 'owned', application: app.body.id });
  t.equal((await admin('POST', `/v1/applications/${app.body.id}/suspend`, { reason: 'unpaid' })).status, 200);
  const viaApp = (await admin('GET', `/v1/keys/${owned.id}`)).body;
  t.equal(viaApp.status, 'suspended');
  t.equal(viaApp.suspended_reason, 'application suspended', 'suspended through its application: says so');
  t.equal((await admin('GET', `/v1/applications/${app.body.id}`)).body.suspended_reason, 'unpaid', 'the application holds its reason');
});

t.test('plan and rate_limit together: 400 on create and edit, with what to do; either alone is fine', async (t) => {
  const both = { plan: 'tiny', rate_limit: { limit: 10, window_seconds: 60 } };
  assertInvalid(t, await admin('POST', '/v1/keys', { name: 'both', ...both }), 'rate_limit', /plan or rate_limit, not both/, 'create');
  t.equal((await admin('GET', '/v1/keys?q=both')).body.data.length, 0, 'nothing was created');
  t.match(PLAN_AND_RATE_LIMIT, /replaces its plan's limits/, 'the message says which would win');

  const { id } = await stack.createKey({ name: 'plan only', plan: 'tiny' });
  assertInvalid(t, await admin('PATCH', `/v1/keys/${id}`, both), 'rate_limit', /not both/, 'edit');
  t.equal((await admin('GET', `/v1/keys/${id}`)).body.rate_limit, null, 'nothing was changed');

  const switched = await admin('PATCH', `/v1/keys/${id}`, { plan: null, rate_limit: both.rate_limit });
  t.equal(switched.status, 200, 'leaving the plan for a rate_limit in one edit');
  t.same([switched.body.plan, switched.body.rate_limit], [null, { ...both.rate_limit, burst: null }]);
  const back = await admin('PATCH', `/v1/keys/${id}`, { plan: 'tiny', rate_limit: null });
  t.equal(back.status, 200, 'and back');
  t.same([back.body.plan, back.body.rate_limit], ['tiny', null]);
});

t.test('filters: application is the name in keys, audit and records; application_id still works; conflicting filters are 400', async (t) => {
  const app = await admin('POST', '/v1/applications', { name: 'filtered' });
  const appId: string = app.body.id;
  const key = await stack.createKey({ name: 'of filtered', application: appId });
  t.equal(key.record.application, appId, 'the record says application');
  t.same((await admin('GET', `/v1/keys?application=${appId}`)).body.data.map((k: { id: string }) => k.id), [key.id], 'keys filter: application');
  const byName = (await admin('GET', `/v1/audit?application=${appId}`)).body.data;
  t.same(byName.map((e: { action: string }) => e.action), ['application.created'], 'audit filter: application');
  t.same((await admin('GET', `/v1/audit?application_id=${appId}`)).body.data, byName, 'application_id: the same entries');
  t.same((await admin('GET', `/v1/audit?application=${appId}&application_id=${appId}`)).body.data, byName, 'both, agreeing');
  assertInvalid(t, await admin('GET', `/v1/audit?application=${appId}&application_id=app_other`), 'application_id', /former name of application/, 'both, disagreeing');
  assertInvalid(t, await admin('GET', `/v1/audit?application=${appId}&key_id=${key.id}`), 'application', /key_id or application, not both/, 'key_id and application');
});

t.test('filters: an unknown value or parameter is 400 naming the valid ones, never an empty page', async (t) => {
  const action = await admin('GET', '/v1/audit?action=key.deleted');
  assertInvalid(t, action, 'action', /must be one of/, 'unknown audit action');
  for (const a of AUDIT_ACTIONS) t.ok(action.body.details[0].message.includes(a), `the message lists ${a}`);
  t.equal((await admin('GET', '/v1/audit?action=key.revoked')).status, 200, 'a valid action');

  assertInvalid(t, await admin('GET', '/v1/audit?keyid=key_x'), 'keyid', /unknown key/, 'a misspelt audit filter');
  assertInvalid(t, await admin('GET', '/v1/keys?scope=send_emial'), 'scope', /send_email/, 'an unknown scope lists the catalog');
  assertInvalid(t, await admin('GET', '/v1/keys?status=gone'), 'status', /./, 'an unknown status');
  assertInvalid(t, await admin('GET', '/v1/keys?applicaton=app_x'), 'applicaton', /unknown key/, 'a misspelt key filter');
  const at = iso(stack.clock.now());
  assertInvalid(t, await admin('GET', `/v1/audit?from=${at}&to=${at}`), 'to', /after from/, 'an empty audit window');
  assertInvalid(t, await admin('GET', `/v1/usage/errors?from=${at}&to=${at}`), 'to', /after from/, 'an empty errors window');
  assertInvalid(t, await admin('GET', '/v1/usage/errors?format=xml'), 'format', /./, 'an unknown export format');

  const { id } = await stack.createKey({ name: 'no query' });
  assertInvalid(t, await admin('GET', `/v1/keys/${id}?fields=name`), 'fields', /takes none/, 'a parameter on a route that takes none');
  assertInvalid(t, await admin('POST', `/v1/keys/${id}/suspend?reason=x`, {}), 'reason', /takes none/, 'a query on a mutation');
  t.equal((await admin('GET', `/v1/keys/${id}`)).body.status, 'active', 'which changed nothing');
  for (const path of ['/healthz', '/metrics', '/openapi.json']) {
    const res = await request(`${stack.adminUrl}${path}?x=1`);
    t.equal(res.statusCode, 400, `${path}?x=1: 400`);
    await res.body.dump();
  }
});

t.test('paging: /v1/usage/errors pages with a cursor, newest first, across pages and a shared millisecond', async (t) => {
  const s = await startStack({ overrides: () => ({ usage: { flush_interval_ms: 60_000 } }) });
  t.teardown(() => s.close());
  // Nine refusals (no key: 401), four of them in one millisecond, each told apart by its request id.
  const sent: string[] = [];
  for (let i = 0; i < 9; i++) {
    if (i < 3 || i > 5) s.clock.advance(1000);
    const requestId = `err-${i}`;
    const res = await call(`${s.gw['production']}/v1/emails/list`, { headers: { 'x-request-id': requestId } });
    t.equal(res.status, 401);
    sent.push(requestId);
  }
  await waitFor(() => s.events.length >= 9, 2000, 'nine usage events');
  await s.admin.usage.flush();
  const newest = [...sent].reverse();
  const whole = await s.adminCall('GET', '/v1/usage/errors?limit=100');
  t.same(whole.body.data.map((e: { request_id: string }) => e.request_id), newest, 'one page: newest first, one millisecond newest-kept first');
  t.equal(whole.body.next_cursor, null, 'the only page has no next');

  for (const limit of [1, 2, 4, 5]) {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: any = await s.adminCall('GET', `/v1/usage/errors?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      t.equal(res.status, 200);
      t.ok(res.body.data.length <= limit, `limit=${limit}: a page holds at most ${limit}`);
      seen.push(...res.body.data.map((e: { request_id: string }) => e.request_id));
      cursor = res.body.next_cursor;
      if (++pages > 20) throw new Error('paging does not end');
    } while (cursor !== null);
    t.same(seen, newest, `limit=${limit}: the pages concatenate to the whole list, none twice`);
    t.equal(pages, Math.ceil(9 / limit), `limit=${limit}: ${Math.ceil(9 / limit)} pages`);
  }

  const first = await s.adminCall('GET', '/v1/usage/errors?limit=4');
  s.clock.advance(1000);
  t.equal((await call(`${s.gw['production']}/v1/emails/list`, { headers: { 'x-request-id': 'err-late' } })).status, 401);
  await waitFor(() => s.events.length >= 10, 2000, 'the tenth event');
  await s.admin.usage.flush();
  const second = await s.adminCall('GET', `/v1/usage/errors?limit=4&cursor=${encodeURIComponent(first.body.next_cursor)}`);
  t.same(second.body.data.map((e: { request_id: string }) => e.request_id), newest.slice(4, 8), 'an error recorded between pages does not shift the next page');

  const csv = await request(`${s.adminUrl}/v1/usage/errors?format=csv&limit=4`, { headers: bearer(ADMIN_TOKEN) });
  const link = String(csv.headers['link'] ?? '');
  await csv.body.dump();
  const next = /^<([^>]+)>; rel="next"$/.exec(link);
  t.ok(next, `a CSV page links the next one (${link})`);
  const linked = await request(`${s.adminUrl}${next![1]}`, { headers: bearer(ADMIN_TOKEN) });
  const rows = (await linked.body.text()).trim().split('\r\n').slice(1).map((r) => r.split(',')[1]);
  t.same(rows, ['err-5', 'err-4', 'err-3', 'err-2'], 'the linked page is the next one (after err-late, err-8, err-7, err-6), still CSV');

  // What an attacker might send as a cursor.
  const forged = [
    'not-a-cursor',
    Buffer.from('["2026-01-01","x"]').toString('base64url'),
    Buffer.from('{"a":1}').toString('base64url'),
    'A'.repeat(600),
  ];
  for (const cursor of forged) {
    const res = await s.adminCall('GET', `/v1/usage/errors?cursor=${encodeURIComponent(cursor)}`);
    t.equal(res.status, 400, `cursor ${cursor.slice(0, 20)}: 400, not 500`);
    t.equal(res.body.error, 'validation_failed');
  }
});

t.test('paging: a key timeline pages with a cursor bound to its key', async (t) => {
  const { id } = await stack.createKey({ name: 'timeline' });
  for (let i = 0; i < 5; i++) {
    stack.clock.advance(1000);
    t.equal((await admin('PATCH', `/v1/keys/${id}`, { name: `timeline ${i}` })).status, 200);
  }
  const whole = (await admin('GET', `/v1/keys/${id}/events`)).body;
  t.equal(whole.data.length, 6, 'created and five edits');
  t.equal(whole.next_cursor, null);
  const p1 = (await admin('GET', `/v1/keys/${id}/events?limit=4`)).body;
  t.same(p1.data, whole.data.slice(0, 4), 'the first page: oldest first');
  const p2 = (await admin('GET', `/v1/keys/${id}/events?limit=4&cursor=${encodeURIComponent(p1.next_cursor)}`)).body;
  t.same(p2.data, whole.data.slice(4), 'the second page: the rest');
  t.equal(p2.next_cursor, null);
  t.same(p2.scheduled, whole.scheduled, 'every page says what is scheduled');

  const other = await stack.createKey({ name: 'another timeline' });
  const crossed = await admin('GET', `/v1/keys/${other.id}/events?cursor=${encodeURIComponent(p1.next_cursor)}`);
  t.equal(crossed.status, 400, "another key's cursor: 400");
  const negative = Buffer.from(JSON.stringify([-1, id])).toString('base64url');
  t.equal((await admin('GET', `/v1/keys/${id}/events?cursor=${negative}`)).status, 400, 'a forged position: 400');
});

/** The words of a command as the shell reads them: spaces split, single quotes group. */
function shellWords(command: string): string[] {
  const words: string[] = [];
  for (const m of command.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)) words.push(m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]!);
  return words;
}

/** Runs a curl example through the gateway: method, headers and URL as the example gives them. */
async function runCurl(example: string) {
  const words = shellWords(example);
  if (words[0] !== 'curl') throw new Error(`not a curl command: ${example}`);
  let method = 'GET';
  const headers: Record<string, string> = {};
  let url = '';
  for (let i = 1; i < words.length; i++) {
    if (words[i] === '-X') method = words[++i]!;
    else if (words[i] === '-H') {
      const h = words[++i]!;
      headers[h.slice(0, h.indexOf(':')).toLowerCase()] = h.slice(h.indexOf(':') + 1).trim();
    } else url = words[i]!;
  }
  return { method, url, res: await call(url, { method, headers }) };
}

t.test('curl: the create answer shows a request the key may make, or says why there is none', async (t) => {
  const s: Stack = await startStack({
    overrides: (upstream) => ({
      listeners: [{ port: 0, host: '127.0.0.1', environment: 'production' }],
      apis: [
        {
          name: 'emails',
          path_prefix: '/v1/emails',
          upstream,
          // The parameter rule comes first and needs a scope: it judges /v1/emails/list too.
          routes: [
            { method: 'GET', path: '/v1/emails/:id', scopes: ['read_campaigns'] },
            { method: 'GET', path: '/v1/emails/list', scopes: [] },
            { method: 'POST', path: '/v1/emails/send', scopes: ['send_email'] },
          ],
        },
        { name: 'contacts', path_prefix: '/v1/contacts', upstream, routes: [{ method: 'GET', path: '/v1/contacts/all', scopes: ['read_contacts'] }] },
        { name: 'open', path_prefix: '/v1/open', upstream, unlisted: 'allow' },
      ],
    }),
  });
  t.teardown(() => s.close());
  const issue = async (body: Record<string, unknown>) => {
    const res = await s.adminCall('POST', '/v1/keys', { name: 'curl', ...body });
    if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as { key: string; id: string; curl: string };
  };

  const cases: [string, Record<string, unknown>, string, string][] = [
    ['an API of its own, with its scope', { apis: ['contacts'], scopes: ['read_contacts'] }, 'GET', '/v1/contacts/all'],
    ['a scope that opens only a POST', { apis: ['emails'], scopes: ['send_email'] }, 'POST', '/v1/emails/send'],
    ['a safe method before an unsafe one', { apis: ['emails'], scopes: ['send_email', 'read_campaigns'] }, 'GET', '/v1/emails/ID'],
    ['no scope: the open API', { scopes: [] }, 'GET', '/v1/open'],
  ];
  for (const [label, body, method, path] of cases) {
    const k = await issue(body);
    t.ok(k.curl.startsWith('curl '), `${label}: a curl command (${k.curl})`);
    const run = await runCurl(k.curl);
    t.equal(run.method, method, `${label}: ${method}`);
    t.equal(new URL(run.url).pathname, path, `${label}: ${path}`);
    t.ok(run.url.startsWith(s.gw['production']!), `${label}: at the production listener`);
    t.equal(run.res.status, 200, `${label}: the gateway lets it through to the upstream (${run.res.text.slice(0, 200)})`);
  }

  const shadowed = await issue({ apis: ['emails'], scopes: [] });
  t.match(shadowed.curl, /^# No route this key may call: it may call the APIs emails and holds no scopes/, 'a route shadowed by one needing a scope is not offered');
  t.equal((await call(`${s.gw['production']}/v1/emails/list`, { headers: bearer(shadowed.key) })).status, 403, 'rightly: the gateway refuses it');
  const none = await issue({ apis: [] });
  t.match(none.curl, /^# No route this key may call: it may call no API/, 'a key for no API: says so');
  t.match(none.curl, new RegExp(`PATCH /v1/keys/${none.id}`), 'and how to change that');
  const testEnv = await issue({ environment: 'test' });
  t.match(testEnv.curl, /^# No listener serves the test environment/, 'an environment without a listener: says so');
  t.notOk(none.curl.includes(none.key) || testEnv.curl.includes(testEnv.key), 'a comment does not repeat the key');
});
