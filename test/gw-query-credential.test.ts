import t from 'tap';
import { bearer, call, rawCall, startStack } from './lib/stack.js';

// keys.query_param: the credential parameter is found by its decoded name, every occurrence
// is removed before forwarding, and different values in several occurrences are refused.

const stack = await startStack({
  overrides: (upstream) => ({
    keys: { query_param: 'api_key' },
    apis: [
      { name: 'emails', path_prefix: '/v1/emails', upstream, unlisted: 'allow' },
      { name: 'passthrough', path_prefix: '/v1/pass', upstream, forward_credential: true, unlisted: 'allow' },
    ],
  }),
});
t.teardown(() => stack.close());
const prod = stack.gw['production']!;
const { key, id } = await stack.createKey();
const other = (await stack.createKey()).key;
const last = () => stack.upstream.seen[stack.upstream.seen.length - 1]!;

t.test('the parameter is matched by its decoded name', async (t) => {
  for (const name of ['api%5Fkey', 'api%5fkey', '%61pi_key', 'api_k%65y']) {
    const res = await rawCall(prod, `/v1/emails/list?${name}=${key}&a=1`);
    t.equal(res.status, 200, `${name} is api_key`);
    t.equal(last().headers['x-key-id'], id);
    t.equal(last().url, '/v1/emails/list?a=1', `${name} is not forwarded`);
  }
});

t.test('every occurrence is removed; other parameters stay byte for byte', async (t) => {
  const res = await rawCall(prod, `/v1/emails/list?a=1&api_key=${key}&q=a+b%20c&api%5Fkey=${key}&api_keyx=2&xapi_key=3&api_key`);
  t.equal(res.status, 400, 'a bare api_key is an empty value, unlike the others');
  const ok = await rawCall(prod, `/v1/emails/list?a=1&api_key=${key}&q=a+b%20c&api%5Fkey=${key}&api_keyx=2&xapi_key=3`);
  t.equal(ok.status, 200, 'the same value twice is one credential');
  t.equal(last().url, '/v1/emails/list?a=1&q=a+b%20c&api_keyx=2&xapi_key=3');
});

t.test('a credential in the header: the parameter is still removed before forwarding', async (t) => {
  const res = await rawCall(prod, '/v1/emails/list?api%5Fkey=not-a-key&x=1', { headers: bearer(key) });
  t.equal(res.status, 200);
  t.equal(last().url, '/v1/emails/list?x=1');
});

t.test('different values in several occurrences are refused with 400 bad_request, never forwarded', async (t) => {
  const before = stack.upstream.seen.length;
  for (const query of [`api_key=${key}&api_key=${other}`, `api_key=${other}&api%5Fkey=${key}`, `api_key=${key}&api_key=`]) {
    const res = await call(`${prod}/v1/emails/list?${query}`);
    t.equal(res.status, 400, query);
    t.equal(res.body?.error, 'bad_request');
    t.match(res.body?.message, /more than once/);
    t.ok(res.body?.request_id);
  }
  t.equal(stack.upstream.seen.length, before, 'nothing reached the upstream');
});

t.test('forward_credential keeps the parameter as sent', async (t) => {
  const res = await rawCall(prod, `/v1/pass/x?api%5Fkey=${key}&b=2`);
  t.equal(res.status, 200);
  t.equal(last().url, `/v1/pass/x?api%5Fkey=${key}&b=2`);
});
