import t, { type Test } from 'tap';
import { generateKey } from '../core/key-format.js';
import { assertDocUrl } from './lib/error-docs.js';
import { switchable, type Switchable } from './lib/flaky-store.js';
import { bearer, call, rawCall, startStack } from './lib/stack.js';

// The gateway's errors (README, Errors; the body in docs/architecture.md, Error body), one
// test per status and reason, through real sockets, asserting status, error, reason and headers.

let cut: Switchable | null = null;
const stack = await startStack({
  wrapStore: (s) => {
    const w = switchable(s);
    cut = w;
    return w;
  },
});
t.teardown(() => stack.close());
const prod = stack.gw['production']!;
const testEnv = stack.gw['test']!;

function assertError(
  t: Test,
  res: { status: number; headers: Record<string, unknown>; body: any },
  status: number,
  error: string,
  reason?: string,
) {
  t.equal(res.status, status, 'status');
  t.match(res.headers['content-type'], /^application\/json/, 'JSON body');
  t.equal(res.body?.error, error, 'error code');
  t.equal(res.body?.reason, reason, 'reason');
  t.type(res.body?.message, 'string', 'message');
  t.ok(res.body?.request_id, 'request_id');
  t.equal(res.headers['x-request-id'], res.body?.request_id, 'request id header matches body');
  assertDocUrl(t, res.body);
}

t.test('400 bad_request: a path that climbs out of the API is refused and never forwarded', async (t) => {
  const { key } = await stack.createKey();
  const before = stack.upstream.seen.length;
  for (const path of ['/v1/emails/../contacts/x', '/v1/emails/%2e%2e/contacts', '/v1/emails/..%2fcontacts', '/v1/emails/%2E%2E%2Fcontacts']) {
    const res = await rawCall(prod, path, { headers: bearer(key) });
    assertError(t, res, 400, 'bad_request');
  }
  t.equal(stack.upstream.seen.length, before, 'nothing reached the upstream');
});

t.test('401 missing_token with WWW-Authenticate', async (t) => {
  const res = await call(`${prod}/v1/emails/list`);
  assertError(t, res, 401, 'missing_token');
  t.equal(res.headers['www-authenticate'], 'Bearer realm="keygate"', 'RFC 6750 §3.1: no error code when no key came');
  t.equal(res.body.message, 'This request needs an API key. Send it as "Authorization: Bearer <key>".');
  t.notOk(res.headers['ratelimit'], 'no rate-limit headers for an unauthenticated request');
});

t.test('401 invalid_token malformed: bad shape or checksum, before any lookup', async (t) => {
  const { key } = await stack.createKey();
  const flipped = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
  const misses = stack.gateway.runtime.keys.stats.misses;
  const lookups = cut!.lookups;
  // A key of a tag no environment has (its checksum is right), and one far too long to be a key.
  const unknownTag = generateKey('gw', 'staging');
  for (const bad of ['gw_live_short', flipped, 'xx_live_' + key.slice(8), key + 'x', unknownTag, 'x'.repeat(4000)]) {
    const res = await call(`${prod}/v1/emails/list`, { headers: bearer(bad) });
    assertError(t, res, 401, 'invalid_token', 'malformed');
    t.equal(res.headers['www-authenticate'], 'Bearer realm="keygate", error="invalid_token"');
  }
  // Another scheme is no bearer credential at all: RFC 6750 §3.1, a challenge without an error code.
  const basic = await call(`${prod}/v1/emails/list`, { headers: { authorization: 'Basic abc' } });
  assertError(t, basic, 401, 'invalid_token', 'malformed');
  t.equal(basic.headers['www-authenticate'], 'Bearer realm="keygate"');
  t.match(basic.body.message, /Bearer scheme/);
  t.equal(cut!.lookups, lookups, 'the store was not asked about any of them');
  t.equal(stack.gateway.runtime.keys.stats.misses, misses, 'nor counted as cache misses');
  // The same key with its checksum right is looked up: the counts above can move.
  assertError(t, await call(`${prod}/v1/emails/list`, { headers: bearer(generateKey('gw', 'live')) }), 401, 'invalid_token', 'not_found');
  t.equal(cut!.lookups, lookups + 1, 'a well-formed unknown key is looked up');
  t.equal(stack.gateway.runtime.keys.stats.misses, misses + 1);
});

t.test('the Bearer scheme is matched in any case, with the key after one or more spaces', async (t) => {
  const { key } = await stack.createKey();
  for (const value of [`Bearer ${key}`, `bearer ${key}`, `BEARER ${key}`, `bEaReR ${key}`, `Bearer   ${key}`, `Bearer ${key} `]) {
    const res = await call(`${prod}/v1/emails/list`, { headers: { authorization: value } });
    t.equal(res.status, 200, JSON.stringify(value));
  }
  for (const value of [`Bearer${key}`, `Bearer\t${key}`, `Bearex ${key}`, `Basic ${key}`, 'Bearer', 'Bearer ']) {
    const res = await call(`${prod}/v1/emails/list`, { headers: { authorization: value } });
    t.equal(res.status, 401, JSON.stringify(value));
  }
});

t.test('401 invalid_token not_found: well-formed key that does not exist', async (t) => {
  const res = await call(`${prod}/v1/emails/list`, { headers: bearer(generateKey('gw', 'live')) });
  assertError(t, res, 401, 'invalid_token', 'not_found');
  t.equal(res.headers['www-authenticate'], 'Bearer realm="keygate", error="invalid_token"');
  t.match(res.body.message, /does not exist.*ask the API's owner/);
});

t.test('401 invalid_token expired: the gateway checks the time itself', async (t) => {
  const expires = new Date(stack.clock.now() + 60_000).toISOString();
  const { key } = await stack.createKey({ expires_at: expires });
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 200, 'works before expiry');
  stack.clock.advance(60_000);
  assertError(t, await call(`${prod}/v1/emails/list`, { headers: bearer(key) }), 401, 'invalid_token', 'expired');
});

t.test('401 invalid_token revoked', async (t) => {
  const { key, id } = await stack.createKey();
  t.equal((await stack.adminCall('POST', `/v1/keys/${id}/revoke`)).status, 200);
  assertError(t, await call(`${prod}/v1/emails/list`, { headers: bearer(key) }), 401, 'invalid_token', 'revoked');
});

t.test('401 invalid_token suspended', async (t) => {
  const { key, id } = await stack.createKey();
  const rec = (await stack.store.getKey(id))!;
  await stack.store.putKey({ ...rec, suspended_at: stack.clock.now() }, rec.version);
  assertError(t, await call(`${prod}/v1/emails/list`, { headers: bearer(key) }), 401, 'invalid_token', 'suspended');
});

t.test('401 invalid_token pending until not_before', async (t) => {
  const { key } = await stack.createKey({ not_before: new Date(stack.clock.now() + 3_600_000).toISOString() });
  assertError(t, await call(`${prod}/v1/emails/list`, { headers: bearer(key) }), 401, 'invalid_token', 'pending');
  stack.clock.advance(3_600_000);
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 200, 'active once not_before passes');
});

t.test('401 invalid_token wrong_environment, both ways', async (t) => {
  const live = await stack.createKey({ environment: 'production' });
  const test = await stack.createKey({ environment: 'test' });
  assertError(t, await call(`${testEnv}/v1/emails/list`, { headers: bearer(live.key) }), 401, 'invalid_token', 'wrong_environment');
  assertError(t, await call(`${prod}/v1/emails/list`, { headers: bearer(test.key) }), 401, 'invalid_token', 'wrong_environment');
  t.equal((await call(`${testEnv}/v1/emails/list`, { headers: bearer(test.key) })).status, 200);
});

t.test('403 api_not_allowed names the API', async (t) => {
  const { key } = await stack.createKey({ apis: ['contacts'] });
  const res = await call(`${prod}/v1/emails/list`, { headers: bearer(key) });
  assertError(t, res, 403, 'api_not_allowed');
  t.equal(res.body.api, 'emails');
  t.equal(res.body.message, "This API key may not call the emails API; ask the API's owner to allow it.");
  t.ok(res.headers['ratelimit'], 'authenticated: rate-limit headers present');
  t.equal((await call(`${prod}/v1/contacts/1`, { headers: bearer(key) })).status, 200);
});

t.test('403 ip_not_allowed outside the allowlist names the address seen; inside passes', async (t) => {
  const outside = await stack.createKey({ ip_allowlist: ['203.0.113.0/24', '2001:db8::/32'] });
  const res = await call(`${prod}/v1/emails/list`, { headers: bearer(outside.key) });
  assertError(t, res, 403, 'ip_not_allowed');
  t.equal(res.body.client_ip, '127.0.0.1', 'client_ip: the socket peer, no proxy being trusted');
  t.match(res.body.message, /^This API key may not be used from 127\.0\.0\.1,/);
  const inside = await stack.createKey({ ip_allowlist: ['127.0.0.0/8'] });
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(inside.key) })).status, 200);
});

t.test('403 insufficient_permissions lists required and missing scopes', async (t) => {
  const { key } = await stack.createKey({ scopes: ['read_only'] });
  const res = await call(`${prod}/v1/emails/send`, { method: 'POST', headers: bearer(key), body: '{}' });
  assertError(t, res, 403, 'insufficient_permissions');
  t.same(res.body.required_scopes, ['send_email']);
  t.same(res.body.missing_scopes, ['send_email']);
  t.equal(res.body.message, "This API key lacks the send_email scope; ask the API's owner to grant it.");
  const ok = await stack.createKey({ scopes: ['send_email'] });
  t.equal((await call(`${prod}/v1/emails/send`, { method: 'POST', headers: bearer(ok.key), body: '{}' })).status, 200);
});

t.test('404 route_not_found when no API matches', async (t) => {
  const { key } = await stack.createKey();
  assertError(t, await call(`${prod}/v2/nothing`, { headers: bearer(key) }), 404, 'route_not_found');
  assertError(t, await call(`${prod}/v1/emailsx`, { headers: bearer(key) }), 404, 'route_not_found');
});

t.test('429 rate_limit_exceeded with Retry-After and retry_after; refills with time', async (t) => {
  const { key } = await stack.createKey({ rate_limit: { limit: 2, window_seconds: 60 } });
  for (let i = 0; i < 2; i++) t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 200);
  const res = await call(`${prod}/v1/emails/list`, { headers: bearer(key) });
  assertError(t, res, 429, 'rate_limit_exceeded');
  t.equal(res.headers['retry-after'], '30');
  t.equal(res.body.retry_after, 30);
  t.equal(res.body.message, 'Rate limit exceeded: this API key has used up its limit; try again in 30 seconds.');
  t.equal(res.headers['ratelimit-policy'], '"key";q=2;w=60');
  t.equal(res.headers['ratelimit'], '"key";r=0;t=60');
  stack.clock.advance(30_000);
  const after = await call(`${prod}/v1/emails/list`, { headers: bearer(key) });
  t.equal(after.status, 200, 'one token back after 30 s');
  t.equal(after.headers['ratelimit'], '"key";r=0;t=60');
});

t.test('earlier denials spend no tokens', async (t) => {
  const { key } = await stack.createKey({ rate_limit: { limit: 1, window_seconds: 60 }, scopes: [] });
  for (let i = 0; i < 3; i++) {
    t.equal((await call(`${prod}/v1/emails/send`, { method: 'POST', headers: bearer(key) })).status, 403);
  }
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 200, 'the one token is still there');
});

t.test('a route limit applies on top of the key limit and is listed in the headers', async (t) => {
  const { key } = await stack.createKey();
  const first = await call(`${prod}/v1/emails/limited`, { headers: bearer(key) });
  t.equal(first.status, 200);
  t.equal(first.headers['ratelimit-policy'], '"default";q=100;w=60, "emails_1";q=1;w=60');
  t.equal(first.headers['ratelimit'], '"default";r=99;t=1, "emails_1";r=0;t=60');
  const second = await call(`${prod}/v1/emails/limited`, { headers: bearer(key) });
  assertError(t, second, 429, 'rate_limit_exceeded');
  t.match(second.body.message, /used up its limit for this route; try again in \d+ seconds?\./);
  t.equal(second.headers['ratelimit'], '"default";r=99;t=1, "emails_1";r=0;t=60', 'the key bucket was not spent');
  t.equal((await call(`${prod}/v1/emails/other`, { headers: bearer(key) })).status, 200, 'other routes unaffected');
});

t.test('502 bad_gateway when the upstream refuses the connection', async (t) => {
  const { key } = await stack.createKey();
  assertError(t, await call(`${prod}/v1/dead/x`, { headers: bearer(key) }), 502, 'bad_gateway');
});

t.test('503 service_unavailable when the store is down and the key is not cached; cached keys keep working', async (t) => {
  const cached = await stack.createKey();
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(cached.key) })).status, 200, 'now cached');
  const uncached = await stack.createKey();
  cut!.down = true;
  try {
    assertError(t, await call(`${prod}/v1/emails/list`, { headers: bearer(uncached.key) }), 503, 'service_unavailable');
    assertError(t, await call(`${prod}/v1/emails/list`, { headers: bearer(generateKey('gw', 'live')) }), 503, 'service_unavailable');
    t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(cached.key) })).status, 200, 'cached key still works');
  } finally {
    cut!.down = false;
  }
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(uncached.key) })).status, 200, 'recovers without restart');
});

t.test('504 gateway_timeout when the upstream does not answer in time', async (t) => {
  const { key } = await stack.createKey();
  const started = Date.now();
  assertError(t, await call(`${prod}/v1/slow/x`, { headers: bearer(key) }), 504, 'gateway_timeout');
  t.ok(Date.now() - started < 1500, 'answered near the 200 ms timeout, not hung');
});
