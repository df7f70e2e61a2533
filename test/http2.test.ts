import { createServer, type IncomingMessage } from 'node:http';
import { constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { Logger } from '../core/log.js';
import type { UsageEvent } from '../gateway/runtime.js';
import { createGateway } from '../gateway/server.js';
import type { ClientHttp2Session } from 'node:http2';
import { FLAG, FRAME, frame, h2Call, h2Session, literal, rawH2, requestBlock, watchFrames } from './lib/h2.js';
import { bearer, startStack, testConfig } from './lib/stack.js';
import { createTestPki } from './lib/tls-certs.js';
import { tlsCall } from './lib/tls-client.js';
import { waitFor, within } from './lib/within.js';

// HTTP/2 to clients on a TLS listener (docs/operations.md, HTTP/2): ALPN, the pipeline's
// semantics and error bodies per stream, streams recorded on their own, and the limits on
// concurrent streams, header lists and the abuse patterns, each against the real defaults.

const pki = createTestPki();
t.teardown(() => pki.close());
const server = pki.leaf('server', { dns: ['localhost'], ips: ['127.0.0.1'] });
const ca = pki.read(pki.ca.cert);

const stack = await startStack();
t.teardown(() => stack.close());

/**
 * An upstream that holds every request: …/headers-first sends its status and a first chunk,
 * then nothing; anything else is never answered. Notes when each request's connection closed.
 */
const held: { url: string; req: IncomingMessage; closed: boolean }[] = [];
const holder = createServer((req, res) => {
  const h = { url: req.url!, req, closed: false };
  held.push(h);
  res.once('close', () => (h.closed = true));
  if (req.url!.endsWith('/headers-first')) {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first\n');
  }
});
await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
t.teardown(async () => {
  holder.closeAllConnections();
  await new Promise<void>((resolve) => holder.close(() => resolve()));
});
const holderUrl = `http://127.0.0.1:${(holder.address() as AddressInfo).port}`;
const config = testConfig(stack.upstream.url, {
  listeners: [{ port: 0, host: '127.0.0.1', environment: 'production', tls: { cert: server.cert, key: server.key, hsts: { max_age: 600 } } }],
  apis: [
    {
      name: 'emails',
      path_prefix: '/v1/emails',
      upstream: stack.upstream.url,
      unlisted: 'allow',
      routes: [{ method: 'POST', path: '/v1/emails/send', scopes: ['send_email'] }],
      // Room for every stream the limit lets through, so the limit tested is HTTP/2's.
      max_connections: 512,
      max_concurrent_per_key: 512,
      // The streams left hanging upstream are given up on soon (the close waits for them).
      timeout_ms: 2_000,
    },
    { name: 'contacts', path_prefix: '/v1/contacts', upstream: stack.upstream.url, unlisted: 'allow', max_body_bytes: 1000 },
    { name: 'slow', path_prefix: '/v1/slow', upstream: stack.upstream.url, timeout_ms: 200, unlisted: 'allow' },
    { name: 'dead', path_prefix: '/v1/dead', upstream: 'http://127.0.0.1:1', unlisted: 'allow' },
    // A cancelled stream must end its upstream request long before this.
    { name: 'hold', path_prefix: '/v1/hold', upstream: holderUrl, timeout_ms: 30_000, unlisted: 'allow' },
  ],
});
const events: UsageEvent[] = [];
const gateway = createGateway(config, { store: stack.store, clock: stack.clock, log: new Logger({ level: 'error', write: () => {} }), sinks: [(e) => events.push(e)] });
const [bound] = await gateway.listen();
const url = bound!.url;
const port = Number(new URL(url).port);
t.teardown(() => gateway.close(0));

const { key } = await stack.createKey({ scopes: ['read_campaigns'], apis: ['emails', 'slow', 'dead', 'contacts'] });
// The holding upstream's API is the gateway's alone (the admin's config does not name it): a key of every API.
const { key: anyApi } = await stack.createKey();
const { key: limited } = await stack.createKey({ rate_limit: { limit: 1, window_seconds: 60 } });
const { key: narrow } = await stack.createKey({ apis: ['contacts'] });
// The key responsiveness checks use: one that the floods (which spend `key`'s tokens) leave alone.
const { key: probe } = await stack.createKey({ rate_limit: { limit: 100_000, window_seconds: 60 } });
const { key: bulk } = await stack.createKey({ rate_limit: { limit: 100_000, window_seconds: 60 } });

const get = (path: string, headers: Record<string, string> = {}) => ({ ':method': 'GET', ':path': path, ...headers });

/** The server still answers a new client promptly. */
async function responsive(t: Test, what: string): Promise<void> {
  const session = await within(h2Session(url, ca), 3_000, 'a new connection');
  const res = await within(h2Call(session, get('/v1/emails/x', bearer(probe))), 3_000, 'a request on it');
  session.close();
  t.equal(res.status, 200, `${what}: another client is served`);
}

t.test('ALPN picks h2; a request goes through the pipeline to an HTTP/1.1 upstream', async (t) => {
  const session = await h2Session(url, ca);
  t.teardown(() => session.close());
  t.equal(session.alpnProtocol, 'h2');
  t.equal(session.remoteSettings.maxConcurrentStreams, 100, 'max concurrent streams announced');
  t.equal(session.remoteSettings.maxHeaderListSize, 16_384, 'max header list size announced');
  const before = stack.upstream.seen.length;
  const body = Buffer.alloc(5000, 120);
  const res = await h2Call(session, { ':method': 'POST', ':path': '/v1/emails/upload?x=1', ...bearer(key), cookie: 'a=1', 'content-type': 'text/plain' }, body);
  t.equal(res.status, 200);
  t.equal(res.headers['strict-transport-security'], 'max-age=600');
  t.ok(res.headers['ratelimit'], 'rate-limit headers');
  t.equal(res.headers['connection'], undefined, 'no connection header on h2');
  const seen = stack.upstream.seen[before]!;
  t.equal(seen.method, 'POST');
  t.equal(seen.url, '/v1/emails/upload?x=1');
  t.equal(seen.bodyBytes, 5000, 'a body of no declared length streamed upstream');
  t.equal(seen.headers['host'], new URL(stack.upstream.url).host, 'Host is the upstream’s (preserve_host off)');
  t.equal(seen.headers['x-forwarded-host'], `localhost:${port}`, ':authority became the forwarded host');
  t.equal(seen.headers['x-forwarded-proto'], 'https');
  t.equal(seen.headers['authorization'], undefined, 'credential stripped');
  t.notOk(seen.rawHeaders.some((h) => h.startsWith(':')), 'no pseudo-header upstream');
});

t.test('several Cookie fields reach the HTTP/1.1 upstream as one', async (t) => {
  const session = await h2Session(url, ca);
  t.teardown(() => session.close());
  const before = stack.upstream.seen.length;
  // node:http2 sends an array of cookies as separate fields (RFC 9113 §8.2.3 allows it).
  const res = await h2Call(session, { ...get('/v1/emails/c', bearer(key)), cookie: ['a=1', 'b=2'] });
  t.equal(res.status, 200);
  t.equal(stack.upstream.seen[before]!.headers['cookie'], 'a=1; b=2');
});

t.test('every error row answers on h2 as on HTTP/1.1: status, body and headers', async (t) => {
  const session = await h2Session(url, ca);
  t.teardown(() => session.close());
  await h2Call(session, get('/v1/emails/x', bearer(limited)));
  const cases: { name: string; method?: string; path: string; headers?: Record<string, string>; body?: string; status: number }[] = [
    { name: 'missing_token', path: '/v1/emails/x', status: 401 },
    { name: 'invalid_token malformed', path: '/v1/emails/x', headers: bearer('gw_live_nope'), status: 401 },
    { name: 'invalid_token not_found', path: '/v1/emails/x', headers: bearer(limited.slice(0, 8) + 'A'.repeat(43) + '000000'), status: 401 },
    { name: 'route_not_found', path: '/nowhere', headers: bearer(key), status: 404 },
    { name: 'bad_request (dot segment)', path: '/v1/emails/%2e%2e/x', headers: bearer(key), status: 400 },
    { name: 'api_not_allowed', path: '/v1/emails/x', headers: bearer(narrow), status: 403 },
    { name: 'insufficient_permissions', method: 'POST', path: '/v1/emails/send', headers: bearer(key), body: '{}', status: 403 },
    { name: 'rate_limit_exceeded', path: '/v1/emails/x', headers: bearer(limited), status: 429 },
    { name: 'payload_too_large', method: 'POST', path: '/v1/contacts/x', headers: { ...bearer(key), 'content-length': '2000' }, body: 'x'.repeat(2000), status: 413 },
    { name: 'bad_gateway', path: '/v1/dead/x', headers: bearer(key), status: 502 },
    { name: 'gateway_timeout', path: '/v1/slow/x', headers: bearer(key), status: 504 },
  ];
  for (const c of cases) {
    const headers = { ...c.headers, 'x-request-id': `same-${c.status}` };
    const h2 = await h2Call(session, { ':method': c.method ?? 'GET', ':path': c.path, ...headers }, c.body);
    const h1 = await tlsCall(url, { ca, method: c.method ?? 'GET', path: c.path, headers, body: c.body });
    t.equal(h2.status, c.status, `${c.name}: status`);
    t.equal(h1.status, c.status, `${c.name}: status over HTTP/1.1`);
    t.same(h2.body, h1.body, `${c.name}: the same body`);
    for (const name of ['content-type', 'www-authenticate', 'retry-after', 'ratelimit-policy', 'x-request-id', 'strict-transport-security']) {
      t.equal(h2.headers[name], h1.headers[name], `${c.name}: ${name}`);
    }
    // Forwarded requests spend a token each: the two answers differ by the one spent between them.
    t.equal(h2.headers['ratelimit'] === undefined, h1.headers['ratelimit'] === undefined, `${c.name}: ratelimit on both or neither`);
  }
});

t.test('streams of one connection are checked and recorded each on its own', async (t) => {
  const session = await h2Session(url, ca);
  t.teardown(() => session.close());
  const before = events.length;
  const keys = [key, 'gw_live_bad', key, '', narrow, key, 'gw_live_bad', key, narrow, key];
  const results = await Promise.all(
    keys.map((k, i) => h2Call(session, get(`/v1/emails/s${i}`, { ...(k === '' ? {} : bearer(k)), 'x-request-id': `stream-${i}` }))),
  );
  const expected = keys.map((k) => (k === key ? 200 : k === narrow ? 403 : 401));
  t.same(
    results.map((r) => r.status),
    expected,
    'each stream its own answer',
  );
  await within(
    (async () => {
      while (events.length < before + keys.length) await new Promise((r) => setImmediate(r));
    })(),
    2_000,
    'one event per stream',
  );
  const mine = events.slice(before).filter((e) => e.request_id.startsWith('stream-'));
  t.equal(mine.length, keys.length, 'one usage event per stream');
  for (const e of mine) t.equal(e.status, expected[Number(e.request_id.slice(7))], `${e.request_id} recorded with its own status`);
  // Counted on the connection, read once the stream has closed (docs/operations.md, HTTP/2).
  t.ok(
    mine.every((e) => Number.isSafeInteger(e.bytes_in) && e.bytes_in >= 0 && Number.isSafeInteger(e.bytes_out) && e.bytes_out > 0),
    'bytes in and out counted for each stream',
  );
});

/** The in-flight gauge, as /metrics would show it. */
async function inFlight(): Promise<number> {
  const gauge = gateway.runtime.metrics!.registry.getSingleMetric('keygate_requests_in_flight')!;
  return (await gauge.get()).values[0]!.value;
}

/** A request on `session` to the holding upstream, once the upstream has it. */
async function holdOne(session: ClientHttp2Session, path: string, requestId: string) {
  const req = session.request(get(path, { ...bearer(anyApi), 'x-request-id': requestId }), { endStream: true });
  req.on('error', () => {});
  await waitFor(() => held.some((h) => h.url === path), 3_000, `${path} reaching the upstream`);
  return { req, upstream: held.find((h) => h.url === path)! };
}

const eventOf = (id: string) => events.find((e) => e.request_id === id);

t.test('a stream the client cancels cancels its upstream request at once', async (t) => {
  const session = await h2Session(url, ca);
  t.teardown(() => session.close());
  const { req, upstream } = await holdOne(session, '/v1/hold/cancel', 'h2-cancel');
  t.equal(await inFlight(), 1, 'in flight while the upstream holds it');
  req.close(constants.NGHTTP2_CANCEL);
  // timeout_ms is 30 s: a cancel that is not passed on would hold the upstream that long.
  await waitFor(() => upstream.closed, 3_000, 'the upstream request closing');
  t.pass('the upstream saw its request closed');
  await waitFor(() => eventOf('h2-cancel') !== undefined, 2_000, 'the usage event');
  t.equal(events.filter((e) => e.request_id === 'h2-cancel').length, 1, 'one usage event');
  t.equal(eventOf('h2-cancel')!.status, 499);
  t.equal(eventOf('h2-cancel')!.outcome, 'client_closed_request');
  t.ok(Number.isSafeInteger(eventOf('h2-cancel')!.bytes_out), 'bytes out counted');
  t.equal(await inFlight(), 0, 'nothing left in flight');
  t.equal((await h2Call(session, get('/v1/emails/after-cancel', bearer(key)))).status, 200, 'the connection serves on');
});

t.test('a stream cancelled after the upstream’s headers cancels the upstream response', async (t) => {
  const session = await h2Session(url, ca);
  t.teardown(() => session.close());
  const req = session.request(get('/v1/hold/headers-first', { ...bearer(anyApi), 'x-request-id': 'h2-cancel-body' }), { endStream: true });
  req.on('error', () => {});
  await within(new Promise((resolve) => req.once('data', resolve)), 3_000, 'the first chunk');
  const upstream = held.find((h) => h.url === '/v1/hold/headers-first')!;
  req.close(constants.NGHTTP2_CANCEL);
  await waitFor(() => upstream.closed, 3_000, 'the upstream response closing');
  t.pass('the upstream saw its response cancelled');
  await waitFor(() => eventOf('h2-cancel-body') !== undefined, 2_000, 'the usage event');
  t.equal(events.filter((e) => e.request_id === 'h2-cancel-body').length, 1, 'one usage event');
  t.equal(eventOf('h2-cancel-body')!.status, 200, 'the status the client was sent');
  t.equal(await inFlight(), 0, 'nothing left in flight');
});

t.test('a connection closed under an open stream cancels its upstream request', async (t) => {
  const session = await h2Session(url, ca);
  const { upstream } = await holdOne(session, '/v1/hold/gone', 'h2-gone');
  session.destroy();
  await waitFor(() => upstream.closed, 3_000, 'the upstream request closing');
  t.pass('the upstream saw its request closed');
  await waitFor(() => eventOf('h2-gone') !== undefined, 2_000, 'the usage event');
  t.equal(events.filter((e) => e.request_id === 'h2-gone').length, 1, 'one usage event');
  t.equal(eventOf('h2-gone')!.outcome, 'client_closed_request');
  t.ok(Number.isSafeInteger(eventOf('h2-gone')!.bytes_in), 'bytes in counted, the connection gone');
  t.equal(await inFlight(), 0, 'nothing left in flight');
});

t.test('a header list over max_header_list_bytes is refused; the connection serves on', async (t) => {
  const session = await h2Session(url, ca);
  t.teardown(() => session.close());
  const big = await h2Call(session, get('/v1/emails/x', { ...bearer(key), 'x-big': 'y'.repeat(20_000) })).then(
    (r) => r.status,
    (err: NodeJS.ErrnoException) => err.code,
  );
  t.not(big, 200, `refused (${big})`);
  await responsive(t, 'after an oversized header list');
});

t.test('max_concurrent_streams: a client that keeps to it waits; one that ignores it is cut', async (t) => {
  const session = await h2Session(url, ca);
  session.on('error', () => {});
  const before = stack.upstream.seen.length;
  // 150 requests the upstream never answers: node:http2 sends the first 100 and holds the rest.
  const pending = Array.from({ length: 150 }, () => {
    const req = session.request(get('/v1/emails/slow-hang', bearer(bulk)), { endStream: true });
    req.on('error', () => {});
    return req;
  });
  await within(
    (async () => {
      while (stack.upstream.seen.length - before < 100) await new Promise((r) => setTimeout(r, 10));
    })(),
    5_000,
    '100 streams forwarded',
  );
  await new Promise((r) => setTimeout(r, 200));
  t.equal(stack.upstream.seen.length - before, 100, 'no more than 100 streams at once');
  await Promise.all(pending.map((req) => new Promise((r) => req.close(constants.NGHTTP2_CANCEL, () => r(undefined)))));
  session.close();

  // Raw frames: 300 streams at once, the limit acknowledged and ignored.
  const socket = await rawH2(port, ca);
  const frames = watchFrames(socket);
  const upstreamBefore = stack.upstream.seen.length;
  for (let i = 0; i < 300; i++) socket.write(frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1 + 2 * i, requestBlock('/v1/emails/slow-hang', { authorization: `Bearer ${bulk}` })));
  await within(frames.closed, 10_000, 'the server closed the connection');
  t.ok(stack.upstream.seen.length - upstreamBefore <= 100, `at most 100 of the 300 forwarded (${stack.upstream.seen.length - upstreamBefore})`);
  await responsive(t, 'after a stream flood');
});

t.test('rapid reset (CVE-2023-44487): a client that opens and cancels streams is cut', async (t) => {
  const session = await h2Session(url, ca);
  let goaway: number | null = null;
  session.on('goaway', (code) => (goaway = code));
  session.on('error', () => {});
  const closed = new Promise<void>((r) => session.once('close', () => r()));
  const upstreamBefore = stack.upstream.seen.length;
  for (let i = 0; i < 5_000 && !session.destroyed && !session.closed; i++) {
    const req = session.request(get('/v1/emails/reset', bearer(key)));
    req.on('error', () => {});
    req.close(constants.NGHTTP2_CANCEL);
    if (i % 200 === 199) await new Promise((r) => setImmediate(r));
  }
  await within(closed, 10_000, 'the abusive connection closed');
  t.not(goaway, null, `the server sent GOAWAY (code ${goaway})`);
  t.ok(stack.upstream.seen.length - upstreamBefore < 1_000, `few cancelled streams reached the upstream (${stack.upstream.seen.length - upstreamBefore})`);
  await responsive(t, 'after rapid resets');
});

t.test('CONTINUATION flood (CVE-2024-27983): a header block that never ends is cut', async (t) => {
  const socket = await rawH2(port, ca);
  const frames = watchFrames(socket);
  socket.write(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, requestBlock('/v1/emails/x')));
  let sent = 0;
  for (; sent < 10_000 && !socket.destroyed; sent++) {
    if (!socket.write(frame(FRAME.CONTINUATION, 0, 1, literal(`x-${sent % 1000}`, 'flood')))) await new Promise((r) => socket.once('drain', r).once('close', r));
  }
  await within(frames.closed, 10_000, 'the connection closed');
  t.not(frames.goaway, null, `GOAWAY sent (code ${frames.goaway}) after ${sent} CONTINUATION frames`);
  await responsive(t, 'after a CONTINUATION flood');
});

t.test('SETTINGS flood: a client that sends SETTINGS without reading the acknowledgements is cut', async (t) => {
  const socket = await rawH2(port, ca);
  const frames = watchFrames(socket);
  socket.pause();
  const flood = Buffer.concat(Array.from({ length: 1_000 }, () => frame(FRAME.SETTINGS, 0, 0)));
  let sent = 0;
  const deadline = performance.now() + 5_000;
  while (!socket.destroyed && performance.now() < deadline) {
    if (!socket.write(flood)) await new Promise((r) => setTimeout(r, 5));
    sent++;
  }
  socket.resume();
  await within(frames.closed, 5_000, 'the connection closed');
  t.ok(sent < 1_000, `cut after ${sent}k SETTINGS frames`);
  await responsive(t, 'after a SETTINGS flood');
});

t.test('a SETTINGS frame with more entries than maxSettings (32) is refused', async (t) => {
  const socket = await rawH2(port, ca);
  const frames = watchFrames(socket);
  const entries = Buffer.concat(Array.from({ length: 100 }, () => Buffer.from([0x00, 0x03, 0x00, 0x00, 0x00, 0x64])));
  socket.write(frame(FRAME.SETTINGS, 0, 0, entries));
  await within(
    (async () => {
      while (frames.goaway === null) await new Promise((r) => setTimeout(r, 10));
    })(),
    5_000,
    'a GOAWAY',
  );
  t.equal(frames.goaway, constants.NGHTTP2_ENHANCE_YOUR_CALM, 'GOAWAY ENHANCE_YOUR_CALM');
  socket.destroy();
  await responsive(t, 'after an oversized SETTINGS frame');
});
