import { rmSync } from 'node:fs';
import t from 'tap';
import { openRaw, responses } from '../lib/raw-socket.js';
import { catchAllApi, startStack } from '../lib/stack.js';
import { waitFor, within } from '../lib/within.js';

// Pipelined requests mixed with h2c upgrades (served as plain HTTP) and refusals: one answer
// each, in order, each recorded once; a connection left half-served does not hold a shutdown
// past its drain (docs/operations.md, Security).

const overrides = (upstream: string) => ({
  apis: [catchAllApi(upstream)],
});
const stack = await startStack({ overrides });
t.teardown(() => stack.close());
const gw = stack.gw['production']!;
const { key } = await stack.createKey();
const h2c = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
const auth = `Authorization: Bearer ${key}\r\n`;

async function pipeline(requests: string[], expected: number) {
  const upstreamBefore = stack.upstream.seen.length;
  const eventsBefore = stack.events.length;
  const c = await openRaw(gw);
  c.write(requests.join(''));
  const text = await within(
    c.until((r) => responses(r).length >= expected),
    10_000,
    'every pipelined request was answered',
  );
  c.socket.destroy();
  return { answers: responses(text), upstream: stack.upstream.seen.slice(upstreamBefore), events: () => stack.events.slice(eventsBefore) };
}

t.test('ten pipelined h2c upgrade requests in one write: ten answers in order, ten upstream requests, ten records', async (t) => {
  const reqs = Array.from({ length: 10 }, (_, i) => `GET /v1/emails/list?i=${i} HTTP/1.1\r\nHost: x\r\n${auth}${h2c}\r\n`);
  const { answers, upstream, events } = await pipeline(reqs, 10);
  t.same(
    answers.map((a) => [a.status, a.json?.url]),
    Array.from({ length: 10 }, (_, i) => [200, `/v1/emails/list?i=${i}`]),
  );
  t.equal(upstream.length, 10);
  t.ok(upstream.every((s) => s.headers['upgrade'] === undefined), 'no Upgrade reached the upstream');
  await waitFor(() => !(events().length < 10), 5_000, 'ten records');
  t.equal(events().length, 10, 'each recorded once');
});

t.test('a mix of plain requests, h2c upgrades, refusals and bodies: one answer each, in order', async (t) => {
  const reqs = [
    `GET /v1/emails/a HTTP/1.1\r\nHost: x\r\n${auth}\r\n`,
    `GET /v1/emails/b HTTP/1.1\r\nHost: x\r\n${h2c}\r\n`,
    `POST /v1/emails/c HTTP/1.1\r\nHost: x\r\n${auth}${h2c}Content-Length: 5\r\n\r\nhello`,
    `GET /v1/emails/d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer gw_live_nope\r\n\r\n`,
    `GET /v1/emails/e HTTP/1.1\r\nHost: x\r\n${auth}${h2c}\r\n`,
    `GET /v1/emails/f HTTP/1.1\r\nHost: x\r\n${auth}\r\n`,
  ];
  const { answers, upstream, events } = await pipeline(reqs, 6);
  t.same(
    answers.map((a) => a.status),
    [200, 401, 200, 401, 200, 200],
  );
  t.same(
    answers.filter((a) => a.status === 200).map((a) => a.json?.url),
    ['/v1/emails/a', '/v1/emails/c', '/v1/emails/e', '/v1/emails/f'],
    'the authorised ones, in order',
  );
  t.equal(answers[2]?.json?.bodyBytes, 5, 'the body went with its request');
  t.same(
    upstream.map((s) => s.url),
    ['/v1/emails/a', '/v1/emails/c', '/v1/emails/e', '/v1/emails/f'],
    'the refused ones never reached the upstream',
  );
  await waitFor(() => !(events().length < 6), 5_000, 'six records');
  t.same(
    events().map((e) => e.status),
    [200, 401, 200, 401, 200, 200],
    'each recorded once, in order',
  );
});

t.test('an h2c request pipelined behind a response larger than the socket buffers: both answered whole, in order', async (t) => {
  const { answers } = await pipeline(
    [`GET /v1/emails/bytes/300000 HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, `GET /v1/emails/after HTTP/1.1\r\nHost: x\r\n${auth}${h2c}\r\n`],
    2,
  );
  t.equal(answers[0]?.status, 200);
  t.equal(answers[0]?.body.length, 300_000, 'the large body whole');
  t.equal(answers[1]?.json?.url, '/v1/emails/after', 'then the h2c request');
});

t.test('an h2c request pipelined behind one the upstream never answers does not hold a shutdown past its drain', async (t) => {
  const own = await startStack({ overrides });
  const k = (await own.createKey()).key;
  const c = await openRaw(own.gw['production']!);
  c.write(`GET /v1/emails/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k}\r\n\r\nGET /v1/emails/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k}\r\n${h2c}\r\n`);
  await waitFor(() => !(own.upstream.seen.length === 0), 5_000, 'the first request reached the upstream');
  await within(own.gateway.close(300), 5_000, 'the gateway closed within its drain');
  await within(c.closed, 5_000, 'the half-served connection was closed');
  t.equal(own.upstream.seen.length, 1, 'the request behind it was never run');
  await own.admin.close();
  await own.store.close();
  await own.upstream.close();
  rmSync(own.dir, { recursive: true, force: true });
});
