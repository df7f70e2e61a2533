import t from 'tap';
import { openRaw } from '../lib/raw-socket.js';
import { bearer, call, catchAllApi, startStack } from '../lib/stack.js';
import { waitFor, within } from '../lib/within.js';

// A client that never reads its response holds an upstream connection for as long as the
// response cannot drain. At the default limits.response_idle_timeout_ms (60 s) of nothing
// written, the gateway closes the connection, which cancels the upstream request and gives
// the key's slot back (docs/operations.md, Security).

const stack = await startStack({
  overrides: (upstream) => ({
    apis: [catchAllApi(upstream, { max_connections: 4 })],
  }),
});
t.teardown(() => stack.close());
const gw = stack.gw['production']!;
const api = stack.gateway.runtime.apis.find((a) => a.name === 'emails')!;

t.test('a response nobody reads is closed after the default 60 s; the slot and the pool connection come back', async (t) => {
  const { key, id } = await stack.createKey();
  const reader = await openRaw(gw);
  reader.socket.pause();
  const started = Date.now();
  reader.write(`GET /v1/emails/bytes/500000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n`);
  await waitFor(() => !(api.inFlight.get(id) !== 1), 5_000, 'the response started');
  t.equal((await call(`${gw}/v1/emails/list`, { headers: bearer(key) })).status, 429, 'meanwhile the key is at its share');
  await waitFor(() => !(api.inFlight.get(id) !== undefined), 90_000, 'the slot was given back');
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 59_000, `after the default 60 s of nothing read (${elapsed} ms)`);
  // The client, reading again, finds the connection closed after what was already sent.
  reader.socket.resume();
  await within(reader.closed, 10_000, 'the connection was closed');
  t.equal((await call(`${gw}/v1/emails/list`, { headers: bearer(key) })).status, 200, 'the key is served again');
  t.equal(stack.events.filter((e) => e.key_id === id && e.method === 'GET' && e.status === 200).length, 2, 'the cut response is recorded once, with the status it was sent');
});
