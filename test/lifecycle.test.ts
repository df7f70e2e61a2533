import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { bearer, call, startStack, type Stack } from './lib/stack.js';

// The key lifecycle of issue 3 (docs/architecture.md, Key lifecycle; README, Admin API) through
// real sockets: edits the gateway applies on the next request, regeneration with and without
// grace, suspension, application cascades, policy templates, the scheduler driven by the
// stack's ManualClock (its timer is off in tests), signed rotation webhooks delivered to a real
// loopback server, and the timeline.
// Each test starts its own stack, so that its clock and its scheduler passes see only its keys.

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const WEBHOOK_SECRET = '0123456789abcdef-secret';
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

type Res = { status: number; body: any; headers: Record<string, unknown> };

// ---------------------------------------------------------------------------------------------
// A rotation webhook receiver: a real HTTP server on loopback that keeps every delivery.

interface Delivery {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  text: string;
  body: any;
}

interface Hook {
  url: string;
  /** Status to answer with; tests flip it to make deliveries fail. */
  status: number;
  deliveries: Delivery[];
  close(): Promise<void>;
}

async function startHook(): Promise<Hook> {
  const hook: Hook = { url: '', status: 200, deliveries: [], close: async () => {} };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      hook.deliveries.push({ method: req.method!, url: req.url!, headers: req.headers, text, body });
      res.writeHead(hook.status, { 'content-type': 'text/plain' });
      res.end(hook.status === 200 ? 'ok' : 'broken');
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  hook.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hook.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  };
  return hook;
}

const hook = await startHook();
t.teardown(() => hook.close());

const POLICIES = {
  standard: {
    rate_limit: { limit: 5, window_seconds: 60 },
    expires_in_seconds: 86_400,
    ip_allowlist: ['127.0.0.0/8'],
    regeneration_grace_seconds: 600,
  },
  locked: { allow_regeneration: false },
  rotating: { rotation: { every_days: 30, grace_seconds: 3600, webhook: { url: `${hook.url}/hook`, secret: WEBHOOK_SECRET } } },
};

/** A stack of its own for one test, with the policies above; closed when the test ends. */
async function fresh(t: Test): Promise<Stack> {
  hook.status = 200;
  hook.deliveries.length = 0;
  const stack = await startStack({ overrides: () => ({ policies: POLICIES }) });
  t.teardown(() => stack.close());
  return stack;
}

// ---------------------------------------------------------------------------------------------
// Helpers

const iso = (ms: number) => new Date(ms).toISOString();

/** GET /v1/emails/list through the gateway of `env` with the key as a Bearer token. */
const list = (s: Stack, key: string, env = 'production') => call(`${s.gw[env]}/v1/emails/list`, { headers: bearer(key) });
/** POST /v1/emails/send: a route that requires the `send_email` scope. */
const send = (s: Stack, key: string) => call(`${s.gw['production']}/v1/emails/send`, { method: 'POST', headers: bearer(key), body: '{}' });

const getKey = (s: Stack, id: string) => s.adminCall('GET', `/v1/keys/${id}`);
const patchKey = (s: Stack, id: string, body: unknown) => s.adminCall('PATCH', `/v1/keys/${id}`, body);
const regenerate = (s: Stack, id: string, body?: unknown) => s.adminCall('POST', `/v1/keys/${id}/regenerate`, body);
const suspend = (s: Stack, id: string, body?: unknown) => s.adminCall('POST', `/v1/keys/${id}/suspend`, body);
const reactivate = (s: Stack, id: string) => s.adminCall('POST', `/v1/keys/${id}/reactivate`);
const revoke = (s: Stack, id: string) => s.adminCall('POST', `/v1/keys/${id}/revoke`);
const timeline = async (s: Stack, id: string) => {
  const res = await s.adminCall('GET', `/v1/keys/${id}/events`);
  if (res.status !== 200) throw new Error(`events of ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { data: any[]; scheduled: { type: string; scheduled_at: string }[] };
};
const tick = (s: Stack) => s.admin.scheduler.tick();
const eventsOf = (tl: { data: any[] }, type: string) => tl.data.filter((e) => e.type === type);

/** An error body of either plane: status, `error`, `reason` when given, a message and a request id. */
function assertError(t: Test, res: Res, status: number, error: string, reason?: string) {
  t.equal(res.status, status, `status ${status}`);
  t.equal(res.body?.error, error, `error ${error}`);
  if (reason !== undefined) t.equal(res.body?.reason, reason, `reason ${reason}`);
  t.type(res.body?.message, 'string', 'message');
  t.ok(res.body?.request_id, 'request_id');
}

/** 400 validation_failed with a `details` entry at `path`. */
function assertInvalid(t: Test, res: Res, path: string) {
  assertError(t, res, 400, 'validation_failed');
  const details: { path: string; message: string }[] = res.body?.details ?? [];
  t.ok(details.some((d) => d.path === path), `a details entry names "${path}" (got ${JSON.stringify(details)})`);
}

/** The gateway let the request through to the upstream. */
function assertOk(t: Test, res: Res, what: string) {
  t.equal(res.status, 200, what);
  t.equal(res.headers['x-upstream'], 'yes', `${what}: answered by the upstream`);
}

/** Verifies `keygate-signature: t=…,v1=…` as HMAC-SHA-256(secret, `${t}.${body}`). */
function assertSigned(t: Test, d: Delivery) {
  const header = String(d.headers['keygate-signature'] ?? '');
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  t.ok(m, `keygate-signature is t=…,v1=… (got ${JSON.stringify(header)})`);
  if (!m) return;
  const expected = createHmac('sha256', WEBHOOK_SECRET).update(`${m[1]}.${d.text}`).digest();
  t.ok(timingSafeEqual(Buffer.from(m[2]!, 'hex'), expected), 'the signature verifies with the policy secret over "t.body"');
  const wrong = createHmac('sha256', 'another-secret-0123456789').update(`${m[1]}.${d.text}`).digest();
  t.notOk(timingSafeEqual(Buffer.from(m[2]!, 'hex'), wrong), 'and not with another secret');
}

// ---------------------------------------------------------------------------------------------
// 1. Edit

t.test('PATCH /v1/keys/{id}: every field is edited and the gateway applies each edit on the next request', async (t) => {
  const s = await fresh(t);
  const { key, id, record } = await s.createKey({
    name: 'before',
    description: 'first',
    scopes: ['send_email', 'read_campaigns'],
    meta: { team: 'a' },
  });
  assertOk(t, await send(s, key), 'the scoped route with send_email');
  const first = await list(s, key);
  assertOk(t, first, 'list');
  t.equal(first.headers['ratelimit-policy'], '"default";q=100;w=60', 'plan default before the edit');

  // name, description, meta
  s.clock.advance(1000);
  let res = await patchKey(s, id, { name: 'after', description: 'second', meta: { team: 'b', tier: 2 } });
  t.equal(res.status, 200, 'PATCH answers 200');
  t.equal(res.body.id, id);
  t.equal(res.body.name, 'after');
  t.equal(res.body.description, 'second');
  t.same(res.body.meta, { team: 'b', tier: 2 });
  t.same(res.body.scopes, ['send_email', 'read_campaigns'], 'fields not in the patch are kept');
  t.equal(res.body.created_at, record.created_at, 'created_at kept');
  t.equal(res.body.updated_at, iso(s.clock.now()), 'updated_at is the time of the edit');
  t.notOk(Object.hasOwn(res.body, 'key'), 'an edit never shows the key');
  const got = await getKey(s, id);
  t.equal(got.body.name, 'after', 'GET shows the edit');
  t.same(got.body.meta, { team: 'b', tier: 2 });
  res = await patchKey(s, id, { description: null });
  t.equal(res.status, 200);
  t.equal(res.body.description, null, 'description cleared with null');

  // scopes: removing one is a 403 on the very next request to a route that needs it
  res = await patchKey(s, id, { scopes: ['read_campaigns'] });
  t.equal(res.status, 200);
  t.same(res.body.scopes, ['read_campaigns']);
  const denied = await send(s, key);
  assertError(t, denied, 403, 'insufficient_permissions');
  t.same(denied.body.missing_scopes, ['send_email']);
  assertOk(t, await list(s, key), 'a route without scopes still works');
  res = await patchKey(s, id, { scopes: ['read_only', 'send_email'] });
  t.same(res.body.scopes, ['read_campaigns', 'read_contacts', 'send_email'], 'a preset expands in an edit too');
  assertOk(t, await send(s, key), 'scope given back: allowed on the next request');

  // apis
  res = await patchKey(s, id, { apis: ['contacts'] });
  t.equal(res.status, 200);
  t.same(res.body.apis, ['contacts']);
  assertError(t, await list(s, key), 403, 'api_not_allowed');
  assertOk(t, await call(`${s.gw['production']}/v1/contacts/1`, { headers: bearer(key) }), 'the listed API');
  res = await patchKey(s, id, { apis: null });
  t.equal(res.body.apis, null, 'apis null = all');
  assertOk(t, await list(s, key), 'all APIs again');

  // ip_allowlist, IPv4 and IPv6
  res = await patchKey(s, id, { ip_allowlist: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] });
  t.equal(res.status, 200);
  t.same(res.body.ip_allowlist, ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7']);
  assertError(t, await list(s, key), 403, 'ip_not_allowed');
  res = await patchKey(s, id, { ip_allowlist: ['2001:db8::/32', '::1/128', '127.0.0.1/32'] });
  t.equal(res.status, 200);
  assertOk(t, await list(s, key), '127.0.0.1/32 in the allowlist');
  res = await patchKey(s, id, { ip_allowlist: ['fe80::/10', '::ffff:127.0.0.0/104'] });
  t.equal(res.status, 200, 'an IPv4-mapped IPv6 CIDR is accepted');
  assertOk(t, await list(s, key), '::ffff:127.0.0.0/104 covers 127.0.0.1');
  res = await patchKey(s, id, { ip_allowlist: ['::1'] });
  assertError(t, await list(s, key), 403, 'ip_not_allowed');
  res = await patchKey(s, id, { ip_allowlist: null });
  t.equal(res.body.ip_allowlist, null);
  assertOk(t, await list(s, key), 'no allowlist');

  // rate_limit: the new policy is in the headers of the next request, and enforced
  res = await patchKey(s, id, { rate_limit: { limit: 2, window_seconds: 30 } });
  t.equal(res.status, 200);
  t.same(res.body.rate_limit, { limit: 2, window_seconds: 30, burst: null });
  const limited1 = await list(s, key);
  assertOk(t, limited1, 'first under the new limit');
  t.equal(limited1.headers['ratelimit-policy'], '"key";q=2;w=30', 'RateLimit-Policy shows the key limit');
  t.equal(limited1.headers['ratelimit'], '"key";r=1;t=15');
  assertOk(t, await list(s, key), 'second under the new limit');
  assertError(t, await list(s, key), 429, 'rate_limit_exceeded');
  s.clock.advance(MIN);
  res = await patchKey(s, id, { rate_limit: null });
  t.equal(res.body.rate_limit, null);
  const back = await list(s, key);
  assertOk(t, back, 'plan default again');
  t.equal(back.headers['ratelimit-policy'], '"default";q=100;w=60');

  // expires_at
  assertInvalid(t, await patchKey(s, id, { expires_at: iso(s.clock.now() - 1000) }), 'expires_at');
  const expiresAt = s.clock.now() + HOUR;
  res = await patchKey(s, id, { expires_at: iso(expiresAt) });
  t.equal(res.status, 200);
  t.equal(res.body.expires_at, iso(expiresAt));
  s.clock.set(expiresAt - 1);
  assertOk(t, await list(s, key), '1 ms before the new expiry');
  s.clock.set(expiresAt);
  assertError(t, await list(s, key), 401, 'invalid_token', 'expired');
  assertError(t, await patchKey(s, id, { name: 'too late' }), 409, 'conflict');

  // The timeline names the changed fields of each edit.
  const edits = eventsOf(await timeline(s, id), 'edited');
  t.ok(edits.length >= 10, 'one edited event per effective edit');
  t.same(edits[0]?.detail?.fields, ['name', 'description', 'meta'], 'first edit: its fields');
  t.same(edits[1]?.detail?.fields, ['description']);
  t.same(edits[2]?.detail?.fields, ['scopes']);
  t.ok(edits.some((e) => JSON.stringify(e.detail?.fields) === '["ip_allowlist"]'), 'an allowlist edit');
  t.ok(edits.some((e) => JSON.stringify(e.detail?.fields) === '["rate_limit"]'), 'a rate-limit edit');
  t.same(edits.at(-1)?.detail?.fields, ['expires_at'], 'last edit: expires_at');
});

t.test('PATCH /v1/keys/{id}: bad input is 400 naming the field, revoked is 409, unknown is 404', async (t) => {
  const s = await fresh(t);
  const { id, key } = await s.createKey({ name: 'target', scopes: ['read_campaigns'] });

  const empty = await patchKey(s, id, {});
  assertError(t, empty, 400, 'validation_failed');
  t.ok(Array.isArray(empty.body.details) && empty.body.details.length > 0, 'an empty patch has details');
  assertError(t, await s.adminCall('PATCH', `/v1/keys/${id}`), 400, 'validation_failed');

  for (const bad of ['0.0.0.0/33', '::/129', '1.2.3', '16909060', '10.0.0.0/', 'not-an-ip']) {
    assertInvalid(t, await patchKey(s, id, { ip_allowlist: ['127.0.0.1', bad] }), 'ip_allowlist[1]');
  }
  assertInvalid(t, await patchKey(s, id, { scopes: ['read_campaigns', 'fly'] }), 'scopes[1]');
  assertInvalid(t, await patchKey(s, id, { apis: ['nope'] }), 'apis[0]');
  assertInvalid(t, await patchKey(s, id, { name: '' }), 'name');
  assertInvalid(t, await patchKey(s, id, { rate_limit: { limit: 0, window_seconds: 60 } }), 'rate_limit.limit');
  assertInvalid(t, await patchKey(s, id, { expires_at: '2027-02-30T00:00:00Z' }), 'expires_at');
  assertInvalid(t, await patchKey(s, id, { meta: 'x' }), 'meta');
  assertInvalid(t, await patchKey(s, id, { status: 'active' }), 'status');
  assertInvalid(t, await patchKey(s, id, { environment: 'test' }), 'environment');

  const after = await getKey(s, id);
  t.equal(after.body.name, 'target', 'nothing was changed by the refused edits');
  t.equal(after.body.ip_allowlist, null);
  t.same(after.body.scopes, ['read_campaigns']);
  t.equal(eventsOf(await timeline(s, id), 'edited').length, 0, 'no edited event for refused edits');
  assertOk(t, await list(s, key), 'the key still works');

  assertError(t, await patchKey(s, 'key_doesnotexist000000', { name: 'x' }), 404, 'not_found');

  t.equal((await revoke(s, id)).status, 200);
  assertError(t, await patchKey(s, id, { name: 'after revoke' }), 409, 'conflict');
  t.equal((await getKey(s, id)).body.name, 'target', 'a revoked key is not edited');
});

// ---------------------------------------------------------------------------------------------
// 2-4. Regenerate

t.test('regenerate without grace: a new key with the same configuration; the old one is revoked at once', async (t) => {
  const s = await fresh(t);
  const app = await s.adminCall('POST', '/v1/applications', { name: 'billing' });
  t.equal(app.status, 201);
  const old = await s.createKey({
    name: 'worker',
    description: 'nightly',
    environment: 'test',
    scopes: ['read_campaigns', 'send_email'],
    apis: ['emails'],
    rate_limit: { limit: 50, window_seconds: 60, burst: 60 },
    ip_allowlist: ['127.0.0.0/8', '::1/128'],
    application: app.body.id,
    policy: 'standard',
    meta: { owner: 'team-x' },
  });
  assertOk(t, await list(s, old.key, 'test'), 'old key before');

  s.clock.advance(5000);
  const res = await regenerate(s, old.id, { grace_period_seconds: 0 });
  t.equal(res.status, 201, 'regenerate answers 201');
  const fresh1 = res.body;
  t.match(fresh1.key, /^gw_test_[0-9A-Za-z]{49}$/, 'the new plaintext key, in the test environment');
  t.not(fresh1.key, old.key);
  t.match(fresh1.id, /^key_/);
  t.not(fresh1.id, old.id, 'a new id');
  t.equal(fresh1.masked, `${fresh1.key.slice(0, 'gw_test_'.length + 3)}...${fresh1.key.slice(-3)}`);
  for (const f of ['name', 'description', 'environment', 'scopes', 'apis', 'rate_limit', 'ip_allowlist', 'application', 'policy', 'meta', 'expires_at']) {
    t.same(fresh1[f], old.record[f], `${f} copied`);
  }
  t.equal(fresh1.application, app.body.id);
  t.equal(fresh1.policy, 'standard');
  t.equal(fresh1.replaces, old.id, 'replaces = the old id');
  t.equal(fresh1.replaced_by, null);
  t.equal(fresh1.status, 'active');
  t.equal(fresh1.created_at, iso(s.clock.now()));

  const oldRec = (await getKey(s, old.id)).body;
  t.equal(oldRec.replaced_by, fresh1.id, 'old replaced_by = the new id');
  t.equal(oldRec.status, 'revoked');
  t.equal(oldRec.revoked_at, iso(s.clock.now()), 'revoked now');
  t.notOk(Object.hasOwn(oldRec, 'key'));

  assertError(t, await list(s, old.key, 'test'), 401, 'invalid_token', 'revoked');
  assertOk(t, await list(s, fresh1.key, 'test'), 'the new key works at once');
  const oldRes = await list(s, old.key, 'test');
  t.notOk(oldRes.headers['deprecation'], 'a revoked key is not deprecated, just refused');

  assertError(t, await regenerate(s, old.id), 409, 'conflict');
  const tlOld = await timeline(s, old.id);
  t.equal(eventsOf(tlOld, 'rotated').length, 1, 'old: rotated');
  t.equal(eventsOf(tlOld, 'rotated')[0]?.scheduled_at, null, 'a manual regeneration was not scheduled');
  t.equal(eventsOf(tlOld, 'revoked')[0]?.occurred_at, iso(s.clock.now()), 'old: revoked now');
  const tlNew = await timeline(s, fresh1.id);
  t.equal(eventsOf(tlNew, 'created')[0]?.detail?.replaces, old.id, 'new: created, replacing the old one');
});

t.test('regenerate with grace: the old key works until exactly the end of the grace, deprecated, then is refused', async (t) => {
  const s = await fresh(t);
  const old = await s.createKey({ name: 'graceful', scopes: ['read_campaigns'] });
  const start = s.clock.now();
  const graceEnd = start + 3600 * 1000;
  const res = await regenerate(s, old.id, { grace_period_seconds: 3600 });
  t.equal(res.status, 201);
  const next = res.body;
  t.equal(next.replaces, old.id);

  const oldRec = (await getKey(s, old.id)).body;
  t.equal(oldRec.status, 'active', 'still active during the grace');
  t.equal(oldRec.replaced_by, next.id);
  t.equal(oldRec.revoked_at, null);
  t.equal(oldRec.grace_ends_at, iso(graceEnd));

  const during = await list(s, old.key);
  assertOk(t, during, 'old key during the grace');
  t.equal(during.headers['deprecation'], 'true', 'Deprecation: true');
  t.equal(during.headers['sunset'], new Date(graceEnd).toUTCString(), 'Sunset: the HTTP-date of the grace end');
  t.match(String(during.headers['sunset']), /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/, 'IMF-fixdate');
  const nextRes = await list(s, next.key);
  assertOk(t, nextRes, 'new key during the grace');
  t.notOk(nextRes.headers['deprecation'], 'the new key is not deprecated');
  t.notOk(nextRes.headers['sunset']);

  // Only the latest key of a chain is regenerated; a revoked key is not.
  assertError(t, await regenerate(s, old.id), 409, 'conflict');
  assertError(t, await regenerate(s, old.id, { grace_period_seconds: 60 }), 409, 'conflict');
  const other = await s.createKey({ name: 'revoked one' });
  t.equal((await revoke(s, other.id)).status, 200);
  assertError(t, await regenerate(s, other.id), 409, 'conflict');
  t.equal((await getKey(s, other.id)).body.replaced_by, null, 'no successor for a revoked key');

  s.clock.set(graceEnd - 1);
  const last = await list(s, old.key);
  assertOk(t, last, 'old key accepted at grace end − 1 ms');
  t.equal(last.headers['deprecation'], 'true');
  s.clock.set(graceEnd);
  assertError(t, await list(s, old.key), 401, 'invalid_token', 'revoked');
  assertOk(t, await list(s, next.key), 'new key after the grace');
  const atEnd = (await getKey(s, old.id)).body;
  t.equal(atEnd.status, 'revoked', 'the record reads revoked at the grace end, before any tick');

  // The scheduler records the end of the grace as a revocation at the grace end.
  s.clock.advance(90_000);
  t.equal(await tick(s), 1, 'one transition recorded');
  const after = (await getKey(s, old.id)).body;
  t.equal(after.status, 'revoked');
  t.equal(after.revoked_at, iso(graceEnd), 'revoked_at = grace end, not the tick time');
  const revoked = eventsOf(await timeline(s, old.id), 'revoked');
  t.equal(revoked.length, 1, 'one revoked event');
  t.equal(revoked[0]?.scheduled_at, iso(graceEnd), 'scheduled_at = grace end');
  t.equal(revoked[0]?.occurred_at, iso(s.clock.now()), 'occurred_at = when the scheduler recorded it');
  t.equal(revoked[0]?.actor, 'scheduler');
  assertError(t, await list(s, old.key), 401, 'invalid_token', 'revoked');
  t.equal(await tick(s), 0, 'nothing left to do');
  assertError(t, await regenerate(s, old.id), 409, 'conflict');
});

t.test('regenerating a suspended key issues a suspended key', async (t) => {
  const s = await fresh(t);
  const old = await s.createKey({ name: 'paused' });
  t.equal((await suspend(s, old.id, { reason: 'investigating' })).status, 200);
  const res = await regenerate(s, old.id);
  t.equal(res.status, 201);
  t.equal(res.body.status, 'suspended', 'the new record is suspended');
  t.ok(res.body.suspended_at, 'suspended_at set');
  assertError(t, await list(s, res.body.key), 401, 'invalid_token', 'suspended');
  assertError(t, await list(s, old.key), 401, 'invalid_token', 'revoked');
  const up = await reactivate(s, res.body.id);
  t.equal(up.status, 200);
  t.equal(up.body.status, 'active');
  assertOk(t, await list(s, res.body.key), 'the new key works once reactivated');

  // The same with a grace: the old key stays suspended during it, the new one is suspended.
  const second = await s.createKey({ name: 'paused with grace' });
  t.equal((await suspend(s, second.id)).status, 200);
  const graced = await regenerate(s, second.id, { grace_period_seconds: 600 });
  t.equal(graced.status, 201);
  t.equal(graced.body.status, 'suspended');
  assertError(t, await list(s, graced.body.key), 401, 'invalid_token', 'suspended');
  assertError(t, await list(s, second.key), 401, 'invalid_token', 'suspended');
});

// ---------------------------------------------------------------------------------------------
// 5. Suspend and reactivate

t.test('suspend and reactivate: reversible, 409 on the wrong state, revoked is final and stays listed', async (t) => {
  const s = await fresh(t);
  const { key, id } = await s.createKey({ name: 'toggle' });
  assertOk(t, await list(s, key), 'before');

  s.clock.advance(1000);
  let res = await suspend(s, id, { reason: 'unpaid invoice' });
  t.equal(res.status, 200);
  t.equal(res.body.status, 'suspended');
  t.equal(res.body.suspended_at, iso(s.clock.now()));
  assertError(t, await list(s, key), 401, 'invalid_token', 'suspended');
  assertError(t, await suspend(s, id), 409, 'conflict');
  assertInvalid(t, await suspend(s, id, { reason: 'x'.repeat(501) }), 'reason');

  s.clock.advance(1000);
  res = await reactivate(s, id);
  t.equal(res.status, 200);
  t.equal(res.body.status, 'active');
  t.equal(res.body.suspended_at, null);
  assertOk(t, await list(s, key), 'works again after reactivation');
  assertError(t, await reactivate(s, id), 409, 'conflict');

  res = await suspend(s, id);
  t.equal(res.status, 200, 'suspend without a body');
  t.equal((await revoke(s, id)).status, 200, 'a suspended key can be revoked');
  assertError(t, await reactivate(s, id), 409, 'conflict');
  assertError(t, await suspend(s, id), 409, 'conflict');
  assertError(t, await revoke(s, id), 409, 'already_revoked');
  assertError(t, await list(s, key), 401, 'invalid_token', 'revoked');

  const one = await getKey(s, id);
  t.equal(one.status, 200, 'a revoked key can still be read');
  t.equal(one.body.status, 'revoked');
  const all = await s.adminCall('GET', '/v1/keys');
  t.ok(all.body.data.some((k: { id: string }) => k.id === id), 'listed among all keys');
  const revokedOnly = await s.adminCall('GET', '/v1/keys?status=revoked');
  t.same(revokedOnly.body.data.map((k: { id: string }) => k.id), [id], 'listed with status=revoked');

  const tl = await timeline(s, id);
  t.same(eventsOf(tl, 'suspended').map((e) => e.detail?.reason ?? null), ['unpaid invoice', null], 'suspended events, with the reason');
  t.equal(eventsOf(tl, 'reactivated').length, 1);
  t.equal(eventsOf(tl, 'revoked').length, 1);
});

// ---------------------------------------------------------------------------------------------
// 6. Applications

t.test('applications: suspending one suspends its keys at once; reactivating restores only those', async (t) => {
  const s = await fresh(t);
  const created = await s.adminCall('POST', '/v1/applications', { name: 'Acme CRM', description: 'crm', meta: { tier: 'gold' } });
  t.equal(created.status, 201);
  const app = created.body;
  t.match(app.id, /^app_/);
  t.equal(app.name, 'Acme CRM');
  t.equal(app.status, 'active');
  const otherApp = (await s.adminCall('POST', '/v1/applications', { name: 'Other' })).body;

  const k1 = await s.createKey({ name: 'k1', application: app.id });
  const k2 = await s.createKey({ name: 'k2', application: app.id });
  const own = await s.createKey({ name: 'suspended on its own', application: app.id });
  const elsewhere = await s.createKey({ name: 'other app', application: otherApp.id });
  t.equal(k1.record.application, app.id, 'application holds the id');
  t.equal((await suspend(s, own.id, { reason: 'own' })).status, 200);
  for (const k of [k1, k2]) assertOk(t, await list(s, k.key), `${k.record.name} before`);

  s.clock.advance(1000);
  const susp = await s.adminCall('POST', `/v1/applications/${app.id}/suspend`, { reason: 'fraud review' });
  t.equal(susp.status, 200);
  t.equal(susp.body.status, 'suspended');
  t.equal(susp.body.suspended_at, iso(s.clock.now()));
  for (const k of [k1, k2, own]) {
    assertError(t, await list(s, k.key), 401, 'invalid_token', 'suspended');
    t.equal((await getKey(s, k.id)).body.status, 'suspended', `${k.record.name} reads suspended`);
  }
  assertOk(t, await list(s, elsewhere.key), 'a key of another application is untouched');
  assertError(t, await s.adminCall('POST', `/v1/applications/${app.id}/suspend`), 409, 'conflict');
  assertError(t, await reactivate(s, k1.id), 409, 'conflict');

  // A key created while its application is suspended is suspended.
  const late = await s.createKey({ name: 'late', application: app.id });
  t.equal(late.record.status, 'suspended', 'created suspended');
  assertError(t, await list(s, late.key), 401, 'invalid_token', 'suspended');
  // A key regenerated while its application is suspended stays suspended.
  const regen = await regenerate(s, k2.id);
  t.equal(regen.status, 201);
  t.equal(regen.body.status, 'suspended', 'regenerated under a suspended application: suspended');
  assertError(t, await list(s, regen.body.key), 401, 'invalid_token', 'suspended');

  s.clock.advance(1000);
  const back = await s.adminCall('POST', `/v1/applications/${app.id}/reactivate`);
  t.equal(back.status, 200);
  t.equal(back.body.status, 'active');
  t.equal(back.body.suspended_at, null);
  assertOk(t, await list(s, k1.key), 'k1 restored');
  assertOk(t, await list(s, late.key), 'the late key restored');
  assertOk(t, await list(s, regen.body.key), 'the regenerated key restored');
  assertError(t, await list(s, own.key), 401, 'invalid_token', 'suspended');
  t.equal((await getKey(s, own.id)).body.status, 'suspended', 'a key suspended on its own stays suspended');
  t.equal((await getKey(s, k1.id)).body.status, 'active');
  assertError(t, await s.adminCall('POST', `/v1/applications/${app.id}/reactivate`), 409, 'conflict');
  t.equal((await reactivate(s, own.id)).status, 200, 'its own suspension is lifted on its own');
  assertOk(t, await list(s, own.key), 'then it works');

  const tl = await timeline(s, k1.id);
  t.same(eventsOf(tl, 'suspended').map((e) => e.detail?.application), [app.id], 'k1: suspended through the application');
  t.same(eventsOf(tl, 'reactivated').map((e) => e.detail?.application), [app.id]);

  const byApp = await s.adminCall('GET', `/v1/keys?application=${app.id}&limit=100`);
  t.equal(byApp.status, 200);
  t.same(
    byApp.body.data.map((k: { id: string }) => k.id).sort(),
    [k1.id, k2.id, own.id, late.id, regen.body.id].sort(),
    'list by application',
  );

  const gotApp = await s.adminCall('GET', `/v1/applications/${app.id}`);
  t.equal(gotApp.status, 200);
  t.same(gotApp.body.meta, { tier: 'gold' });

  assertInvalid(t, await s.adminCall('POST', '/v1/keys', { name: 'orphan', application: 'app_doesnotexist000' }), 'application');
  assertInvalid(t, await s.adminCall('POST', '/v1/keys', { name: 'orphan', application: 42 }), 'application');
});

// ---------------------------------------------------------------------------------------------
// 7. Policies

t.test('policies: listed without webhook secrets; keys take their values unless the request overrides them', async (t) => {
  const s = await fresh(t);
  const listed = await s.adminCall('GET', '/v1/policies');
  t.equal(listed.status, 200);
  const byName = Object.fromEntries(listed.body.data.map((p: { name: string }) => [p.name, p]));
  t.same(Object.keys(byName).sort(), ['locked', 'rotating', 'standard']);
  t.match(byName['standard'], {
    rate_limit: { limit: 5, window_seconds: 60, burst: null },
    expires_in_seconds: 86_400,
    ip_allowlist: ['127.0.0.0/8'],
    allow_regeneration: true,
    regeneration_grace_seconds: 600,
    rotation: null,
  });
  t.equal(byName['locked'].allow_regeneration, false);
  t.same(byName['rotating'].rotation, { every_days: 30, grace_seconds: 3600 }, 'rotation without its webhook');
  const text = JSON.stringify(listed.body);
  t.notOk(text.includes(WEBHOOK_SECRET), 'the webhook secret is not shown');
  t.notOk(text.includes(hook.url), 'nor the webhook address');
  t.equal((await s.adminCall('GET', '/v1/policies', undefined, 'test-viewer-token-0123456789')).status, 200, 'a viewer reads policies');

  const now = s.clock.now();
  const std = await s.createKey({ name: 'std', policy: 'standard' });
  t.equal(std.record.policy, 'standard');
  t.same(std.record.rate_limit, { limit: 5, window_seconds: 60, burst: null }, 'rate limit from the policy');
  t.same(std.record.ip_allowlist, ['127.0.0.0/8'], 'allowlist from the policy');
  t.equal(std.record.expires_at, iso(now + 86_400_000), 'expires_in from the policy');
  const stdRes = await list(s, std.key);
  assertOk(t, stdRes, 'a standard key');
  t.equal(stdRes.headers['ratelimit-policy'], '"key";q=5;w=60', 'the gateway enforces the policy limit');

  const explicitExpiry = iso(now + 7 * DAY);
  const over = await s.createKey({
    name: 'overridden',
    policy: 'standard',
    rate_limit: { limit: 50, window_seconds: 10 },
    ip_allowlist: ['10.0.0.0/8'],
    expires_at: explicitExpiry,
  });
  t.same(over.record.rate_limit, { limit: 50, window_seconds: 10, burst: null }, 'request rate limit wins');
  t.same(over.record.ip_allowlist, ['10.0.0.0/8'], 'request allowlist wins');
  t.equal(over.record.expires_at, explicitExpiry, 'request expiry wins');
  assertError(t, await list(s, over.key), 403, 'ip_not_allowed');

  const nulls = await s.createKey({ name: 'nulls', policy: 'standard', rate_limit: null, ip_allowlist: null, expires_at: null });
  t.equal(nulls.record.rate_limit, null, 'null overrides the policy limit');
  t.equal(nulls.record.ip_allowlist, null);
  t.equal(nulls.record.expires_at, null);
  t.equal(nulls.record.policy, 'standard');

  assertInvalid(t, await s.adminCall('POST', '/v1/keys', { name: 'x', policy: 'nonexistent' }), 'policy');

  // locked: no regeneration by hand
  const locked = await s.createKey({ name: 'locked', policy: 'locked' });
  assertError(t, await regenerate(s, locked.id), 409, 'conflict');
  assertError(t, await regenerate(s, locked.id, { grace_period_seconds: 60 }), 409, 'conflict');
  const lockedRec = (await getKey(s, locked.id)).body;
  t.equal(lockedRec.replaced_by, null, 'not regenerated');
  t.equal(lockedRec.status, 'active');
  assertOk(t, await list(s, locked.key), 'the locked key still works');

  // standard: regeneration without a grace gets the policy's 600 s
  s.clock.advance(1000);
  const regenAt = s.clock.now();
  const regen = await regenerate(s, std.id);
  t.equal(regen.status, 201);
  t.equal(regen.body.policy, 'standard');
  t.same(regen.body.rate_limit, std.record.rate_limit);
  t.same(regen.body.ip_allowlist, std.record.ip_allowlist);
  const oldStd = (await getKey(s, std.id)).body;
  t.equal(oldStd.grace_ends_at, iso(regenAt + 600_000), 'grace of 600 s from the policy');
  t.equal(oldStd.status, 'active');
  const graced = await list(s, std.key);
  assertOk(t, graced, 'the old standard key during the policy grace');
  t.equal(graced.headers['sunset'], new Date(regenAt + 600_000).toUTCString());
  s.clock.set(regenAt + 600_000);
  assertError(t, await list(s, std.key), 401, 'invalid_token', 'revoked');
  assertOk(t, await list(s, regen.body.key), 'the successor');

  // An explicit grace of 0 overrides the policy's.
  const std2 = await s.createKey({ name: 'std2', policy: 'standard' });
  const regen2 = await regenerate(s, std2.id, { grace_period_seconds: 0 });
  t.equal(regen2.status, 201);
  t.equal((await getKey(s, std2.id)).body.status, 'revoked', 'grace 0 given explicitly: revoked at once');
  assertError(t, await list(s, std2.key), 401, 'invalid_token', 'revoked');
});

// ---------------------------------------------------------------------------------------------
// 8. The scheduler, with the injected clock

t.test('scheduler: a pending key is let through at not_before by the gateway; tick() records the activation', async (t) => {
  const s = await fresh(t);
  const notBefore = s.clock.now() + HOUR;
  const { key, id, record } = await s.createKey({ name: 'later', not_before: iso(notBefore) });
  t.equal(record.status, 'pending');
  t.equal(record.not_before, iso(notBefore));
  assertError(t, await list(s, key), 401, 'invalid_token', 'pending');
  t.same((await timeline(s, id)).scheduled, [{ type: 'activated', scheduled_at: iso(notBefore) }], 'activation scheduled');
  t.equal(await tick(s), 0, 'nothing due yet');

  s.clock.set(notBefore - 1);
  assertError(t, await list(s, key), 401, 'invalid_token', 'pending');
  s.clock.set(notBefore);
  assertOk(t, await list(s, key), 'at not_before, before any tick');
  t.equal((await getKey(s, id)).body.status, 'active', 'the record reads active before any tick');
  t.equal(eventsOf(await timeline(s, id), 'activated').length, 0, 'not yet recorded');

  s.clock.advance(30_000);
  t.equal(await tick(s), 1);
  const activated = eventsOf(await timeline(s, id), 'activated');
  t.equal(activated.length, 1, 'activated recorded once');
  t.equal(activated[0]?.scheduled_at, iso(notBefore), 'scheduled_at = not_before');
  t.equal(activated[0]?.occurred_at, iso(notBefore + 30_000), 'occurred_at = when it was recorded');
  t.equal(activated[0]?.actor, 'scheduler');
  t.equal(await tick(s), 0, 'recorded once only');
  assertOk(t, await list(s, key), 'still works');
});

t.test('scheduler: the gateway refuses at expires_at without a tick; tick() records the expiry', async (t) => {
  const s = await fresh(t);
  const expiresAt = s.clock.now() + 2 * HOUR;
  const { key, id } = await s.createKey({ name: 'short-lived', expires_at: iso(expiresAt) });
  t.same((await timeline(s, id)).scheduled, [{ type: 'expired', scheduled_at: iso(expiresAt) }], 'expiry scheduled');
  s.clock.set(expiresAt - 1);
  assertOk(t, await list(s, key), '1 ms before expiry');
  s.clock.set(expiresAt);
  assertError(t, await list(s, key), 401, 'invalid_token', 'expired');
  t.equal((await getKey(s, id)).body.status, 'expired', 'reads expired before any tick');

  s.clock.advance(5 * MIN);
  t.equal(await tick(s), 1);
  const expired = eventsOf(await timeline(s, id), 'expired');
  t.equal(expired.length, 1);
  t.equal(expired[0]?.scheduled_at, iso(expiresAt), 'scheduled_at = expires_at');
  t.equal(expired[0]?.occurred_at, iso(expiresAt + 5 * MIN));
  t.equal(await tick(s), 0);
  t.same((await timeline(s, id)).scheduled, [], 'nothing scheduled any more');

  assertError(t, await regenerate(s, id), 409, 'conflict');
  assertError(t, await reactivate(s, id), 409, 'conflict');
  assertError(t, await suspend(s, id), 409, 'conflict');
  const listed = await s.adminCall('GET', '/v1/keys?status=expired');
  t.same(listed.body.data.map((k: { id: string }) => k.id), [id], 'an expired key stays listed');
});

t.test('scheduler: scheduled rotation posts a signed key to the webhook; the old key keeps a grace', async (t) => {
  const s = await fresh(t);
  const created = s.clock.now();
  const rotateAt = created + 30 * DAY;
  const old = await s.createKey({ name: 'rotated monthly', policy: 'rotating', scopes: ['read_campaigns'], meta: { svc: 'x' } });
  t.equal(old.record.rotate_at, iso(rotateAt), 'rotate_at = created + 30 days');
  t.same((await timeline(s, old.id)).scheduled, [{ type: 'rotated', scheduled_at: iso(rotateAt) }], 'rotation scheduled');

  s.clock.set(rotateAt - 1);
  t.equal(await tick(s), 0, 'not due 1 ms before');
  t.equal(hook.deliveries.length, 0, 'no delivery yet');

  const tickAt = rotateAt + 5 * MIN;
  s.clock.set(tickAt);
  assertOk(t, await list(s, old.key), 'the old key works when its rotation is due but not done');
  t.equal(await tick(s), 1, 'one rotation');
  t.equal(hook.deliveries.length, 1, 'one delivery');
  const d = hook.deliveries[0]!;
  t.equal(d.method, 'POST');
  t.equal(d.url, '/hook');
  t.match(d.headers['content-type'], /^application\/json/);
  assertSigned(t, d);
  t.match(d.body?.key, /^gw_live_[0-9A-Za-z]{49}$/, 'the plaintext key');
  t.match(d.body?.key_id, /^key_/);
  t.equal(d.body?.replaces, old.id);

  const oldRec = (await getKey(s, old.id)).body;
  t.equal(oldRec.replaced_by, d.body.key_id, 'the old key points at the delivered one');
  t.equal(oldRec.grace_ends_at, iso(tickAt + 3600_000), 'grace from the policy');
  const newRec = (await getKey(s, d.body.key_id)).body;
  t.equal(newRec.replaces, old.id);
  t.equal(newRec.policy, 'rotating');
  t.same(newRec.scopes, ['read_campaigns']);
  t.same(newRec.meta, { svc: 'x' });
  t.equal(newRec.rotate_at, iso(tickAt + 30 * DAY), 'the new key is due in 30 days');
  t.equal(newRec.status, 'active');

  assertOk(t, await list(s, d.body.key), 'the delivered key works at the gateway');
  const during = await list(s, old.key);
  assertOk(t, during, 'the old key during the grace');
  t.equal(during.headers['deprecation'], 'true');
  t.equal(during.headers['sunset'], new Date(tickAt + 3600_000).toUTCString());
  s.clock.set(tickAt + 3600_000 - 1);
  assertOk(t, await list(s, old.key), 'old key at grace end − 1 ms');
  s.clock.set(tickAt + 3600_000);
  assertError(t, await list(s, old.key), 401, 'invalid_token', 'revoked');
  assertOk(t, await list(s, d.body.key), 'the delivered key after the grace');

  const rotated = eventsOf(await timeline(s, old.id), 'rotated');
  t.equal(rotated.length, 1);
  t.equal(rotated[0]?.scheduled_at, iso(rotateAt), 'scheduled_at = rotate_at');
  t.equal(rotated[0]?.occurred_at, iso(tickAt), 'occurred_at = the tick');
  t.equal(rotated[0]?.actor, 'scheduler');
  t.equal(rotated[0]?.detail?.replaced_by, d.body.key_id);
  t.notOk(JSON.stringify(await timeline(s, old.id)).includes(d.body.key), 'the timeline never holds the key');

  t.equal(await tick(s), 1, 'the end of the grace');
  t.equal(eventsOf(await timeline(s, old.id), 'revoked')[0]?.scheduled_at, iso(tickAt + 3600_000));
  t.equal(hook.deliveries.length, 1, 'no second delivery');
  t.equal(await tick(s), 0);
});

t.test('scheduler: a webhook answering 500 commits no rotation; a later tick rotates', async (t) => {
  const s = await fresh(t);
  const old = await s.createKey({ name: 'flaky receiver', policy: 'rotating' });
  const rotateAt = s.clock.now() + 30 * DAY;
  hook.status = 500;
  s.clock.set(rotateAt + MIN);
  t.equal(await tick(s), 0, 'nothing recorded');
  t.equal(hook.deliveries.length, 1, 'the delivery was attempted');
  const lost = hook.deliveries[0]!.body.key as string;
  const oldRec = (await getKey(s, old.id)).body;
  t.equal(oldRec.replaced_by, null, 'no replaced_by');
  t.equal(oldRec.grace_ends_at, null, 'no grace');
  t.equal(oldRec.rotate_at, iso(rotateAt), 'still due');
  t.equal(eventsOf(await timeline(s, old.id), 'rotated').length, 0, 'no rotated event');
  const unsent = await list(s, old.key);
  assertOk(t, unsent, 'the old key keeps working');
  t.notOk(unsent.headers['deprecation'], 'and is not deprecated');
  assertError(t, await list(s, lost), 401, 'invalid_token', 'not_found');
  const keys = await s.adminCall('GET', '/v1/keys?limit=100');
  t.equal(keys.body.data.length, 1, 'no key was stored for the failed delivery');

  hook.status = 200;
  s.clock.advance(MIN);
  t.equal(await tick(s), 1, 'rotated once the webhook works');
  t.equal(hook.deliveries.length, 2);
  const good = hook.deliveries[1]!;
  assertSigned(t, good);
  t.not(good.body.key, lost, 'a new key, not the one that was lost');
  t.equal((await getKey(s, old.id)).body.replaced_by, good.body.key_id);
  assertOk(t, await list(s, good.body.key), 'the delivered key works');
  assertError(t, await list(s, lost), 401, 'invalid_token', 'not_found');
  const rotated = eventsOf(await timeline(s, old.id), 'rotated');
  t.equal(rotated.length, 1);
  t.equal(rotated[0]?.scheduled_at, iso(rotateAt));
});

t.test('scheduler: rotation wins over an expiry on the same UTC day', async (t) => {
  const s = await fresh(t);
  // The stack clock starts at 2026-06-01T12:00Z: rotation is due 2026-07-01T12:00Z.
  const rotateAt = s.clock.now() + 30 * DAY;
  t.equal(iso(rotateAt), '2026-07-01T12:00:00.000Z');
  const expiresAt = rotateAt + 3 * HOUR;
  const later = await s.createKey({ name: 'expires later that day', policy: 'rotating', expires_at: iso(expiresAt) });
  t.equal(later.record.rotate_at, iso(rotateAt));
  t.same(
    (await timeline(s, later.id)).scheduled,
    [
      { type: 'rotated', scheduled_at: iso(rotateAt) },
      { type: 'expired', scheduled_at: iso(expiresAt) },
    ],
    'both scheduled, rotation first',
  );
  // Expiry earlier the same day: the rotation is brought forward to the expiry.
  const earlyExpiry = rotateAt - 4 * HOUR;
  const earlier = await s.createKey({ name: 'expires earlier that day', policy: 'rotating', expires_at: iso(earlyExpiry) });
  t.equal(earlier.record.rotate_at, iso(earlyExpiry), 'rotated no later than it would expire');

  // The scheduler is down over both times, and comes back after the expiries.
  s.clock.set(expiresAt + HOUR);
  t.equal(await tick(s), 2, 'two rotations');
  t.equal(hook.deliveries.length, 2);
  for (const [k, due] of [[later, rotateAt], [earlier, earlyExpiry]] as const) {
    const tl = await timeline(s, k.id);
    t.equal(eventsOf(tl, 'rotated').length, 1, `${k.record.name}: rotated`);
    t.equal(eventsOf(tl, 'rotated')[0]?.scheduled_at, iso(due), `${k.record.name}: scheduled_at = rotate_at`);
    t.equal(eventsOf(tl, 'expired').length, 0, `${k.record.name}: not expired`);
    const rec = (await getKey(s, k.id)).body;
    t.ok(rec.replaced_by, `${k.record.name}: replaced`);
    const delivery = hook.deliveries.find((x) => x.body.replaces === k.id);
    t.ok(delivery, `${k.record.name}: delivered`);
    t.equal(delivery?.body.key_id, rec.replaced_by);
    assertOk(t, await list(s, delivery!.body.key), `${k.record.name}: the delivered key works`);
  }
  s.clock.advance(2 * HOUR);
  t.equal(await tick(s), 2, 'the two graces end');
  for (const k of [later, earlier]) {
    const tl = await timeline(s, k.id);
    t.equal(eventsOf(tl, 'expired').length, 0, `${k.record.name}: never recorded as expired`);
    t.equal(eventsOf(tl, 'revoked').length, 1, `${k.record.name}: revoked at the end of its grace`);
  }
});

t.test('scheduler: after downtime one tick() records every transition that came due', async (t) => {
  const s = await fresh(t);
  const t0 = s.clock.now();
  const pending = await s.createKey({ name: 'pending', not_before: iso(t0 + HOUR) });
  const expiring = await s.createKey({ name: 'expiring', expires_at: iso(t0 + 2 * HOUR) });
  const both = await s.createKey({ name: 'pending then expiring', not_before: iso(t0 + HOUR), expires_at: iso(t0 + 5 * HOUR) });
  const graced = await s.createKey({ name: 'graced' });
  const graceRes = await regenerate(s, graced.id, { grace_period_seconds: 3 * 3600 });
  t.equal(graceRes.status, 201);
  const rotating = await s.createKey({ name: 'rotating', policy: 'rotating' });
  const quiet = await s.createKey({ name: 'nothing due' });

  const back = t0 + 31 * DAY;
  s.clock.set(back);
  t.equal(await tick(s), 6, 'activation ×2, expiry ×2, end of grace, rotation: all in one pass');

  const one = async (id: string, type: string, scheduledAt: number) => {
    const found = eventsOf(await timeline(s, id), type);
    t.equal(found.length, 1, `${id}: one ${type}`);
    t.equal(found[0]?.scheduled_at, iso(scheduledAt), `${type} scheduled_at`);
    t.equal(found[0]?.occurred_at, iso(back), `${type} occurred_at = the catch-up`);
  };
  await one(pending.id, 'activated', t0 + HOUR);
  await one(expiring.id, 'expired', t0 + 2 * HOUR);
  await one(both.id, 'activated', t0 + HOUR);
  await one(both.id, 'expired', t0 + 5 * HOUR);
  await one(graced.id, 'revoked', t0 + 3 * HOUR);
  await one(rotating.id, 'rotated', t0 + 30 * DAY);
  t.equal((await getKey(s, graced.id)).body.revoked_at, iso(t0 + 3 * HOUR));
  t.equal(hook.deliveries.length, 1, 'one webhook delivery');
  assertOk(t, await list(s, hook.deliveries[0]!.body.key), 'the rotated key works');
  assertOk(t, await list(s, rotating.key), 'the old rotating key is in its grace');
  assertOk(t, await list(s, pending.key), 'the pending key is active');
  assertOk(t, await list(s, quiet.key), 'the key with nothing due');
  t.equal((await timeline(s, quiet.id)).data.length, 1, 'untouched: only created');
  t.equal(await tick(s), 0, 'nothing left');
});

t.test('scheduler: a rotating key that expired the day before its rotation is recorded as expired after downtime', async (t) => {
  const s = await fresh(t);
  const t0 = s.clock.now();
  // Expires after 29 days, on another day than the rotation (day 30): the expiry comes first.
  const expiresAt = t0 + 29 * DAY;
  const k = await s.createKey({ name: 'expires before rotating', policy: 'rotating', expires_at: iso(expiresAt) });
  t.equal(k.record.rotate_at, iso(t0 + 30 * DAY), 'different days: rotation not moved');
  s.clock.set(t0 + 31 * DAY);
  assertError(t, await list(s, k.key), 401, 'invalid_token', 'expired');
  const done = await tick(s);
  t.equal(hook.deliveries.length, 0, 'an expired key is not rotated');
  t.equal((await getKey(s, k.id)).body.replaced_by, null);
  t.equal(done, 1, 'the expiry is recorded');
  const expired = eventsOf(await timeline(s, k.id), 'expired');
  t.equal(expired.length, 1, 'an expired event');
  t.equal(expired[0]?.scheduled_at, iso(expiresAt), 'scheduled_at = expires_at');
  const warnings = () => s.logs.filter((l) => l.includes('scheduled transition failed')).length;
  const before = warnings();
  s.clock.advance(MIN);
  await tick(s);
  t.equal(warnings(), before, 'a later pass does not fail on the key again');
});

// ---------------------------------------------------------------------------------------------
// 9. The timeline

t.test('GET /v1/keys/{id}/events: every step with its actual time, and its scheduled time where it had one', async (t) => {
  const s = await fresh(t);
  const t0 = s.clock.now();
  const notBefore = t0 + MIN;
  const expiresAt = t0 + 10 * DAY;
  const { id } = await s.createKey({ name: 'story', not_before: iso(notBefore), expires_at: iso(expiresAt) });
  let tl = await timeline(s, id);
  t.same(
    tl.scheduled,
    [
      { type: 'activated', scheduled_at: iso(notBefore) },
      { type: 'expired', scheduled_at: iso(expiresAt) },
    ],
    'upcoming: activation and expiry',
  );
  t.same(tl.data.map((e) => e.type), ['created']);
  t.equal(tl.data[0].occurred_at, iso(t0));
  t.equal(tl.data[0].scheduled_at, null);
  t.equal(tl.data[0].actor, 'ops');

  s.clock.set(notBefore + 1000);
  t.equal(await tick(s), 1);
  s.clock.advance(1000);
  t.equal((await patchKey(s, id, { name: 'story 2', scopes: ['send_email'], meta: { v: 2 } })).status, 200);
  t.equal((await patchKey(s, id, { name: 'story 2' })).status, 200, 'a patch that changes nothing');
  s.clock.advance(1000);
  t.equal((await suspend(s, id, { reason: 'audit' })).status, 200);
  s.clock.advance(1000);
  t.equal((await reactivate(s, id)).status, 200);
  s.clock.advance(1000);
  const regenAt = s.clock.now();
  const regen = await regenerate(s, id, { grace_period_seconds: 120 });
  t.equal(regen.status, 201);
  tl = await timeline(s, id);
  t.same(
    tl.scheduled,
    [
      { type: 'revoked', scheduled_at: iso(regenAt + 120_000) },
      { type: 'expired', scheduled_at: iso(expiresAt) },
    ],
    'upcoming: the end of the grace, then the expiry',
  );
  s.clock.set(regenAt + 120_000 + 500);
  t.equal(await tick(s), 1);

  tl = await timeline(s, id);
  t.same(tl.data.map((e) => e.type), ['created', 'activated', 'edited', 'suspended', 'reactivated', 'rotated', 'revoked'], 'the whole story, oldest first');
  for (const e of tl.data) {
    t.match(e.occurred_at, RFC3339_UTC, `${e.type}: occurred_at is RFC 3339 UTC`);
    t.ok(e.scheduled_at === null || RFC3339_UTC.test(e.scheduled_at), `${e.type}: scheduled_at null or RFC 3339`);
  }
  const by = Object.fromEntries(tl.data.map((e) => [e.type, e]));
  t.equal(by['activated'].scheduled_at, iso(notBefore));
  t.equal(by['activated'].occurred_at, iso(notBefore + 1000));
  t.same(by['edited'].detail.fields, ['name', 'scopes', 'meta'], 'edited names the changed fields');
  t.equal(by['edited'].actor, 'ops');
  t.equal(by['suspended'].detail.reason, 'audit');
  t.equal(by['suspended'].scheduled_at, null);
  t.equal(by['reactivated'].scheduled_at, null);
  t.equal(by['rotated'].scheduled_at, null, 'a regeneration by hand was not scheduled');
  t.equal(by['rotated'].occurred_at, iso(regenAt));
  t.equal(by['rotated'].detail.replaced_by, regen.body.id);
  t.equal(by['revoked'].scheduled_at, iso(regenAt + 120_000));
  t.equal(by['revoked'].occurred_at, iso(regenAt + 120_500));
  t.same(tl.scheduled, [], 'nothing upcoming for a revoked key');

  // The successor keeps the expiry; its own timeline ends with it.
  const succ = regen.body.id as string;
  t.same((await timeline(s, succ)).scheduled, [{ type: 'expired', scheduled_at: iso(expiresAt) }]);
  s.clock.set(expiresAt + 2000);
  t.equal(await tick(s), 1);
  const succTl = await timeline(s, succ);
  t.same(succTl.data.map((e) => e.type), ['created', 'expired']);
  t.equal(succTl.data[1].scheduled_at, iso(expiresAt));
  t.equal(succTl.data[1].occurred_at, iso(expiresAt + 2000));

  // A rotating key lists its rotation and its expiry as upcoming.
  const rot = await s.createKey({ name: 'rot', policy: 'rotating', expires_at: iso(s.clock.now() + 60 * DAY) });
  t.same((await timeline(s, rot.id)).scheduled, [
    { type: 'rotated', scheduled_at: iso(s.clock.now() + 30 * DAY) },
    { type: 'expired', scheduled_at: iso(s.clock.now() + 60 * DAY) },
  ]);

  assertError(t, await s.adminCall('GET', '/v1/keys/key_doesnotexist000000/events'), 404, 'not_found');
  const used = await s.createKey({ name: 'used' });
  assertOk(t, await list(s, used.key), 'first use');
  const firstAt = s.clock.now();
  await s.admin.usage.flush();
  s.clock.advance(MIN);
  assertOk(t, await list(s, used.key), 'second use');
  await s.admin.usage.flush();
  const firstUsed = eventsOf(await timeline(s, used.id), 'first_used');
  t.equal(firstUsed.length, 1, 'first_used recorded once');
  t.equal(firstUsed[0]?.occurred_at, iso(firstAt), 'occurred_at: the time of the first request');
  t.equal(firstUsed[0]?.scheduled_at, null, 'first use is never scheduled');
  const usedRec = (await getKey(s, used.id)).body;
  t.equal(usedRec.last_used_at, iso(firstAt + MIN), 'last_used_at is the second request');
  t.same(usedRec.usage, { total_requests: 2, error_count: 0 }, 'both requests counted');
  const viewer = await s.adminCall('GET', `/v1/keys/${id}/events`, undefined, 'test-viewer-token-0123456789');
  t.equal(viewer.status, 200, 'a viewer reads the timeline');
});

t.test('PATCH expires_at of a rotating key: rotation follows the expiry back when the expiry moves away', async (t) => {
  const s = await fresh(t);
  const rotateAt = s.clock.now() + 30 * DAY;
  const { id } = await s.createKey({ name: 'moving expiry', policy: 'rotating' });
  let res = await patchKey(s, id, { expires_at: iso(rotateAt - 4 * HOUR) });
  t.equal(res.status, 200);
  t.equal(res.body.rotate_at, iso(rotateAt - 4 * HOUR), 'expiry earlier the same day: rotation moved to it');
  res = await patchKey(s, id, { expires_at: null });
  t.equal(res.status, 200);
  t.equal(res.body.rotate_at, iso(rotateAt), 'expiry removed: rotation back to every 30 days');
});
