import t from 'tap';
import { assertDocUrl } from '../lib/error-docs.js';
import { exchange, openRaw, responses } from '../lib/raw-socket.js';
import { catchAllApi, startStack } from '../lib/stack.js';
import { within } from '../lib/within.js';

// Requests the gateway refuses before anything is forwarded, at its default limits
// (docs/operations.md, Security): bodies over max_body_bytes (10 MiB), codings it cannot pass
// on, a second Host, a key check before `100 Continue`, and more connections from one address
// than limits.max_connections_per_ip (1,000).

const stack = await startStack({
  overrides: (upstream) => ({
    apis: [catchAllApi(upstream)],
  }),
});
t.teardown(() => stack.close());
const gw = stack.gw['production']!;
const { key } = await stack.createKey();
const auth = `Authorization: Bearer ${key}\r\n`;
const MiB = 1024 * 1024;

t.test('a Content-Length over the default 10 MiB is refused with 413 before anything is forwarded', async (t) => {
  const before = stack.upstream.seen.length;
  const c = await openRaw(gw);
  c.write(`POST /v1/emails/upload HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: ${10 * MiB + 1}\r\n\r\n`);
  const [res] = responses(await within(c.closed, 5_000, 'the connection was closed'));
  t.equal(res?.status, 413);
  t.equal(res?.json?.error, 'payload_too_large');
  t.match(res?.json?.message, /10485760 bytes/);
  t.equal(res?.headers['connection'], 'close');
  t.equal(stack.upstream.seen.length, before, 'nothing reached the upstream');

  const at = await openRaw(gw);
  at.write(`POST /v1/emails/upload HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: ${10 * MiB}\r\nConnection: close\r\n\r\n`);
  at.write('a'.repeat(10 * MiB));
  const [ok] = responses(await within(at.closed, 20_000, 'the upload at the limit was answered'));
  t.equal(ok?.status, 200, 'exactly the limit passes');
  t.equal(ok?.json?.bodyBytes, 10 * MiB);
});

t.test('an oversized or oddly coded body is judged before the key: no lookup, no token spent', async (t) => {
  const before = stack.upstream.seen.length;
  const [big] = responses(await exchange(gw, `POST /v1/emails/upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * MiB + 1}\r\nConnection: close\r\n\r\n`));
  t.equal(big?.status, 413, 'without a key: 413, not 401');
  const [coded] = responses(await exchange(gw, 'POST /v1/emails/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n'));
  t.equal(coded?.status, 400, 'without a key: 400, not 401');
  const { key: fresh } = await stack.createKey({ rate_limit: { limit: 1, window_seconds: 3600 } });
  const [refused] = responses(
    await exchange(gw, `POST /v1/emails/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${fresh}\r\nContent-Length: ${10 * MiB + 1}\r\nConnection: close\r\n\r\n`),
  );
  t.equal(refused?.status, 413);
  const [ok] = responses(await exchange(gw, `GET /v1/emails/list HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${fresh}\r\nConnection: close\r\n\r\n`));
  t.equal(ok?.status, 200, 'the one token of the hour was not spent by the 413');
  t.equal(stack.upstream.seen.length, before + 1, 'only the GET reached the upstream');
});

t.test('a chunked body growing past 10 MiB is cut with 413; the upstream never gets all of it', async (t) => {
  const c = await openRaw(gw);
  c.write(`POST /v1/emails/upload-chunked HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n`);
  const chunk = `${(MiB).toString(16)}\r\n${'b'.repeat(MiB)}\r\n`;
  let sent = 0;
  while (sent < 12 && !c.socket.destroyed) {
    c.write(chunk);
    sent++;
    await new Promise((r) => setImmediate(r));
  }
  const [res] = responses(await within(c.until((r) => r.includes('\r\n\r\n{')), 20_000, 'the 413'));
  c.socket.destroy();
  t.equal(res?.status, 413);
  t.equal(res?.json?.error, 'payload_too_large');
  const upload = stack.upstream.seen.find((s) => s.url === '/v1/emails/upload-chunked');
  t.ok(upload, 'the upload had started upstream');
  t.ok(upload!.bodyBytes <= 10 * MiB, `the upstream received at most the limit (${upload?.bodyBytes} bytes)`);
  t.ok(stack.events.some((e) => e.status === 413), 'recorded as 413');
});

t.test('Transfer-Encoding other than chunked alone is refused with 400, never forwarded', async (t) => {
  const before = stack.upstream.seen.length;
  for (const te of ['gzip, chunked', 'chunked, chunked', 'deflate,chunked']) {
    const text = await exchange(gw, `POST /v1/emails/send HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: ${te}\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
    const [res] = responses(text);
    t.equal(res?.status, 400, te);
    t.equal(res?.json?.error, 'bad_request');
  }
  t.equal(stack.upstream.seen.length, before, 'nothing reached the upstream');
});

t.test('a second Host header is refused with 400, never forwarded', async (t) => {
  const before = stack.upstream.seen.length;
  const [res] = responses(await exchange(gw, `GET /v1/emails/list HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n${auth}Connection: close\r\n\r\n`));
  t.equal(res?.status, 400);
  t.match(res?.json?.message, /Host/);
  t.equal(stack.upstream.seen.length, before, 'nothing reached the upstream');
});

t.test('Expect: 100-continue: no 100 before the key is checked; after it, 100 and the body flows', async (t) => {
  const refused = await openRaw(gw);
  refused.write('POST /v1/emails/send HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  const text = await within(refused.until((r) => r.includes('\r\n\r\n')), 5_000, 'the refusal');
  t.match(text, /^HTTP\/1\.1 401 /, 'the first thing said is the 401, not 100 Continue');
  refused.socket.destroy();

  const accepted = await openRaw(gw);
  accepted.write(`POST /v1/emails/upload HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
  await within(accepted.until((r) => r.startsWith('HTTP/1.1 100 ')), 5_000, 'the 100 Continue');
  accepted.write('hello');
  const all = responses(await within(accepted.closed, 5_000, 'the answer'));
  t.equal(all[0]?.status, 100);
  t.equal(all[1]?.status, 200);
  t.equal(all[1]?.json?.bodyBytes, 5, 'the body reached the upstream');
});

t.test('more than 1,000 connections from one address: the next is answered 429 too_many_connections and closed', async (t) => {
  const held = await Promise.all(Array.from({ length: 1_000 }, () => openRaw(gw, { localAddress: '127.0.0.2' })));
  const extra = await openRaw(gw, { localAddress: '127.0.0.2' });
  const [res] = responses(await within(extra.closed, 5_000, 'the extra connection was closed'));
  t.equal(res?.status, 429);
  t.equal(res?.json?.error, 'too_many_connections');
  assertDocUrl(t, res?.json);
  const elsewhere = await openRaw(gw, { localAddress: '127.0.0.3' });
  elsewhere.write(`GET /v1/emails/list HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`);
  t.equal(responses(await within(elsewhere.closed, 5_000, 'another address'))[0]?.status, 200, 'another address is served');
  held[0]!.socket.destroy();
  await held[0]!.closed;
  const again = await openRaw(gw, { localAddress: '127.0.0.2' });
  again.write(`GET /v1/emails/list HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`);
  t.equal(responses(await within(again.closed, 5_000, 'after one closed'))[0]?.status, 200, 'a closed connection frees its place');
  for (const c of held) c.socket.destroy();
});
