import { networkInterfaces } from 'node:os';
import type { Server } from 'node:http';
import t from 'tap';
import { request } from 'undici';
import { generateKey } from '../core/key-format.js';
import { listenOn } from '../core/listen.js';
import { RedisStore } from '../core/store/redis-store.js';
import { createOpsServer } from '../gateway/ops.js';
import { assertDocUrl } from './lib/error-docs.js';
import { exchange, openRaw, responses } from './lib/raw-socket.js';
import { RedisServer } from './lib/redis.js';
import { bearer, call, startStack, testConfig } from './lib/stack.js';
import { within } from './lib/within.js';

// The verify API on the status listener (docs/verify.md): POST /v1/keys/verify answers 200 for
// every outcome with the code a proxied request would have got, and GET /auth answers like an
// nginx auth_request endpoint. Both run the proxy's key checks: same denials, same buckets, one
// usage event per call. The caller needs the verify token (or, without one, a loopback address),
// and the body is judged at the server's real defaults.

const TOKEN = 'verify-token-0123456789abcdef';
const stack = await startStack({
  overrides: () => ({
    status_listener: { port: 0, verify: { enabled: true, token: TOKEN, timeout_ms: 1_000 } },
  }),
});
t.teardown(() => stack.close());
const servers: Server[] = [];
t.teardown(() => Promise.all(servers.map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r))))));
async function serve(rt: Parameters<typeof createOpsServer>[0] = stack.gateway.runtime, host = '127.0.0.1'): Promise<string> {
  const ops = createOpsServer(rt, () => false);
  servers.push(ops);
  return (await listenOn(ops, 0, host)).url;
}
const status = await serve();
const prod = stack.gw['production']!;

interface Answer {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}
async function verify(body: unknown, options: { token?: string | null; type?: string; url?: string } = {}): Promise<Answer> {
  const token = options.token === undefined ? TOKEN : options.token;
  const res = await request(`${options.url ?? status}/v1/keys/verify`, {
    method: 'POST',
    headers: { 'content-type': options.type ?? 'application/json', ...(token === null ? {} : { 'x-keygate-verify-token': token }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}
async function auth(headers: Record<string, string>, token: string | null = TOKEN): Promise<Answer> {
  const res = await request(`${status}/auth`, { headers: { ...(token === null ? {} : { 'x-keygate-verify-token': token }), ...headers } });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** Calls `fn` and returns the usage events it recorded. */
async function eventsOf(fn: () => Promise<unknown>) {
  const before = stack.events.length;
  await fn();
  return stack.events.slice(before);
}

t.test('a valid key: 200, valid, with its identity and what is left of its bucket; one usage event', async (t) => {
  const { key, id } = await stack.createKey({ scopes: ['send_email', 'read_campaigns'], rate_limit: { limit: 5, window_seconds: 60 } });
  let res!: Answer;
  const events = await eventsOf(async () => (res = await verify({ key, api: 'emails', method: 'POST', path: '/v1/emails/send' })));
  t.equal(res.status, 200);
  t.same(res.body, {
    valid: true,
    code: null,
    reason: null,
    message: null,
    key_id: id,
    environment: 'production',
    scopes: ['send_email', 'read_campaigns'],
    application_id: null,
    ratelimit: { limit: 5, remaining: 4, reset: 12 },
    quota: null,
    app_quota: null,
    metered: false,
    request_id: res.headers['x-request-id'],
  });
  t.equal(events.length, 1, 'one usage event');
  t.match(events[0], { key_id: id, api: 'emails', method: 'POST', route: '/v1/emails/send', status: 200, outcome: 'ok', environment: 'production' });
  t.equal(stack.upstream.seen.length, 0, 'nothing reaches an upstream');
  t.equal(JSON.stringify(events).includes(key), false, 'the key is not in the event');
});

t.test('every refusal a key can get, as code and reason, each recorded once', async (t) => {
  const check = async (name: string, body: Record<string, unknown>, expected: Record<string, unknown>) => {
    let res!: Answer;
    const events = await eventsOf(async () => (res = await verify(body)));
    t.equal(res.status, 200, `${name}: 200 all the same`);
    t.match(res.body, { valid: false, ...expected }, name);
    t.type(res.body.message, 'string', `${name}: a message`);
    t.equal(events.length, 1, `${name}: one usage event`);
    t.equal(events[0]?.outcome, expected['code'], `${name}: the event's outcome`);
    return res.body;
  };
  await check('malformed', { key: 'gw_live_nope' }, { code: 'invalid_token', reason: 'malformed', key_id: null, ratelimit: null });
  await check('unknown', { key: generateKey('gw', 'live') }, { code: 'invalid_token', reason: 'not_found', key_id: null });

  const revoked = await stack.createKey();
  t.equal((await stack.adminCall('POST', `/v1/keys/${revoked.id}/revoke`)).status, 200);
  await check('revoked', { key: revoked.key }, { code: 'invalid_token', reason: 'revoked', key_id: revoked.id });

  const suspended = await stack.createKey();
  t.equal((await stack.adminCall('POST', `/v1/keys/${suspended.id}/suspend`)).status, 200);
  await check('suspended', { key: suspended.key }, { code: 'invalid_token', reason: 'suspended' });

  const expiring = await stack.createKey({ expires_at: new Date(stack.clock.now() + 60_000).toISOString() });
  t.match((await verify({ key: expiring.key })).body, { valid: true }, 'valid before its expiry');
  stack.clock.advance(61_000);
  await check('expired', { key: expiring.key }, { code: 'invalid_token', reason: 'expired' });

  const testKey = await stack.createKey({ environment: 'test' });
  await check('wrong environment', { key: testKey.key }, { code: 'invalid_token', reason: 'wrong_environment', environment: 'test' });
  t.match((await verify({ key: testKey.key, environment: 'test' })).body, { valid: true }, 'valid in its own environment');

  const contactsOnly = await stack.createKey({ apis: ['contacts'] });
  await check('api not allowed', { key: contactsOnly.key, api: 'emails' }, { code: 'api_not_allowed', api: 'emails' });
  await check('api not allowed, by path', { key: contactsOnly.key, path: '/v1/emails/list' }, { code: 'api_not_allowed' });
  t.match((await verify({ key: contactsOnly.key, path: '/v1/contacts/1' })).body, { valid: true });

  const fenced = await stack.createKey({ ip_allowlist: ['10.0.0.0/8'] });
  await check('ip not allowed', { key: fenced.key, ip: '192.0.2.9' }, { code: 'ip_not_allowed', client_ip: '192.0.2.9' });
  await check('ip not allowed, the caller’s own address', { key: fenced.key }, { code: 'ip_not_allowed', client_ip: '127.0.0.1' });
  t.match((await verify({ key: fenced.key, ip: '10.1.2.3' })).body, { valid: true }, 'an address inside the allowlist');
  t.match((await verify({ key: fenced.key, ip: '::ffff:10.1.2.3' })).body, { valid: true }, 'IPv4-mapped IPv6 as IPv4');

  const reader = await stack.createKey({ scopes: ['read_campaigns'] });
  await check(
    'insufficient permissions, by route',
    { key: reader.key, method: 'post', path: '/v1/emails/send' },
    { code: 'insufficient_permissions', required_scopes: ['send_email'], missing_scopes: ['send_email'] },
  );
  await check(
    'insufficient permissions, by the scopes asked',
    { key: reader.key, scopes: ['read_campaigns', 'read_contacts'] },
    { code: 'insufficient_permissions', missing_scopes: ['read_contacts'] },
  );
  t.match((await verify({ key: reader.key, scopes: ['read_campaigns'] })).body, { valid: true });

  const tiny = await stack.createKey({ rate_limit: { limit: 1, window_seconds: 60 } });
  t.match((await verify({ key: tiny.key })).body, { valid: true, ratelimit: { limit: 1, remaining: 0 } });
  const limited = await check('rate limited', { key: tiny.key }, { code: 'rate_limit_exceeded', retry_after: 60, ratelimit: { limit: 1, remaining: 0 } });
  t.match(limited.message, /try again in 60 seconds/);

  await check('route not found', { key: reader.key, path: '/nowhere' }, { code: 'route_not_found' });
  await check('path of another API than the one named', { key: reader.key, api: 'contacts', path: '/v1/emails/x' }, { code: 'route_not_found' });
  await check('a path the proxy refuses', { key: reader.key, path: '/v1/emails/%2e%2e/admin' }, { code: 'bad_request' });
});

t.test('the verify API and the proxy spend from the same buckets', async (t) => {
  const { key } = await stack.createKey({ rate_limit: { limit: 2, window_seconds: 3600 } });
  t.match((await verify({ key, path: '/v1/emails/list' })).body, { valid: true, ratelimit: { remaining: 1 } });
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 200, 'the proxy takes the second token');
  t.match((await verify({ key })).body, { valid: false, code: 'rate_limit_exceeded' }, 'none left for the verify API');
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 429, 'nor for the proxy');

  const { key: other } = await stack.createKey({ rate_limit: { limit: 1, window_seconds: 3600 }, scopes: [] });
  t.match((await verify({ key: other, method: 'POST', path: '/v1/emails/send' })).body, { code: 'insufficient_permissions' });
  t.match((await verify({ key: other })).body, { valid: true }, 'a refusal before the rate limit spends no token');
});

t.test('the caller needs the verify token', async (t) => {
  const { key } = await stack.createKey();
  for (const [name, token] of [
    ['no token', null],
    ['a wrong token', 'verify-token-0123456789abcdeX'],
    ['a token of another length', 'short'],
  ] as const) {
    const events = await eventsOf(async () => {
      const res = await verify({ key }, { token });
      t.equal(res.status, 401, name);
      t.equal(res.body.error, 'unauthorized', name);
      t.match(res.body.message, /X-Keygate-Verify-Token/);
      assertDocUrl(t, res.body);
      const a = await auth({ authorization: `Bearer ${key}`, 'x-original-uri': '/v1/emails/list' }, token);
      t.equal(a.status, 401, `/auth: ${name}`);
      t.equal(a.body.error, 'unauthorized');
    });
    t.equal(events.length, 0, `${name}: nothing checked, nothing recorded`);
  }
});

t.test('without a token, only loopback callers', async (t) => {
  const open = await startStack({ overrides: () => ({ status_listener: { port: 0, verify: { enabled: true } } }) });
  t.teardown(() => open.close());
  const { key } = await open.createKey();
  const loopback = await serve(open.gateway.runtime, '127.0.0.1');
  t.match((await verify({ key }, { token: null, url: loopback })).body, { valid: true }, 'a loopback caller');
  const outside = Object.values(networkInterfaces())
    .flat()
    .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal);
  t.ok(outside, 'this host has an address beyond loopback to call from');
  const url = await serve(open.gateway.runtime, '0.0.0.0');
  const res = await verify({ key }, { token: null, url: url.replace('0.0.0.0', outside!.address) });
  t.equal(res.status, 403);
  t.equal(res.body.error, 'forbidden');
  t.match(res.body.message, /loopback/);
});

t.test('hostile bodies are refused with a clear 4xx, before any check', async (t) => {
  const { key } = await stack.createKey();
  const events = await eventsOf(async () => {
    let res = await verify('{"key": ');
    t.equal(res.status, 400);
    t.equal(res.body.error, 'bad_request');
    t.match(res.body.message, /not valid JSON/);

    res = await verify({ key: 42, scopes: 'all', cost: 0, ip: '300.1.1.1', method: 'GE T', path: 'relative', extra: true });
    t.equal(res.status, 400);
    t.equal(res.body.error, 'validation_failed');
    const paths = (res.body.details as { path: string; message: string }[]).map((d) => d.path).sort();
    t.same(paths, ['cost', 'extra', 'ip', 'key', 'method', 'path', 'scopes'], 'each field named');
    assertDocUrl(t, res.body);

    res = await verify({});
    t.same(res.body.details, [{ path: 'key', message: 'is required' }]);
    res = await verify([key]);
    t.equal(res.body.error, 'validation_failed', 'an array');
    res = await verify('null');
    t.equal(res.body.error, 'validation_failed', 'null');

    res = await verify({ key, api: 'nope', environment: 'staging' });
    t.equal(res.status, 400);
    t.same(res.body.details.map((d: { path: string }) => d.path), ['api', 'environment'], 'an unknown API and environment');

    res = await verify({ key }, { type: 'text/plain' });
    t.equal(res.status, 415);
    t.equal(res.body.error, 'unsupported_media_type');

    res = await verify({ key, path: `/${'a'.repeat(20_000)}` });
    t.equal(res.status, 413, 'over the default 16 KiB');
    t.equal(res.body.error, 'payload_too_large');

    const [chunked] = responses(
      await exchange(
        status,
        `POST /v1/keys/verify HTTP/1.1\r\nHost: x\r\nX-Keygate-Verify-Token: ${TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
          `4000\r\n${'a'.repeat(0x4000)}\r\n4000\r\n${'a'.repeat(0x4000)}\r\n0\r\n\r\n`,
      ),
    );
    t.equal(chunked?.status, 413, 'a chunked body growing past the limit');

    const get = await request(`${status}/v1/keys/verify`, { headers: { 'x-keygate-verify-token': TOKEN } });
    t.equal(get.statusCode, 405);
    t.equal(get.headers['allow'], 'POST');
    await get.body.dump();
  });
  t.equal(events.length, 0, 'none of them checked a key or recorded usage');
});

t.test('a request that does not arrive whole within timeout_ms gets 408', async (t) => {
  const c = await openRaw(status);
  c.write(`POST /v1/keys/verify HTTP/1.1\r\nHost: x\r\nX-Keygate-Verify-Token: ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"key":`);
  const [res] = responses(await within(c.closed, 5_000, 'the connection was closed'));
  t.equal(res?.status, 408);
});

t.test('GET /auth: 204 with the identity headers for a valid key', async (t) => {
  const { key, id } = await stack.createKey({ scopes: ['send_email'], rate_limit: { limit: 10, window_seconds: 60 } });
  let res!: Answer;
  const events = await eventsOf(
    async () =>
      (res = await auth({ authorization: `Bearer ${key}`, 'x-original-uri': '/v1/emails/send?x=1', 'x-original-method': 'POST', 'x-request-id': 'req-1' })),
  );
  t.equal(res.status, 204);
  t.equal(res.headers['x-key-id'], id);
  t.equal(res.headers['x-key-environment'], 'production');
  t.equal(res.headers['x-key-scopes'], 'send_email');
  t.equal(res.headers['x-application-id'], undefined, 'no application');
  t.equal(res.headers['x-request-id'], 'req-1');
  t.equal(res.headers['ratelimit'], '"key";r=9;t=6');
  t.equal(res.headers['ratelimit-policy'], '"key";q=10;w=60');
  t.equal(events.length, 1);
  t.match(events[0], { key_id: id, method: 'POST', route: '/v1/emails/send', status: 204, outcome: 'ok' });
});

t.test('GET /auth: refusals carry the error body, its code in X-Keygate-Error (and the body as a header), and the rate-limit headers', async (t) => {
  const revoked = await stack.createKey();
  await stack.adminCall('POST', `/v1/keys/${revoked.id}/revoke`);
  let res = await auth({ authorization: `Bearer ${revoked.key}`, 'x-original-uri': '/v1/emails/list' });
  t.equal(res.status, 401);
  t.match(res.body, { error: 'invalid_token', reason: 'revoked' });
  t.equal(res.headers['x-keygate-error'], 'invalid_token');
  t.same(JSON.parse(res.headers['x-keygate-error-body'] as string), res.body, 'the same body in a header');
  t.match(res.headers['www-authenticate'], /error="invalid_token"/);

  res = await auth({ 'x-original-uri': '/v1/emails/list' });
  t.equal(res.status, 401);
  t.equal(res.headers['x-keygate-error'], 'missing_token');

  const reader = await stack.createKey({ scopes: [] });
  res = await auth({ authorization: `Bearer ${reader.key}`, 'x-original-uri': '/v1/emails/send', 'x-original-method': 'POST' });
  t.equal(res.status, 403);
  t.equal(res.headers['x-keygate-error'], 'insufficient_permissions');
  t.ok(res.headers['ratelimit'], 'rate-limit headers on a refusal of a known key');

  const tiny = await stack.createKey({ rate_limit: { limit: 1, window_seconds: 30 } });
  t.equal((await auth({ authorization: `Bearer ${tiny.key}`, 'x-original-uri': '/v1/emails/list' })).status, 204);
  res = await auth({ authorization: `Bearer ${tiny.key}`, 'x-original-uri': '/v1/emails/list' });
  t.equal(res.status, 429);
  t.equal(res.headers['retry-after'], '30');
  t.equal(res.headers['x-keygate-error'], 'rate_limit_exceeded');
  t.equal(res.headers['ratelimit'], '"key";r=0;t=30');

  res = await auth({ authorization: `Bearer ${reader.key}` });
  t.equal(res.status, 400, 'no X-Original-URI');
  t.match(res.body.message, /X-Original-URI/);
  res = await auth({ authorization: `Bearer ${reader.key}`, 'x-original-uri': '/v1/emails/list', 'x-keygate-environment': 'staging' });
  t.equal(res.status, 204, "the client's X-Keygate-Environment is not read unless verify.environment_header says the proxy sets it");
  const testKey = await stack.createKey({ environment: 'test' });
  res = await auth({ authorization: `Bearer ${testKey.key}`, 'x-original-uri': '/v1/emails/list', 'x-keygate-environment': 'test' });
  t.equal(res.status, 401, 'a test key sent with the header naming its environment is still judged for production');
  t.equal(res.headers['x-keygate-error'], 'invalid_token');

  for (const uri of ['/v1/emails//list', '//v1/emails/list', '/v1/emails/list/']) {
    res = await auth({ authorization: `Bearer ${reader.key}`, 'x-original-uri': uri });
    if (uri.endsWith('list/')) t.not(res.headers['x-keygate-error'], 'bad_request', `${uri}: a trailing slash is not an empty segment`);
    else {
      t.equal(res.status, 400, `${uri}: a path the upstream would get unrewritten`);
      t.equal(res.headers['x-keygate-error'], 'bad_request');
    }
  }
});

t.test('GET /auth reads X-Keygate-Environment when verify.environment_header is set', async (t) => {
  const s = await startStack({ overrides: () => ({ status_listener: { port: 0, verify: { enabled: true, token: TOKEN, environment_header: true } } }) });
  t.teardown(() => s.close());
  const ops = createOpsServer(s.gateway.runtime, () => false);
  servers.push(ops);
  const url = (await listenOn(ops, 0, '127.0.0.1')).url;
  const testKey = await s.createKey({ environment: 'test' });
  const ask = (env: string) =>
    request(`${url}/auth`, { headers: { 'x-keygate-verify-token': TOKEN, authorization: `Bearer ${testKey.key}`, 'x-original-uri': '/v1/emails/list', 'x-keygate-environment': env } });
  t.equal((await ask('test')).statusCode, 204, 'the environment the proxy names');
  const unknown = await ask('staging');
  t.equal(unknown.statusCode, 400, 'an unknown environment');
  await unknown.body.text();
});

t.test('GET /auth takes the client address from X-Forwarded-For only from a trusted proxy', async (t) => {
  const trusting = await startStack({
    overrides: () => ({ trusted_proxies: ['127.0.0.1/32'], status_listener: { port: 0, verify: { enabled: true, token: TOKEN } } }),
  });
  t.teardown(() => trusting.close());
  const url = await serve(trusting.gateway.runtime);
  const { key } = await trusting.createKey({ ip_allowlist: ['203.0.113.0/24'] });
  const ask = async (xff: string) =>
    (
      await request(`${url}/auth`, {
        headers: { 'x-keygate-verify-token': TOKEN, authorization: `Bearer ${key}`, 'x-original-uri': '/v1/emails/list', 'x-forwarded-for': xff },
      })
    ).statusCode;
  t.equal(await ask('203.0.113.7'), 204, 'the client nginx names');
  t.equal(await ask('203.0.113.7, 198.51.100.1'), 403, 'the right-most untrusted entry');
  t.equal(await ask('198.51.100.1'), 403);
});

t.test('the status listener without verify enabled has no verify API', async (t) => {
  const off = await startStack({ overrides: () => ({ status_listener: { port: 0 } }) });
  t.teardown(() => off.close());
  const url = await serve(off.gateway.runtime);
  const res = await request(`${url}/v1/keys/verify`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  t.equal(res.statusCode, 405);
  await res.body.dump();
  const get = await request(`${url}/auth`);
  t.equal(get.statusCode, 404);
  await get.body.dump();
});

t.test('on the Redis store the verify API waits for the shared limiter: 20 concurrent calls on a limit of 5 admit exactly 5', async (t) => {
  const redis = await RedisServer.start();
  t.teardown(() => redis.stop());
  const shared = await startStack({
    openStore: () => RedisStore.open({ url: redis.url, prefix: 'verify', commandTimeoutMs: 2_000, connectTimeoutMs: 2_000 }),
    overrides: () => ({ store: { type: 'redis', url: redis.url, prefix: 'verify' }, status_listener: { port: 0, verify: { enabled: true, token: TOKEN } } }),
  });
  t.teardown(() => shared.close());
  t.equal(shared.gateway.runtime.limiter.shared, true, 'buckets in Redis');
  const url = await serve(shared.gateway.runtime);
  const { key } = await shared.createKey({ rate_limit: { limit: 5, window_seconds: 3600 } });
  const answers = await Promise.all(Array.from({ length: 20 }, () => verify({ key, path: '/v1/emails/list' }, { url })));
  t.equal(answers.filter((a) => a.body.valid).length, 5, 'five valid');
  t.equal(answers.filter((a) => a.body.code === 'rate_limit_exceeded').length, 15, 'fifteen refused by the rate limit');
  t.equal(shared.events.length, 20, 'one usage event each');
});

t.test('a key with a quota: the verify call spends it, reports it, and is refused with quota_exceeded when it is gone', async (t) => {
  const key = await stack.createKey({ quota: { limit: 2, period: 'day' } });
  const first = await verify({ key: key.key, cost: 1 });
  t.match(first.body, { valid: true, quota: { limit: 2, remaining: 1 } });
  t.ok(first.body.quota.reset > 0 && first.body.quota.reset <= 86_400, 'seconds to the next refill');
  t.match((await verify({ key: key.key })).body, { valid: true, quota: { limit: 2, remaining: 0 } }, 'not given back: a verification forwards nothing but was answered');
  t.match((await verify({ key: key.key })).body, { valid: false, code: 'quota_exceeded', quota: { remaining: 0 } });
  const plain = await stack.createKey();
  t.equal((await verify({ key: plain.key })).body.quota, null, 'a key without a quota');
});

t.test("after a reload the verify API judges by the new configuration's routes", async (t) => {
  // Last in the file: the stack runs the reloaded configuration from here on.
  const url = await serve(() => stack.gateway.runtime);
  const key = await stack.createKey({ scopes: [] });
  const before = await verify({ key: key.key, method: 'GET', path: '/v1/contacts/x' }, { url });
  t.match(before.body, { valid: true }, 'contacts lets any path through');
  const fresh = testConfig(stack.upstream.url);
  const next = testConfig(stack.upstream.url, {
    status_listener: { port: 0, verify: { enabled: true, token: TOKEN, timeout_ms: 1_000 } },
    apis: fresh.apis.map((a) => (a.name === 'contacts' ? { ...a, unlisted: 'deny' } : a)),
  });
  stack.gateway.prepareReload(next).apply();
  const after = await verify({ key: key.key, method: 'GET', path: '/v1/contacts/x' }, { url });
  t.match(after.body, { valid: false, code: 'route_not_found' }, 'the reloaded rule: no unlisted path');
  t.match((await verify({ key: key.key, api: 'contacts' }, { url })).body, { valid: false, code: 'route_not_found' }, 'an API named without a path is judged as a path it does not list');
  t.match((await verify({ key: key.key, api: 'emails' }, { url })).body, { valid: true }, 'an API that lets unlisted paths through');
  t.equal((await call(`${prod}/v1/contacts/x`, { headers: bearer(key.key) })).status, 404, 'as the proxy answers');
});
