import t from 'tap';
import { openRaw, responses, type RawConnection } from '../lib/raw-socket.js';
import { bearer, call, catchAllApi, startStack } from '../lib/stack.js';
import { waitFor, within } from '../lib/within.js';

// One key cannot starve an API's upstream pool (docs/operations.md, Security): with
// max_connections 4, a key holds at most a quarter of it in flight (max_concurrent_per_key's
// default); a slow
// uploader or a client that never reads its response holds only that share, and an upload that
// stops sending is cut by the default body idle timeout (30 s). timeout_ms counts from the
// request's arrival, so a request queued for a connection, or still uploading, gets its 504.

const stack = await startStack({
  overrides: (upstream) => ({
    apis: [
      // timeout_ms (default 30 s, counted from arrival) would end the idle upload at the same
      // moment as the body idle timeout (default 30 s) this file tests; here it waits longer, so
      // which of the two cuts the upload does not depend on how busy the machine is.
      catchAllApi(upstream, { max_connections: 4, timeout_ms: 120_000 }),
      {
        name: 'queue',
        path_prefix: '/v1/queue',
        upstream,
        max_connections: 1,
        max_concurrent_per_key: 1,
        timeout_ms: 1_000,
        routes: [{ method: '*', path: '/v1/queue/*' }],
      },
    ],
  }),
});
t.teardown(() => stack.close());
const gw = stack.gw['production']!;
const hog = await stack.createKey({ name: 'hog' });
const other = await stack.createKey({ name: 'other' });
const seenFor = (id: string) => stack.upstream.seen.filter((s) => s.headers['x-key-id'] === id);

async function slowUpload(key: string): Promise<RawConnection> {
  const c = await openRaw(gw);
  c.write(`PUT /v1/emails/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 1000000\r\n\r\nabc`);
  return c;
}

t.test('four slow uploads from one key: one holds its share, three get 429; another key is served; the idle upload is cut at 30 s', async (t) => {
  const started = Date.now();
  const first = await slowUpload(hog.key);
  await waitFor(() => !(seenFor(hog.id).length === 0), 5_000, 'the first upload reached the upstream');
  const rest = await Promise.all([slowUpload(hog.key), slowUpload(hog.key), slowUpload(hog.key)]);
  for (const c of rest) {
    const [res] = responses(await within(c.closed, 5_000, 'a refused upload was closed'));
    t.equal(res?.status, 429);
    t.equal(res?.json?.error, 'concurrency_limit_exceeded');
    t.equal(res?.headers['retry-after'], '1');
  }
  t.equal(seenFor(hog.id).length, 1, 'only the first upload reached the upstream');
  const served = await within(call(`${gw}/v1/emails/list`, { headers: bearer(other.key) }), 5_000, "the other key's GET");
  t.equal(served.status, 200, 'another key is served at once');

  const [cut] = responses(await within(first.closed, 60_000, 'the idle upload was cut'));
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 29_000, `the default body idle timeout, 30 s (${elapsed} ms)`);
  t.equal(cut?.status, 408);
  t.equal(cut?.json?.error, 'request_timeout');
  t.ok(stack.events.some((e) => e.key_id === hog.id && e.status === 408), 'the cut upload is recorded with its 408');
  const again = await call(`${gw}/v1/emails/list`, { headers: bearer(hog.key) });
  t.equal(again.status, 200, 'its slot was given back');
});

t.test('a client that never reads a large response holds only its own share', async (t) => {
  const reader = await openRaw(gw);
  reader.socket.pause();
  reader.write(`GET /v1/emails/bytes/200000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${hog.key}\r\n\r\n`);
  await waitFor(() => !(!seenFor(hog.id).some((s) => s.url.startsWith('/v1/emails/bytes/'))), 5_000, 'the large response started');
  const second = await call(`${gw}/v1/emails/list`, { headers: bearer(hog.key) });
  t.equal(second.status, 429, 'the same key is at its share');
  t.equal(second.body?.error, 'concurrency_limit_exceeded');
  const served = await within(call(`${gw}/v1/emails/list`, { headers: bearer(other.key) }), 5_000, "the other key's GET");
  t.equal(served.status, 200, 'another key is served');
  reader.socket.destroy();
});

t.test('timeout_ms counts from arrival: a request queued behind a busy connection gets its 504', async (t) => {
  // The only connection is held by a response its client does not read.
  const reader = await openRaw(gw);
  reader.socket.pause();
  reader.write(`GET /v1/queue/bytes/200000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${hog.key}\r\n\r\n`);
  await waitFor(() => !(!seenFor(hog.id).some((s) => s.url.startsWith('/v1/queue/bytes/'))), 5_000, 'the held response started');
  const started = Date.now();
  const queued = await within(call(`${gw}/v1/queue/list`, { headers: bearer(other.key) }), 10_000, 'the queued request was answered');
  t.equal(queued.status, 504);
  t.equal(queued.body?.error, 'gateway_timeout');
  t.ok(Date.now() - started >= 900, 'not before its timeout_ms');
  t.notOk(seenFor(other.id).some((s) => s.url === '/v1/queue/list'), 'the queued request never reached the upstream');
  reader.socket.destroy();
});

t.test('timeout_ms counts the upload: a body that keeps moving past timeout_ms still gets its 504', async (t) => {
  const c = await openRaw(gw);
  c.write(`PUT /v1/queue/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${other.key}\r\nContent-Length: 1000\r\n\r\n`);
  const drip = setInterval(() => c.write('x'), 100);
  try {
    const [res] = responses(await within(c.until((r) => r.includes('\r\n\r\n')), 10_000, 'the upload was answered'));
    t.equal(res?.status, 504);
    t.equal(res?.json?.error, 'gateway_timeout');
    t.equal(res?.headers['connection'], 'close', 'the unread rest of the body closes the connection');
  } finally {
    clearInterval(drip);
    c.socket.destroy();
  }
});
