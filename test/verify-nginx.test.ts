import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { listenOn } from '../core/listen.js';
import { createOpsServer } from '../gateway/ops.js';
import { freePort } from './lib/redis.js';
import { bearer, call, startStack } from './lib/stack.js';
import { waitFor, within } from './lib/within.js';

// docs/integrations/nginx.md end to end: the real nginx (Debian package, /usr/sbin/nginx) runs
// the nginx block of that page, with only its addresses and token replaced, in front of the
// test upstream, asking Keygate's GET /auth on the status listener about every request.

const NGINX = '/usr/sbin/nginx';
const TOKEN = 'nginx-verify-token-0123456789';

const doc = readFileSync(new URL('../docs/integrations/nginx.md', import.meta.url), 'utf8');
const block = /```nginx\n([\s\S]*?)```/.exec(doc)?.[1];
if (block === undefined) throw new Error('docs/integrations/nginx.md has no nginx block');

/** Keygate (`extra` added to its config) with its status listener, and nginx running `edit(block)` in front of it. */
async function keygateBehindNginx(extra: Record<string, unknown>, edit: (block: string) => string = (b) => b) {
  const stack = await startStack({
    overrides: (upstream) => ({
      trusted_proxies: ['127.0.0.1/32'],
      status_listener: { port: 0, verify: { enabled: true, token: TOKEN } },
      apis: [
        {
          name: 'emails',
          path_prefix: '/v1/emails',
          upstream,
          routes: [
            { method: 'POST', path: '/v1/emails/send', scopes: ['send_email'] },
            { method: 'GET', path: '/v1/emails/*', scopes: [] },
          ],
        },
      ],
      ...extra,
    }),
  });
  t.teardown(() => stack.close());
  const ops = createOpsServer(stack.gateway.runtime, () => false);
  const status = await listenOn(ops, 0, '127.0.0.1');
  t.teardown(() => {
    ops.closeAllConnections();
    ops.close();
  });

  const port = await freePort();
  const prefix = mkdtempSync(join(tmpdir(), 'keygate-nginx-'));
  t.teardown(() => rmSync(prefix, { recursive: true, force: true }));
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(prefix, d));
  const server = edit(block!)
    .replace('127.0.0.1:8090', `127.0.0.1:${status.port}`)
    .replace('127.0.0.1:9000', `127.0.0.1:${stack.upstream.port}`)
    .replace('listen 127.0.0.1:8000', `listen 127.0.0.1:${port}`)
    .replace('change-me-to-the-keygate-verify-token', TOKEN);
  const replaced = [
    ['status listener', `127.0.0.1:${status.port}`],
    ['upstream', `127.0.0.1:${stack.upstream.port}`],
    ['listen', `listen 127.0.0.1:${port}`],
    ['token', TOKEN],
  ] as const;
  writeFileSync(
    join(prefix, 'nginx.conf'),
    `${process.getuid?.() === 0 ? 'user root root;' : ''}
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
${server}
}
`,
  );
  const nginx = spawn(NGINX, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let nginxErr = '';
  nginx.stderr.on('data', (c: Buffer) => (nginxErr += c.toString()));
  const exited = new Promise<number | null>((r) => nginx.once('exit', (code) => r(code)));
  t.teardown(async () => {
    nginx.kill('SIGTERM');
    await within(exited, 5_000, 'nginx stopped');
  });
  let listening = false;
  let gone = false;
  void exited.then(() => (gone = true));
  await waitFor(
    () => {
      if (gone) throw new Error(`nginx exited: ${nginxErr}${readFileSync(join(prefix, 'error.log'), 'utf8')}`);
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => ((listening = true), s.destroy()));
      s.once('error', () => s.destroy());
      return listening;
    },
    10_000,
    'nginx listens',
  );
  return { stack, server, replaced, front: `http://127.0.0.1:${port}` };
}

const { stack, server, replaced, front } = await keygateBehindNginx({});

t.test("the nginx block of the doc is what runs: only its addresses and token are replaced", async (t) => {
  for (const [what, expected] of replaced) t.ok(server.includes(expected), `the doc's ${what} was found and replaced`);
  t.equal(server.split('\n').length, block.split('\n').length, 'line for line');
});

t.test('a valid key: the upstream gets the request with the identity headers, never the key', async (t) => {
  const { key, id } = await stack.createKey({ scopes: ['send_email'], rate_limit: { limit: 10, window_seconds: 60 } });
  const before = stack.upstream.seen.length;
  const events = stack.events.length;
  const res = await call(`${front}/v1/emails/send?to=x`, {
    method: 'POST',
    headers: { ...bearer(key), 'x-key-id': 'key_forged', 'x-key-scopes': 'everything', 'x-application-id': 'app_forged' },
    body: 'hi',
  });
  t.equal(res.status, 200);
  t.equal(res.headers['ratelimit'], '"key";r=9;t=6', 'the rate-limit headers reach the client');
  t.equal(res.headers['ratelimit-policy'], '"key";q=10;w=60');
  t.equal(stack.upstream.seen.length, before + 1);
  const seen = stack.upstream.seen.at(-1)!;
  t.equal(seen.method, 'POST');
  t.equal(seen.url, '/v1/emails/send?to=x');
  t.equal(seen.bodyBytes, 2, 'the body went to the upstream (not to Keygate)');
  t.equal(seen.headers['x-key-id'], id, "Keygate's key id, not the client's");
  t.equal(seen.headers['x-key-environment'], 'production');
  t.equal(seen.headers['x-key-scopes'], 'send_email');
  t.equal(seen.headers['x-application-id'], undefined, 'a key without application: the forged header removed');
  t.equal(seen.headers['authorization'], undefined, 'the key stays at the edge');
  t.match(seen.headers['x-request-id'], /^[0-9a-f-]{36}$/, "Keygate's request id");
  await waitFor(() => stack.events.length > events, 5_000, 'the usage event');
  t.equal(stack.events.length, events + 1, 'one usage event');
  t.match(stack.events.at(-1), { key_id: id, route: '/v1/emails/send', method: 'POST', status: 204, outcome: 'ok', client_ip: '127.0.0.1' });
});

t.test('a revoked key: 401 from nginx with the body Keygate wrote; nothing reaches the upstream', async (t) => {
  const { key, id } = await stack.createKey();
  t.equal((await stack.adminCall('POST', `/v1/keys/${id}/revoke`)).status, 200);
  const before = stack.upstream.seen.length;
  const res = await call(`${front}/v1/emails/list`, { headers: bearer(key) });
  t.equal(res.status, 401);
  t.match(res.headers['content-type'], /^application\/json/);
  t.match(res.body, { error: 'invalid_token', reason: 'revoked', doc_url: 'docs/errors.md#invalid_token' });
  t.match(res.body.message, /revoked/);
  t.equal(res.headers['x-request-id'], res.body.request_id, 'the request id of the body');
  t.equal(res.headers['www-authenticate'], 'Bearer realm="keygate", error="invalid_token"', 'one challenge, Keygate\'s');
  t.equal(stack.upstream.seen.length, before);

  const missing = await call(`${front}/v1/emails/list`);
  t.equal(missing.status, 401);
  t.equal(missing.body.error, 'missing_token');
});

t.test('missing scopes: 403 from nginx with the missing scopes named', async (t) => {
  const { key } = await stack.createKey({ scopes: [] });
  const res = await call(`${front}/v1/emails/send`, { method: 'POST', headers: bearer(key) });
  t.equal(res.status, 403);
  t.match(res.body, { error: 'insufficient_permissions', missing_scopes: ['send_email'] });
  t.ok(res.headers['ratelimit'], 'with the rate-limit headers');
});

t.test('over the limit: 429 from nginx with Retry-After and the body Keygate wrote', async (t) => {
  const { key } = await stack.createKey({ rate_limit: { limit: 2, window_seconds: 60 } });
  for (let i = 0; i < 2; i++) t.equal((await call(`${front}/v1/emails/list`, { headers: bearer(key) })).status, 200);
  const before = stack.upstream.seen.length;
  const res = await call(`${front}/v1/emails/list`, { headers: bearer(key) });
  t.equal(res.status, 429);
  t.match(res.body, { error: 'rate_limit_exceeded', retry_after: 30 });
  t.equal(res.headers['retry-after'], '30');
  t.equal(res.headers['ratelimit'], '"key";r=0;t=60');
  t.equal(stack.upstream.seen.length, before, 'nothing forwarded');
});

t.test('a path no route of the API matches: 404 route_not_found from nginx', async (t) => {
  const { key } = await stack.createKey();
  const res = await call(`${front}/v1/emails/send`, { method: 'DELETE', headers: bearer(key) });
  t.equal(res.status, 404);
  t.equal(res.body.error, 'route_not_found');
});

t.test("a client's own X-Keygate-Environment does not reach /auth: a test key stays out of production", async (t) => {
  const { key } = await stack.createKey({ environment: 'test' });
  const before = stack.upstream.seen.length;
  const res = await call(`${front}/v1/emails/list`, { headers: { ...bearer(key), 'x-keygate-environment': 'test' } });
  t.equal(res.status, 401);
  t.match(res.body, { error: 'invalid_token', reason: 'wrong_environment' });
  t.equal(stack.upstream.seen.length, before, 'nothing forwarded');
});

t.test('identity headers the client forges never reach the upstream, whichever it sends', async (t) => {
  const { key, id } = await stack.createKey({ scopes: [] });
  const res = await call(`${front}/v1/emails/list`, {
    headers: {
      ...bearer(key),
      'x-key-id': 'key_forged',
      'x-key-environment': 'test',
      'x-key-scopes': 'send_email admin',
      'x-application-id': 'app_forged',
      x_key_id: 'key_forged_underscore',
    },
  });
  t.equal(res.status, 200);
  const seen = stack.upstream.seen.at(-1)!;
  t.equal(seen.headers['x-key-id'], id);
  t.equal(seen.headers['x-key-environment'], 'production');
  t.equal(seen.headers['x-key-scopes'], undefined, 'a key without scopes: the forged header removed');
  t.equal(seen.headers['x-application-id'], undefined);
  t.equal(seen.headers['x_key_id'], undefined, 'nginx drops header names with "_" (underscores_in_headers off)');
  t.equal(seen.headers['authorization'], undefined);
});

t.test('keys.header and headers: renamed, with the edits the doc gives: the key and forged names stay at the edge', async (t) => {
  const edits: [string, string][] = [
    ['# With keys.header set, clear that header instead, e.g.: proxy_set_header X-Api-Key "";', 'proxy_set_header X-Api-Key "";'],
    ['$upstream_http_x_key_id;', '$upstream_http_x_consumer_id;'],
    ['proxy_set_header X-Key-Id ', 'proxy_set_header X-Consumer-Id '],
  ];
  for (const [from] of edits) t.ok(block.includes(from), `the doc has ${from}`);
  const custom = await keygateBehindNginx({ keys: { header: 'x-api-key' }, headers: { key_id: 'x-consumer-id' } }, (b) =>
    edits.reduce((text, [from, to]) => text.replace(from, to), b),
  );
  const { key, id } = await custom.stack.createKey();
  const res = await call(`${custom.front}/v1/emails/list`, { headers: { 'x-api-key': key, 'x-consumer-id': 'key_forged' } });
  t.equal(res.status, 200);
  const seen = custom.stack.upstream.seen.at(-1)!;
  t.equal(seen.headers['x-api-key'], undefined, 'the key stays at the edge');
  t.equal(seen.headers['x-consumer-id'], id, "Keygate's key id under the configured name, not the client's");
  t.equal((await call(`${custom.front}/v1/emails/list`, { headers: bearer(key) })).status, 401, 'Authorization is not where this Keygate looks');
});
