import t from 'tap';
import { WebSocket } from 'ws';
import { switchable, type Switchable } from '../lib/flaky-store.js';
import { openRaw, responses } from '../lib/raw-socket.js';
import { bearer, call, catchAllApi, startStack } from '../lib/stack.js';
import { waitFor, within } from '../lib/within.js';

// A key's fair share of an API's pool (docs/operations.md, Security) is given back whatever way its
// requests end: pipelined requests whose client leaves, a client that leaves while its key is
// being looked up, WebSocket tunnels (which hold a share too, until they close).

let store!: Switchable;
const stack = await startStack({
  overrides: (upstream) => ({
    apis: [catchAllApi(upstream, { max_connections: 4 })],
  }),
  wrapStore: (inner) => {
    const s = switchable(inner);
    store = s;
    return s;
  },
});
t.teardown(() => stack.close());
const gw = stack.gw['production']!;
const api = stack.gateway.runtime.apis.find((a) => a.name === 'emails')!;
const until = (cond: () => boolean, what: string) => waitFor(cond, 10_000, what);

t.test('pipelined requests whose clients leave give back every slot and pool connection, and are recorded', async (t) => {
  const keys = await Promise.all([1, 2, 3, 4].map(() => stack.createKey()));
  const eventsBefore = stack.events.length;
  const seenBefore = stack.upstream.seen.length;
  const conns = await Promise.all(keys.map(() => openRaw(gw)));
  conns.forEach((c, i) =>
    c.write(
      `GET /v1/emails/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${keys[i]!.key}\r\n\r\n` +
        `GET /v1/emails/bytes/50000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${keys[i]!.key}\r\n\r\n`,
    ),
  );
  await until(() => stack.upstream.seen.length >= seenBefore + 4, 'the four slow requests reached the upstream');
  t.equal(stack.upstream.seen.length, seenBefore + 4, 'the pipelined requests wait their turn: not run upstream yet');
  for (const c of conns) c.socket.destroy();
  await until(() => api.inFlight.size === 0, 'every slot was given back');
  await until(() => stack.events.length >= eventsBefore + 8, 'eight records');
  t.equal(stack.events.length, eventsBefore + 8, 'each request recorded once');
  t.ok(
    stack.events.slice(eventsBefore).every((e) => e.status === 499),
    'all as clients that left',
  );
  const fresh = await stack.createKey();
  const res = await within(call(`${gw}/v1/emails/list`, { headers: bearer(fresh.key) }), 5_000, 'a new key is served');
  t.equal(res.status, 200, 'the pool was freed');
  for (const k of keys) t.equal((await call(`${gw}/v1/emails/list`, { headers: bearer(k.key) })).status, 200, 'and every key can use its share again');
});

t.test('a client that leaves while its key is looked up takes no slot', async (t) => {
  const { key } = await stack.createKey();
  let open!: () => void;
  store.gate = new Promise<void>((r) => (open = r));
  const lookups = store.lookups;
  const conns = await Promise.all([1, 2].map(() => openRaw(gw)));
  for (const c of conns) c.write(`GET /v1/emails/list HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n`);
  await until(() => store.lookups > lookups, 'the lookup is held');
  for (const c of conns) c.socket.destroy();
  await Promise.all(conns.map((c) => c.closed));
  // Both requests' close handlers have run by now; the lookup then answers.
  await new Promise((r) => setTimeout(r, 20));
  store.gate = null;
  open();
  const res = await call(`${gw}/v1/emails/list`, { headers: bearer(key) });
  t.equal(res.status, 200, 'the key is not locked out');
  t.equal(api.inFlight.get(stack.events.find((e) => e.request_id === res.headers['x-request-id'])?.key_id ?? '') ?? 0, 0, 'no slot held');
  t.equal(api.inFlight.size, 0, 'no slot held by anyone');
});

t.test('a WebSocket holds a slot of its key until it closes', async (t) => {
  const { key } = await stack.createKey();
  const ws = new WebSocket(`${gw.replace('http', 'ws')}/v1/emails/ws`, { headers: bearer(key) });
  await new Promise<void>((ok, fail) => {
    ws.once('open', () => ok());
    ws.once('error', fail);
  });
  const refused = await call(`${gw}/v1/emails/list`, { headers: bearer(key) });
  t.equal(refused.status, 429, 'its share (1 of 4 connections) is the tunnel');
  t.equal(refused.body?.error, 'concurrency_limit_exceeded');
  ws.close();
  await until(() => api.inFlight.size === 0, 'the tunnel gave its slot back');
  t.equal((await call(`${gw}/v1/emails/list`, { headers: bearer(key) })).status, 200);
});

t.test('a WebSocket upgrade pipelined behind a response waits for that response to be written whole', async (t) => {
  const { key } = await stack.createKey();
  const c = await openRaw(gw);
  c.write(
    `GET /v1/emails/bytes/200000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n` +
      `GET /v1/emails/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  const text = await within(c.until((r) => r.includes('HTTP/1.1 101 ')), 10_000, 'the 101');
  c.socket.destroy();
  const at = text.indexOf('HTTP/1.1 101 ');
  const [first] = responses(text.slice(0, at));
  t.equal(first?.status, 200);
  t.equal(first?.body.length, 200_000, 'the whole body came before the 101');
});
