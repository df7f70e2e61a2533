import t from 'tap';
import { exchange, responses } from '../lib/raw-socket.js';
import { startStack } from '../lib/stack.js';

// Percent-encoded bytes beyond ASCII must spell UTF-8 (README, Errors): an overlong form of
// "." or "/" is read by some decoders as the character it imitates, and would climb out of the
// API or split a segment the gateway matched whole.

const stack = await startStack({
  overrides: (upstream) => ({
    apis: [{ name: 'files', path_prefix: '/v1/files', upstream, routes: [{ method: 'GET', path: '/v1/files/*' }] }],
  }),
});
t.teardown(() => stack.close());
const gw = stack.gw['production']!;
const { key } = await stack.createKey();

async function get(path: string) {
  const before = stack.upstream.seen.length;
  const [res] = responses(await exchange(gw, `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`));
  return { res, forwarded: stack.upstream.seen.length > before };
}

t.test('overlong, surrogate and stray bytes are refused with 400, never forwarded', async (t) => {
  for (const path of [
    '/v1/files/%C0%AE%C0%AE/secret',
    '/v1/files/a%C0%AFb',
    '/v1/files/%E0%80%AF',
    '/v1/files/%F0%80%80%AF',
    '/v1/files/%ED%A0%80',
    '/v1/files/%FF',
    '/v1/files/%C3',
    '/v1/files/%80abc',
  ]) {
    const { res, forwarded } = await get(path);
    t.equal(res?.status, 400, path);
    t.equal(res?.json?.error, 'bad_request');
    t.match(res?.json?.message, /UTF-8/);
    t.notOk(forwarded, `${path} not forwarded`);
  }
});

t.test('UTF-8 escapes pass, forwarded as written', async (t) => {
  const { res, forwarded } = await get('/v1/files/caf%C3%A9/%E2%82%AC');
  t.equal(res?.status, 200);
  t.ok(forwarded);
  t.equal(stack.upstream.seen[stack.upstream.seen.length - 1]!.url, '/v1/files/caf%C3%A9/%E2%82%AC');
});
