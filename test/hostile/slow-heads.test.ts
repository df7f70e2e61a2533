import t from 'tap';
import { openDescriptors, openRaw, responses } from '../lib/raw-socket.js';
import { catchAllApi, startStack } from '../lib/stack.js';
import { within } from '../lib/within.js';

// Clients that send a request head slowly, or a body nobody asked for, against the gateway's
// default limits (limits.headers_timeout_ms, 30 s; docs/operations.md, Security).

const stack = await startStack({
  overrides: (upstream) => ({
    apis: [catchAllApi(upstream)],
  }),
});
t.teardown(() => stack.close());
const gw = stack.gw['production']!;
const { key } = await stack.createKey();

t.test('200 connections that send half a request head are answered 408 and closed by the default head timeout', async (t) => {
  const before = await openDescriptors();
  const conns = await Promise.all(Array.from({ length: 200 }, () => openRaw(gw)));
  const started = Date.now();
  for (const c of conns) c.write(`GET /v1/emails/list HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n`);
  t.ok((await openDescriptors()) >= before + 200, 'the connections are open');
  const texts = await within(Promise.all(conns.map((c) => c.closed)), 60_000, 'the half heads were cut');
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 29_000, `the default 30 s applies, not a shorter one (${elapsed} ms)`);
  const answers = texts.map((text) => responses(text)[0]);
  t.ok(
    answers.every((r) => r?.status === 408 && r.json?.error === 'request_timeout' && r.headers['connection'] === 'close'),
    'each was answered 408 request_timeout, connection: close',
  );
  t.equal(stack.upstream.seen.length, 0, 'nothing reached the upstream');
  // The gateway's side of a connection closes just after the client sees it close.
  let open = await openDescriptors();
  for (const deadline = Date.now() + 5_000; open > before + 5 && Date.now() < deadline; open = await openDescriptors()) {
    await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(open <= before + 5, `the descriptors are given back (${open} open, ${before} before)`);
});

t.test('a refused request whose body trickles in is answered, and its connection closed while the body still trickles', async (t) => {
  const c = await openRaw(gw);
  c.write('POST /v1/emails/send HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nx');
  let sent = 1;
  // A byte every 100 ms: the body would take 10 s to arrive.
  const drip = setInterval(() => {
    if (c.socket.destroyed || c.socket.writableEnded) return;
    c.write('x');
    sent++;
  }, 100);
  const text = await within(c.closed, 8_000, 'the connection was closed').finally(() => clearInterval(drip));
  t.ok(sent < 100, `closed before the body was complete (${sent} of 100 bytes sent)`);
  const [res] = responses(text);
  t.equal(res?.status, 401);
  t.equal(res?.json?.error, 'missing_token');
  t.equal(res?.headers['connection'], 'close', 'the answer says the connection closes');
  t.equal(stack.upstream.seen.length, 0, 'nothing reached the upstream');
});
