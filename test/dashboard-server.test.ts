import { request } from 'undici';
import t from 'tap';
import { testConfig, ADMIN_TOKEN, TENANT_B_TOKEN } from './lib/stack.js';
import { sessionCall, signIn, startDashboardStack, USERS } from './lib/dashboard.js';

const stack = await startDashboardStack({ max_failed_sign_ins: 3, session_ttl_minutes: 60, sudo_minutes: 5 });
t.teardown(() => stack.close());
const url = stack.adminUrl;
const admin = { email: USERS.admin.email, password: USERS.admin.password };

t.test('signing in with email and password sets a session cookie: HttpOnly, SameSite=Strict, expiring, not Secure over plain HTTP', async (t) => {
  const s = await signIn(url, admin);
  t.match(s.setCookie, /^kg_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=3600; HttpOnly; SameSite=Strict$/);
  t.same(s.body.user, { name: 'ada', email: 'ada@example.com', role: 'admin', tenant: null });
  t.match(s.csrf, /^[A-Za-z0-9_-]{43}$/);
  const me = await sessionCall(url, 'GET', '/dashboard/api/session', { cookie: s.cookie });
  t.equal(me.status, 200);
  t.equal(me.body.user.name, 'ada');
  t.equal(me.headers['cache-control'], 'no-store');
  const list = await sessionCall(url, 'GET', '/v1/keys', { cookie: s.cookie });
  t.equal(list.status, 200, 'the cookie stands for a token on the admin API');
});

t.test('an admin token signs in too; a wrong email and a wrong password get the same answer', async (t) => {
  const s = await signIn(url, { token: ADMIN_TOKEN });
  t.equal(s.body.user.name, 'ops');
  t.equal(s.body.via, 'token');
  const headers = { origin: url };
  const wrongPassword = await sessionCall(url, 'POST', '/dashboard/api/sign-in', { ...headers, body: { email: admin.email, password: 'nope nope nope' } });
  const wrongEmail = await sessionCall(url, 'POST', '/dashboard/api/sign-in', { ...headers, body: { email: 'who@example.com', password: admin.password } });
  const wrongToken = await sessionCall(url, 'POST', '/dashboard/api/sign-in', { ...headers, body: { token: 'x'.repeat(40) } });
  for (const r of [wrongPassword, wrongEmail, wrongToken]) {
    t.equal(r.status, 401);
    t.equal(r.body.message, 'Those credentials are not recognised: check the email and password, or the token.');
    t.notOk(r.headers['set-cookie'], 'no cookie');
  }
  // Three failures from this address: the limit. The right password is refused now, until the window ends.
  const blocked = await sessionCall(url, 'POST', '/dashboard/api/sign-in', { ...headers, body: admin });
  t.equal(blocked.status, 429);
  t.equal(blocked.body.error, 'too_many_sign_ins');
  t.match(blocked.body.message, /Too many failed sign-ins from this address; try again in \d+ seconds/);
  t.equal(blocked.headers['retry-after'], '900');
  stack.clock.advance(15 * 60_000);
  t.equal((await sessionCall(url, 'POST', '/dashboard/api/sign-in', { ...headers, body: admin })).status, 200, 'allowed again after the window');
});

t.test('attempts sent all at once are counted as they start: no more than the limit are checked', async (t) => {
  stack.clock.advance(15 * 60_000);
  const tries = await Promise.all(
    Array.from({ length: 8 }, () => sessionCall(url, 'POST', '/dashboard/api/sign-in', { origin: url, body: { email: admin.email, password: 'guess guess guess' } })),
  );
  const statuses = tries.map((r) => r.body.message.startsWith('Too many') ? 'throttled' : 'checked');
  t.equal(statuses.filter((s) => s === 'checked').length, 3, 'three checked, the rest refused unchecked');
  stack.clock.advance(15 * 60_000);
});

t.test('sign-in from another origin, or with no Origin, is refused (no login CSRF)', async (t) => {
  const other = await sessionCall(url, 'POST', '/dashboard/api/sign-in', { origin: 'http://evil.example', body: admin });
  t.equal(other.status, 403);
  const none = await sessionCall(url, 'POST', '/dashboard/api/sign-in', { body: admin });
  t.equal(none.status, 403);
  t.notOk(none.headers['set-cookie']);
});

t.test('a session ends after session_ttl_minutes: the cookie then opens nothing', async (t) => {
  const s = await signIn(url, admin);
  stack.clock.advance(59 * 60_000);
  t.equal((await sessionCall(url, 'GET', '/v1/keys', { cookie: s.cookie })).status, 200, 'still open a minute before');
  stack.clock.advance(60_000);
  const after = await sessionCall(url, 'GET', '/v1/keys', { cookie: s.cookie });
  t.equal(after.status, 401);
  t.equal(after.body.message, 'Your dashboard session has ended; sign in again.');
  t.equal((await sessionCall(url, 'GET', '/dashboard/api/session', { cookie: s.cookie })).status, 401);
});

t.test('a mutation with a session needs the CSRF token and the dashboard origin; without a session or token it is refused', async (t) => {
  const { id } = await stack.createKey({ name: 'csrf target' });
  const s = await signIn(url, admin);
  const path = `/v1/keys/${id}/suspend`;
  const noCsrf = await sessionCall(url, 'POST', path, { cookie: s.cookie, origin: url, body: {} });
  t.equal(noCsrf.status, 403);
  t.match(noCsrf.body.message, /CSRF token/);
  const wrongCsrf = await sessionCall(url, 'POST', path, { cookie: s.cookie, origin: url, csrf: 'A'.repeat(43), body: {} });
  t.equal(wrongCsrf.status, 403);
  const noOrigin = await sessionCall(url, 'POST', path, { cookie: s.cookie, csrf: s.csrf, body: {} });
  t.equal(noOrigin.status, 403);
  t.match(noOrigin.body.message, /Origin/);
  const otherOrigin = await sessionCall(url, 'POST', path, { cookie: s.cookie, csrf: s.csrf, origin: 'http://evil.example', body: {} });
  t.equal(otherOrigin.status, 403);
  const none = await sessionCall(url, 'POST', path, { origin: url, csrf: s.csrf, body: {} });
  t.equal(none.status, 401, 'no session, no token');
  t.equal((await stack.adminCall('GET', `/v1/keys/${id}`)).body.status, 'active', 'nothing was changed');
  const ok = await sessionCall(url, 'POST', path, { cookie: s.cookie, csrf: s.csrf, origin: url, body: { reason: 'test' } });
  t.equal(ok.status, 200);
  t.equal(ok.body.status, 'suspended');
  const signOut = await sessionCall(url, 'POST', '/dashboard/api/sign-out', { cookie: s.cookie, origin: url });
  t.equal(signOut.status, 403, 'signing out needs the CSRF token too');
});

t.test('creating, regenerating and revoking need sudo mode: the password re-entered within sudo_minutes', async (t) => {
  const s = await signIn(url, admin);
  const opts = { cookie: s.cookie, csrf: s.csrf, origin: url };
  const created = await sessionCall(url, 'POST', '/v1/keys', { ...opts, body: { name: 'fresh sign-in' } });
  t.equal(created.status, 201, 'a fresh sign-in counts as sudo');
  t.equal(created.body.created_by, 'ada', 'created by the signed-in user');
  stack.clock.advance(5 * 60_000);
  for (const [path, body] of [
    ['/v1/keys', { name: 'later' }],
    [`/v1/keys/${created.body.id}/regenerate`, {}],
    [`/v1/keys/${created.body.id}/revoke`, {}],
  ] as const) {
    const r = await sessionCall(url, 'POST', path, { ...opts, body });
    t.equal(r.status, 403, `${path} outside sudo`);
    t.match(r.body.message, /sudo mode/);
  }
  t.equal((await sessionCall(url, 'POST', `/v1/keys/${created.body.id}/suspend`, { ...opts, body: {} })).status, 200, 'suspending needs no sudo');
  const wrong = await sessionCall(url, 'POST', '/dashboard/api/sudo', { ...opts, body: { password: 'not it at all' } });
  t.equal(wrong.status, 401);
  const sudo = await sessionCall(url, 'POST', '/dashboard/api/sudo', { ...opts, body: { password: admin.password } });
  t.equal(sudo.status, 200);
  t.equal(sudo.body.sudo_seconds_left, 300);
  const revoked = await sessionCall(url, 'POST', `/v1/keys/${created.body.id}/revoke`, { ...opts, body: { reason: 'done' } });
  t.equal(revoked.status, 200);
  t.equal(revoked.body.status, 'revoked');
  const audit = await stack.adminCall('GET', `/v1/audit?key_id=${created.body.id}`);
  t.ok(audit.body.data.some((e: any) => e.action === 'key.revoked' && e.actor === 'ada'), 'the audit log names the user');
});

t.test('a viewer session reads and cannot write; a tenant session sees its tenant only, by list or by URL', async (t) => {
  const viewer = await signIn(url, { email: USERS.viewer.email, password: USERS.viewer.password });
  t.equal((await sessionCall(url, 'GET', '/v1/keys', { cookie: viewer.cookie })).status, 200);
  const refused = await sessionCall(url, 'POST', '/v1/keys', { cookie: viewer.cookie, csrf: viewer.csrf, origin: url, body: { name: 'no' } });
  t.equal(refused.status, 403);
  t.match(refused.body.message, /viewer role may not/);

  const inB = await stack.createKey({ name: 'tenant b key' }, TENANT_B_TOKEN);
  const tenantA = await signIn(url, { email: USERS.tenantA.email, password: USERS.tenantA.password });
  const opts = { cookie: tenantA.cookie, csrf: tenantA.csrf, origin: url };
  const mine = await sessionCall(url, 'POST', '/v1/keys', { ...opts, body: { name: 'tenant a key' } });
  t.equal(mine.status, 201);
  const list = await sessionCall(url, 'GET', '/v1/keys?limit=100', { cookie: tenantA.cookie });
  t.same(
    list.body.data.map((k: any) => k.name),
    ['tenant a key'],
    'only its tenant’s keys',
  );
  t.equal((await sessionCall(url, 'GET', `/v1/keys/${inB.id}`, { cookie: tenantA.cookie })).status, 404, 'another tenant’s key by URL');
  t.equal((await sessionCall(url, 'POST', `/v1/keys/${inB.id}/suspend`, { ...opts, body: {} })).status, 404);
  t.equal((await sessionCall(url, 'GET', `/v1/keys/${inB.id}/events`, { cookie: tenantA.cookie })).status, 404);
});

t.test('a bearer token wins over a cookie sent beside it', async (t) => {
  const viewer = await signIn(url, { email: USERS.viewer.email, password: USERS.viewer.password });
  const r = await sessionCall(url, 'POST', '/v1/keys', { cookie: viewer.cookie, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: { name: 'by token' } });
  t.equal(r.status, 201);
  t.equal(r.body.created_by, 'ops');
});

t.test('the page: a strict CSP with no inline script, no-store; hashed assets cached for good, gzip when asked', async (t) => {
  for (const path of ['/dashboard', '/dashboard/keys', '/dashboard/keys/some-id']) {
    const res = await request(url + path);
    const html = await res.body.text();
    t.equal(res.statusCode, 200, path);
    t.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    t.equal(res.headers['cache-control'], 'no-store');
    t.equal(
      res.headers['content-security-policy'],
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
        `connect-src 'self' ${[stack.gw['production'], stack.gw['test']].sort().join(' ')}; ` +
        "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
      "its own origin, and the gateways' for Try it on the API docs page",
    );
    t.equal(res.headers['x-frame-options'], 'DENY');
    t.equal(res.headers['x-content-type-options'], 'nosniff');
    t.notMatch(html, /<script(?![^>]*\bsrc=)/, 'every script has a src');
    t.notMatch(html, /\son[a-z]+=/i, 'no inline event handlers');
    t.notMatch(html, /https?:\/\//, 'nothing from another origin');
  }
  const html = await (await request(url + '/dashboard')).body.text();
  const js = /src="(\/dashboard\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
  const css = /href="(\/dashboard\/assets\/app-[A-Z0-9]+\.css)"/.exec(html)?.[1];
  t.ok(js && css, 'content-hashed names');
  const plain = await request(url + js!);
  const body = Buffer.from(await plain.body.arrayBuffer());
  t.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
  t.equal(plain.headers['content-type'], 'text/javascript; charset=utf-8');
  t.notOk(plain.headers['content-encoding']);
  const gz = await request(url + css!, { headers: { 'accept-encoding': 'gzip' } });
  await gz.body.arrayBuffer();
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.equal(gz.headers['vary'], 'accept-encoding');
  const missing = await request(url + '/dashboard/assets/app-NOPE.js');
  t.equal(missing.statusCode, 404);
  await missing.body.text();
  const post = await request(url + '/dashboard/keys', { method: 'POST' });
  t.equal(post.statusCode, 405);
  await post.body.text();
});

t.test('hostile input: oversized and malformed sign-in bodies, bad and oversized cookies', async (t) => {
  // Each is a failed attempt, and counts; a new throttle window for each.
  const fresh = () => stack.clock.advance(15 * 60_000);
  fresh();
  const big = await sessionCall(url, 'POST', '/dashboard/api/sign-in', { origin: url, body: JSON.stringify({ email: 'a@b.c', password: 'x'.repeat(10_000) }) });
  t.equal(big.status, 413);
  fresh();
  const notJson = await sessionCall(url, 'POST', '/dashboard/api/sign-in', { origin: url, body: '{"email":', headers: { 'content-type': 'application/json' } });
  t.equal(notJson.status, 400);
  fresh();
  const array = await sessionCall(url, 'POST', '/dashboard/api/sign-in', { origin: url, body: [] });
  t.equal(array.status, 400);
  fresh();
  const wrongTypes = await sessionCall(url, 'POST', '/dashboard/api/sign-in', { origin: url, body: { email: ['a'], password: { x: 1 } } });
  t.equal(wrongTypes.status, 401);
  for (const cookie of ['kg_session=', 'kg_session=../../etc', `kg_session=${'A'.repeat(43)}`, 'kg_session', '=;;=;', `kg_session=${'x'.repeat(9000)}`]) {
    const r = await sessionCall(url, 'GET', '/v1/keys', { cookie });
    t.equal(r.status, 401, `cookie ${cookie.slice(0, 30)}`);
  }
});

t.test('config: a password_hash that is not one keygate makes, and an email used twice, are refused at load', async (t) => {
  t.throws(
    () => testConfig('http://127.0.0.1:1', { dashboard: { users: [{ name: 'x', email: 'x@example.com', role: 'admin', password_hash: 'hunter2' }] } }),
    /dashboard\.users\[0\]\.password_hash: must be a hash made by `keygate hash-password`/,
  );
  const [u] = [{ name: 'x', email: 'x@example.com', role: 'admin', password_hash: '$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$' + 'A'.repeat(43) }];
  t.throws(() => testConfig('http://127.0.0.1:1', { dashboard: { users: [u, { ...u, name: 'y', email: 'X@example.com' }] } }), /dashboard\.users\[1\]\.email: "x@example\.com" is used twice/);
  t.throws(() => testConfig('http://127.0.0.1:1', { dashboard: { users: [{ ...u, role: 'gateway' }] } }), /dashboard\.users\[0\]\.role/);
});
