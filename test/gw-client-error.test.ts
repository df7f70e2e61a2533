import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Logger } from '../core/log.js';
import { FileStore } from '../core/store/file-store.js';
import { createGateway } from '../gateway/server.js';
import { assertDocUrl } from './lib/error-docs.js';
import { testConfig } from './lib/stack.js';

// Requests Node cannot parse or does not receive in time are answered in the gateway's error
// shape (docs/architecture.md, Error body) with a fresh request id: 431 for oversized headers,
// 408 for a request that does not arrive in time, 400 for anything else malformed.

const dir = mkdtempSync(join(tmpdir(), 'keygate-client-error-'));
const store = await FileStore.open({ dir });
// A short head timeout through the config, to test how a timeout is answered; the default
// (30 s) is proven in test/hostile/slow-heads.test.ts.
const gateway = createGateway(testConfig('http://127.0.0.1:1', { limits: { headers_timeout_ms: 300 } }), {
  store,
  log: new Logger({ level: 'error', write: () => {} }),
});
const [listener] = await gateway.listen();
t.teardown(async () => {
  await gateway.close(0);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `text`, then reads until the gateway closes the connection. */
function raw(text: string): Promise<{ status: number; headers: Record<string, string>; body: any }> {
  return new Promise((resolve, reject) => {
    const socket = connect(listener!.port, listener!.host, () => socket.write(text));
    let got = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (got += c));
    socket.on('error', reject);
    socket.on('close', () => {
      const end = got.indexOf('\r\n\r\n');
      const [statusLine = '', ...lines] = got.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: end === -1 ? undefined : JSON.parse(got.slice(end + 4)) });
    });
  });
}

function assertShape(t: Test, res: Awaited<ReturnType<typeof raw>>, status: number, code = 'bad_request') {
  t.equal(res.status, status, 'status');
  t.match(res.headers['content-type'], /^application\/json/, 'JSON');
  t.equal(res.body?.error, code, 'error code');
  t.type(res.body?.message, 'string', 'message');
  t.match(res.body?.request_id, /^[0-9a-f-]{36}$/, 'a generated request id');
  t.equal(res.headers['x-request-id'], res.body?.request_id, 'also in X-Request-Id');
  t.equal(res.headers['connection'], 'close');
  t.equal(Number(res.headers['content-length']), Buffer.byteLength(JSON.stringify(res.body)), 'content-length is the body');
  assertDocUrl(t, res.body);
}

t.test('431 when the headers are too large', async (t) => {
  const res = await raw(`GET /v1/emails/x HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  assertShape(t, res, 431);
});

t.test('408 when the request does not arrive in time', async (t) => {
  const started = Date.now();
  const res = await raw('GET /v1/emails/x HTTP/1.1\r\nHost: x\r\n');
  assertShape(t, res, 408, 'request_timeout');
  t.ok(Date.now() - started < 3_000, 'answered near the 300 ms header timeout');
});

t.test('400 for a malformed request', async (t) => {
  assertShape(t, await raw('THIS IS NOT HTTP\r\n\r\n'), 400);
  const twice = await Promise.all([raw('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'), raw('\x00\x01\x02\r\n\r\n')]);
  assertShape(t, twice[0], 400);
  assertShape(t, twice[1], 400);
  t.not(twice[0].body.request_id, twice[1].body.request_id, 'each answer has its own request id');
});
