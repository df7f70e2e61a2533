import { createServer, get, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import t from 'tap';
import { startStack } from './lib/stack.js';

// A client that leaves cancels the upstream request; an upstream that fails mid-body cuts the
// client's response short and is recorded as a failure.

interface Arrival {
  url: string;
  req: IncomingMessage;
  res: ServerResponse;
  closed: boolean;
  bodyBytes: number;
}
const arrivals: Arrival[] = [];
const upstream = createServer((req, res) => {
  const a: Arrival = { url: req.url!, req, res, closed: false, bodyBytes: 0 };
  arrivals.push(a);
  res.once('close', () => (a.closed = true));
  req.on('data', (c: Buffer) => (a.bodyBytes += c.length));
  if (req.url!.startsWith('/v1/hang/stream')) {
    // Headers and a first chunk, then a chunk every 20 ms, never the end.
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first\n');
    const timer = setInterval(() => res.write('more\n'), 20);
    res.once('close', () => clearInterval(timer));
  } else if (req.url!.startsWith('/v1/hang/reset')) {
    // Chunked, so only the last chunk says the body is complete: it never comes.
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial body\n');
    setTimeout(() => req.socket.destroy(), 50);
  }
  // Anything else: never answered.
});
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
t.teardown(async () => {
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

const stack = await startStack({
  overrides: () => ({ apis: [{ name: 'hang', path_prefix: '/v1/hang', upstream: upstreamUrl, timeout_ms: 30_000, unlisted: 'allow' }] }),
});
t.teardown(() => stack.close());
const prod = new URL(stack.gw['production']!);
const { key } = await stack.createKey();

async function until(what: string, cond: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function open(head: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(prod.port), prod.hostname, () => {
      socket.write(head);
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

const arrivalOf = (url: string) => arrivals.find((a) => a.url === url);
const eventOf = (id: string) => stack.events.find((e) => e.request_id === id);

t.test('a client that leaves before the upstream answers cancels the upstream request', async (t) => {
  const socket = await open(`GET /v1/hang/wait HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Request-Id: leave-early\r\n\r\n`);
  await until('the request reaching the upstream', () => arrivalOf('/v1/hang/wait') !== undefined);
  socket.destroy();
  await until('the upstream request being cancelled', () => arrivalOf('/v1/hang/wait')!.closed);
  t.pass('the upstream saw its request go away long before the 30 s timeout');
  await until('the event', () => eventOf('leave-early') !== undefined);
  t.equal(eventOf('leave-early')!.status, 499);
  t.equal(eventOf('leave-early')!.outcome, 'client_closed_request');
});

t.test('a client that leaves mid-upload cancels the upstream request', async (t) => {
  const socket = await open(
    `POST /v1/hang/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(1000)}`,
  );
  await until('the first body bytes reaching the upstream', () => (arrivalOf('/v1/hang/upload')?.bodyBytes ?? 0) > 0);
  socket.destroy();
  await until('the upstream request being cancelled', () => arrivalOf('/v1/hang/upload')!.closed);
  t.pass('cancelled');
});

t.test('a client that leaves mid-download cancels the upstream response', async (t) => {
  const socket = await open(`GET /v1/hang/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n`);
  await new Promise((resolve) => socket.once('data', resolve));
  socket.destroy();
  await until('the upstream response being cancelled', () => arrivalOf('/v1/hang/stream')!.closed);
  t.pass('cancelled');
});

t.test('an upstream reset mid-body cuts the client response short and is recorded as 502', async (t) => {
  const result = await new Promise<{ status: number; body: string; complete: boolean; error: string | null }>((resolve) => {
    const req = get(
      { host: prod.hostname, port: prod.port, path: '/v1/hang/reset', headers: { authorization: `Bearer ${key}`, 'x-request-id': 'reset-mid-body' }, agent: false },
      (res) => {
        let body = '';
        let error: string | null = null;
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('error', (err) => (error = err.message));
        res.on('close', () => resolve({ status: res.statusCode!, body, complete: res.complete, error }));
      },
    );
    req.on('error', () => {});
  });
  t.equal(result.status, 200, 'the status was on the wire before the reset');
  t.equal(result.body, 'partial body\n', 'what came before the reset was relayed');
  t.equal(result.complete, false, 'the response was not ended as if complete');
  t.ok(result.error, `the client saw the connection cut (${result.error})`);
  await until('the event', () => eventOf('reset-mid-body') !== undefined);
  const event = eventOf('reset-mid-body')!;
  t.equal(event.status, 502, 'recorded as a failure');
  t.equal(event.outcome, 'bad_gateway');
});
