import t from 'tap';
import { exchange, responses } from '../lib/raw-socket.js';
import { bearer, catchAllApi, startStack } from '../lib/stack.js';

// What a client writes into headers and the query cannot reach the upstream as the gateway's
// word (docs/operations.md, Security): underscore spellings of identity and forwarding headers,
// a second credential next to the one that was checked, query-name variants of the credential.

const stack = await startStack({
  overrides: (upstream) => ({
    keys: { query_param: 'api_key' },
    apis: [
      catchAllApi(upstream),
      { name: 'pass', path_prefix: '/v1/pass', upstream, forward_credential: true, routes: [{ method: '*', path: '/v1/pass/*' }] },
    ],
  }),
});
t.teardown(() => stack.close());
const gw = stack.gw['production']!;
const { key, id } = await stack.createKey({ scopes: ['read_campaigns'] });
const other = (await stack.createKey({ scopes: ['read_campaigns', 'send_email'] })).key;
const last = () => stack.upstream.seen[stack.upstream.seen.length - 1]!;

async function send(head: string) {
  const before = stack.upstream.seen.length;
  const [res] = responses(await exchange(gw, `${head}Host: x\r\nConnection: close\r\n\r\n`));
  return { res, forwarded: stack.upstream.seen.length > before };
}

t.test('underscore spellings of identity, forwarding and request-id headers never reach the upstream', async (t) => {
  const spoofs = ['X_Key_Id', 'X_Key_Scopes', 'x_key_environment', 'X_Application_Id', 'X_Forwarded_For', 'X-Forwarded_Host', 'X_Request_Id', 'Transfer_Encoding'];
  const { res, forwarded } = await send(`GET /v1/emails/list HTTP/1.1\r\nAuthorization: Bearer ${key}\r\n${spoofs.map((h) => `${h}: forged\r\n`).join('')}X_Other: kept\r\n`);
  t.equal(res?.status, 200);
  t.ok(forwarded);
  const raw = last().rawHeaders;
  const names = raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  for (const h of spoofs) t.notOk(names.includes(h.toLowerCase()), `${h} dropped`);
  t.notOk(raw.includes('forged'), 'no forged value reached the upstream');
  t.equal(last().headers['x-key-id'], id, "the gateway's own X-Key-Id");
  t.equal(last().headers['x_other'], 'kept', 'other underscore headers pass by default');
});

t.test('headers.underscores: drop removes every header with an underscore, as nginx does', async (t) => {
  const strict = await startStack({
    overrides: (upstream) => ({
      headers: { underscores: 'drop' },
      apis: [catchAllApi(upstream)],
    }),
  });
  t.teardown(() => strict.close());
  const k = (await strict.createKey()).key;
  const [res] = responses(
    await exchange(strict.gw['production']!, `GET /v1/emails/list HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k}\r\nX_Other: gone\r\nX-Dash: kept\r\nConnection: close\r\n\r\n`),
  );
  t.equal(res?.status, 200);
  const seen = strict.upstream.seen[strict.upstream.seen.length - 1]!;
  t.equal(seen.headers['x_other'], undefined, 'dropped');
  t.equal(seen.headers['x-dash'], 'kept');
});

t.test('forward_credential forwards exactly the credential that was checked: no second Authorization, no query copy', async (t) => {
  const { res, forwarded } = await send(
    `GET /v1/pass/x?api_key=${other}&API_KEY=${other}&api_key[]=${other}&b=2 HTTP/1.1\r\nAuthorization: Bearer ${key}\r\nAuthorization: Bearer ${other}\r\nAuthorization_: Bearer ${other}\r\n`,
  );
  t.equal(res?.status, 200);
  t.ok(forwarded);
  const seen = last();
  const auths = seen.rawHeaders.filter((_, i) => i % 2 === 1 && seen.rawHeaders[i - 1]!.toLowerCase() === 'authorization');
  t.same(auths, [`Bearer ${key}`], 'one Authorization, the checked one');
  t.equal(seen.headers['x-key-id'], id, 'authorised by the first');
  t.equal(seen.url, '/v1/pass/x?b=2', 'no copy of any key in the query');
});

t.test('configured header names with "_" are dropped in both spellings, as are headers Connection names with "_"', async (t) => {
  const own = await startStack({
    overrides: (upstream) => ({
      keys: { header: 'x_api_key' },
      headers: { key_id: 'x_key_id' },
      apis: [catchAllApi(upstream)],
    }),
  });
  t.teardown(() => own.close());
  const k = await own.createKey();
  const [res] = responses(
    await exchange(
      own.gw['production']!,
      `GET /v1/emails/list HTTP/1.1\r\nHost: x\r\nx_api_key: ${k.key}\r\nX-Api-Key: ${other}\r\nX-Key-Id: forged\r\nX_Key_Id: forged\r\n` +
        'Connection: X_Hop, close\r\nX-Hop: secret\r\nX_Hop: secret\r\n\r\n',
    ),
  );
  t.equal(res?.status, 200);
  const seen = own.upstream.seen[own.upstream.seen.length - 1]!;
  t.notOk(seen.rawHeaders.includes('forged'), 'no forged identity');
  t.same(seen.headers['x_key_id'], k.id, "only the gateway's x_key_id");
  t.notOk(seen.rawHeaders.includes(k.key) || seen.rawHeaders.includes(other), 'no credential in either spelling');
  t.notOk(seen.rawHeaders.includes('secret'), 'the hop-by-hop header in either spelling');
});

t.test('spellings of the credential parameter that PHP, ASP.NET or ";"-splitting parsers read as it never reach the upstream', async (t) => {
  for (const q of ['api.key', 'api+key', '+api_key', 'api[key', 'ap%C4%B1_key', 'API%20KEY', 'api_key%5B%5D']) {
    const { res } = await send(`GET /v1/emails/list?${q}=${other}&z=1 HTTP/1.1\r\nAuthorization: Bearer ${key}\r\n`);
    t.equal(res?.status, 200, q);
    t.equal(last().url, '/v1/emails/list?z=1', `${q} removed`);
  }
  const semi = await send(`GET /v1/emails/list?z=1;api_key=${other};y=2 HTTP/1.1\r\nAuthorization: Bearer ${key}\r\n`);
  t.equal(semi.res?.status, 200);
  t.equal(last().url, '/v1/emails/list?z=1;y=2', 'a ";"-separated copy removed, the rest kept as sent');
  const twoInQuery = await send(`GET /v1/emails/list?api_key=${key};api.key=${other} HTTP/1.1\r\n`);
  t.equal(twoInQuery.res?.status, 400, 'two different keys in the query, however spelled');
  t.notOk(twoInQuery.forwarded);
});

t.test('query-name variants of the credential (any case, [] forms) are the credential: removed, or refused when they differ', async (t) => {
  for (const q of [`API_KEY=${key}`, `Api_Key=${key}`, `api_key[]=${key}`, `api_key[0]=${key}`]) {
    const { res } = await send(`GET /v1/emails/list?${q}&z=1 HTTP/1.1\r\n`);
    t.equal(res?.status, 200, `${q} is read as the credential`);
    t.equal(last().url, '/v1/emails/list?z=1', 'and not forwarded');
  }
  const { res, forwarded } = await send(`GET /v1/emails/list?api_key=${key}&API_KEY=${other} HTTP/1.1\r\n`);
  t.equal(res?.status, 400, 'two different keys in the query');
  t.equal(res?.json?.error, 'bad_request');
  t.notOk(forwarded);
  const header = await send(`GET /v1/emails/list?api_key[]=${other} HTTP/1.1\r\n${Object.entries(bearer(key))[0]!.join(': ')}\r\n`);
  t.equal(header.res?.status, 200);
  t.equal(last().url, '/v1/emails/list', 'the query copy is removed when the header carried the key');
});
