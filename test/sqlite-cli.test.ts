import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { generateKey } from '../core/key-format.js';
import { KeyHasher } from '../core/key-hash.js';
import { FileStore } from '../core/store/file-store.js';
import { SqliteStore } from '../core/store/sqlite-store.js';
import { SCHEMA_VERSION } from '../core/store/sqlite/schema.js';
import { runCli, startKeygate } from './lib/cli.js';
import { keyRecord } from './lib/records.js';
import { startUpstream } from './lib/upstream.js';

// The CLI around the SQLite store (docs/operations.md, "Backups", "Moving from the file store"):
// `--check --store`, `backup`, `migrate`, the import of a file store at the first start, and
// what a damaged or newer database does to a start (a clear line and exit 1, not a stack trace).

const TOKEN = 'sqlite-cli-admin-token-0123456789';
const upstream = await startUpstream();
t.teardown(() => upstream.close());

function workdir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-sqlite-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A configuration whose store is `store` (YAML), listening on free ports. */
function configFile(dir: string, store: string): string {
  const path = join(dir, 'gateway.yaml');
  writeFileSync(
    path,
    `listeners:
  - { port: 0, host: 127.0.0.1, environment: production }
apis:
  - { name: emails, path_prefix: /v1/emails, upstream: "${upstream.url}", timeout_ms: 5000, unlisted: allow }
admin:
  port: 0
  host: 127.0.0.1
  tokens:
    - { name: ops, token: "${TOKEN}", role: admin }
store: ${store}
scheduler: { enabled: false }
demo_upstream: null
log: { level: info }
`,
  );
  return path;
}

async function createKey(adminUrl: string): Promise<{ key: string; id: string }> {
  const res = await request(`${adminUrl}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'cli test' }),
  });
  const out = (await res.body.json()) as { key: string; id: string };
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${JSON.stringify(out)}`);
  return out;
}

async function status(url: string, key: string): Promise<number> {
  const res = await request(`${url}/v1/emails/x`, { headers: { authorization: `Bearer ${key}` } });
  await res.body.dump();
  return res.statusCode;
}

t.test('--check --store: the integrity check of the configured database, read-only', async (t) => {
  const dir = workdir(t);
  const db = join(dir, 'data', 'keygate.db');
  const config = configFile(dir, `{ type: sqlite, path: ${JSON.stringify(db)} }`);
  const missing = await runCli(['--config', config, '--check', '--store']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, `${db}: no such database`);
  t.notOk(existsSync(db), 'a check creates nothing');

  const store = await SqliteStore.open({ path: db });
  await store.putKey(keyRecord(generateKey('gw', 'live'), new KeyHasher(null), Date.now()), 0);
  await store.close();
  const ok = await runCli(['--config', config, '--check', '--store']);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, `${db}: integrity ok (schema version ${SCHEMA_VERSION}, 1 keys)`);

  const plain = await runCli(['--config', config, '--store']);
  t.equal(plain.code, 2, '--store alone is a usage error');
  t.match(plain.stderr, '--store goes with --check');

  writeFileSync(db, Buffer.alloc(8192, 0x5a));
  const damaged = await runCli(['--config', config, '--check', '--store']);
  t.equal(damaged.code, 1);
  t.match(damaged.stderr, /is not a usable SQLite database \(file is not a database\): restore it from a backup/);
  t.notMatch(damaged.stderr, /\n\s+at /, 'no stack trace');
});

t.test('a damaged database, or one of a newer schema, stops the start with one clear line', async (t) => {
  const dir = workdir(t);
  const db = join(dir, 'keygate.db');
  const config = configFile(dir, `{ type: sqlite, path: ${JSON.stringify(db)} }`);
  writeFileSync(db, Buffer.from('this is not a database, but it is long enough to look like a file header'.repeat(100)));
  const damaged = await runCli(['--config', config]);
  t.equal(damaged.code, 1);
  t.match(damaged.stdout + damaged.stderr, /cannot open the store.*is not a usable SQLite database/);
  t.notMatch(damaged.stderr, /\n\s+at /, 'no stack trace');

  rmSync(db);
  const store = await SqliteStore.open({ path: db });
  await store.close();
  const raw = new BetterSqlite3(db);
  raw.pragma('user_version = 99');
  raw.close();
  const newer = await runCli(['--config', config]);
  t.equal(newer.code, 1);
  t.match(newer.stdout, `has schema version 99, newer than this Keygate knows (${SCHEMA_VERSION}): it was written by a newer release`);
});

t.test('backup: a consistent copy while keygate serves, checked, never over an existing file', async (t) => {
  const dir = workdir(t);
  const db = join(dir, 'data', 'keygate.db');
  const config = configFile(dir, `{ type: sqlite, path: ${JSON.stringify(db)} }`);
  const kg = await startKeygate(config);
  t.teardown(() => kg.stop());
  const keys = [];
  for (let i = 0; i < 5; i++) keys.push(await createKey(kg.adminUrl));
  t.equal(await status(kg.gw['production']!, keys[0]!.key), 200);
  const dest = join(dir, 'backup.db');
  const res = await runCli(['backup', '--config', config, '--to', dest]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, `backup written to ${dest}: 5 keys, schema version ${SCHEMA_VERSION}`);
  const again = await runCli(['backup', '--config', config, '--to', dest]);
  t.equal(again.code, 1);
  t.match(again.stderr, 'already exists; a backup never overwrites a file');
  const noTo = await runCli(['backup', '--config', config]);
  t.equal(noTo.code, 2);
  await kg.stop();

  // The copy is a whole store: every key is found by the hash of its plaintext.
  const copy = await SqliteStore.open({ path: dest });
  t.teardown(() => copy.close());
  for (const k of keys) t.equal((await copy.getKeyByHash(new KeyHasher(null).hash(k.key)))?.id, k.id, 'a key of the backup is found');
});

/** A file store holding one key (with usage) made by hand, and its plaintext. */
async function fileStoreWithKey(dir: string): Promise<{ key: string; id: string }> {
  const key = generateKey('gw', 'live');
  const rec = keyRecord(key, new KeyHasher(null), Date.UTC(2026, 5, 1), { name: 'from the file store' });
  const fs = await FileStore.open({ dir });
  await fs.putKey(rec, 0);
  await fs.recordUsage([{ key_id: rec.id, requests: 7, errors: 2, first_at: Date.UTC(2026, 5, 2), last_at: Date.UTC(2026, 5, 3) }]);
  await fs.close();
  return { key, id: rec.id };
}

t.test('migrate: a file store into a new database, whole; then keygate serves its keys', async (t) => {
  const dir = workdir(t);
  const files = join(dir, 'old');
  const { key, id } = await fileStoreWithKey(files);
  const journal = readFileSync(join(files, 'journal.log'));
  const db = join(dir, 'new', 'keygate.db');
  const res = await runCli(['migrate', '--from', `file:${files}`, '--to', `sqlite:${db}`]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, `migrated ${files} to ${db}: 1 keys, 0 applications, 0 audit entries, 1 key events`);
  t.same(readFileSync(join(files, 'journal.log')), journal, 'the file store is left as it was');

  const store = await SqliteStore.open({ path: db });
  const rec = (await store.getKey(id))!;
  t.same(rec.usage, { total_requests: 7, error_count: 2 }, 'usage came along');
  t.equal(rec.last_used_at, Date.UTC(2026, 5, 3));
  t.same((await store.listKeyEvents(id)).map((e) => e.type), ['first_used']);
  await store.close();

  const twice = await runCli(['migrate', '--from', `file:${files}`, '--to', `sqlite:${db}`]);
  t.equal(twice.code, 1);
  t.match(twice.stderr, 'already holds data; migrate only into a new database');
  const wrong = await runCli(['migrate', '--from', files, '--to', db]);
  t.equal(wrong.code, 2);
  t.match(wrong.stderr, '--from must be file:DIR and --to sqlite:FILE');
  const none = await runCli(['migrate', '--from', `file:${join(dir, 'nothing')}`, '--to', `sqlite:${join(dir, 'x.db')}`]);
  t.equal(none.code, 1);
  t.match(none.stderr, 'holds no file store (no journal.log)');

  // (A start on the imported data, serving the key through the gateway, is the next test.)
  const again = await SqliteStore.open({ path: db });
  t.teardown(() => again.close());
  t.equal((await again.getKeyByHash(new KeyHasher(null).hash(key)))?.id, id, 'the migrated key is found by its hash');
});

t.test('the first start on a new database beside a file store imports it, and says so once', async (t) => {
  const dir = workdir(t);
  const data = join(dir, 'data');
  const { key } = await fileStoreWithKey(data);
  const config = configFile(dir, `{ type: sqlite, path: ${JSON.stringify(join(data, 'keygate.db'))} }`);
  const kg = await startKeygate(config);
  const imported = kg.proc.logs().filter((l) => l.msg === 'imported the file store into the new sqlite database; the journal is kept as it was');
  t.equal(imported.length, 1);
  t.match(imported[0], { from: data, keys: 1, events: 1 });
  t.equal(await status(kg.gw['production']!, key), 200);
  await kg.stop();
  const kg2 = await startKeygate(config);
  t.teardown(() => kg2.stop());
  t.equal(kg2.proc.logs().filter((l) => l.msg.startsWith('imported the file store')).length, 0, 'not imported again');
  t.equal(await status(kg2.gw['production']!, key), 200);
});

t.test('the file store still runs, with a deprecation warning that names the migration', async (t) => {
  const dir = workdir(t);
  const config = configFile(dir, `{ type: file, path: ${JSON.stringify(join(dir, 'files'))} }`);
  const res = await runCli(['--config', config, '--check']);
  t.equal(res.code, 0);
  t.match(res.stdout, /warning: store\.type: file: the file store is deprecated .*keygate migrate --from file:/);
});
