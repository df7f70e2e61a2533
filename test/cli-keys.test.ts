import t from 'tap';
import { runCli } from './lib/cli.js';
import { ADMIN_TOKEN, VIEWER_TOKEN, bearer, call, startStack } from './lib/stack.js';

// `keygate keys …` (docs/cli.md) as a child process against a real admin plane and gateway
// (test/lib/stack.ts): every verb, its table and its --json, the key printed once and working,
// the API's refusals as exit 1 with the error code and request id, and names from the API
// shown inert in a terminal. test/cli-client.test.ts has the other nouns and exits 2 and 3.

// Each CLI run is a child starting through tsx: 1-4 s on a loaded two-core machine.
t.setTimeout(300_000);
const stack = await startStack();
t.teardown(() => stack.close());
const prod = stack.gw.production!;

/** `keygate ARGS` against the stack, the token in KEYGATE_TOKEN. */
const kg = (args: string[], token = ADMIN_TOKEN) =>
  runCli(args, { env: { KEYGATE_URL: stack.adminUrl, KEYGATE_TOKEN: token }, timeoutMs: 60_000 });
const json = (r: { stdout: string }) => JSON.parse(r.stdout);
const count = (haystack: string, needle: string) => haystack.split(needle).length - 1;

t.test('create prints the key once, with a warning, and the key works through the gateway', async (t) => {
  const [human, asJson] = await Promise.all([
    kg(['keys', 'create', '--name', 'ci', '--environment', 'production', '--scopes', 'read_campaigns,send_email', '--meta', 'owner=ops', '--expires', '30d']),
    kg(['keys', 'create', '--name', 'ci-json', '--environment', 'production', '--scopes', 'read_campaigns,send_email', '--json']),
  ]);
  t.equal(human.code, 0, human.stderr);
  const key = /^key: (\S+)$/m.exec(human.stdout)?.[1];
  t.ok(key, 'the key is on its own line');
  t.equal(count(human.stdout + human.stderr, key!), 1, 'the key appears once, the curl example shows <key>');
  t.match(human.stdout, /^created key_\w+ "ci" \(production, active\)$/m);
  t.match(human.stdout, /Authorization: Bearer <key>/);
  t.match(human.stderr, /only time the key is shown/);
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key!) })).status, 200, 'the printed key is accepted');

  t.equal(asJson.code, 0, asJson.stderr);
  const body = json(asJson);
  t.match(body, { name: 'ci-json', environment: 'production', scopes: ['read_campaigns', 'send_email'], status: 'active' });
  t.type(body.key, 'string');
  t.type(body.curl, 'string');
  t.equal(count(asJson.stdout, body.key), 2, 'in `key` and in `curl`: the API answer as it is');
  t.equal(asJson.stderr, '', 'no warning in the way of a script');
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(body.key) })).status, 200);

  const rec = (await stack.adminCall('GET', `/v1/keys/${/created (key_\w+)/.exec(human.stdout)![1]}`)).body;
  t.same(rec.meta, { owner: 'ops' });
  t.ok(Date.parse(rec.expires_at) - Date.now() > 29 * 86_400_000, '--expires 30d is 30 days from now');
});

t.test('list: a table with the masked key, never the key; --json is the API page; --all follows the cursors', async (t) => {
  const a = await stack.createKey({ name: 'list-a', scopes: ['read_contacts'] });
  const [human, asJson, all, filtered] = await Promise.all([
    kg(['keys', 'list', '--limit', '100']),
    kg(['keys', 'list', '--json']),
    kg(['keys', 'list', '--all', '--limit', '1', '--json']),
    kg(['keys', 'list', '--scope', 'read_contacts', '--status', 'active']),
  ]);
  t.equal(human.code, 0, human.stderr);
  const lines = human.stdout.trimEnd().split('\n');
  t.match(lines[0], /^ID\s+NAME\s+KEY\s+ENVIRONMENT\s+STATUS\s+SCOPES\s+CREATED\s+LAST USED$/);
  const row = lines.find((l) => l.includes(a.id))!;
  t.ok(row, 'the key is listed');
  t.notOk(human.stdout.includes(a.key), 'never the plaintext');
  t.ok(row.includes(String(a.record.masked)), 'the masked key');
  t.match(row, /list-a\s.*production\s+active\s+read_contacts\s/);
  t.match(row, /never$/, 'never used');
  t.equal(lines[0]!.indexOf('NAME'), row.indexOf('list-a'), 'columns aligned under their header');

  const api = await stack.adminCall('GET', '/v1/keys');
  t.equal(asJson.code, 0);
  t.same(json(asJson), api.body, 'exactly the API answer');

  const total = (await stack.adminCall('GET', '/v1/keys?limit=100')).body.data.length;
  t.equal(all.code, 0, all.stderr);
  t.equal(json(all).data.length, total, 'every page, one document');
  t.equal(json(all).next_cursor, null);

  t.equal(filtered.code, 0, filtered.stderr);
  t.ok(filtered.stdout.includes(a.id));
  t.notOk(filtered.stdout.includes(' ci '), 'the filter reached the API');
});

t.test('show, edit, regenerate, suspend, reactivate, revoke: human and --json', async (t) => {
  const k = await stack.createKey({ name: 'life', scopes: ['read_campaigns'], expires_at: '2027-01-01T00:00:00Z' });
  const other = await stack.createKey({ name: 'other' });
  const [show, showJson, edit] = await Promise.all([
    kg(['keys', 'show', k.id]),
    kg(['keys', 'show', k.id, '--json']),
    kg(['keys', 'edit', other.id, '--name', 'renamed', '--scopes', 'read_only', '--clear', 'expires_at', '--rate-limit', '10/60', '--json']),
  ]);
  t.equal(show.code, 0, show.stderr);
  t.match(show.stdout, /^name:\s+life$/m);
  t.match(show.stdout, new RegExp(`^key:\\s+${k.record.masked}$`, 'm'));
  t.match(show.stdout, /^expires:\s+2027-01-01T00:00:00.000Z \(/m);
  t.notOk(show.stdout.includes(k.key));
  const { key: _key, curl: _curl, ...record } = k.record;
  t.same(json(showJson), { ...record, balance: null }, 'the record as the API gives it (GET adds the quota balance)');
  t.notOk(showJson.stdout.includes(k.key));

  t.equal(edit.code, 0, edit.stderr);
  t.match(json(edit), { id: other.id, name: 'renamed', scopes: ['read_campaigns', 'read_contacts'], expires_at: null, rate_limit: { limit: 10, window_seconds: 60, burst: null } });

  const suspend = await kg(['keys', 'suspend', k.id, '--reason', 'unpaid invoice']);
  t.equal(suspend.code, 0, suspend.stderr);
  t.match(suspend.stdout, new RegExp(`^suspended ${k.id} "life": suspended$`, 'm'));
  t.match(await call(`${prod}/v1/emails/list`, { headers: bearer(k.key) }), { status: 401, body: { message: /suspended/ } }, 'suspended at the gateway');

  const reactivate = await kg(['keys', 'reactivate', k.id, '--json']);
  t.equal(reactivate.code, 0, reactivate.stderr);
  t.match(json(reactivate), { id: k.id, status: 'active', suspended_reason: null });

  const editHuman = await kg(['keys', 'edit', k.id, '--description', 'for the nightly job']);
  t.equal(editHuman.code, 0, editHuman.stderr);
  t.match(editHuman.stdout, /^updated key_\w+\n/);
  t.match(editHuman.stdout, /^description:\s+for the nightly job$/m);

  const regen = await kg(['keys', 'regenerate', k.id, '--grace', '1h']);
  t.equal(regen.code, 0, regen.stderr);
  const next = /^key: (\S+)$/m.exec(regen.stdout)![1]!;
  t.equal(count(regen.stdout + regen.stderr, next), 1, 'the new key once');
  t.match(regen.stderr, /only time the key is shown/);
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(next) })).status, 200, 'the new key works');
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(k.key) })).status, 200, 'the old one during its grace');
  const nextId = /as (key_\w+)/.exec(regen.stdout)![1]!;

  const [regenJson, revoke] = await Promise.all([
    kg(['keys', 'regenerate', nextId, '--json']),
    kg(['keys', 'revoke', other.id, '--reason', 'leaked in a CI log', '--json']),
  ]);
  t.equal(regenJson.code, 0, regenJson.stderr);
  t.match(json(regenJson), { replaces: nextId, key: String });
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(json(regenJson).key) })).status, 200);
  t.equal(revoke.code, 0, revoke.stderr);
  t.match(json(revoke), { id: other.id, status: 'revoked', revoked_reason: 'leaked in a CI log' });
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(other.key) })).status, 401, 'revoked at the gateway');

  const again = await kg(['keys', 'revoke', other.id]);
  t.equal(again.code, 1, 'revoking twice is the API refusing');
  t.match(again.stderr, /^error: already_revoked: /m);
});

t.test('the API refusing is exit 1 with its error code, details and request id on stderr', async (t) => {
  const [viewer, unknown, invalid] = await Promise.all([
    kg(['keys', 'create', '--name', 'nope'], VIEWER_TOKEN),
    kg(['keys', 'show', 'key_doesnotexist']),
    kg(['keys', 'create', '--name', 'bad', '--scopes', 'read_campaigns,teleport']),
  ]);
  t.equal(viewer.code, 1);
  t.equal(viewer.stdout, '');
  t.match(viewer.stderr, /^error: forbidden: The viewer role may not do this/m);
  t.match(viewer.stderr, /^request id: \S+$/m);

  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /^error: not_found: /m);

  t.equal(invalid.code, 1);
  t.match(invalid.stderr, /^error: validation_failed: /m);
  t.match(invalid.stderr, /^ {2}scopes\[1\]: unknown scope "teleport"/m, 'each detail on its own line');
});

t.test('names from the API cannot drive the terminal: control characters are shown escaped', async (t) => {
  const evil = await stack.createKey({ name: 'x\u001b]0;pwned\u0007\u001b[2J\nfake-row' });
  const [list, show] = await Promise.all([kg(['keys', 'list', '--q', evil.id]), kg(['keys', 'show', evil.id])]);
  t.equal(list.code, 0, list.stderr);
  for (const out of [list.stdout, show.stdout]) {
    t.notOk(/[\u0000-\u0009\u000b-\u001f\u007f]/.test(out), 'no control character but newlines between rows');
    t.ok(out.includes('x\\x1b]0;pwned\\x07\\x1b[2J\\x0afake-row'));
  }
  t.equal(list.stdout.trimEnd().split('\n').length, 2, 'a header and one row: the newline forged none');
});

t.test('keys check-leak: a key read from stdin is reported; a live key is suspended, anything else is nothing', async (t) => {
  const { key, id } = await stack.createKey({ name: 'found in a log' });
  const [human, unknown] = await Promise.all([
    runCli(['keys', 'check-leak', '-', '--source', 'CI log', '--found-at', 'https://ci.example.com/runs/42'], {
      env: { KEYGATE_URL: stack.adminUrl, KEYGATE_TOKEN: ADMIN_TOKEN },
      input: `${key}\n`,
      timeoutMs: 60_000,
    }),
    kg(['keys', 'check-leak', 'gw_live_not-a-real-key', '--json']),
  ]);
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, new RegExp(`^leaked: ${id} "found in a log" \\(gw_live_\\w+\\.\\.\\.\\w+\\): suspend; now suspended$`, 'm'));
  t.notOk(human.stdout.includes(key) || human.stderr.includes(key), 'the key is never printed');
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key) })).status, 401, 'the gateway refuses it from then on');
  const events = (await stack.adminCall('GET', `/v1/keys/${id}/events`)).body.data;
  t.match(events.find((e: { type: string }) => e.type === 'leaked'), { detail: { source: 'CI log', url: 'https://ci.example.com/runs/42' } });
  t.equal(unknown.code, 0, unknown.stderr);
  t.same(json(unknown), { label: 'false_positive', action: null, key: null });
  const viewer = await kg(['keys', 'check-leak', key], VIEWER_TOKEN);
  t.equal(viewer.code, 1, 'a viewer may not: refused by the API');
  t.match(viewer.stderr, /forbidden/);
});

t.test('quotas: create --quota, the balance in show, credits --add and --set spent at the gateway, edit --credits in shadow mode, --clear', async (t) => {
  const created = await kg(['keys', 'create', '--name', 'metered', '--quota', '2/day', '--json']);
  t.equal(created.code, 0, created.stderr);
  const { id, key } = json(created);
  t.match(json(created), { quota: { limit: 2, period: 'day', refill: true, mode: 'enforce', refund_on: [] }, credits: null }, '--quota 2/day is the API quota');
  const spend = () => call(`${prod}/v1/emails/list`, { headers: bearer(key) });
  t.equal((await spend()).status, 200);
  t.equal((await spend()).status, 200);
  t.match(await spend(), { status: 429, body: { error: 'quota_exceeded' } }, 'the third request of the day is refused');

  const plain = await stack.createKey({ name: 'no quota' });
  const shadow = await stack.createKey({ name: 'shadow credits', credits: { remaining: 500, refill: { amount: 100, every: 'day' }, mode: 'shadow', refund_on: ['5xx'] } });
  const [show, noQuota, viewer, plainShow, shadowShow] = await Promise.all([
    kg(['keys', 'show', id]),
    kg(['keys', 'credits', plain.id, '--add', '5']),
    kg(['keys', 'credits', id, '--add', '5'], VIEWER_TOKEN),
    kg(['keys', 'show', plain.id]),
    kg(['keys', 'show', shadow.id]),
  ]);
  t.equal(show.code, 0, show.stderr);
  t.match(show.stdout, /^quota:\s+2 a day$/m);
  // The stack's clock stands at 2026-06-01 12:00 UTC: the day refills at midnight.
  t.match(show.stdout, /^balance:\s+0 left, refills 2026-06-02T00:00:00\.000Z \(/m);
  t.equal(noQuota.code, 1, 'a key without a quota has no balance to top up');
  t.match(noQuota.stderr, /^error: conflict: Key key_\w+ has no quota or credits/m);
  t.equal(viewer.code, 1);
  t.match(viewer.stderr, /^error: forbidden: /m);
  t.match(plainShow.stdout, /^quota:\s+-$/m, 'a key without a quota: none');
  t.match(plainShow.stdout, /^balance:\s+-$/m);
  t.match(shadowShow.stdout, /^quota:\s+credits: 500 to start, refilled to 100 each day, shadow: never refused, refund on 5xx$/m);
  t.match(shadowShow.stdout, /^balance:\s+500 left, refills 2026-06-02T00:00:00\.000Z \(/m);

  const add = await kg(['keys', 'credits', id, '--add', '5']);
  t.equal(add.code, 0, add.stderr);
  t.match(add.stdout, new RegExp(`^balance of ${id} "metered": 5 left, refills 2026-06-02T00:00:00\\.000Z \\(`, 'm'));
  t.equal((await spend()).status, 200, 'the top-up lets a request through');
  const set = await kg(['keys', 'credits', id, '--set', '0', '--json']);
  t.equal(set.code, 0, set.stderr);
  t.match(json(set), { id, balance: { remaining: 0, refills_at: '2026-06-02T00:00:00.000Z' } }, '--json is the API answer');
  t.equal((await spend()).status, 429, 'set to 0: refused');
  const audit = (await stack.adminCall('GET', `/v1/audit?key_id=${id}&action=key.credits_changed`)).body.data;
  // One manual-clock instant for both: the order between them is not defined.
  t.same(audit.map((e: any) => e.changes.balance).sort((a: any, b: any) => a.from - b.from), [{ from: 0, to: 5 }, { from: 4, to: 0 }], 'both changes audited');

  const edit = await kg(['keys', 'edit', id, '--credits', '500/100/day', '--quota-mode', 'shadow', '--refund-5xx', '--json']);
  t.equal(edit.code, 0, edit.stderr);
  t.match(json(edit), { quota: null, credits: { remaining: 500, refill: { amount: 100, every: 'day' }, mode: 'shadow', refund_on: ['5xx'] } }, 'credits replace the quota');
  t.equal((await spend()).status, 200, 'shadow mode: never refused, even at 0');
  const cleared = await kg(['keys', 'edit', id, '--clear', 'credits', '--json']);
  t.equal(cleared.code, 0, cleared.stderr);
  t.match(json(cleared), { quota: null, credits: null }, '--clear credits: no balance of its own');
});
