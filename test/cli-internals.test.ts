import { createServer, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { usageOf } from '../bin/client/args.js';
import { clientMain, type Io } from '../bin/client/cli.js';
import { ago, clean, table } from '../bin/client/format.js';
import { APP_COMMANDS } from '../bin/client/apps.js';
import { AUDIT_COMMAND } from '../bin/client/audit.js';
import { HASH_PASSWORD_COMMAND } from '../bin/client/hash-password.js';
import { KEY_COMMANDS } from '../bin/client/keys.js';
import { USAGE_COMMAND } from '../bin/client/usage.js';
import { verifyPassword } from '../core/password.js';

// The admin-API client's parts, in process (docs/cli.md): argument checks that stop a command
// before it sends anything (exit 2), the help of every command, the table and time formats, and
// hash-password at a terminal (a stand-in TTY). test/cli-keys.test.ts and
// test/cli-client.test.ts run the CLI itself as a child process against a real admin plane.

const NOW = Date.UTC(2026, 5, 1, 12);

/** clientMain with its output captured; stdin a stream the test writes to. */
async function run(argv: string[], env: Record<string, string> = {}, stdin = new PassThrough()) {
  let stdout = '';
  let stderr = '';
  const io: Io = {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    stdin: stdin as unknown as NodeJS.ReadStream,
    env,
    now: () => NOW,
  };
  const code = await clientMain(argv, io);
  return { code, stdout, stderr };
}

/** A TCP server that counts connections and never answers. */
async function silentServer() {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    sockets.add(s);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

t.test('arguments are checked before anything is sent: exit 2, the reason and the usage on stderr', async (t) => {
  const server = await silentServer();
  t.teardown(server.close);
  const env = { KEYGATE_URL: server.url, KEYGATE_TOKEN: 'tok' };
  const cases: [string[], RegExp][] = [
    [['keys', 'list', '--colour'], /Unknown option '--colour'/],
    [['keys', 'frobnicate'], /unknown verb "frobnicate"/],
    [['keys', 'create'], /--name is required/],
    [['keys', 'create', '--name', 'x', '--expires', 'tomorrow'], /--expires must be an RFC 3339 date-time \(2027-01-31T12:00:00Z\) or a span from now/],
    [['keys', 'create', '--name', 'x', '--plan', 'pro', '--rate-limit', '5/60'], /give --plan or --rate-limit, not both/],
    [['keys', 'create', '--name', 'x', '--rate-limit', '5 per minute'], /--rate-limit must be LIMIT\/WINDOW_SECONDS/],
    [['keys', 'create', '--name', 'x', '--meta', 'novalue'], /--meta takes KEY=VALUE/],
    [['keys', 'create', '--name', 'x', '--scopes', 'a,,b'], /--scopes takes a comma-separated list/],
    [['keys', 'show'], /missing ID/],
    [['keys', 'show', 'key_a', 'key_b'], /unexpected argument "key_b"/],
    [['keys', 'list', '--status', 'asleep'], /--status must be one of: pending, active, suspended, expired, revoked/],
    [['keys', 'list', '--limit', '500'], /--limit must be a whole number from 1 to 100/],
    [['keys', 'list', '--all', '--cursor', 'abc'], /give --all or --cursor, not both/],
    [['keys', 'edit', 'key_a'], /nothing to change/],
    [['keys', 'create', '--name', 'x', '--quota', '10000'], /--quota must be LIMIT\/PERIOD: .*PERIOD hour, day, month or once \(never refilled\), like 10000\/month; got "10000"/],
    [['keys', 'create', '--name', 'x', '--quota', '0/day'], /--quota must be LIMIT\/PERIOD: LIMIT a whole number from 1 to 10\^12/],
    [['keys', 'create', '--name', 'x', '--quota', '100/week'], /--quota must be LIMIT\/PERIOD/],
    [['keys', 'create', '--name', 'x', '--quota', '1000000000001/month'], /--quota must be LIMIT\/PERIOD/],
    [['keys', 'create', '--name', 'x', '--credits', '500/day'], /--credits must be BALANCE or BALANCE\/REFILL\/EVERY \(EVERY day or month.*like 500 or 500\/100\/day; got "500\/day"/],
    [['keys', 'create', '--name', 'x', '--credits', '500/0/day'], /--credits must be BALANCE or BALANCE\/REFILL\/EVERY/],
    [['keys', 'create', '--name', 'x', '--credits', '2.5'], /--credits must be BALANCE/],
    [['keys', 'create', '--name', 'x', '--quota', '10/day', '--credits', '5'], /give --quota or --credits, not both: a key has one balance/],
    [['keys', 'edit', 'key_a', '--quota-mode', 'shadow'], /--quota-mode and --refund-5xx go with the --quota or --credits they apply to/],
    [['keys', 'edit', 'key_a', '--refund-5xx'], /--quota-mode and --refund-5xx go with the --quota or --credits/],
    [['keys', 'edit', 'key_a', '--quota', '10/day', '--quota-mode', 'dry-run'], /--quota-mode must be one of: enforce, shadow/],
    [['keys', 'edit', 'key_a', '--quota', '10/day', '--clear', 'quota'], /quota is both given and cleared/],
    [['keys', 'credits', 'key_a'], /give --set N or --add N, one of them/],
    [['keys', 'credits', 'key_a', '--set', '5', '--add', '5'], /give --set N or --add N, one of them/],
    [['keys', 'credits', 'key_a', '--add', '0'], /--add must be a whole number from 1 to 1000000000000; got "0"/],
    [['keys', 'credits', 'key_a', '--set', 'lots'], /--set must be a whole number from 0 to 1000000000000/],
    [['keys', 'edit', 'key_a', '--clear', 'name'], /--clear takes: description, apis, plan, rate_limit, quota, credits, ip_allowlist, expires_at/],
    [['keys', 'edit', 'key_a', '--plan', 'pro', '--clear', 'plan'], /plan is both given and cleared/],
    [['keys', 'regenerate', 'key_a', '--grace', 'a while'], /--grace must be seconds or a duration/],
    [['usage', '--range', '2d'], /--range must be one of: 1h, 24h, 7d, 30d/],
    [['usage', '--range', '1h', '--from', '2026-06-01T00:00:00Z'], /give --range, or --from\/--to, not both/],
    [['usage', '--from', '2026-06-02T00:00:00Z', '--to', '2026-06-01T00:00:00Z'], /--to must be after --from/],
    [['audit', '--action', 'key.exploded'], /--action must be one of: key\.created, /],
    [['audit', '--from', 'yesterday'], /--from must be an RFC 3339 date-time/],
    [['apps', 'edit', 'app_a', '--clear', 'name'], /--clear takes: description, plan, rate_limit/],
    [['apps', 'edit', 'app_a', '--plan', 'pro', '--clear', 'plan'], /plan is both given and cleared/],
    [['apps', 'create', '--name', 'x', '--plan', 'pro', '--rate-limit', '5/60'], /give --plan or --rate-limit, not both: an application's rate limit replaces its plan's/],
    [['apps', 'create', '--name', 'x', '--rate-limit', '0/60'], /--rate-limit must be LIMIT\/WINDOW_SECONDS/],
    [['apps', 'create', '--name', 'x', '--quota', '100/week'], /--quota must be LIMIT\/PERIOD: .*PERIOD hour, day, month or once/],
    [['apps', 'create', '--name', 'x', '--quota', '5/day', '--credits', '5'], /give --quota or --credits, not both/],
    [['apps', 'create', '--name', 'x', '--credits', 'lots'], /--credits must be BALANCE or BALANCE\/REFILL\/EVERY/],
    [['apps', 'credits', 'app_a'], /give --set or --add, one of them/],
    [['apps', 'credits', 'app_a', '--set', '1', '--add', '1'], /give --set or --add, one of them/],
    [['apps', 'credits', 'app_a', '--add', '0'], /--add must be a whole number from 1/],
    [['apps', 'create', '--name', 'x', '--url', 'ftp://example.com'], /--url must be an http\(s\) URL/],
    [['keys', 'list', '--timeout', '0'], /--timeout must be a whole number from 1 to 3600/],
    [['hash-password', 'hunter2'], /^keygate hash-password: hash-password reads the password from stdin, never from an argument/],
    [['keys'], /usage: keygate keys <create\|list\|show\|edit\|regenerate\|credits\|suspend\|reactivate\|revoke\|check-leak>/],
  ];
  for (const [argv, message] of cases) {
    const r = await run(argv, env);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr, message, argv.join(' '));
    t.match(r.stderr, /usage: keygate /, `${argv.join(' ')}: the usage follows`);
    t.equal(r.stdout, '');
  }
  const argument = await run(['hash-password', 'hunter2']);
  t.notOk(argument.stderr.includes('hunter2'), 'a password given as an argument is not echoed back');
  const noToken = await run(['keys', 'list'], { KEYGATE_URL: server.url });
  t.equal(noToken.code, 2);
  t.match(noToken.stderr, /no admin token: set KEYGATE_TOKEN/);
  t.equal(server.connections(), 0, 'not one connection was made');
});

t.test('an admin plane that does not answer within --timeout is exit 3, naming the URL', async (t) => {
  const server = await silentServer();
  t.teardown(server.close);
  const r = await run(['keys', 'list', '--timeout', '1'], { KEYGATE_URL: server.url, KEYGATE_TOKEN: 'tok' });
  t.equal(r.code, 3);
  t.equal(r.stderr, `error: cannot reach the admin plane at ${server.url}: timed out waiting for an answer\n`);
  t.equal(server.connections(), 1);
});

t.test('--token on the command line works, with a warning that ps shows it', async (t) => {
  const server = await silentServer();
  await server.close();
  const r = await run(['keys', 'list', '--token', 'tok', '--url', server.url]);
  t.equal(r.code, 3, 'went on to the (closed) port');
  t.match(r.stderr, /^warning: a token on the command line is visible to other users \(ps\)/);
});

t.test('every command has a help with its options and an example; --help sends nothing', async (t) => {
  const all = [...KEY_COMMANDS, ...APP_COMMANDS, USAGE_COMMAND, AUDIT_COMMAND, HASH_PASSWORD_COMMAND];
  t.equal(all.length, 10 + 7 + 3);
  for (const c of all) {
    const r = await run([...c.name.split(' '), '--help']);
    t.equal(r.code, 0, c.name);
    t.equal(r.stdout, usageOf(c));
    t.match(r.stdout, new RegExp(`^usage: keygate ${c.name}`));
    for (const name of Object.keys(c.options)) t.match(r.stdout, new RegExp(`^  --${name}\\b`, 'm'), `${c.name} lists --${name}`);
    t.match(r.stdout, new RegExp(`^examples?:\\n  keygate ${c.name}`, 'm'), `${c.name} has an example`);
    if (c.api !== false) t.match(r.stdout, /^ {2}--token TOKEN/m);
  }
  const group = await run(['apps', '--help']);
  t.equal(group.code, 0);
  t.match(group.stdout, /^ {2}suspend\s+Suspends the application/m);
});

t.test('tables align their columns; times read relative to now', async (t) => {
  t.equal(table(['A', 'LONGER'], [['wide cell', 'x'], ['y', '']]), 'A          LONGER\nwide cell  x\ny\n');
  const at = (ms: number) => new Date(NOW - ms).toISOString();
  t.equal(ago(null, NOW), 'never');
  t.equal(ago(at(400), NOW), 'just now');
  t.equal(ago(at(42_000), NOW), '42 s ago');
  t.equal(ago(at(5 * 60_000 + 1), NOW), '5 min ago');
  t.equal(ago(at(2 * 3_600_000 + 59 * 60_000), NOW), '2 h ago');
  t.equal(ago(at(3 * 86_400_000), NOW), '3 d ago');
  t.equal(ago(at(-30 * 86_400_000), NOW), 'in 30 d');
  t.equal(ago(at(90 * 86_400_000), NOW), '2026-03-03', 'past 60 days, the date');
  t.equal(clean('a\u001b[31mb\u0007\u009bc\nd'), 'a\\x1b[31mb\\x07\\x9bc\\x0ad');
});

/** A stand-in terminal: isTTY, raw mode recorded, typed input written by the test. */
function terminal() {
  const s = new PassThrough() as PassThrough & { isTTY: boolean; setRawMode(on: boolean): void; raw: boolean[] };
  s.isTTY = true;
  s.raw = [];
  s.setRawMode = (on) => void s.raw.push(on);
  return s;
}

t.test('hash-password at a terminal asks twice without echo and prints a hash that verifies', async (t) => {
  const tty = terminal();
  const done = run(['hash-password'], {}, tty);
  tty.write('corr');
  tty.write('ect horsx\u007fe\r');
  await new Promise((r) => setImmediate(r));
  tty.write('correct horse\r');
  const r = await done;
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, 'password: \nagain: \n', 'prompts on stderr, nothing typed echoed');
  t.same(tty.raw, [true, false, true, false], 'raw mode (no echo) while typing, restored after');
  t.ok(await verifyPassword('correct horse', r.stdout.trim()), 'backspace edited what was typed');

  const differ = terminal();
  const mismatch = run(['hash-password'], {}, differ);
  differ.write('one\r');
  await new Promise((r) => setImmediate(r));
  differ.write('two\r');
  t.match(await mismatch, { code: 2, stdout: '', stderr: /the two passwords differ/ });

  const empty = terminal();
  const none = run(['hash-password'], {}, empty);
  empty.write('\r');
  t.match(await none, { code: 2, stdout: '', stderr: /the password is empty/ });
});
