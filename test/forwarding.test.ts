import t from 'tap';
import { bearer, call, rawCall, startStack } from './lib/stack.js';

const stack = await startStack({
  overrides: (upstream) => ({
    trusted_proxies: ['10.0.0.0/8'],
    keys: { query_param: 'api_key' },
    apis: [
      { name: 'emails', path_prefix: '/v1/emails', upstream, unlisted: 'allow' },
      { name: 'stripped', path_prefix: '/v1/stripped', upstream: `${upstream}/base`, strip_prefix: true, unlisted: 'allow' },
      { name: 'passthrough', path_prefix: '/v1/pass', upstream, forward_credential: true, unlisted: 'allow' },
    ],
  }),
});
t.teardown(() => stack.close());
const prod = stack.gw['production']!;
const { key, id } = await stack.createKey({ scopes: ['read_campaigns', 'send_email'] });
const last = () => stack.upstream.seen[stack.upstream.seen.length - 1]!;

t.test('upstream sees method, path and query, identity headers, and no credential', async (t) => {
  const res = await call(`${prod}/v1/emails/list?page=2&x=a%20b`, { method: 'POST', headers: { ...bearer(key), 'content-type': 'text/plain' }, body: 'hello' });
  t.equal(res.status, 200);
  const seen = last();
  t.equal(seen.method, 'POST');
  t.equal(seen.url, '/v1/emails/list?page=2&x=a%20b');
  t.equal(seen.bodyBytes, 5);
  t.equal(seen.headers['authorization'], undefined, 'credential stripped');
  t.equal(seen.headers['x-key-id'], id);
  t.equal(seen.headers['x-key-environment'], 'production');
  t.equal(seen.headers['x-key-scopes'], 'read_campaigns,send_email');
  t.equal(seen.headers['x-forwarded-proto'], 'http');
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  t.match(seen.headers['x-forwarded-host'], /^127\.0\.0\.1:\d+$/);
  t.equal(seen.headers['host'], new URL(stack.upstream.url).host, 'Host is the upstream authority');
  t.equal(res.headers['x-upstream'], 'yes', 'upstream response headers reach the client');
});

t.test('clients cannot forge identity headers', async (t) => {
  await call(`${prod}/v1/emails/list`, {
    headers: { ...bearer(key), 'x-key-id': 'key_forged', 'x-key-scopes': 'admin', 'x-application-id': 'app_forged' },
  });
  t.equal(last().headers['x-key-id'], id);
  t.equal(last().headers['x-key-scopes'], 'read_campaigns,send_email');
  t.equal(last().headers['x-application-id'], undefined);
});

t.test('X-Request-Id: a well-formed one is propagated both ways, otherwise one is generated', async (t) => {
  const given = await call(`${prod}/v1/emails/list`, { headers: { ...bearer(key), 'x-request-id': 'abc-123' } });
  t.equal(given.headers['x-request-id'], 'abc-123');
  t.equal(last().headers['x-request-id'], 'abc-123');
  const bad = await call(`${prod}/v1/emails/list`, { headers: { ...bearer(key), 'x-request-id': 'has spaces and <tags>' } });
  t.not(bad.headers['x-request-id'], 'has spaces and <tags>');
  t.match(bad.headers['x-request-id'], /^[0-9a-f-]{36}$/);
  t.equal(last().headers['x-request-id'], bad.headers['x-request-id']);
});

t.test('hop-by-hop request headers are removed, including those Connection names', async (t) => {
  await rawCall(prod, '/v1/emails/list', {
    headers: {
      ...bearer(key),
      connection: 'keep-alive, x-hop-a',
      'x-hop-a': 'gone',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'keep-alive',
      te: 'trailers, deflate',
      'proxy-authorization': 'Basic Zm9vOmJhcg==',
      'x-end-to-end': 'kept',
    },
  });
  const h = last().headers;
  t.equal(h['x-hop-a'], undefined);
  t.equal(h['keep-alive'], undefined);
  t.equal(h['proxy-connection'], undefined);
  t.equal(h['te'], 'trailers', 'TE reduced to trailers');
  t.equal(h['proxy-authorization'], 'Basic Zm9vOmJhcg==', 'Proxy-Authorization forwarded unchanged');
  t.equal(h['x-end-to-end'], 'kept');
  const connection = last().rawHeaders.filter((_, i, raw) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'connection');
  t.same(connection, ['keep-alive'], "the client's Connection is not relayed; the gateway's own pool connection is keep-alive");
});

t.test('hop-by-hop response headers are removed; repeated headers survive', async (t) => {
  const res = await rawCall(prod, '/v1/emails/hop', { headers: bearer(key) });
  t.equal(res.status, 200);
  t.equal(res.text, 'hop');
  t.equal(res.headers['x-secret-hop'], undefined, 'header named by upstream Connection removed');
  t.equal(res.headers['proxy-connection'], undefined);
  t.equal(res.headers['upgrade'], undefined);
  t.not(res.headers['keep-alive'], 'timeout=5', 'upstream Keep-Alive not relayed');
  t.equal(res.headers['x-end-to-end'], 'passes');
  t.same(res.headers['set-cookie'], ['a=1', 'b=2']);
  t.ok(res.headers['ratelimit'], 'rate-limit headers added');
  t.ok(res.headers['x-request-id']);
});

t.test('X-Forwarded-For: appended for trusted peers only; an untrusted peer cannot inject entries', async (t) => {
  await call(`${prod}/v1/emails/list`, { headers: { ...bearer(key), 'x-forwarded-for': '198.51.100.7' } });
  t.equal(last().headers['x-forwarded-for'], '127.0.0.1', 'loopback is not trusted in this config');
});

t.test('credential in the query parameter is accepted and removed before forwarding', async (t) => {
  const res = await call(`${prod}/v1/emails/list?a=1&api_key=${key}&b=2`);
  t.equal(res.status, 200);
  t.equal(last().url, '/v1/emails/list?a=1&b=2');
  await call(`${prod}/v1/emails/list?api_key=${key}`);
  t.equal(last().url, '/v1/emails/list');
});

t.test('strip_prefix and an upstream base path', async (t) => {
  t.equal((await call(`${prod}/v1/stripped/items/7?q=1`, { headers: bearer(key) })).status, 200);
  t.equal(last().url, '/base/items/7?q=1');
  await call(`${prod}/v1/stripped`, { headers: bearer(key) });
  t.equal(last().url, '/base');
});

t.test('forward_credential lets the upstream see the key', async (t) => {
  await call(`${prod}/v1/pass/x`, { headers: bearer(key) });
  t.equal(last().headers['authorization'], `Bearer ${key}`);
});

t.test('HEAD and 204-style bodiless requests pass', async (t) => {
  const res = await call(`${prod}/v1/emails/list`, { method: 'HEAD', headers: bearer(key) });
  t.equal(res.status, 200);
  t.equal(res.text, '');
  t.equal(last().method, 'HEAD');
});
