import { createServer, type AddressInfo, type Socket } from 'node:net';
import t from 'tap';
import { h2Call, h2Session } from '../lib/h2.js';
import { openRaw } from '../lib/raw-socket.js';
import { bearer, call, catchAllApi, startStack } from '../lib/stack.js';
import { createTestPki } from '../lib/tls-certs.js';
import { tlsCall } from '../lib/tls-client.js';
import { within } from '../lib/within.js';

// What a hostile or careless upstream sends back, against the forward stage (gateway/stages/
// forward.ts): copies of the headers the gateway sets, headers its Connection lines name,
// a header HTTP/2 forbids, and an answer under way when the client's body grows too large.

/** The last request head the upstream read for /proto (what the gateway forwarded). */
let protoHead = '';
/** An upstream answering raw bytes chosen by the request's path; /early answers its head and holds. */
const upstream = createServer((sock: Socket) => {
  let buf = '';
  sock.on('error', () => {});
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buf.slice(0, end);
    const path = head.split(' ')[1]!;
    buf = '';
    if (path.endsWith('/forge')) {
      sock.write(
        // Names in other cases and twice over: what a client sees is judged case-blind.
        'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n' +
          'X-Request-ID: forged-by-upstream\r\n' +
          'x-request-id: forged-again\r\n' +
          'RateLimit-Policy: "default";q=999999;w=1\r\n' +
          'RATELIMIT: "default";r=999999;t=0\r\n' +
          'Strict-Transport-Security: max-age=0\r\n' +
          'deprecation: @1767225600\r\n\r\nok',
      );
    } else if (path.endsWith('/conn2')) {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: X-Internal-A\r\nconnection: x-internal-b\r\nx-internal-a: a\r\nX-Internal-B: b\r\nx-kept: yes\r\n\r\nok');
    } else if (path.endsWith('/h2-settings')) {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nok');
    } else if (path.endsWith('/proto')) {
      protoHead = head;
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n__proto__: up-p\r\nConstructor: up-c\r\ntoString: up-t\r\n\r\nok');
    } else if (path.endsWith('/early')) {
      sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n');
    } else {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    }
  });
});
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
t.teardown(() => new Promise((resolve) => upstream.close(resolve)));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

const pki = createTestPki();
t.teardown(() => pki.close());
const cert = pki.leaf('gw', { dns: ['localhost'], ips: ['127.0.0.1'] });
const ca = pki.read(pki.ca.cert);
const stack = await startStack({
  overrides: () => ({
    listeners: [
      { port: 0, host: '127.0.0.1', environment: 'production' },
      { port: 0, host: '127.0.0.1', environment: 'test', tls: { cert: cert.cert, key: cert.key, hsts: { max_age: 31536000 } } },
    ],
    apis: [catchAllApi(upstreamUrl, { max_body_bytes: 1000, max_concurrent_per_key: 1 })],
  }),
});
t.teardown(() => stack.close());
const plain = stack.gw['production']!;
const tls = stack.gw['test']!.replace('127.0.0.1', 'localhost');
const { key } = await stack.createKey({ environment: 'production' });
const { key: testKey } = await stack.createKey({ environment: 'test' });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

t.test("an upstream's copies of the gateway's own headers do not reach the client", async (t) => {
  const h1 = await tlsCall(tls, { ca, path: '/v1/emails/forge', headers: bearer(testKey) });
  t.equal(h1.status, 200);
  const h2session = await h2Session(tls, ca);
  t.teardown(() => h2session.close());
  const h2 = await h2Call(h2session, { ':path': '/v1/emails/forge', ...bearer(testKey) });
  for (const [name, res] of [['HTTP/1.1', h1.headers], ['HTTP/2', h2.headers]] as const) {
    t.match(res['x-request-id'], UUID, `${name}: one request id, the gateway's`);
    t.notMatch(String(res['ratelimit']), /999999/, `${name}: RateLimit is the gateway's alone`);
    t.notMatch(String(res['ratelimit-policy']), /999999/, `${name}: RateLimit-Policy is the gateway's alone`);
    t.equal(res['strict-transport-security'], 'max-age=31536000', `${name}: the listener's HSTS, not the upstream's max-age=0`);
    t.equal(res['deprecation'], '@1767225600', `${name}: the upstream's own Deprecation passes for a key not being replaced`);
  }
});

t.test('headers named like Object.prototype members pass as plain headers both ways (names lower-cased through a lookup table)', async (t) => {
  // HTTP/1.1 from a raw socket: a client library would take `__proto__` as the prototype.
  const raw = await openRaw(plain);
  t.teardown(() => raw.socket.destroy());
  raw.write(`GET /v1/emails/proto HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\n__proto__: cl-p\r\nCONSTRUCTOR: cl-c\r\nhasOwnProperty: cl-h\r\n\r\n`);
  const got = await within(raw.until((r) => r.endsWith('\r\n\r\nok')), 5_000, 'the answer');
  t.match(got, /^HTTP\/1\.1 200 /);
  for (const line of ['__proto__: up-p', 'constructor: up-c', 'tostring: up-t']) t.ok(got.toLowerCase().includes(`\r\n${line}\r\n`), `the client gets ${line}`);
  for (const line of ['__proto__: cl-p', 'constructor: cl-c', 'hasownproperty: cl-h']) t.ok(protoHead.toLowerCase().includes(`\r\n${line}`), `the upstream gets ${line}`);
  // HTTP/2: the same answer through the HTTP/2 response's flat header list.
  const session = await h2Session(tls, ca);
  t.teardown(() => session.close());
  const h2 = await within(h2Call(session, { ':path': '/v1/emails/proto', ...bearer(testKey), ['__proto__']: 'cl-p', constructor: 'cl-c' }), 5_000, 'the HTTP/2 answer');
  t.equal(h2.status, 200);
  t.equal(Object.getOwnPropertyDescriptor(h2.headers, '__proto__')?.value, 'up-p', 'HTTP/2: __proto__ from the upstream');
  t.equal(Object.getOwnPropertyDescriptor(h2.headers, 'constructor')?.value, 'up-c', 'HTTP/2: constructor from the upstream');
  t.match(protoHead.toLowerCase(), /\r\nconstructor: cl-c/, 'HTTP/2: the upstream gets the client\'s constructor');
});

t.test('headers named by each of several Connection lines are dropped', async (t) => {
  const res = await call(`${plain}/v1/emails/conn2`, { headers: bearer(key) });
  t.equal(res.status, 200);
  t.equal(res.headers['x-internal-a'], undefined, 'named by the first line');
  t.equal(res.headers['x-internal-b'], undefined, 'named by the second');
  t.equal(res.headers['x-kept'], 'yes');
});

t.test('HTTP2-Settings from the upstream is dropped, so an HTTP/2 client gets the answer', async (t) => {
  const session = await h2Session(tls, ca);
  t.teardown(() => session.close());
  const h2 = await within(h2Call(session, { ':path': '/v1/emails/h2-settings', ...bearer(testKey) }), 5_000, 'the HTTP/2 answer');
  t.equal(h2.status, 200);
  t.equal(h2.text, 'ok');
  const h1 = await call(`${plain}/v1/emails/h2-settings`, { headers: bearer(key) });
  t.equal(h1.headers['http2-settings'], undefined, 'not passed on HTTP/1.1 either');
  // The key's one concurrent slot is free again.
  t.equal((await within(h2Call(session, { ':path': '/v1/emails/list', ...bearer(testKey) }), 5_000, 'the next answer')).status, 200);
});

t.test('a chunked body that grows too large after the upstream answered cuts the response and frees the slot', async (t) => {
  const raw = await openRaw(plain);
  t.teardown(() => raw.socket.destroy());
  const piece = `258\r\n${'a'.repeat(600)}\r\n`;
  raw.write(`POST /v1/emails/early HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ntransfer-encoding: chunked\r\n\r\n${piece}`);
  await within(raw.until((r) => r.includes('first')), 5_000, "the upstream's head and first chunk relayed");
  raw.write(piece);
  const got = await within(raw.closed, 5_000, 'the response cut once the body passed max_body_bytes');
  t.match(got, /^HTTP\/1\.1 200 /, 'the status already sent stays');
  t.notMatch(got, /\r\n0\r\n\r\n$/, 'and the response is not ended as if complete');
  t.equal((await call(`${plain}/v1/emails/list`, { headers: bearer(key) })).status, 200, "the key's one concurrent slot is free");
});
