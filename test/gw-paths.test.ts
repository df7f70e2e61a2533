import { connect } from 'node:net';
import t from 'tap';
import { bearer, startStack } from './lib/stack.js';

// Request targets and paths (docs/architecture.md, Paths; gateway/routes.ts canonicalPath): what is
// refused with 400 and never forwarded, what a route rule sees, what the upstream receives.

const stack = await startStack({
  overrides: (upstream) => ({
    apis: [
      { name: 'emails', path_prefix: '/v1/emails', upstream, unlisted: 'allow' },
      { name: 'stripped', path_prefix: '/v1/stripped', upstream: `${upstream}/base`, strip_prefix: true, unlisted: 'allow' },
      {
        name: 'core',
        path_prefix: '/v1',
        upstream,
        routes: [
          { method: '*', path: '/v1/admin/*', scopes: ['send_email'] },
          { method: 'HEAD', path: '/v1/reports/summary', scopes: [] },
          { method: 'GET', path: '/v1/reports/*', scopes: ['read_contacts'] },
          { method: '*', path: '/v1/*', scopes: [] },
        ],
      },
    ],
  }),
});
t.teardown(() => stack.close());
const prod = new URL(stack.gw['production']!);
const weak = (await stack.createKey({ scopes: ['read_campaigns'] })).key;
const strong = (await stack.createKey({ scopes: ['read_campaigns', 'send_email', 'read_contacts'] })).key;
const seen = () => stack.upstream.seen.length;
const lastUrl = () => stack.upstream.seen[stack.upstream.seen.length - 1]!.url;

/** Sends the request line exactly as written (HTTP clients would resolve or encode parts of it). */
function send(target: string, key: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string>; body: any }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(prod.port), prod.hostname, () => {
      socket.write(`${method} ${target} HTTP/1.1\r\nHost: ${prod.host}\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`, 'latin1');
    });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (text += c));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: json });
    });
  });
}

t.test('a target with "#" or another character not allowed in a path is refused with 400 JSON, never forwarded', async (t) => {
  const before = seen();
  for (const target of [
    '/v1/emails/x#frag',
    '/v1/emails/list?a=1#frag',
    '/v1/emails/a"b',
    '/v1/emails/a\\b',
    '/v1/emails/a<b>',
    '/v1/emails/a{b}',
    '/v1/emails/a|b',
    '/v1/emails/a^b',
    '/v1/emails/a`b',
    '/v1/emails/a[0]',
  ]) {
    const res = await send(target, strong);
    t.equal(res.status, 400, `${target}: 400`);
    t.match(res.headers['content-type'], /^application\/json/, `${target}: JSON`);
    t.equal(res.body?.error, 'bad_request', `${target}: bad_request`);
    t.type(res.body?.message, 'string');
    t.ok(res.body?.request_id, `${target}: request_id`);
    t.equal(res.headers['x-request-id'], res.body?.request_id);
  }
  t.equal(seen(), before, 'nothing reached the upstream');
});

t.test('a route that needs a scope cannot be dodged by another spelling of its path', async (t) => {
  t.equal((await send('/v1/admin/x', weak)).status, 403, 'the plain path needs send_email');
  for (const target of ['/v1//admin/x', '/v1/admin//x', '//v1/admin/x', '/v1/%61dmin/x', '/v1/%61%64%6D%69%6E/x', '/v1/admin;x/y', '/v1/admin;/x']) {
    const res = await send(target, weak);
    t.equal(res.status, 403, `${target}: 403`);
    t.equal(res.body?.error, 'insufficient_permissions', target);
  }
});

t.test('paths that upstreams read in different ways are refused with 400 and never forwarded', async (t) => {
  const before = seen();
  for (const target of [
    '/v1/admin;x/..;/x',
    '/v1/reports/..;/admin/x',
    '/v1/x/.;/admin',
    '/v1/x/..%3B/admin',
    '/v1/x/%2e%2E/admin',
    '/v1/x/.%2e/admin',
    '/v1/x/%252e%252e/admin',
    '/v1/admin%2Fx',
    '/v1%2fadmin/x',
    '/v1/x%5Cadmin',
    '/v1/x%252Fadmin',
    '/v1/admin/x%00.json',
    '/v1/admin/x%0a',
    '/v1/;x/admin/y',
    '/v1/admin/%zz',
    '/v1/admin/100%',
  ]) {
    const res = await send(target, strong);
    t.equal(res.status, 400, `${target}: 400`);
    t.equal(res.body?.error, 'bad_request', target);
  }
  t.equal(seen(), before, 'nothing reached the upstream');
});

t.test('the upstream gets the segments the rule was matched on, escapes as the client wrote them', async (t) => {
  const cases: [string, string][] = [
    ['/v1//admin//x', '/v1/admin/x'],
    ['//v1/emails/list/', '/v1/emails/list/'],
    ['/v1/%61dmin/x%20y', '/v1/%61dmin/x%20y'],
    ['/v1/admin;v=1/x?q=a%26b', '/v1/admin;v=1/x?q=a%26b'],
    ['/v1/files/.well-known/a..b', '/v1/files/.well-known/a..b'],
  ];
  for (const [target, upstream] of cases) {
    const res = await send(target, strong);
    t.equal(res.status, 200, `${target}: 200`);
    t.equal(lastUrl(), upstream, `${target} reaches the upstream as ${upstream}`);
  }
});

t.test('strip_prefix removes the prefix from the path as sent: escapes reach the upstream unchanged', async (t) => {
  const cases: [string, string][] = [
    ['/v1/stripped/items/caf%C3%A9%20x?q=%20', '/base/items/caf%C3%A9%20x?q=%20'],
    ['/v1/stripped/a%41b', '/base/a%41b'],
    ['/v1/%73tripped/items/7', '/base/items/7'],
    ['/v1/%73tripped', '/base'],
    ['/v1//stripped/items', '/base/items'],
    ['/v1/stripped;v=2/items/%7E', '/base/items/%7E'],
  ];
  for (const [target, upstream] of cases) {
    const res = await send(target, strong);
    t.equal(res.status, 200, `${target}: 200`);
    t.equal(lastUrl(), upstream, `${target} reaches the upstream as ${upstream}`);
  }
});

t.test('HEAD follows the GET rules: it cannot skip a scope that GET needs', async (t) => {
  t.equal((await send('/v1/reports/q1', weak, 'GET')).status, 403, 'GET needs read_contacts');
  const head = await send('/v1/reports/q1', weak, 'HEAD');
  t.equal(head.status, 403, 'so does HEAD, though no rule names HEAD');
  t.equal((await send('/v1/reports/q1', strong, 'HEAD')).status, 200, 'with the scope HEAD passes');
  t.equal((await send('/v1/admin/x', weak, 'HEAD')).status, 403, 'a "*" rule guards HEAD as it guards GET');
  t.equal((await send('/v1/reports/summary', weak, 'HEAD')).status, 200, 'a HEAD rule listed first wins');
  t.equal((await send('/v1/reports/summary', weak, 'GET')).status, 403, 'and leaves GET to its own rule');
});
