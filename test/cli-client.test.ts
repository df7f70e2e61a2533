import { createServer } from 'node:net';
import t from 'tap';
import { verifyPassword } from '../core/password.js';
import { runCli } from './lib/cli.js';
import { ADMIN_TOKEN, DEV_TOKEN, bearer, call, startStack } from './lib/stack.js';

// `keygate apps|usage|audit|hash-password` and the CLI's own exits (docs/cli.md), as a child
// process against a real admin plane and gateway (test/lib/stack.ts). test/cli-keys.test.ts has
// the keys; test/cli-internals.test.ts the argument checks of every command, in process.

// Each CLI run is a child starting through tsx: 1-4 s on a loaded two-core machine.
t.setTimeout(300_000);
const stack = await startStack();
t.teardown(() => stack.close());
const prod = stack.gw.production!;

const kg = (args: string[], token = ADMIN_TOKEN) =>
  runCli(args, { env: { KEYGATE_URL: stack.adminUrl, KEYGATE_TOKEN: token }, timeoutMs: 60_000 });
/** Bounded generously: a loaded machine starts a child through tsx in several seconds. */
const SLOW = { timeoutMs: 60_000 };
const json = (r: { stdout: string }) => JSON.parse(r.stdout);

t.test('apps: create, list, show, edit, suspend (its keys too), reactivate; human and --json', async (t) => {
  const [created, createdJson] = await Promise.all([
    kg(['apps', 'create', '--name', 'Acme mobile', '--meta', 'crm=4411']),
    kg(['apps', 'create', '--name', 'Acme web', '--description', 'the shop', '--json']),
  ]);
  t.equal(created.code, 0, created.stderr);
  const id = /^created (app_\w+) "Acme mobile"$/m.exec(created.stdout)?.[1];
  t.ok(id);
  t.equal(createdJson.code, 0, createdJson.stderr);
  const web = json(createdJson);
  t.match(web, { name: 'Acme web', description: 'the shop', status: 'active' });
  const key = await stack.createKey({ name: 'mobile key', application: id });

  const [list, listJson, show] = await Promise.all([kg(['apps', 'list']), kg(['apps', 'list', '--json']), kg(['apps', 'show', id!])]);
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, /^ID\s+NAME\s+STATUS\s+TENANT\s+CREATED\n/);
  t.match(list.stdout, new RegExp(`^${id}\\s+Acme mobile\\s+active\\s+-\\s+`, 'm'));
  t.same(json(listJson), (await stack.adminCall('GET', '/v1/applications')).body);
  t.equal(show.code, 0, show.stderr);
  t.match(show.stdout, /^meta:\s+\{"crm":"4411"\}$/m);
  t.match(show.stdout, /^created:\s+\S+ \(.+\) by ops$/m);
  const edit = await kg(['apps', 'edit', web.id, '--name', 'Acme shop', '--clear', 'description', '--json']);
  t.equal(edit.code, 0, edit.stderr);
  t.match(json(edit), { id: web.id, name: 'Acme shop', description: null });
  const limited = await kg(['apps', 'edit', web.id, '--rate-limit', '1000/60/50']);
  t.equal(limited.code, 0, limited.stderr);
  t.match(limited.stdout, /^shared limit:\s+1000 requests \/ 60 s \(burst 50\)$/m, 'the shared limit, as set');
  const planned = await kg(['apps', 'edit', web.id, '--plan', 'tiny', '--clear', 'rate_limit', '--json']);
  t.equal(planned.code, 0, planned.stderr);
  t.match(json(planned), { plan: 'tiny', rate_limit: null });
  const metered = await kg(['apps', 'edit', web.id, '--quota', '3/day', '--json']);
  t.equal(metered.code, 0, metered.stderr);
  t.match(json(metered), { quota: { limit: 3, period: 'day', refill: true }, credits: null, balance: { remaining: 3 } }, '--quota: the shared quota');
  const topped = await kg(['apps', 'credits', web.id, '--add', '2']);
  t.equal(topped.code, 0, topped.stderr);
  t.match(topped.stdout, new RegExp(`^${web.id}: 5 units left, refilled `, 'm'), 'apps credits: the new balance');
  t.match((await stack.adminCall('GET', `/v1/audit?application=${web.id}&action=application.credits_changed`)).body.data, [{ changes: { balance: { from: 3, to: 5 } } }]);

  const suspend = await kg(['apps', 'suspend', id!, '--reason', 'contract ended']);
  t.equal(suspend.code, 0, suspend.stderr);
  t.match(suspend.stdout, /^suspended app_\w+ "Acme mobile" and its keys$/m);
  t.match(await call(`${prod}/v1/emails/list`, { headers: bearer(key.key) }), { status: 401, body: { message: /suspended/ } }, "the application's key is suspended");
  const reactivate = await kg(['apps', 'reactivate', id!, '--json']);
  t.equal(reactivate.code, 0, reactivate.stderr);
  t.match(json(reactivate), { id, status: 'active', suspended_reason: null });
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(key.key) })).status, 200, 'and works again');

});

t.test('usage: totals, endpoints and keys; one key; --json is the API answer', async (t) => {
  const k = await stack.createKey({ name: 'busy' });
  for (let i = 0; i < 3; i++) t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(k.key) })).status, 200);
  t.equal((await call(`${prod}/v1/emails/list`, { headers: bearer(`${k.key}x`) })).status, 401);
  await stack.admin.usage.flush();

  const [all, allJson, one, oneJson] = await Promise.all([
    kg(['usage']),
    kg(['usage', '--range', '24h', '--json']),
    kg(['usage', '--key', k.id, '--range', '1h']),
    kg(['usage', '--key', k.id, '--from', '2026-06-01T00:00:00Z', '--to', '2026-06-02T00:00:00Z', '--json']),
  ]);
  // Other tests of this file send traffic too: the figures are checked against the API's.
  const api = (await stack.adminCall('GET', '/v1/usage?range=24h')).body;
  t.same(json(allJson), api);
  const tot = api.totals;
  t.equal(all.code, 0, all.stderr);
  t.match(all.stdout, new RegExp(`^requests:\\s+${tot.requests} \\(${tot.successes} ok, ${tot.client_errors} 4xx, ${tot.server_errors} 5xx\\)$`, 'm'));
  t.match(all.stdout, new RegExp(`^success rate:\\s+${Math.round(tot.success_rate * 1000) / 10}%$`, 'm'));
  t.match(all.stdout, new RegExp(`^status codes:\\s+${Object.entries(api.status_codes).map(([c, n]) => `${c}: ${n}`).join(', ')}$`, 'm'));
  t.match(all.stdout, /^API\s+METHOD\s+ROUTE\s+REQUESTS\s+ERRORS\s+SUCCESS\s+AVG LATENCY$/m);
  t.match(all.stdout, new RegExp(`^${k.id}\\s+3\\s+0$`, 'm'), 'the busiest keys');

  t.equal(one.code, 0, one.stderr);
  t.match(one.stdout, new RegExp(`^key:\\s+${k.id}$`, 'm'));
  t.match(one.stdout, /^requests:\s+3 \(3 ok, 0 4xx, 0 5xx\)$/m);
  t.match(one.stdout, /^rate limited:\s+0 times; peak 3 requests a minute \(limit 100\)$/m);
  t.same(json(oneJson), (await stack.adminCall('GET', `/v1/keys/${k.id}/usage?from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z`)).body);
});

t.test('audit: a table of who did what; filters by target, actor and action; --json is the API page', async (t) => {
  const k = await stack.createKey({ name: 'audited' });
  stack.clock.advance(1000); // newest first: one second apart
  await stack.adminCall('POST', `/v1/keys/${k.id}/suspend`, { reason: 'audit me' }, DEV_TOKEN);
  const [human, asJson, byAction] = await Promise.all([
    kg(['audit', '--target', k.id]),
    kg(['audit', '--target', k.id, '--json']),
    kg(['audit', '--actor', 'dev', '--action', 'key.suspended', '--limit', '1', '--json']),
  ]);
  t.equal(human.code, 0, human.stderr);
  const lines = human.stdout.trimEnd().split('\n');
  t.match(lines[0], /^WHEN\s+ACTOR\s+ROLE\s+ACTION\s+TARGET\s+CHANGED\s+IP$/);
  t.match(lines[1], new RegExp(`^\\S.*\\s+dev\\s+developer\\s+key\\.suspended\\s+${k.id}\\s+suspended_at,suspended_reason\\s+127\\.0\\.0\\.1$`));
  t.match(lines[2], new RegExp(`ops\\s+admin\\s+key\\.created\\s+${k.id}\\s`));
  t.equal(lines.length, 3);
  t.same(json(asJson), (await stack.adminCall('GET', `/v1/audit?key_id=${k.id}`)).body);
  t.equal(byAction.code, 0, byAction.stderr);
  t.match(json(byAction).data, [{ actor: 'dev', action: 'key.suspended', target_id: k.id }]);
  t.equal(json(byAction).data.length, 1);
});

t.test('hash-password from a pipe prints a hash that verifyPassword accepts; refuses empty input', async (t) => {
  const [piped, empty] = await Promise.all([
    runCli(['hash-password'], { ...SLOW, input: 'correct horse battery staple\n' }),
    runCli(['hash-password'], { ...SLOW, input: '\n' }),
  ]);
  t.equal(piped.code, 0, piped.stderr);
  t.match(piped.stdout, /^\$scrypt\$ln=\d+,r=\d+,p=\d+\$[\w+/]+\$[\w+/]+\n$/);
  t.ok(await verifyPassword('correct horse battery staple', piped.stdout.trim()), 'the trailing newline is not part of the password');
  t.notOk(await verifyPassword('correct horse battery staple\n', piped.stdout.trim()));
  t.equal(empty.code, 2);
  t.match(empty.stderr, /the password is empty/);
});

t.test('exit 2 on a bad option, with the usage; keygate --help lists the nouns', async (t) => {
  const [option, help] = await Promise.all([kg(['keys', 'list', '--colour', 'red']), runCli(['--help'], SLOW)]);
  t.equal(option.code, 2);
  t.equal(option.stdout, '');
  t.match(option.stderr, /Unknown option '--colour'[\s\S]*usage: keygate keys list/);
  t.equal(help.code, 0);
  for (const noun of ['keys', 'apps', 'usage', 'audit', 'hash-password']) t.match(help.stdout, new RegExp(`^ {2}${noun}\\s`, 'm'));
});

t.test('exit 3 when the admin plane cannot be reached: a closed port, an unknown host', async (t) => {
  const closed = createServer();
  await new Promise<void>((ok) => closed.listen(0, '127.0.0.1', ok));
  const port = (closed.address() as { port: number }).port;
  await new Promise((ok) => closed.close(ok));
  const [refused, dns] = await Promise.all([
    runCli(['keys', 'list'], { ...SLOW, env: { KEYGATE_URL: `http://127.0.0.1:${port}`, KEYGATE_TOKEN: ADMIN_TOKEN } }),
    runCli(['audit', '--url', 'http://keygate-admin.invalid:8081'], { ...SLOW, env: { KEYGATE_URL: undefined, KEYGATE_TOKEN: ADMIN_TOKEN } }),
  ]);
  t.equal(refused.code, 3);
  t.equal(refused.stderr, `error: cannot reach the admin plane at http://127.0.0.1:${port}: connection refused\n`);
  t.equal(refused.stdout, '');
  t.equal(dns.code, 3);
  t.match(dns.stderr, /^error: cannot reach the admin plane at http:\/\/keygate-admin\.invalid:8081: (unknown host|the host name could not be resolved)/);
});
