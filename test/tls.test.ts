import { copyFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { Logger } from '../core/log.js';
import { TlsFilesError } from '../core/tls.js';
import { createGateway, type BoundListener } from '../gateway/server.js';
import { createTestPki } from './lib/tls-certs.js';
import { tlsCall } from './lib/tls-client.js';
import { bearer, call, rawCall, startStack, testConfig } from './lib/stack.js';

// TLS listeners (docs/operations.md, TLS): HTTPS through the pipeline, SNI, client
// certificates and their subject header, HSTS, the handshake limit, min_version, reload.

const pki = createTestPki();
t.teardown(() => pki.close());
const server = pki.leaf('server', { subject: '/CN=default.test', dns: ['localhost'], ips: ['127.0.0.1'] });
const sni = pki.leaf('sni', { subject: '/CN=api.example.test', dns: ['api.example.test'] });
const wild = pki.leaf('wild', { subject: '/CN=wild.example.test', dns: ['*.wild.test'] });
const client = pki.leaf('client', { subject: '/O=Acme, Inc./CN=client-1', client: true });
const stranger = pki.otherCa('stranger-ca');
const strangerClient = pki.leaf('stranger-client', { subject: '/CN=intruder', client: true, signer: stranger });
const ca = pki.read(pki.ca.cert);
// A copy the reload test overwrites.
const live = { cert: join(pki.dir, 'live.crt'), key: join(pki.dir, 'live.key') };
copyFileSync(server.cert, live.cert);
copyFileSync(server.key, live.key);

// A client that opens a TCP connection and never sends a ClientHello: cut by the real default
// (limits.tls_handshake_timeout_ms, 10 s). Opened first, checked last, so the wait overlaps
// the other tests.
const stack = await startStack();
t.teardown(() => stack.close());

const tlsBlock = { cert: server.cert, key: server.key };
const config = testConfig(stack.upstream.url, {
  listeners: [
    {
      port: 0,
      host: '127.0.0.1',
      environment: 'production',
      tls: {
        ...tlsBlock,
        sni: [
          { servernames: ['api.example.test'], cert: sni.cert, key: sni.key },
          { servernames: ['*.wild.test'], cert: wild.cert, key: wild.key },
        ],
        hsts: { max_age: 63_072_000, include_subdomains: true, preload: true },
      },
    },
    { port: 0, host: '127.0.0.1', environment: 'production' },
    { port: 0, host: '127.0.0.1', environment: 'production', tls: { ...tlsBlock, ca: pki.ca.cert, client_auth: 'required', client_subject_header: 'x-client-subject' } },
    { port: 0, host: '127.0.0.1', environment: 'production', tls: { ...tlsBlock, http2: false, ca: pki.ca.cert, client_auth: 'optional', client_subject_header: 'x-client-subject' } },
    { port: 0, host: '127.0.0.1', environment: 'production', tls: { ...tlsBlock, min_version: 'TLSv1.3' } },
    { port: 0, host: '127.0.0.1', environment: 'production', tls: { cert: live.cert, key: live.key, http2: false } },
  ],
});
const gateway = createGateway(config, { store: stack.store, clock: stack.clock, log: new Logger({ level: 'error', write: () => {} }) });
const bound: BoundListener[] = await gateway.listen();
t.teardown(() => gateway.close(0));
const [https, plain, required, optional, tls13, reloadable] = bound.map((b) => b.url) as [string, string, string, string, string, string];

const stalled = (() => {
  const { port } = new URL(https);
  const socket = tcpConnect(Number(port), '127.0.0.1');
  const opened = performance.now();
  return new Promise<number>((resolve) => socket.on('close', () => resolve(performance.now() - opened)).on('error', () => {}));
})();

const { key } = await stack.createKey({ scopes: ['send_email'] });

t.test('HTTPS through the pipeline: a valid key reaches the upstream, told the request came over https', async (t) => {
  t.match(https, /^https:\/\/127\.0\.0\.1:\d+$/, 'the bound URL says https');
  const before = stack.upstream.seen.length;
  const res = await tlsCall(https, { ca, path: '/v1/emails/send', method: 'POST', headers: { ...bearer(key), 'content-type': 'application/json' }, body: '{}' });
  t.equal(res.status, 200);
  t.equal(res.headers['x-upstream'], 'yes');
  const seen = stack.upstream.seen[before]!;
  t.equal(seen.headers['x-forwarded-proto'], 'https');
  t.equal(seen.headers['authorization'], undefined, 'the credential is stripped as on plain HTTP');
  t.ok(seen.headers['x-key-id'], 'identity headers added');
  t.equal(res.headers['strict-transport-security'], 'max-age=63072000; includeSubDomains; preload', 'HSTS on a forwarded response');
  t.ok(res.headers['ratelimit'], 'rate-limit headers as on plain HTTP');
});

t.test('error bodies over HTTPS are those of plain HTTP', async (t) => {
  const cases: { path: string; headers: Record<string, string> }[] = [
    { path: '/v1/emails/send', headers: {} },
    { path: '/v1/emails/send', headers: bearer('gw_live_nope') },
    { path: '/nowhere', headers: bearer(key) },
    { path: '/v1/emails/%2e%2e/x', headers: bearer(key) },
  ];
  for (const c of cases) {
    const overTls = await tlsCall(https, { ca, path: c.path, method: 'POST', headers: { ...c.headers, 'x-request-id': 'same-id' } });
    const overHttp = await rawCall(plain, c.path, { method: 'POST', headers: { ...c.headers, 'x-request-id': 'same-id' } });
    t.equal(overTls.status, overHttp.status, `${c.path}: status`);
    t.same(overTls.body, overHttp.body, `${c.path}: the same body`);
    t.equal(overTls.headers['www-authenticate'], overHttp.headers['www-authenticate'], `${c.path}: the same challenge`);
    t.equal(overTls.headers['strict-transport-security'], 'max-age=63072000; includeSubDomains; preload', `${c.path}: HSTS on a refusal`);
    t.equal(overHttp.headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP');
  }
});

t.test('SNI picks the certificate: exact name, one-label wildcard, else the default', async (t) => {
  const asked = async (servername: string) => (await tlsCall(https, { ca, servername, path: '/v1/emails/x', headers: bearer(key) })).peer.subject.CN;
  t.equal(await asked('api.example.test'), 'api.example.test');
  t.equal(await asked('API.Example.Test'), 'api.example.test', 'names compare without case');
  t.equal(await asked('a.wild.test'), 'wild.example.test');
  t.equal(await asked('localhost'), 'default.test');
  await t.rejects(tlsCall(https, { ca, servername: 'a.b.wild.test', path: '/' }), /altnames|Hostname/i, 'a wildcard covers one label only: the default does not name it');
});

t.test('client_auth required: no certificate or one the CA did not sign fails the handshake', async (t) => {
  await t.rejects(tlsCall(required, { ca, path: '/v1/emails/x', headers: bearer(key) }), 'no client certificate');
  await t.rejects(
    tlsCall(required, { ca, cert: pki.read(strangerClient.cert), key: pki.read(strangerClient.key), path: '/v1/emails/x', headers: bearer(key) }),
    'a certificate of another CA',
  );
});

t.test('client_auth required: the verified subject goes upstream, a client-sent copy never', async (t) => {
  const before = stack.upstream.seen.length;
  const res = await tlsCall(required, {
    ca,
    cert: pki.read(client.cert),
    key: pki.read(client.key),
    path: '/v1/emails/x',
    headers: { ...bearer(key), 'x-client-subject': 'CN=admin', 'X_Client_Subject': 'CN=admin' },
  });
  t.equal(res.status, 200);
  const seen = stack.upstream.seen[before]!;
  t.equal(seen.headers['x-client-subject'], 'CN=client-1,O=Acme\\, Inc.', 'RFC 4514, most specific first, specials escaped');
  t.same(
    seen.rawHeaders.filter((_, i) => i % 2 === 0 && /^x[-_]client[-_]subject$/i.test(seen.rawHeaders[i]!)),
    ['x-client-subject'],
    'one subject header, the gateway’s',
  );
});

t.test('client_auth optional: served without a certificate, the subject only when verified', async (t) => {
  const cases = [
    { what: 'no certificate', cert: undefined, key: undefined, subject: undefined },
    { what: 'a certificate of another CA', cert: pki.read(strangerClient.cert), key: pki.read(strangerClient.key), subject: undefined },
    { what: 'a verified certificate', cert: pki.read(client.cert), key: pki.read(client.key), subject: 'CN=client-1,O=Acme\\, Inc.' },
  ];
  for (const c of cases) {
    const before = stack.upstream.seen.length;
    const res = await tlsCall(optional, { ca, cert: c.cert, key: c.key, path: '/v1/emails/x', headers: { ...bearer(key), 'x-client-subject': 'CN=forged' } });
    t.equal(res.status, 200, c.what);
    t.equal(stack.upstream.seen[before]!.headers['x-client-subject'], c.subject, `${c.what}: ${c.subject ?? 'no subject, the forged one dropped'}`);
  }
});

t.test('a client-sent subject header is dropped on a listener without client certificates too', async (t) => {
  const before = stack.upstream.seen.length;
  const res = await call(`${plain}/v1/emails/x`, { headers: { ...bearer(key), 'x-client-subject': 'CN=forged' } });
  t.equal(res.status, 200);
  t.equal(stack.upstream.seen[before]!.headers['x-client-subject'], undefined);
});

t.test('min_version TLSv1.3 refuses a TLS 1.2 client', async (t) => {
  await t.rejects(tlsCall(tls13, { ca, maxVersion: 'TLSv1.2', path: '/' }), /version|alert/i);
  const ok = await tlsCall(tls13, { ca, path: '/v1/emails/x', headers: bearer(key) });
  t.equal(ok.status, 200, 'TLS 1.3 is served');
});

t.test('the certificate part of a reload: renewed files are used by the next handshake once applied; refused files change nothing', async (t) => {
  t.equal((await tlsCall(reloadable, { ca, path: '/' })).peer.subject.CN, 'default.test');
  const renewed = pki.leaf('renewed', { subject: '/CN=renewed.test', dns: ['localhost'] });
  copyFileSync(renewed.cert, live.cert);
  copyFileSync(renewed.key, live.key);
  const prepared = gateway.prepareTls();
  t.equal((await tlsCall(reloadable, { ca, path: '/' })).peer.subject.CN, 'default.test', 'read and checked, not yet in use');
  prepared.apply();
  t.equal((await tlsCall(reloadable, { ca, path: '/' })).peer.subject.CN, 'renewed.test', 'the renewed certificate');
  // A key that is not the certificate's: the reload is refused whole.
  copyFileSync(server.key, live.key);
  t.throws(() => gateway.prepareTls(), TlsFilesError);
  t.equal((await tlsCall(reloadable, { ca, path: '/' })).peer.subject.CN, 'renewed.test', 'still the last good one');
  copyFileSync(renewed.key, live.key);
});

t.test('a client stalling the handshake is cut by the default limit (10 s)', async (t) => {
  t.equal(config.limits.tls_handshake_timeout_ms, 10_000, 'the limit defaults to 10 s');
  const ms = await stalled;
  t.ok(ms >= 9_500 && ms < 13_000, `closed after ${Math.round(ms)} ms`);
  const res = await tlsCall(https, { ca, path: '/v1/emails/x', headers: bearer(key) });
  t.equal(res.status, 200, 'the listener serves others meanwhile');
});

t.test('the admin listener and the status listener serve over TLS', async (t) => {
  const { createAdmin } = await import('../admin/server.js');
  const { createOpsServer } = await import('../gateway/ops.js');
  const { TlsContexts } = await import('../core/tls.js');
  const { listenOn } = await import('../core/listen.js');
  const adminConfig = testConfig(stack.upstream.url, {
    admin: { port: 0, tokens: [{ name: 'ops', token: 'tls-admin-token-0123456789', role: 'admin' }], tls: { ...tlsBlock, hsts: { max_age: 300 } } },
    status_listener: { port: 0, tls: tlsBlock },
  });
  const admin = createAdmin(adminConfig, { store: stack.store, clock: stack.clock, log: new Logger({ level: 'error', write: () => {} }), alertTimers: false });
  const at = await admin.listen();
  t.teardown(() => admin.close());
  t.match(at.url, /^https:/);
  const res = await tlsCall(at.url, { ca, path: '/v1/keys', headers: { authorization: 'Bearer tls-admin-token-0123456789' } });
  t.equal(res.status, 200, 'the admin API over HTTPS');
  t.equal(res.headers['strict-transport-security'], 'max-age=300');
  const ops = createOpsServer(gateway.runtime, () => false, undefined, new TlsContexts(adminConfig.status_listener!.tls!));
  const bound = await listenOn(ops, 0, '127.0.0.1', 'https');
  t.teardown(() => new Promise<void>((r) => ops.close(() => r())));
  const health = await tlsCall(bound.url, { ca, path: '/healthz' });
  t.equal(health.status, 200, 'the status listener over HTTPS');
});
