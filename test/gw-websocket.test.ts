import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import t from 'tap';
import { WebSocket } from 'ws';
import { startStack } from './lib/stack.js';

// WebSocket upgrades: forwarded like HTTP requests (credential parameter removed, hop-by-hop
// and Connection-named headers dropped), and every way they end is answered and recorded.

// Refuses every upgrade with a plain 403 (no 'upgrade' listener: node serves it as a request),
// except under /v1/ws/silent/, where it never answers.
const refusing = createServer((req, res) => {
  if (req.url!.startsWith('/v1/ws/silent/')) return;
  res.writeHead(403, { 'content-type': 'text/plain', 'x-refused': 'yes' });
  res.end('no websockets here');
});
await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
const refusingUrl = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`;
t.teardown(async () => {
  refusing.closeAllConnections();
  await new Promise<void>((resolve) => refusing.close(() => resolve()));
});

const stack = await startStack({
  overrides: (upstream) => ({
    keys: { query_param: 'api_key' },
    apis: [
      { name: 'emails', path_prefix: '/v1/emails', upstream, unlisted: 'allow' },
      { name: 'dead', path_prefix: '/v1/dead', upstream: 'http://127.0.0.1:1', unlisted: 'allow' },
      { name: 'refusing', path_prefix: '/v1/ws', upstream: refusingUrl, timeout_ms: 300, unlisted: 'allow' },
    ],
  }),
});
t.teardown(() => stack.close());
const prod = new URL(stack.gw['production']!);
const { key, id } = await stack.createKey();
const lastSeen = () => stack.upstream.seen[stack.upstream.seen.length - 1]!;
const eventOf = (requestId: string) => stack.events.find((e) => e.request_id === requestId);

async function until(what: string, cond: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A handshake written by hand; resolves with the response head, and the body once the socket closes. */
function handshake(
  target: string,
  headers: string[],
): Promise<{ socket: Socket; status: number; headers: Record<string, string>; body: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(prod.port), prod.hostname, () => {
      socket.write(
        `GET ${target} HTTP/1.1\r\nHost: ${prod.host}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${headers.join('\r\n')}\r\n\r\n`,
      );
    });
    let text = '';
    let rest = '';
    let resolved = false;
    const body = new Promise<string>((done) => socket.once('close', () => done(rest)));
    socket.once('close', () => resolved || reject(new Error(`${target}: the connection closed without a response`)));
    socket.setEncoding('latin1');
    socket.on('error', reject);
    socket.on('data', (chunk: string) => {
      if (resolved) return void (rest += chunk);
      text += chunk;
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return;
      resolved = true;
      rest = text.slice(end + 4);
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
      const parsed: Record<string, string> = {};
      for (const line of lines) parsed[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
      resolve({ socket, status: Number(statusLine.split(' ')[1]), headers: parsed, body });
    });
  });
}

t.test('the query credential is removed from the forwarded URL and never logged', async (t) => {
  const ws = new WebSocket(`ws://${prod.host}/v1/emails/ws?a=1&api_key=${key}&b=2&api%5Fkey=${key}`, { headers: { 'x-request-id': 'ws-query' } });
  const echo = await new Promise<string>((resolve, reject) => {
    ws.once('open', () => ws.send('hello'));
    ws.once('message', (data) => resolve(String(data)));
    ws.once('error', reject);
  });
  t.equal(echo, 'hello', 'the echo works');
  t.equal(lastSeen().url, '/v1/emails/ws?a=1&b=2', 'the upstream URL has no credential');
  t.equal(lastSeen().headers['x-key-id'], id);
  ws.close();
  await until('the event', () => eventOf('ws-query') !== undefined);
  t.equal(eventOf('ws-query')!.status, 101, 'recorded as 101 once closed');
  t.equal(eventOf('ws-query')!.outcome, 'ok');

  // A failed upgrade logs a warning: neither the parameter nor the key is in it.
  const res = await handshake(`/v1/dead/ws?api_key=${key}`, ['Connection: Upgrade', 'Upgrade: websocket']);
  t.equal(res.status, 502);
  await res.body;
  const logs = stack.logs.join('');
  t.ok(logs.includes('websocket upstream failed'), 'the failure is logged');
  t.notOk(logs.includes('api_key'), 'no log line holds the credential parameter');
  t.notOk(logs.includes(key.slice(8)), 'nor the key');
});

t.test('headers the Connection header names are dropped, with the other hop-by-hop headers', async (t) => {
  const res = await handshake(`/v1/emails/ws`, [
    `Authorization: Bearer ${key}`,
    'Connection: Upgrade, X-Hop-Secret, keep-alive',
    'Upgrade: websocket',
    'X-Hop-Secret: must-not-pass',
    'Keep-Alive: timeout=5',
    'Proxy-Connection: keep-alive',
    'X-End-To-End: passes',
  ]);
  t.equal(res.status, 101);
  t.equal(res.headers['upgrade'], 'websocket');
  t.ok(res.headers['x-request-id'], 'the request id goes back to the client');
  const seen = lastSeen().headers;
  t.equal(seen['x-hop-secret'], undefined, 'the header named by Connection is gone');
  t.equal(seen['keep-alive'], undefined);
  t.equal(seen['proxy-connection'], undefined);
  t.equal(seen['authorization'], undefined, 'the credential header is gone');
  t.equal(seen['x-end-to-end'], 'passes');
  t.equal(seen['connection'], 'Upgrade', 'Connection is the upgrade alone');
  t.equal(seen['upgrade'], 'websocket');
  t.equal(seen['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==', 'the handshake headers pass');
  res.socket.destroy();
});

t.test('an upstream that cannot be reached answers 502 JSON on the socket, recorded as 502', async (t) => {
  const res = await handshake('/v1/dead/ws', [`Authorization: Bearer ${key}`, 'Connection: Upgrade', 'Upgrade: websocket', 'X-Request-Id: ws-dead']);
  t.equal(res.status, 502);
  t.match(res.headers['content-type'], /^application\/json/);
  const body = JSON.parse(await res.body);
  t.equal(body.error, 'bad_gateway');
  t.equal(body.request_id, 'ws-dead');
  await until('the event', () => eventOf('ws-dead') !== undefined);
  t.equal(eventOf('ws-dead')!.status, 502);
  t.equal(eventOf('ws-dead')!.outcome, 'bad_gateway');
});

t.test('an upstream that does not answer in time: 504 JSON, recorded as 504', async (t) => {
  const res = await handshake('/v1/ws/silent/x', [`Authorization: Bearer ${key}`, 'Connection: Upgrade', 'Upgrade: websocket', 'X-Request-Id: ws-silent']);
  t.equal(res.status, 504);
  t.equal(JSON.parse(await res.body).error, 'gateway_timeout');
  await until('the event', () => eventOf('ws-silent') !== undefined);
  t.equal(eventOf('ws-silent')!.status, 504);
  t.equal(eventOf('ws-silent')!.outcome, 'gateway_timeout');
});

t.test('an upstream that refuses the upgrade: its answer is relayed and recorded', async (t) => {
  const res = await handshake('/v1/ws/x', [`Authorization: Bearer ${key}`, 'Connection: Upgrade', 'Upgrade: websocket', 'X-Request-Id: ws-refused']);
  t.equal(res.status, 403);
  t.equal(res.headers['x-refused'], 'yes');
  t.equal(await res.body, 'no websockets here');
  await until('the event', () => eventOf('ws-refused') !== undefined);
  t.equal(eventOf('ws-refused')!.status, 403);
});
