import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { parseConfig } from '../config/load.js';
import { ConfigError } from '../core/internal-errors.js';
import { ROOT, runCli } from './lib/cli.js';
import { exchange, openRaw, responses } from './lib/raw-socket.js';
import { bearer, call, startStack } from './lib/stack.js';
import { waitFor, within } from './lib/within.js';

// CORS per API (docs/cors.md): preflights answered by the gateway from the config, with no key
// and nothing upstream; the Access-Control-* headers on upstream responses and on the
// gateway's own errors; no `cors`, no CORS. Through real sockets, undici and raw.

const APP = 'https://app.example.com';

// An upstream that sets CORS headers of its own, which the gateway replaces.
const corsUpstream = createServer((req, res) => {
  res.writeHead(200, {
    'content-type': 'application/json',
    'access-control-allow-origin': '*',
    'access-control-allow-methods': 'GET, PUT',
    'access-control-expose-headers': 'x-secret',
    vary: 'Accept-Encoding',
    'x-upstream': 'yes',
  });
  res.end(JSON.stringify({ url: req.url }));
});
await new Promise<void>((ok) => corsUpstream.listen(0, '127.0.0.1', ok));
t.teardown(() => new Promise<void>((ok) => corsUpstream.close(() => ok())));
const corsUpstreamUrl = `http://127.0.0.1:${(corsUpstream.address() as AddressInfo).port}`;

const stack = await startStack({
  overrides: (upstream) => ({
    plans: { default: { limit: 100, window_seconds: 60 }, tiny: { limit: 1, window_seconds: 3600 } },
    apis: [
      {
        name: 'emails',
        path_prefix: '/v1/emails',
        upstream,
        routes: [
          { method: 'POST', path: '/v1/emails/send', scopes: ['send_email'] },
          { method: 'GET', path: '/v1/emails/*' },
        ],
        cors: { origins: [APP, 'http://localhost:3000'], headers: ['content-type', 'x-trace'], expose: ['x-upstream'], max_age: 300 },
      },
      { name: 'contacts', path_prefix: '/v1/contacts', upstream, routes: [{ method: '*', path: '/v1/contacts/*' }] },
      {
        name: 'billing',
        path_prefix: '/v1/billing',
        upstream: corsUpstreamUrl,
        routes: [{ method: '*', path: '/v1/billing/*' }],
        cors: { origins: [APP], credentials: true },
      },
      { name: 'public', path_prefix: '/v1/public', upstream, routes: [{ method: '*', path: '/v1/public/*' }], cors: { origins: ['*'] } },
    ],
  }),
});
t.teardown(() => stack.close());
const gw = stack.gw['production']!;
const { key } = await stack.createKey({ scopes: [] });

const preflight = (path: string, headers: Record<string, string>) => call(gw + path, { method: 'OPTIONS', headers });
const corsHeaders = (headers: Record<string, unknown>) => Object.keys(headers).filter((h) => h.startsWith('access-control-'));

/** The usage event of the request with this id, once recorded. */
async function eventOf(requestId: unknown) {
  await waitFor(() => stack.events.some((e) => e.request_id === requestId), 2_000, 'the request was recorded');
  return stack.events.find((e) => e.request_id === requestId)!;
}

t.test('a preflight from an allowed origin is answered 204 by the gateway: no key, nothing upstream', async (t) => {
  const before = stack.upstream.seen.length;
  const res = await preflight('/v1/emails/send', {
    origin: APP,
    'access-control-request-method': 'POST',
    'access-control-request-headers': 'authorization,content-type,x-trace',
  });
  t.equal(res.status, 204);
  t.equal(res.text, '');
  t.equal(res.headers['access-control-allow-origin'], APP, 'the origin echoed');
  t.equal(res.headers['access-control-allow-methods'], 'GET, HEAD, POST, PUT, PATCH, DELETE');
  t.equal(res.headers['access-control-allow-headers'], 'content-type, x-trace, authorization', 'the key header is always allowed');
  t.equal(res.headers['access-control-max-age'], '300');
  t.equal(res.headers['access-control-allow-credentials'], undefined, 'no credentials unless configured');
  t.equal(res.headers['vary'], 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers');
  t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/);
  t.equal(stack.upstream.seen.length, before, 'the upstream saw nothing');
  const event = await eventOf(res.headers['x-request-id']);
  t.match(event, { status: 204, outcome: 'ok', reason: 'cors_preflight', key_id: null, api: 'emails', route: '/v1/emails/send', method: 'OPTIONS' });

  const other = await preflight('/v1/emails/list', { origin: 'http://localhost:3000', 'access-control-request-method': 'GET' });
  t.equal(other.status, 204);
  t.equal(other.headers['access-control-allow-origin'], 'http://localhost:3000', 'each listed origin is echoed for itself');
});

t.test('a preflight asking for what is not allowed gets 204 without allow headers', async (t) => {
  const before = stack.upstream.seen.length;
  const cases: [string, Record<string, string>, string][] = [
    ['another origin', { origin: 'https://evil.example', 'access-control-request-method': 'GET' }, 'cors_origin_not_allowed'],
    ['a subdomain of an allowed origin', { origin: 'https://x.app.example.com', 'access-control-request-method': 'GET' }, 'cors_origin_not_allowed'],
    ['another scheme', { origin: 'http://app.example.com', 'access-control-request-method': 'GET' }, 'cors_origin_not_allowed'],
    ['another port', { origin: 'https://app.example.com:8443', 'access-control-request-method': 'GET' }, 'cors_origin_not_allowed'],
    ['Origin: null', { origin: 'null', 'access-control-request-method': 'GET' }, 'cors_origin_not_allowed'],
    ['the origin in upper case', { origin: APP.toUpperCase(), 'access-control-request-method': 'GET' }, 'cors_origin_not_allowed'],
    // The billing API routes every method: these are refused by its cors, not by its routes.
    ['a method not listed', { origin: APP, 'access-control-request-method': 'OPTIONS' }, 'cors_method_not_allowed'],
    ['a listed method in lower case', { origin: APP, 'access-control-request-method': 'get' }, 'cors_method_not_allowed'],
    ['a header not listed', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'content-type,x-admin' }, 'cors_headers_not_allowed'],
  ];
  for (const [what, headers, reason] of cases) {
    const res = await preflight(reason === 'cors_method_not_allowed' ? '/v1/billing/x' : '/v1/emails/list', headers);
    t.equal(res.status, 204, `${what}: 204`);
    t.same(corsHeaders(res.headers), [], `${what}: no Access-Control-* header`);
    t.equal(res.headers['vary'], 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers', `${what}: Vary`);
    t.equal((await eventOf(res.headers['x-request-id'])).reason, reason, `${what}: recorded as ${reason}`);
  }
  t.equal(stack.upstream.seen.length, before, 'the upstream saw none of them');

  const mixedCase = await preflight('/v1/emails/list', {
    origin: APP,
    'access-control-request-method': 'GET',
    'access-control-request-headers': 'Content-Type , X-TRACE,,Authorization',
  });
  t.equal(mixedCase.headers['access-control-allow-origin'], APP, 'header names are compared without case, spaces and empty items ignored');
});

t.test('a preflight is matched as the request it announces: no route, no CORS (404 route_not_found)', async (t) => {
  // /v1/emails/send is served for POST, and for GET by /v1/emails/*; no rule serves a PUT.
  const put = await preflight('/v1/emails/send', { origin: APP, 'access-control-request-method': 'PUT' });
  t.equal(put.status, 404);
  t.equal(put.body.error, 'route_not_found');
  t.equal(put.headers['access-control-allow-methods'], undefined, 'no preflight allow headers');
  t.equal(put.headers['access-control-allow-origin'], APP, "the error carries the origin's headers, as every error of the API does");
  const outside = await preflight('/v2/nothing', { origin: APP, 'access-control-request-method': 'GET' });
  t.equal(outside.status, 404, 'a path of no API: route_not_found');
  t.same(corsHeaders(outside.headers), [], 'no API, no CORS configuration to answer from');
  const [dotted] = responses(
    await exchange(gw, `OPTIONS /v1/emails/%2e%2e/contacts/x HTTP/1.1\r\nHost: x\r\nOrigin: ${APP}\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n`),
  );
  t.equal(dotted?.status, 400, 'path faults are refused as for any request');
});

t.test('without cors, a preflight is an OPTIONS like any other: it needs a key', async (t) => {
  const res = await preflight('/v1/contacts/list', { origin: APP, 'access-control-request-method': 'GET' });
  t.equal(res.status, 401);
  t.equal(res.body.error, 'missing_token');
  t.same(corsHeaders(res.headers), []);
  t.equal(res.headers['vary'], undefined, 'no CORS, no Vary: Origin');
  const keyed = await call(`${gw}/v1/contacts/list`, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'GET', ...bearer(key) } });
  t.equal(keyed.status, 200, 'with a key it is forwarded');
  t.same(corsHeaders(keyed.headers), []);
});

t.test('with cors, an OPTIONS that is not a preflight needs a key', async (t) => {
  // The billing API routes every method, OPTIONS included.
  const noMethod = await call(`${gw}/v1/billing/x`, { method: 'OPTIONS', headers: { origin: APP } });
  t.equal(noMethod.status, 401, 'no Access-Control-Request-Method: not a preflight');
  t.equal(noMethod.headers['access-control-allow-origin'], APP, 'its 401 is readable by the app');
  const noOrigin = await call(`${gw}/v1/billing/x`, { method: 'OPTIONS', headers: { 'access-control-request-method': 'GET' } });
  t.equal(noOrigin.status, 401, 'no Origin: not a preflight');
  const emptyOrigin = await call(`${gw}/v1/billing/x`, { method: 'OPTIONS', headers: { origin: '', 'access-control-request-method': 'GET' } });
  t.equal(emptyOrigin.status, 401, 'an empty Origin: not a preflight');
  const keyed = await call(`${gw}/v1/billing/x`, { method: 'OPTIONS', headers: { origin: APP, ...bearer(key) } });
  t.equal(keyed.status, 200, 'with a key it is forwarded');
  t.equal(keyed.headers['access-control-allow-origin'], APP);
});

t.test('actual responses to an allowed origin carry the CORS headers, the rate-limit headers readable', async (t) => {
  const res = await call(`${gw}/v1/emails/list`, { headers: { origin: APP, ...bearer(key) } });
  t.equal(res.status, 200);
  t.equal(res.headers['access-control-allow-origin'], APP);
  t.equal(res.headers['access-control-expose-headers'], 'x-request-id, ratelimit, ratelimit-policy, retry-after, deprecation, sunset, x-upstream');
  t.equal(res.headers['access-control-allow-credentials'], undefined);
  t.equal(res.headers['vary'], 'Origin');
  t.ok(res.headers['ratelimit'], 'RateLimit is there to be read');
  t.equal(stack.upstream.seen.at(-1)?.headers['origin'], APP, 'the upstream receives the Origin');

  const other = await call(`${gw}/v1/emails/list`, { headers: { origin: 'https://evil.example', ...bearer(key) } });
  t.equal(other.status, 200, 'a disallowed origin is served (CORS is for browsers to enforce)');
  t.same(corsHeaders(other.headers), [], 'without allow headers');
  t.equal(other.headers['vary'], 'Origin');

  const none = await call(`${gw}/v1/emails/list`, { headers: bearer(key) });
  t.same(corsHeaders(none.headers), [], 'no Origin, no allow headers');
  t.equal(none.headers['vary'], 'Origin', 'but Vary: Origin, so that no cache serves it to a browser');
});

t.test("the upstream's own CORS headers are replaced by the API's; its Vary is kept", async (t) => {
  const res = await call(`${gw}/v1/billing/invoices`, { headers: { origin: APP, ...bearer(key) } });
  t.equal(res.status, 200);
  t.equal(res.headers['x-upstream'], 'yes');
  t.equal(res.headers['access-control-allow-origin'], APP, 'not the upstream’s "*"');
  t.equal(res.headers['access-control-allow-credentials'], 'true', 'credentials as configured');
  t.equal(res.headers['access-control-allow-methods'], undefined, 'the upstream’s allow-methods dropped');
  t.notMatch(res.headers['access-control-expose-headers'], /x-secret/, 'the upstream’s expose list dropped');
  t.equal(res.headers['vary'], 'Accept-Encoding, Origin');

  const stranger = await call(`${gw}/v1/billing/invoices`, { headers: { origin: 'https://evil.example', ...bearer(key) } });
  t.same(corsHeaders(stranger.headers), [], 'a disallowed origin gets none, not even the upstream’s');
});

t.test('credentials: the origin echoed, never "*"', async (t) => {
  const res = await preflight('/v1/billing/invoices', { origin: APP, 'access-control-request-method': 'DELETE' });
  t.equal(res.status, 204);
  t.equal(res.headers['access-control-allow-origin'], APP);
  t.equal(res.headers['access-control-allow-credentials'], 'true');
  t.equal(res.headers['access-control-max-age'], '600', 'the default max_age');
  t.equal(res.headers['access-control-allow-headers'], 'content-type, authorization', 'the default headers and the key header');
});

t.test('origins ["*"]: "*" answered to any origin, null included', async (t) => {
  for (const origin of ['https://anyone.example', 'null']) {
    const pre = await preflight('/v1/public/x', { origin, 'access-control-request-method': 'GET' });
    t.equal(pre.headers['access-control-allow-origin'], '*', `${origin}: preflight`);
    t.equal(pre.headers['access-control-allow-credentials'], undefined);
    const res = await call(`${gw}/v1/public/x`, { headers: { origin, ...bearer(key) } });
    t.equal(res.headers['access-control-allow-origin'], '*', `${origin}: response`);
  }
});

t.test("the gateway's own errors carry the CORS headers: 401, 403, 429", async (t) => {
  const expose = 'x-request-id, ratelimit, ratelimit-policy, retry-after, deprecation, sunset, x-upstream';
  const missing = await call(`${gw}/v1/emails/list`, { headers: { origin: APP } });
  t.equal(missing.status, 401);
  t.equal(missing.headers['access-control-allow-origin'], APP, '401');
  t.equal(missing.headers['access-control-expose-headers'], expose);
  t.equal(missing.headers['vary'], 'Origin');

  const scope = await call(`${gw}/v1/emails/send`, { method: 'POST', headers: { origin: APP, ...bearer(key) } });
  t.equal(scope.status, 403);
  t.equal(scope.body.error, 'insufficient_permissions');
  t.equal(scope.headers['access-control-allow-origin'], APP, '403');

  const { key: tiny } = await stack.createKey({ plan: 'tiny' });
  t.equal((await call(`${gw}/v1/emails/list`, { headers: { origin: APP, ...bearer(tiny) } })).status, 200);
  const limited = await call(`${gw}/v1/emails/list`, { headers: { origin: APP, ...bearer(tiny) } });
  t.equal(limited.status, 429);
  t.equal(limited.headers['access-control-allow-origin'], APP, '429');
  t.ok(limited.headers['retry-after'], 'with Retry-After, which the app may read');

  const billing = await call(`${gw}/v1/billing/x`, { headers: { origin: APP } });
  t.equal(billing.headers['access-control-allow-credentials'], 'true', 'errors carry credentials when configured');

  const stranger = await call(`${gw}/v1/emails/list`, { headers: { origin: 'https://evil.example' } });
  t.same(corsHeaders(stranger.headers), [], 'not for a disallowed origin');
});

t.test('hostile: a huge Access-Control-Request-Headers is refused unread, nothing upstream', async (t) => {
  const before = stack.upstream.seen.length;
  const junk = Array.from({ length: 1_500 }, (_, i) => `x-h${i}`).join(',');
  t.ok(junk.length > 10_000);
  const res = await preflight('/v1/emails/list', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': junk });
  t.equal(res.status, 204);
  t.same(corsHeaders(res.headers), []);
  const repeated = Array.from({ length: 500 }, () => 'content-type').join(',');
  const again = await preflight('/v1/emails/list', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': repeated });
  t.same(corsHeaders(again.headers), [], 'allowed names repeated past any browser’s list: refused');
  const [tooBig] = responses(
    await exchange(gw, `OPTIONS /v1/emails/list HTTP/1.1\r\nHost: x\r\nOrigin: ${APP}\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: ${'a,'.repeat(20_000)}a\r\n\r\n`),
  );
  t.equal(tooBig?.status, 431, 'past the head limit: 431 and closed');
  t.equal(stack.upstream.seen.length, before);
});

t.test('hostile: two Origin headers are read as one list, which is no origin', async (t) => {
  const head = (method: string, extra: string) => `${method} /v1/emails/list HTTP/1.1\r\nHost: x\r\nOrigin: ${APP}\r\nOrigin: ${APP}\r\n${extra}Connection: close\r\n\r\n`;
  const [pre] = responses(await exchange(gw, head('OPTIONS', 'Access-Control-Request-Method: GET\r\n')));
  t.equal(pre?.status, 204);
  t.same(corsHeaders(pre!.headers), [], 'preflight: no allow headers');
  const [actual] = responses(await exchange(gw, head('GET', `Authorization: Bearer ${key}\r\n`)));
  t.equal(actual?.status, 200);
  t.same(corsHeaders(actual!.headers), [], 'response: no allow headers');
  const [twoMethods] = responses(
    await exchange(gw, `OPTIONS /v1/billing/x HTTP/1.1\r\nHost: x\r\nOrigin: ${APP}\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n`),
  );
  t.equal(twoMethods?.status, 204);
  t.same(corsHeaders(twoMethods!.headers), [], 'two Access-Control-Request-Method headers ("GET, POST"): no allow headers');
});

t.test('hostile: header names in any case are read; values are compared as sent', async (t) => {
  const [res] = responses(
    await exchange(gw, `OPTIONS /V1/EMAILS/list HTTP/1.1\r\nHOST: x\r\nORIGIN: ${APP}\r\nACCESS-CONTROL-REQUEST-METHOD: GET\r\naccess-control-request-HEADERS: AUTHORIZATION\r\nConnection: close\r\n\r\n`),
  );
  t.equal(res?.status, 204);
  t.equal(res?.headers['access-control-allow-origin'], APP);
});

t.test('hostile: a preflight announcing a body is answered without reading it, and the connection closed', async (t) => {
  const c = await openRaw(gw);
  c.write(`OPTIONS /v1/emails/list HTTP/1.1\r\nHost: x\r\nOrigin: ${APP}\r\nAccess-Control-Request-Method: GET\r\nContent-Length: 1000000\r\n\r\n`);
  const [res] = responses(await within(c.closed, 5_000, 'the connection was closed'));
  t.equal(res?.status, 204);
  t.equal(res?.headers['connection'], 'close');
  t.equal(res?.headers['access-control-allow-origin'], APP);
});

t.test('preflights take connection slots like any request (limits.max_connections_per_ip)', async (t) => {
  const small = await startStack({
    overrides: (upstream) => ({
      limits: { max_connections_per_ip: 2 },
      apis: [{ name: 'emails', path_prefix: '/v1/emails', upstream, routes: [{ method: '*', path: '/v1/emails/*' }], cors: { origins: [APP] } }],
    }),
  });
  t.teardown(() => small.close());
  const url = small.gw['production']!;
  const held = [await openRaw(url), await openRaw(url)];
  const text = `OPTIONS /v1/emails/x HTTP/1.1\r\nHost: x\r\nOrigin: ${APP}\r\nAccess-Control-Request-Method: GET\r\n\r\n`;
  for (const c of held) c.write(text);
  for (const c of held) await within(c.until((r) => r.includes('\r\n\r\n')), 5_000, 'answered');
  const [third] = responses(await within(exchange(url, text), 5_000, 'the third connection was answered'));
  t.equal(third?.status, 429);
  t.equal(third?.json?.error, 'too_many_connections');
  for (const c of held) c.socket.destroy();
});

t.test('config: origins exact, "*" alone and never with credentials; headers and methods listed', async (t) => {
  const config = (cors: unknown) => ({
    listeners: [{ port: 0, environment: 'production' }],
    admin: { tokens: [{ name: 'ops', token: '0123456789abcdef-token', role: 'admin' }] },
    apis: [{ name: 'a', upstream: 'http://127.0.0.1:1', cors }],
  });
  const errors = (cors: unknown) => {
    try {
      parseConfig(config(cors));
    } catch (err) {
      return (err as ConfigError).details.map((d) => `${d.path}: ${d.message}`);
    }
    return [];
  };
  const ok = parseConfig(config({ origins: ['https://App.Example.com', 'http://localhost:3000', 'http://[::1]:8080', 'capacitor://localhost'] }));
  t.same(ok.apis[0]!.cors, {
    origins: ['https://app.example.com', 'http://localhost:3000', 'http://[::1]:8080', 'capacitor://localhost'],
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    headers: ['content-type'],
    expose: [],
    credentials: false,
    max_age: 600,
  });
  t.equal(parseConfig(config(null)).apis[0]!.cors, null);
  t.equal(parseConfig({ ...config(null), apis: [{ name: 'a', upstream: 'http://127.0.0.1:1' }] }).apis[0]!.cors, null, 'no cors by default');

  t.match(errors({ origins: ['*'], credentials: true }), [/^apis\[0\]\.cors\.credentials: cannot be true with origins \["\*"\]/]);
  t.match(errors({ origins: ['*', APP] }), ['apis[0].cors.origins: "*" must be the only origin']);
  t.match(errors({ origins: [] }), [/origins: must list at least one origin/]);
  t.match(
    errors({ origins: ['null', 'https://*.example.com', `${APP}/`, 'https://app.example.com:443', 'app.example.com', 'https://bücher.de'] }),
    [/origins\[0\]: "null"/, /origins\[1\]: must be an exact origin/, /origins\[2\]: .*no path/, /origins\[3\]: must leave out the default port :443/, /origins\[4\]: must be an origin such as/, /origins\[5\]: .*punycode/],
  );
  t.match(errors({ origins: [APP], methods: ['get', '*'], headers: ['*', 'bad header'], max_age: 86_401 }), [
    /methods\[0\]: must be an upper-case HTTP method/,
    /methods\[1\]: "\*" is not supported/,
    /headers\[0\]: "\*" is not supported/,
    /headers\[1\]: must be a valid HTTP header name/,
    /max_age/,
  ]);
});

t.test('--check refuses origins "*" with credentials, with the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-cors-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    `listeners: [{ port: 0, environment: production }]
admin: { tokens: [{ name: ops, token: 0123456789abcdef-token, role: admin }] }
apis:
  - name: emails
    upstream: http://127.0.0.1:9000
    cors: { origins: ["*"], credentials: true }
`,
  );
  const res = await runCli(['--config', file, '--check']);
  t.equal(res.code, 1);
  t.match(res.stderr, /apis\[0\]\.cors\.credentials: cannot be true with origins \["\*"\]: browsers refuse credentials with a wildcard origin/);
});

t.test("the example config's cors line is valid", async (t) => {
  const line = readFileSync(join(ROOT, 'gateway.yaml.example'), 'utf8')
    .split('\n')
    .find((l) => /^\s*# cors: \{/.test(l));
  t.ok(line, 'the example shows a cors block');
  const cors = parse(line!.replace(/^\s*# cors: /, ''));
  t.doesNotThrow(() =>
    parseConfig({
      listeners: [{ port: 0, environment: 'production' }],
      admin: { tokens: [{ name: 'ops', token: '0123456789abcdef-token', role: 'admin' }] },
      apis: [{ name: 'a', upstream: 'http://127.0.0.1:1', cors }],
    }),
  );
});
