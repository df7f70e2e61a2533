import t from 'tap';
import { loggedPath, micros, USER_AGENT_MAX } from '../gateway/access-log.js';
import { bearer, call, rawCall, startStack } from './lib/stack.js';
import { waitFor } from './lib/within.js';

// log.access: one JSON line per request with the path as sent (never the credential), method,
// route, user agent (bounded), listener and latencies rounded to the microsecond; no key in
// any line, whatever spelling or place the client used for it.

const stack = await startStack({
  overrides: (upstream) => ({
    keys: { query_param: 'api_key' },
    log: { level: 'info', access: true },
    apis: [
      {
        name: 'emails',
        path_prefix: '/v1/emails',
        upstream,
        unlisted: 'allow',
        routes: [{ method: 'POST', path: '/v1/emails/:id/send', scopes: ['send_email'] }],
      },
    ],
  }),
});
t.teardown(() => stack.close());
const prod = stack.gw['production']!;
const { key, id } = await stack.createKey({ scopes: ['send_email'] });
const secret = key.slice('gw_live_'.length);

type Line = Record<string, unknown>;
const lines = (): Line[] => stack.logs.map((l) => JSON.parse(l) as Line);

/** The access-log line of the request answered with `res` (found by its request id, once written). */
async function lineOf(res: { headers: Record<string, unknown> }): Promise<Line> {
  const rid = res.headers['x-request-id'];
  let found: Line | undefined;
  await waitFor(() => (found = lines().find((l) => l.msg === 'request' && l.request_id === rid)) !== undefined, 5_000, `the access line of ${String(rid)}`);
  return found!;
}

const hostPort = (url: string) => new URL(url).host;

t.test('a forwarded request: every field', async (t) => {
  const res = await call(`${prod}/v1/emails/42/send?draft=1&to=a%40b.c`, {
    method: 'POST',
    headers: { ...bearer(key), 'user-agent': 'billing-worker/2.3 (+https://example.test)' },
  });
  t.equal(res.status, 200);
  const l = await lineOf(res);
  t.equal(l.level, 'info');
  t.equal(l.method, 'POST');
  t.equal(l.path, '/v1/emails/42/send?draft=1&to=a%40b.c', 'the path and query as sent');
  t.equal(l.route, '/v1/emails/:id/send', 'the route template');
  t.equal(l.api, 'emails');
  t.equal(l.status, 200);
  t.equal(l.outcome, 'ok');
  t.equal(l.key_id, id);
  t.equal(l.user_agent, 'billing-worker/2.3 (+https://example.test)');
  t.equal(l.listener, hostPort(prod), 'the listener the request came in on, host:port');
  t.equal(l.environment, 'production');
  t.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  for (const field of ['latency_ms', 'upstream_ms'] as const) {
    t.type(l[field], 'number');
    t.match(String(l[field]), /^\d+(\.\d{1,3})?$/, `${field} in whole microseconds: ${String(l[field])}`);
  }
  t.ok((l.latency_ms as number) >= (l.upstream_ms as number));
});

t.test('route: the API prefix template for a request matching no rule, null with no API', async (t) => {
  const unlisted = await lineOf(await call(`${prod}/v1/emails/list`, { headers: bearer(key) }));
  t.equal(unlisted.route, '/v1/emails/*', 'unlisted: the prefix and *');
  t.equal(unlisted.path, '/v1/emails/list');
  const none = await lineOf(await call(`${prod}/v1/elsewhere`, { headers: bearer(key) }));
  t.equal(none.status, 404);
  t.equal(none.api, null);
  t.equal(none.route, null, 'no API matched: no route either');
  t.equal(none.path, '/v1/elsewhere');
});

t.test('the other listener is named by its own address and environment', async (t) => {
  const test = stack.gw['test']!;
  const res = await call(`${test}/v1/emails/list`, { headers: bearer(key) });
  const l = await lineOf(res);
  t.equal(l.listener, hostPort(test));
  t.equal(l.environment, 'test');
  t.equal(l.status, 401, 'a live key on the test listener: refusals are logged too');
  t.equal(l.outcome, res.body.error);
});

t.test('no user agent: null; a long one is cut', async (t) => {
  const none = await lineOf(await rawCall(prod, '/v1/emails/list', { headers: bearer(key) }));
  t.equal(none.user_agent, null);
  const long = `agent/${'x'.repeat(4_000)}`;
  const cut = await lineOf(await call(`${prod}/v1/emails/list`, { headers: { ...bearer(key), 'user-agent': long } }));
  t.equal(cut.user_agent, long.slice(0, USER_AGENT_MAX));
});

t.test('the credential parameter is removed from the logged path, in every spelling', async (t) => {
  for (const [sent, logged] of [
    [`/v1/emails/list?api_key=${key}`, '/v1/emails/list'],
    [`/v1/emails/list?a=1&api_key=${key}&b=2`, '/v1/emails/list?a=1&b=2'],
    [`/v1/emails/list?API_KEY=${key}&b=2`, '/v1/emails/list?b=2'],
    [`/v1/emails/list?api%5Fkey=${key}&b=2`, '/v1/emails/list?b=2'],
    [`/v1/emails/list?b=2;api_key=${key}`, '/v1/emails/list?b=2'],
    [`/v1/emails/list?api.key=${key}`, '/v1/emails/list'],
  ] as const) {
    const res = await rawCall(prod, sent);
    t.equal(res.status, 200, `${sent.replace(key, 'KEY')} authenticates`);
    t.equal((await lineOf(res)).path, logged);
  }
});

t.test('hostile: no key in any log line, wherever the client put it', async (t) => {
  const encoded = key.replace(/_/g, '%5F');
  const twice = key.replace(/_/g, '%255F');
  const fivefold = key.replace(/_/g, '%252525255F');
  const sends: [string, Record<string, string>][] = [
    [`/v1/emails/list?token=${key}`, {}],
    [`/v1/emails/list?token=${encoded}`, bearer(key)],
    [`/v1/emails/list?token=${twice}`, bearer(key)],
    [`/v1/emails/${key}`, bearer(key)],
    [`/v1/emails/${encoded}/x`, bearer(key)],
    [`/v1/emails/${fivefold}`, bearer(key)],
    [`/v1/emails/list?token=${fivefold}`, bearer(key)],
    ['/v1/emails/list', { ...bearer(key), 'user-agent': `x ${encoded}` }],
    ['/v1/emails/list', { ...bearer(key), 'user-agent': `curl/8 ${key}` }],
    ['/v1/emails/list', { ...bearer(key), 'user-agent': `${'u'.repeat(USER_AGENT_MAX - 20)}${key}` }],
    [`/v1/emails/list?api_key=${key}&api_key=other`, {}],
    [`/v1/elsewhere?api_key=${key}`, {}],
  ];
  for (const [path, headers] of sends) await lineOf(await rawCall(prod, path, { headers }));
  const all = stack.logs.join('');
  t.notOk(all.includes(key), 'the key');
  t.notOk(all.includes(secret), 'its secret part');
  t.notOk(all.includes(secret.slice(0, 20)), 'any long piece of it');
  t.notOk(all.includes(encoded) || all.includes(twice) || all.includes(fivefold), 'its escaped forms');
  t.ok(all.includes('[redacted]'), 'where it stood, the redaction');
});

t.test('loggedPath: the credential out, other bytes as sent, escaped keys redacted', async (t) => {
  const shape = /gw_[a-z]+_[0-9A-Za-z]{40,}/g;
  const k = `gw_live_${'A'.repeat(49)}`;
  t.equal(loggedPath('/a?x=%20&y=1', 'api_key', shape), '/a?x=%20&y=1', 'escapes kept when they hide no key');
  t.equal(loggedPath(`/a?api_key=${k}`, null, shape), '/a?api_key=[redacted]', 'no parameter configured: a plain key is redacted too');
  t.equal(loggedPath(`/a/${k.replaceAll('_', '%252525255F')}`, null, shape), '/a/[redacted]', 'however many times its escapes were escaped');
  t.equal(loggedPath(`/a?t=${k.replaceAll('_', '%5F')}&x=%20`, null, shape), '/a?t=[redacted]&x= ', 'decoded, then redacted');
});

t.test('micros: whole microseconds without float noise', async (t) => {
  t.equal(micros(88.77631800000017), 88.776);
  t.equal(JSON.stringify(micros(0.1 + 0.2)), '0.3');
  t.equal(micros(1.0005), 1.001);
  t.equal(micros(12), 12);
});
