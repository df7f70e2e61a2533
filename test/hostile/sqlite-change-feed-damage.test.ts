import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import t from 'tap';
import { request } from 'undici';
import { startKeygate } from '../lib/cli.js';
import { startUpstream } from '../lib/upstream.js';

// Every process that caches keys reads the SQLite change feed on a timer (core/store/sqlite/
// changes.ts). A read of it that fails (a damaged page, an I/O error) must be a warning that
// the process survives, as any other failed read of the store is: not an exception thrown from
// the timer, which would end the process, and with it every request it was serving.

const TOKEN = 'sqlite-damage-admin-token-0123456789';

t.test('a damaged change feed is a warning: keygate goes on serving', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = mkdtempSync(join(tmpdir(), 'keygate-feed-damage-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'keygate.db');
  const config = join(dir, 'gateway.yaml');
  writeFileSync(
    config,
    `listeners:
  - { port: 0, host: 127.0.0.1, environment: production }
apis:
  - { name: emails, path_prefix: /v1/emails, upstream: "${upstream.url}", timeout_ms: 5000, unlisted: allow }
admin:
  port: 0
  host: 127.0.0.1
  tokens:
    - { name: ops, token: "${TOKEN}", role: admin }
store: { type: sqlite, path: ${JSON.stringify(db)} }
scheduler: { enabled: false }
demo_upstream: null
log: { level: info }
`,
  );
  const kg = await startKeygate(config);
  t.teardown(() => kg.stop());

  // Another program damages the page of the `changes` table on disk, then commits elsewhere,
  // so that keygate's next poll finds the database moved and reads the feed.
  const other = new BetterSqlite3(db);
  t.teardown(() => other.close());
  const [checkpoint] = other.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
  t.equal(checkpoint!.busy, 0, 'every page is in the database file');
  const root = other.prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'changes'").pluck().get() as number;
  const pageSize = other.pragma('page_size', { simple: true }) as number;
  const fd = openSync(db, 'r+');
  writeSync(fd, Buffer.alloc(pageSize, 0xee), 0, pageSize, (root - 1) * pageSize);
  closeSync(fd);
  other.prepare("INSERT INTO leases (name, holder, until) VALUES ('elsewhere', 'test', 0)").run();

  const warned = await kg.proc.waitForLog((l) => l.level === 'warn' && /key changes/.test(l.msg));
  t.match(warned.err ?? '', /malformed/, 'the warning says what the store answered');
  const res = await request(`${kg.adminUrl}/v1/keys`, { headers: { authorization: `Bearer ${TOKEN}` } });
  await res.body.dump();
  t.equal(res.statusCode, 200, 'the admin plane still answers');
  t.equal(kg.proc.child.exitCode, null, 'the process is still running');
});
