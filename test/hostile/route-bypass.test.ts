import t from 'tap';
import { exchange, responses } from '../lib/raw-socket.js';
import { startStack } from '../lib/stack.js';

// Spellings of a guarded path that upstream routers read as the guarded path (docs/architecture.md,
// Route rules): each gets the guarded rule or is refused, and a request no rule matches is refused
// (default deny) unless its API says otherwise. Requests are written on raw sockets, so the
// request line reaches the gateway exactly as written.

const stack = await startStack({
  overrides: (upstream) => ({
    apis: [
      {
        name: 'emails',
        path_prefix: '/v1/emails',
        upstream,
        routes: [
          { method: 'POST', path: '/v1/emails/send', scopes: ['send_email'], rate_limit: { limit: 2, window_seconds: 60 } },
          { method: 'GET', path: '/v1/emails/*', scopes: ['read_campaigns'] },
        ],
      },
      { name: 'open', path_prefix: '/v1/open', upstream, unlisted: 'allow', routes: [{ method: 'POST', path: '/v1/open/send', scopes: ['send_email'] }] },
      {
        name: 'guarded',
        path_prefix: '/v1/guarded',
        upstream,
        unlisted: { scopes: ['read_contacts'] },
        routes: [{ method: 'POST', path: '/v1/guarded/send', scopes: ['send_email'] }],
      },
      { name: 'strict', path_prefix: '/v1/strict', upstream, case_sensitive: true, routes: [{ method: 'POST', path: '/v1/strict/send', scopes: [] }] },
      { name: 'bare', path_prefix: '/v1/bare', upstream },
      {
        name: 'files',
        path_prefix: '/v1/files',
        upstream,
        routes: [
          { method: 'GET', path: '/v1/files/report', scopes: ['send_email'] },
          { method: 'GET', path: '/v1/files/*', scopes: ['read_campaigns'] },
        ],
      },
    ],
  }),
});
t.teardown(() => stack.close());
const prod = new URL(stack.gw['production']!);
const reader = (await stack.createKey({ scopes: ['read_campaigns'] })).key;
const contacts = (await stack.createKey({ scopes: ['read_contacts'] })).key;
const sender = (await stack.createKey({ scopes: ['read_campaigns', 'send_email'] })).key;
const seen = () => stack.upstream.seen.length;
let ids = 0;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: any;
  requestId: string;
}

/** Sends the request line exactly as written (HTTP clients would resolve or encode parts of it). */
async function send(method: string, target: string, key: string): Promise<Answer> {
  const requestId = `bypass-${++ids}`;
  const text = await exchange(
    stack.gw['production']!,
    `${method} ${target} HTTP/1.1\r\nHost: ${prod.host}\r\nAuthorization: Bearer ${key}\r\nX-Request-Id: ${requestId}\r\n` +
      `Content-Length: 0\r\nConnection: close\r\n\r\n`,
  );
  const [res] = responses(text);
  return { status: res?.status ?? 0, headers: res?.headers ?? {}, body: res?.json, requestId };
}

/** The usage event of one request, once its response's close has recorded it. */
async function eventOf(requestId: string) {
  for (let i = 0; i < 100; i++) {
    const e = stack.events.find((x) => x.request_id === requestId);
    if (e !== undefined) return e;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no usage event for ${requestId}`);
}

const VARIANTS = [
  '/v1/emails/SEND',
  '/v1/emails/Send',
  '/v1/emails/%53end',
  '/v1/emails/%73%65%6E%64',
  '/v1/emails/send%20',
  '/v1/emails/%20send',
  '/v1/emails/send.json',
  '/v1/emails/send/',
  '/v1/emails/send;x=1',
  '/v1/emails//send',
  '/v1/emails/SEND.JSON',
  '/v1/emails/send%2Ejson',
  '/v1/emails/send.',
  '/V1/EMAILS/SEND',
  '/v1/emails/send?x=1',
];

t.test('a read-only key cannot send through any spelling of /v1/emails/send: 403 or 404, nothing forwarded', async (t) => {
  const before = seen();
  for (const target of ['/v1/emails/send', ...VARIANTS]) {
    const res = await send('POST', target, reader);
    t.ok(res.status === 403 || res.status === 404, `${target}: ${res.status}`);
    if (res.status === 403) {
      t.equal(res.body?.error, 'insufficient_permissions', `${target}: insufficient_permissions`);
      t.same(res.body?.missing_scopes, ['send_email'], `${target}: the send rule's scope is missing`);
    } else {
      t.equal(res.body?.error, 'route_not_found', `${target}: route_not_found`);
    }
  }
  t.equal(seen(), before, 'the upstream received nothing');
});

t.test('the spellings get the send rule itself: its rate limit is spent by /SEND and the others', async (t) => {
  const before = seen();
  const first = await send('POST', '/v1/emails/SEND', sender);
  t.equal(first.status, 200, '/SEND with send_email: forwarded');
  t.match(first.headers['ratelimit-policy'], /;q=2;w=60/, "the route's own limit applies");
  t.equal(stack.upstream.seen[stack.upstream.seen.length - 1]!.url, '/v1/emails/SEND', 'forwarded as the client wrote it');
  t.equal((await eventOf(first.requestId)).route, '/v1/emails/send', 'recorded under the send rule');
  t.equal((await send('POST', '/v1/emails/%53end.json', sender)).status, 200, 'the second token');
  const third = await send('POST', '/v1/emails/send%20', sender);
  t.equal(third.status, 429, 'the route limit, spent by the spellings, refuses the plain spelling too');
  t.equal(third.body?.error, 'rate_limit_exceeded');
  t.equal((await send('POST', '/v1/emails/send', sender)).status, 429, 'and the plain path');
  t.equal(seen(), before + 2, 'only the two admitted requests were forwarded');
});

t.test('a request no rule matches is 404 route_not_found, recorded, nothing forwarded', async (t) => {
  const before = seen();
  for (const [method, target] of [
    ['PUT', '/v1/emails/send'],
    ['DELETE', '/v1/emails/x'],
    ['POST', '/v1/emails/other'],
    ['POST', '/v1/emails'],
    ['GET', '/v1/bare/anything'],
    ['GET', '/v1/bare'],
  ] as const) {
    const res = await send(method, target, sender);
    t.equal(res.status, 404, `${method} ${target}: 404`);
    t.equal(res.body?.error, 'route_not_found', `${method} ${target}: route_not_found`);
    t.match(res.body?.message, /No route of this API matches/, 'the message names the cause');
    const event = await eventOf(res.requestId);
    t.equal(event.outcome, 'route_not_found', 'recorded with its outcome');
    t.equal(event.status, 404);
    t.equal(event.route, null);
  }
  t.equal(seen(), before, 'nothing forwarded');
  t.equal((await send('GET', '/v1/emails/list', reader)).status, 200, 'a listed path still works');
  t.equal((await send('HEAD', '/v1/emails/list', reader)).status, 200, 'HEAD follows the GET rule');
});

t.test('a path whose suffix forms match different rules is refused as ambiguous, not given either', async (t) => {
  const before = seen();
  for (const target of ['/v1/files/report.json', '/v1/files/REPORT.csv', '/v1/files/report.tar.gz']) {
    const res = await send('GET', target, sender);
    t.equal(res.status, 404, `${target}: 404`);
    t.equal(res.body?.error, 'route_not_found');
    t.match(res.body?.message, /ambiguous/);
  }
  t.equal((await send('GET', '/v1/files/other.json', reader)).status, 200, 'both forms on one rule: that rule');
  t.equal((await send('GET', '/v1/files/report', reader)).status, 403, 'the plain path gets its rule');
  t.equal(seen(), before + 1);
});

t.test('unlisted: allow lets unmatched requests through needing no scope; listed ones keep their rule', async (t) => {
  const before = seen();
  t.equal((await send('GET', '/v1/open/anything', contacts)).status, 200, 'unmatched: no scope needed');
  t.equal((await send('POST', '/v1/open/other', contacts)).status, 200);
  const res = await send('POST', '/v1/open/SEND.json', contacts);
  t.equal(res.status, 403, 'a spelling of the listed rule still needs its scope');
  t.equal(res.body?.error, 'insufficient_permissions');
  t.equal(seen(), before + 2);
});

t.test('unlisted: { scopes } lets unmatched requests through needing those scopes', async (t) => {
  const before = seen();
  t.equal((await send('GET', '/v1/guarded/anything', contacts)).status, 200, 'held: forwarded');
  const res = await send('GET', '/v1/guarded/anything', reader);
  t.equal(res.status, 403, 'not held: refused');
  t.equal(res.body?.error, 'insufficient_permissions');
  t.same(res.body?.missing_scopes, ['read_contacts']);
  const listed = await send('POST', '/v1/guarded/Send', contacts);
  t.equal(listed.status, 403, 'a listed rule needs its own scopes, not the unlisted ones');
  t.same(listed.body?.missing_scopes, ['send_email']);
  t.equal(seen(), before + 1);
});

t.test('case_sensitive: true reads /SEND as another path, refused under default deny', async (t) => {
  const before = seen();
  t.equal((await send('POST', '/v1/strict/send', reader)).status, 200, 'the rule as written');
  t.equal((await send('POST', '/v1/strict/%73end.json', reader)).status, 200, 'escapes and suffixes still read as the rule');
  for (const target of ['/v1/strict/SEND', '/v1/strict/Send', '/v1/strict/%53end']) {
    const res = await send('POST', target, reader);
    t.equal(res.status, 404, `${target}: another path`);
    t.equal(res.body?.error, 'route_not_found');
  }
  t.equal(seen(), before + 2);
});

t.test('characters whose case forms are ASCII letters are refused in a case-insensitive API', async (t) => {
  const before = seen();
  // ſ (U+017F) upper-cases to S, the Kelvin sign lower-cases to k.
  for (const target of ['/v1/emails/%C5%BFend', '/v1/open/%E2%84%AAey']) {
    const res = await send('POST', target, sender);
    t.equal(res.status, 404, `${target}: 404`);
    t.match(res.body?.message, /ambiguous/);
  }
  t.equal(seen(), before, 'nothing forwarded');
});
