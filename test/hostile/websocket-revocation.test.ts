import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { WebSocket, WebSocketServer } from 'ws';
import { INVALID_TOKEN_REASONS } from '../../core/errors.js';
import { switchable, type Switchable } from '../lib/flaky-store.js';
import { bearer, startStack } from '../lib/stack.js';

// A key that stops being usable closes its open WebSockets with 1008 (policy violation):
// revoked or suspended through the admin API (the store's change feed), or expired (the
// tunnels' sweep, driven here with the ManualClock). The upstream is a `ws` server that keeps
// every message and close code it received, per connection.

interface Received {
  messages: string[];
  closeCode: number | null;
}
const connections: Received[] = [];
const http = createServer();
const wss = new WebSocketServer({ server: http });
wss.on('connection', (ws) => {
  const seen: Received = { messages: [], closeCode: null };
  connections.push(seen);
  ws.on('message', (data) => {
    seen.messages.push(String(data));
    ws.send(data);
  });
  ws.on('close', (code) => (seen.closeCode = code));
});
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
const upstreamUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
t.teardown(async () => {
  for (const c of wss.clients) c.terminate();
  wss.close();
  await new Promise<void>((resolve) => http.close(() => resolve()));
});

let store: Switchable | null = null;
const stack = await startStack({
  overrides: () => ({ apis: [{ name: 'live', path_prefix: '/v1/live', upstream: upstreamUrl, routes: [{ method: 'GET', path: '/v1/live/*' }] }] }),
  wrapStore: (inner) => {
    const s = switchable(inner);
    store = s;
    return s;
  },
});
t.teardown(() => stack.close());
const prod = new URL(stack.gw['production']!);

async function until(what: string, cond: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface Open {
  ws: WebSocket;
  upstream: Received;
  closed: Promise<{ code: number; reason: string }>;
  echo(text: string): Promise<string>;
}

/** Opens a WebSocket through the gateway and exchanges one frame. */
async function open(key: string, requestId: string): Promise<Open> {
  const before = connections.length;
  const ws = new WebSocket(`ws://${prod.host}/v1/live/socket`, { headers: { ...bearer(key), 'x-request-id': requestId } });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  await until('the upstream connection', () => connections.length > before);
  const echo = (text: string) =>
    new Promise<string>((resolve) => {
      ws.once('message', (data) => resolve(String(data)));
      ws.send(text);
    });
  const o = { ws, upstream: connections[connections.length - 1]!, closed, echo };
  if ((await echo('hello')) !== 'hello') throw new Error('no echo');
  return o;
}

async function closedByPolicy(t: Test, o: Open, requestId: string, reason: string, delivered = ['hello']): Promise<void> {
  const { code, reason: text } = await o.closed;
  t.equal(code, 1008, 'the client sees close code 1008');
  t.equal(text, reason);
  await until('the upstream close', () => o.upstream.closeCode !== null);
  t.equal(o.upstream.closeCode, 1008, 'the upstream is sent 1008 too');
  t.same(o.upstream.messages, delivered, 'nothing sent after the change reached the upstream');
  await until('the record', () => stack.events.some((e) => e.request_id === requestId));
  t.equal(stack.events.filter((e) => e.request_id === requestId).length, 1, 'one usage record for the connection');
  t.equal(stack.events.find((e) => e.request_id === requestId)!.status, 101);
}

t.test('revoking a key closes its open WebSockets with 1008; other keys stay open', async (t) => {
  const { key, id } = await stack.createKey();
  const other = await stack.createKey();
  const o = await open(key, 'ws-revoked');
  const second = await open(key, 'ws-revoked-2');
  const bystander = await open(other.key, 'ws-bystander');
  // The gateway's read of the changed key waits at the gate: its tunnels are held meanwhile.
  let letGo!: () => void;
  store!.gate = new Promise((resolve) => (letGo = resolve));
  t.equal((await stack.adminCall('POST', `/v1/keys/${id}/revoke`)).status, 200);
  // Sent after the revocation was answered: it must not reach the upstream. A round trip on
  // another WebSocket gives the gateway the turns it needs to read (and, unheld, relay) it.
  o.ws.send('after the revoke');
  t.equal(await bystander.echo('meanwhile'), 'meanwhile', 'a WebSocket of another key is not held');
  store!.gate = null;
  letGo();
  await closedByPolicy(t, o, 'ws-revoked', INVALID_TOKEN_REASONS.revoked);
  t.equal((await second.closed).code, 1008, 'every WebSocket of the key is closed');
  t.equal(await bystander.echo('still here'), 'still here', 'a WebSocket of another key is untouched');
  bystander.ws.close();
  await bystander.closed;
});

t.test('suspending a key closes its open WebSockets with 1008', async (t) => {
  const { key, id } = await stack.createKey();
  const o = await open(key, 'ws-suspended');
  t.equal((await stack.adminCall('POST', `/v1/keys/${id}/suspend`, {})).status, 200);
  o.ws.send('after the suspension');
  await closedByPolicy(t, o, 'ws-suspended', INVALID_TOKEN_REASONS.suspended);
});

t.test('a key that expires closes its open WebSockets with 1008 at the next sweep', async (t) => {
  const { key } = await stack.createKey({ expires_at: new Date(stack.clock.now() + 60_000).toISOString() });
  const o = await open(key, 'ws-expired');
  await stack.gateway.runtime.tunnels.sweep();
  t.equal(await o.echo('before expiry'), 'before expiry', 'still open before the expiry');
  stack.clock.advance(60_000);
  await stack.gateway.runtime.tunnels.sweep();
  await closedByPolicy(t, o, 'ws-expired', INVALID_TOKEN_REASONS.expired, ['hello', 'before expiry']);
  t.equal(stack.gateway.runtime.tunnels.size, 0, 'no tunnel left open');
});
