import { connect } from 'node:net';
import t from 'tap';
import { startStack } from './lib/stack.js';

// Node hands every request with `Connection: upgrade` to the server's 'upgrade' event. An
// upgrade other than WebSocket (h2c) is optional for the server: the request is served as
// plain HTTP, without Upgrade and HTTP2-Settings, never refused.

const stack = await startStack();
t.teardown(() => stack.close());
const prod = new URL(stack.gw['production']!);
const { key } = await stack.createKey();
const last = () => stack.upstream.seen[stack.upstream.seen.length - 1]!;

/** Writes `parts` one after another (20 ms apart) on one connection; resolves with all it got once the gateway closes it. */
function exchange(parts: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(prod.port), prod.hostname, async () => {
      for (const part of parts) {
        socket.write(part);
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (text += c));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
  });
}

const statuses = (text: string) => [...text.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]));

t.test('GET with Upgrade: h2c is answered as plain HTTP, without the upgrade headers upstream', async (t) => {
  const text = await exchange([
    `GET /v1/emails/list HTTP/1.1\r\nHost: ${prod.host}\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\n` +
      `HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nAuthorization: Bearer ${key}\r\nX-Kept: yes\r\n\r\n`,
  ]);
  t.same(statuses(text), [200], 'one 200, no 101 and no refusal');
  t.notMatch(text, /^upgrade:/im, 'no Upgrade header in the answer');
  const seen = last();
  t.equal(seen.url, '/v1/emails/list');
  t.equal(seen.headers['upgrade'], undefined, 'Upgrade not forwarded');
  t.equal(seen.headers['http2-settings'], undefined, 'HTTP2-Settings not forwarded');
  t.equal(seen.headers['x-kept'], 'yes', 'other headers are');
  t.ok(seen.headers['x-key-id'], 'the key was checked');
});

t.test('a POST with a chunked body arriving later, then a keep-alive request on the same connection', async (t) => {
  const text = await exchange([
    `POST /v1/emails/upload HTTP/1.1\r\nHost: ${prod.host}\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nAuthorization: Bearer ${key}\r\nTransfer-Encoding: chunked\r\n\r\n`,
    '5\r\nhello\r\n',
    '6\r\n world\r\n0\r\n\r\n',
    `GET /v1/emails/second HTTP/1.1\r\nHost: ${prod.host}\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`,
  ]);
  t.same(statuses(text), [200, 200], 'both requests answered');
  const upload = stack.upstream.seen.find((s) => s.url === '/v1/emails/upload')!;
  t.equal(upload.bodyBytes, 11, 'the whole body reached the upstream');
  t.equal(last().url, '/v1/emails/second');
});

t.test('the checks still run: no key is 401 JSON', async (t) => {
  const text = await exchange([`GET /v1/emails/list HTTP/1.1\r\nHost: ${prod.host}\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n\r\n`]);
  t.same(statuses(text), [401]);
  t.match(text, /"error":"missing_token"/);
});
