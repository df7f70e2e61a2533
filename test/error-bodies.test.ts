import type { AddressInfo } from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { parseConfig } from '../config/load.js';
import { ConfigError } from '../core/internal-errors.js';
import { DEFAULT_DOC_BASE_URL } from '../core/errors.js';
import { generateKey } from '../core/key-format.js';
import { createOpsServer } from '../gateway/ops.js';
import { assertDocUrl } from './lib/error-docs.js';
import { ADMIN_TOKEN, call, startStack, VIEWER_TOKEN } from './lib/stack.js';

// What error bodies carry besides their code, through real sockets: doc_url under the
// configured errors.doc_base_url on both planes and the status listener, messages written for
// the key holder, and WWW-Authenticate on every 401 (docs/errors.md).

const BASE = 'https://developers.example.com/keygate/errors';
const stack = await startStack({
  overrides: (upstream) => ({
    errors: { doc_base_url: BASE },
    keys: { header: 'X-Api-Key', query_param: 'api_key' },
    apis: [
      {
        name: 'emails',
        path_prefix: '/v1/emails',
        upstream,
        routes: [
          { method: 'POST', path: '/v1/emails/send', scopes: ['send_email'] },
          { method: 'POST', path: '/v1/emails/campaign', scopes: ['read_contacts', 'write_campaigns', 'send_email'] },
        ],
      },
    ],
  }),
});
t.teardown(() => stack.close());
const prod = stack.gw['production']!;

async function admin(path: string, authorization?: string) {
  const res = await request(`${stack.adminUrl}${path}`, { headers: authorization === undefined ? {} : { authorization } });
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as any };
}

t.test('doc_url is errors.doc_base_url#<code> on the gateway and the admin plane', async (t) => {
  const gw = await call(`${prod}/v1/emails/send`, { method: 'POST' });
  t.equal(gw.body.error, 'missing_token');
  assertDocUrl(t, gw.body, BASE, 'gateway');
  const adm = await admin('/v1/nowhere', `Bearer ${ADMIN_TOKEN}`);
  t.equal(adm.status, 404);
  assertDocUrl(t, adm.body, BASE, 'admin');
});

t.test('the status listener’s errors carry doc_url too', async (t) => {
  const ops = createOpsServer(stack.gateway.runtime, () => false);
  await new Promise<void>((resolve) => ops.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => ops.close(() => resolve())));
  const url = `http://127.0.0.1:${(ops.address() as AddressInfo).port}`;
  for (const [method, status] of [['GET', 404], ['POST', 405]] as const) {
    const res = await call(`${url}/nowhere`, { method });
    t.equal(res.status, status);
    assertDocUrl(t, res.body, BASE, `${method} ${status}`);
  }
});

t.test('a key in a header of its own: missing_token says where to send it, and the challenge is not Bearer', async (t) => {
  const res = await call(`${prod}/v1/emails/send`, { method: 'POST', headers: { authorization: `Bearer ${generateKey('gw', 'live')}` } });
  t.equal(res.status, 401);
  t.equal(res.body.error, 'missing_token', 'Authorization is not where this gateway reads keys');
  t.equal(res.body.message, 'This request needs an API key. Send it in the "x-api-key" header or as the "api_key" query parameter.');
  t.equal(res.headers['www-authenticate'], 'Key realm="keygate"');
  const invalid = await call(`${prod}/v1/emails/send`, { method: 'POST', headers: { 'x-api-key': generateKey('gw', 'live') } });
  t.equal(invalid.body.error, 'invalid_token');
  t.equal(invalid.headers['www-authenticate'], 'Key realm="keygate"', 'every 401 carries a challenge (RFC 9110 §15.5.2)');
});

t.test('insufficient_permissions names every missing scope', async (t) => {
  const { key } = await stack.createKey({ scopes: ['read_contacts'] });
  const one = await call(`${prod}/v1/emails/send`, { method: 'POST', headers: { 'x-api-key': key } });
  t.equal(one.body.message, "This API key lacks the send_email scope; ask the API's owner to grant it.");
  const two = await call(`${prod}/v1/emails/campaign`, { method: 'POST', headers: { 'x-api-key': key } });
  t.equal(two.status, 403);
  t.same(two.body.missing_scopes, ['write_campaigns', 'send_email']);
  t.equal(two.body.message, "This API key lacks the write_campaigns and send_email scopes; ask the API's owner to grant them.");
  const none = await stack.createKey({ scopes: [] });
  const three = await call(`${prod}/v1/emails/campaign`, { method: 'POST', headers: { 'x-api-key': none.key } });
  t.equal(three.body.message, "This API key lacks the read_contacts, write_campaigns and send_email scopes; ask the API's owner to grant them.");
});

t.test('admin 401 without a token: WWW-Authenticate Bearer realm="keygate-admin", no error code', async (t) => {
  for (const authorization of [undefined, 'Basic b3BzOnNlY3JldA==', 'Bearer']) {
    const res = await admin('/v1/keys', authorization);
    t.equal(res.status, 401, String(authorization));
    t.equal(res.body.error, 'unauthorized');
    t.equal(res.headers['www-authenticate'], 'Bearer realm="keygate-admin"', `${authorization}: RFC 6750 §3.1, no error code`);
    t.match(res.body.message, /needs an admin token/);
    assertDocUrl(t, res.body, BASE);
  }
});

t.test('admin 401 with a wrong token: the challenge adds error="invalid_token"', async (t) => {
  for (const token of ['nope-not-a-token', `${ADMIN_TOKEN}x`]) {
    const res = await admin('/v1/keys', `Bearer ${token}`);
    t.equal(res.status, 401);
    t.equal(res.headers['www-authenticate'], 'Bearer realm="keygate-admin", error="invalid_token"');
    t.match(res.body.message, /not recognised/);
  }
  t.equal((await admin('/v1/keys', `Bearer ${ADMIN_TOKEN}`)).headers['www-authenticate'], undefined, 'none on a success');
});

t.test('admin 403 forbidden names the roles that may', async (t) => {
  const res = await stack.adminCall('POST', '/v1/keys', { name: 'x' }, VIEWER_TOKEN);
  t.equal(res.status, 403);
  t.equal(res.body.message, 'The viewer role may not do this; it takes a token of role admin or developer.');
  const apps = await stack.adminCall('POST', '/v1/applications', { name: 'x' }, VIEWER_TOKEN);
  t.equal(apps.body.message, 'The viewer role may not do this; it takes a token of role admin.');
  t.equal(res.headers['www-authenticate'], undefined, 'a 403 has no challenge');
});

t.test('errors.doc_base_url: an http(s) URL or a path, without "#"; docs/errors.md by default', async (t) => {
  const minimal = (errors?: unknown) => ({
    listeners: [{ port: 0, environment: 'production' }],
    admin: { port: 0, tokens: [{ name: 'ops', token: '0123456789abcdef-token', role: 'admin' }] },
    ...(errors === undefined ? {} : { errors }),
  });
  t.equal(parseConfig(minimal()).errors.doc_base_url, DEFAULT_DOC_BASE_URL);
  for (const good of ['https://docs.example.com/errors', 'http://intranet:8080/keygate/errors.html', '/docs/errors', 'docs/errors.md']) {
    t.equal(parseConfig(minimal({ doc_base_url: good })).errors.doc_base_url, good, good);
  }
  for (const bad of ['https://docs.example.com/errors#top', 'ftp://docs.example.com/errors', 'javascript:alert(1)', 'docs/my errors.md', '', 'https://', 'docs/"x"']) {
    try {
      parseConfig(minimal({ doc_base_url: bad }));
      t.fail(`${JSON.stringify(bad)} accepted`);
    } catch (err) {
      t.type(err, ConfigError, JSON.stringify(bad));
      t.match((err as ConfigError).details, [{ path: 'errors.doc_base_url', message: /http:\/\/ or https:\/\/ URL or a path/ }]);
    }
  }
  try {
    parseConfig(minimal({ doc_base: 'x' }));
    t.fail('an unknown key accepted');
  } catch (err) {
    t.type(err, ConfigError, 'errors is a strict object');
  }
});
