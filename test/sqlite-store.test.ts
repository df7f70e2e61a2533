import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import type { Alert, Delivery } from '../core/alerts.js';
import type { AppRecord } from '../core/application.js';
import type { AuditEntry, KeyEvent } from '../core/audit.js';
import { generateKey } from '../core/key-format.js';
import { KeyHasher } from '../core/key-hash.js';
import { Logger } from '../core/log.js';
import type { KeyRecord, KeyStatus } from '../core/record.js';
import { FileStore } from '../core/store/file-store.js';
import { migrateFileStore } from '../core/store/migrate.js';
import { openStore } from '../core/store/open.js';
import { errorCursor, queryApps, queryAudit, queryErrors, queryKeys } from '../core/store/query.js';
import { APPLICATION_ID, migrate, migrations, SCHEMA_VERSION } from '../core/store/sqlite/schema.js';
import { SqliteStore, type SqliteStoreOptions } from '../core/store/sqlite-store.js';
import type { AppQuery, AuditQuery, ErrorQuery, KeyQuery, Page, Store, StoreDump, UsageBatch } from '../core/store/store.js';
import { DAY, MINUTE, type ErrorSample } from '../core/usage-agg.js';
import { keyRecord } from './lib/records.js';
import { waitFor, within } from './lib/within.js';

// The embedded SQLite store beyond the shared conformance suite (test/store-sqlite.test.ts), on
// real database files: the schema as migrations (version recorded, a newer or foreign or damaged
// file refused with a store error), the write lock (open and writes wait for it without blocking
// the event loop, then fail clearly), key changes heard by every process sharing the file before
// a commit answers, the admin lists in SQL against the in-memory reference (core/store/query.ts)
// and usage aggregates against the file store, as properties over random data, usage retention,
// integrity check and backup, and the import of a file store. Crashes are test/sqlite-crash.test.ts.
// FC_SEED=n replays the property runs (the seed is printed); FC_RUNS=n runs more of them.

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31));
t.comment(`fast-check seed ${seed} (FC_SEED=${seed} replays it)`);
const runs = (n: number) => ({ seed, numRuns: Number(process.env.FC_RUNS ?? n) });

const hasher = new KeyHasher(null);
const T0 = Date.UTC(2026, 5, 1, 12);

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-sqlite-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Opens the store at `path`, closed at teardown (closing twice is harmless). */
async function open(t: Test, path: string, options: Omit<SqliteStoreOptions, 'path'> = {}): Promise<SqliteStore> {
  const store = await SqliteStore.open({ path, ...options });
  t.teardown(() => store.close());
  return store;
}

/** A connection of our own to the database, as another program (or another process) has one. */
function raw(t: Test, path: string, options: BetterSqlite3.Options = {}): Database {
  const db = new BetterSqlite3(path, { timeout: 0, ...options });
  t.teardown(() => {
    if (db.open && db.inTransaction) db.exec('ROLLBACK');
    db.close();
  });
  return db;
}

function newKey(over: Partial<KeyRecord> = {}): KeyRecord {
  return keyRecord(generateKey('gw', 'live'), hasher, T0, over);
}

function auditFor(keyId: string, i: number, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id: `aud_${keyId}_${i}`,
    time: T0 + i,
    actor: 'ops',
    role: 'admin',
    tenant: null,
    ip: '127.0.0.1',
    request_id: `req-${i}`,
    action: 'key.created',
    target_type: 'key',
    target_id: keyId,
    changes: {},
    ...over,
  };
}

function eventFor(keyId: string, type: KeyEvent['type'], at: number): KeyEvent {
  return { key_id: keyId, type, scheduled_at: null, at, actor: 'ops', detail: {} };
}

/** The rejection of `p` (failing the test when it resolves). */
async function rejection(t: Test, p: Promise<unknown>, what: string): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  t.fail(`${what}: expected a rejection`);
  return new Error('resolved');
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

// ---------------------------------------------------------------------------------------------
// The schema as migrations.

t.test('a new database records the schema version and Keygate\'s application id, and says it migrated once', async (t) => {
  const path = join(tempDir(t), 'nested', 'keygate.db');
  const logged: Record<string, unknown>[] = [];
  const log = (msg: string, fields: Record<string, unknown>) => logged.push({ msg, ...fields });
  const store = await open(t, path, { log });
  t.ok(existsSync(path), 'the file and its directory are created');
  t.same(logged, [{ msg: 'sqlite schema migrated', path, from: 0, to: SCHEMA_VERSION }], 'the migration from version 0 is logged');
  t.same(store.integrityCheck(), ['ok'], 'the new database passes its integrity check');
  await store.close();
  const db = raw(t, path, { readonly: true });
  t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION, 'user_version is the schema version');
  t.equal(db.pragma('application_id', { simple: true }), APPLICATION_ID, 'application_id marks it as Keygate\'s');
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal', 'in WAL mode');
  db.close();
  await open(t, path, { log });
  t.equal(logged.length, 1, 'an up-to-date database is opened without migrating');
});

t.test('a database at schema version 1 migrates to the current one on open, keeping its keys, and then keeps alerts', async (t) => {
  const dir = tempDir(t);
  // A version-1 database as the release before alerts made it (migration 0001 alone), holding
  // keys written by this store (the keys table is the same in both versions).
  const source = await open(t, join(dir, 'source.db'));
  const expiring = await source.putKey(newKey({ expires_at: T0 + 100 }), 0);
  await source.putKey(newKey({ expires_at: T0 + 100, revoked_at: T0, revoked_reason: 'leaked' }), 0);
  await source.close();
  const path = join(dir, 'keygate.db');
  const v1 = raw(t, path);
  v1.pragma('journal_mode = WAL');
  v1.exec(migrations()[0]!.sql);
  v1.pragma(`application_id = ${APPLICATION_ID}`);
  v1.pragma('user_version = 1');
  v1.exec(`ATTACH '${join(dir, 'source.db')}' AS source; INSERT INTO keys SELECT * FROM source.keys; DETACH source`);
  v1.close();

  const logged: Record<string, unknown>[] = [];
  const store = await open(t, path, { log: (msg, fields) => logged.push({ msg, ...fields }) });
  t.same(logged, [{ msg: 'sqlite schema migrated', path, from: 1, to: SCHEMA_VERSION }], 'the migration from version 1 is logged');
  t.same(await store.getKeyByHash(expiring.hash), expiring, 'a key of version 1 is found by its hash');
  t.same((await store.expiringKeys(T0, T0 + 100, null, 10)).map((k) => k.id), [expiring.id], 'and by the expiring-key index, the revoked one left out');
  const alert: Alert = { id: `alr_${'0'.repeat(26)}`, type: 'key.expiring', created_at: T0, tenant: null, key: { id: expiring.id, name: expiring.name, masked: 'gw_live_…' }, data: {} };
  t.equal(await store.addAlert(alert, 'first', [deliveryFor(alert, 'email', 0)]), true, 'an alert is stored');
  t.same((await store.listAlerts({ tenant: null, limit: 10 })).data, [alert], 'and listed');
  t.same(store.integrityCheck(), ['ok'], 'the migrated database passes its integrity check');
  const db = raw(t, path, { readonly: true });
  t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION, 'user_version is the current schema version');
  const fresh = await open(t, join(dir, 'fresh.db'));
  await fresh.close();
  const schemaOf = (file: string) => {
    const d = raw(t, file, { readonly: true });
    return d.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all();
  };
  t.same(schemaOf(path), schemaOf(join(dir, 'fresh.db')), 'the migrated schema is the one a new database gets');
});

t.test('an alert whose deliveries cannot all be written is not stored, and its dedup key stays free', async (t) => {
  const store = await open(t, join(tempDir(t), 'keygate.db'));
  const first: Alert = { id: `alr_${'1'.repeat(26)}`, type: 'key.leaked', created_at: T0, tenant: 'a', key: null, data: {} };
  await store.addAlert(first, 'one', [deliveryFor(first, 'email', 0)]);
  const second: Alert = { ...first, id: `alr_${'2'.repeat(26)}`, created_at: T0 + 1 };
  // A delivery id already taken: the insert of the second delivery fails.
  const err = await rejection(t, store.addAlert(second, 'two', [deliveryFor(second, 'webhook:a', 1), deliveryFor(second, 'email', 0)]), 'addAlert');
  t.equal(err.code, 'KEYGATE_STORE_UNAVAILABLE', 'the failure is a store error');
  t.equal(await store.getAlert(second.id), null, 'the alert is not stored');
  t.same(await store.listDeliveries(second.id), [], 'nor its first delivery');
  t.same(await store.listDeliveries(first.id), [deliveryFor(first, 'email', 0)], 'the other alert keeps its own');
  t.equal(await store.addAlert(second, 'two', [deliveryFor(second, 'webhook:a', 1)]), true, 'its dedup key is free');
});

t.test('a database of a newer schema is refused, naming both versions, and left unchanged', async (t) => {
  const path = join(tempDir(t), 'keygate.db');
  const store = await open(t, path);
  const key = await store.putKey(newKey(), 0);
  await store.close();
  const db = raw(t, path);
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  t.notOk(existsSync(`${path}-wal`), 'everything is in the main file');
  const before = sha256(path);

  const err = await rejection(t, SqliteStore.open({ path }), 'open');
  t.equal(err.code, 'KEYGATE_STORE_DAMAGED', 'StoreDamagedError');
  t.match(err.message, `schema version ${SCHEMA_VERSION + 1}`, 'names the version found');
  t.match(err.message, `(${SCHEMA_VERSION})`, 'and the version this Keygate knows');
  t.match(err.message, /newer release/, 'and says what to do');
  t.equal(sha256(path), before, 'the file is byte-identical');
  t.notOk(existsSync(`${path}-wal`), 'and no journal of changes was left beside it');

  const back = raw(t, path, { readonly: true });
  t.equal(back.pragma('user_version', { simple: true }), SCHEMA_VERSION + 1, 'the newer version is kept');
  t.equal(back.prepare('SELECT id FROM keys').pluck().get(), key.id, 'the data is still there for the newer release');
});

t.test("another program's SQLite file is refused and left alone", async (t) => {
  const dir = tempDir(t);
  const theirs = join(dir, 'theirs.db');
  const db = raw(t, theirs);
  db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('mine')");
  db.close();
  const err = await rejection(t, SqliteStore.open({ path: theirs }), 'open');
  t.equal(err.code, 'KEYGATE_STORE_DAMAGED', 'StoreDamagedError');
  t.match(err.message, /another program/, 'says whose it is not');
  t.match(err.message, /store\.path/, 'says what to do');
  const after = raw(t, theirs, { readonly: true });
  t.same(after.prepare('SELECT body FROM notes').pluck().all(), ['mine'], 'its data is untouched');
  t.equal(after.pragma('user_version', { simple: true }), 0, 'no schema version was written');
  t.equal(after.pragma('application_id', { simple: true }), 0, 'not marked as Keygate\'s');
  t.equal(after.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'keys'").pluck().get(), 0, 'no table of ours was added');

  // Marked by another program, even without tables yet.
  const marked = join(dir, 'marked.db');
  raw(t, marked).pragma('application_id = 1234');
  t.equal((await rejection(t, SqliteStore.open({ path: marked }), 'open')).code, 'KEYGATE_STORE_DAMAGED', 'a file another program marked is refused too');
});

t.test('a file that is not a database, or a damaged one, gives StoreDamagedError, never a raw error', async (t) => {
  const dir = tempDir(t);
  const damaged = (err: Error & { code?: string }, what: string) => {
    t.equal(err.code, 'KEYGATE_STORE_DAMAGED', `${what}: StoreDamagedError`);
    t.match(err.message, /is not a usable SQLite database/, `${what}: says so`);
    t.match(err.message, /restore it from a backup, or move it aside/, `${what}: and what to do`);
  };

  const garbage = join(dir, 'garbage.db');
  let x = 0x2545f491;
  const bytes = Buffer.alloc(16 * 4096, 0);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  writeFileSync(garbage, bytes);
  damaged(await rejection(t, SqliteStore.open({ path: garbage }), 'open'), 'random bytes');
  t.equal(sha256(garbage), createHash('sha256').update(bytes).digest('hex'), 'the file is left as it was');
  const notes = join(dir, 'notes.txt');
  writeFileSync(notes, 'these are not the droids you are looking for\n'.repeat(200));
  damaged(await rejection(t, SqliteStore.open({ path: notes }), 'open'), 'a text file');

  // A real database, then damaged: pages overwritten in the middle, or the file cut short.
  const good = join(dir, 'good.db');
  const store = await open(t, good);
  await store.commit({ keys: Array.from({ length: 600 }, (_, i) => ({ rec: newKey({ name: `key ${i}` }), expected: 0 })) });
  await store.close();
  const pages = statSync(good).size / 4096;
  t.ok(pages > 100, `a database of ${pages} pages`);

  /** Every operation on a damaged database fails with StoreDamagedError, or works. */
  const probe = async (path: string, what: string) => {
    let s: SqliteStore;
    try {
      s = await SqliteStore.open({ path });
    } catch (err) {
      damaged(err as Error, `${what}: open`);
      return;
    }
    t.teardown(() => s.close());
    const failures: unknown[] = [];
    const attempt = async (fn: () => unknown) => {
      try {
        await fn();
      } catch (err) {
        failures.push(err);
      }
    };
    let check: string[] = [];
    await attempt(() => (check = s.integrityCheck()));
    await attempt(() => s.listKeys({ tenant: null, sort: 'name', order: 'asc', limit: 1000, now: T0 }));
    await attempt(() => s.dump());
    await attempt(() => s.putKey(newKey(), 0));
    t.ok(failures.length > 0 || (check.length > 0 && check[0] !== 'ok'), `${what}: the damage is found`);
    for (const err of failures) damaged(err as Error, `${what}: after open`);
    await s.close();
  };
  const middle = join(dir, 'middle.db');
  copyFileSync(good, middle);
  const fd = openSync(middle, 'r+');
  for (let p = Math.floor(pages / 3); p < Math.floor(pages / 3) + 5; p++) writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, p * 4096);
  closeSync(fd);
  await probe(middle, 'pages overwritten');
  const second = join(dir, 'second.db');
  copyFileSync(good, second);
  const fd2 = openSync(second, 'r+');
  writeSync(fd2, Buffer.alloc(4096, 0x5a), 0, 4096, 4096);
  closeSync(fd2);
  await probe(second, 'the first table page overwritten');
  const cut = join(dir, 'cut.db');
  copyFileSync(good, cut);
  truncateSync(cut, Math.floor(pages / 2) * 4096);
  await probe(cut, 'cut short');
});

t.test('the migration is one transaction: a failure half-way leaves no table and version 0', async (t) => {
  const path = join(tempDir(t), 'keygate.db');
  // Marked as Keygate's at version 0, with a table of the schema's last (`members`) already
  // there: every statement before it succeeds, then its CREATE TABLE fails.
  const db = raw(t, path);
  db.pragma(`application_id = ${APPLICATION_ID}`);
  db.exec('CREATE TABLE members (x)');
  t.throws(() => migrate(db, path), /members already exists/, 'the migration fails at its last table');
  t.equal(db.pragma('user_version', { simple: true }), 0, 'user_version still 0');
  t.same(db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all(), ['members'], 'no table of the migration is left');
  t.notOk(db.inTransaction, 'the failed transaction was rolled back');

  const err = await rejection(t, SqliteStore.open({ path }), 'open');
  t.equal(err.code, 'KEYGATE_STORE_UNAVAILABLE', 'opening it fails with a store error');
  t.match(err.message, /members already exists/, 'saying why');
  t.equal(db.pragma('user_version', { simple: true }), 0, 'and leaves version 0');

  db.exec('DROP TABLE members');
  const store = await open(t, path);
  t.equal((await store.putKey(newKey(), 0)).version, 1, 'once the obstacle is gone, the whole schema is applied');
  t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION, 'and its version recorded');
});

// ---------------------------------------------------------------------------------------------
// The write lock.

t.test('a database locked by another connection: open fails with StoreLockedError after lock_wait, saying what to do', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'keygate.db');
  await (await open(t, path)).close();
  const holder = raw(t, path);
  holder.exec('BEGIN EXCLUSIVE');
  const started = performance.now();
  const err = await rejection(t, SqliteStore.open({ path, lockWaitMs: 150 }), 'open');
  const waited = performance.now() - started;
  t.equal(err.code, 'KEYGATE_STORE_LOCKED', 'StoreLockedError');
  t.ok(waited >= 150, `open waited for the lock (${waited.toFixed(0)} ms)`);
  t.match(err.message, path, 'names the file');
  t.match(err.message, /locked by another process/, 'says it is locked');
  t.match(err.message, /end it and Keygate goes on/, 'says what to do');
  holder.exec('COMMIT');
  t.ok(await open(t, path, { lockWaitMs: 150 }), 'once the lock is released, open succeeds');

  // A database not yet in WAL mode (a new file another program holds): switching to WAL waits too.
  const fresh = join(dir, 'fresh.db');
  const other = raw(t, fresh);
  other.exec('CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1)');
  t.equal((await rejection(t, SqliteStore.open({ path: fresh, lockWaitMs: 50 }), 'open')).code, 'KEYGATE_STORE_LOCKED', 'a database not yet in WAL mode, held by another connection: StoreLockedError');
  other.exec('ROLLBACK');
});

t.test('a write that meets a held write lock: the event loop runs while it waits, then StoreUnavailableError', async (t) => {
  const path = join(tempDir(t), 'keygate.db');
  const store = await open(t, path, { lockWaitMs: 1_000 });
  const earlier = await store.putKey(newKey(), 0);
  const holder = raw(t, path);
  holder.exec('BEGIN IMMEDIATE');

  let settled = false;
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 5);
  t.teardown(() => clearInterval(ticker));
  const rec = newKey();
  const started = performance.now();
  const write = store.putKey(rec, 0).finally(() => (settled = true));
  await waitFor(() => ticks >= 3, 10_000, 'timers fire while the write waits');
  t.notOk(settled, 'the write is still waiting');
  t.same(await store.getKey(earlier.id), earlier, 'reads answer meanwhile (WAL: readers never wait for a writer)');
  const err = await rejection(t, write, 'write');
  const waited = performance.now() - started;
  t.equal(err.code, 'KEYGATE_STORE_UNAVAILABLE', 'StoreUnavailableError (a 503)');
  t.match(err.message, /locked by another process \(commit waited 1000 ms\)/, 'says it is locked, and how long it waited');
  t.ok(waited >= 1_000, `after lock_wait (${waited.toFixed(0)} ms)`);
  holder.exec('ROLLBACK');
  t.equal(await store.getKey(rec.id), null, 'the refused write left nothing');
  t.equal((await store.putKey(rec, 0)).version, 1, 'and can be made again');

  // A usage batch refused by the lock is not remembered as applied.
  holder.exec('BEGIN IMMEDIATE');
  const batch: UsageBatch = { id: 'b-locked', keys: [{ key_id: rec.id, requests: 2, errors: 0, first_at: T0, last_at: T0 }], buckets: [], errors: [], keep_errors: 10 };
  t.equal((await rejection(t, store.ingestUsage(batch), 'ingest')).code, 'KEYGATE_STORE_UNAVAILABLE', 'a usage batch meeting the lock fails too');
  holder.exec('ROLLBACK');
  t.equal(await store.ingestUsage(batch), true, 'the batch sent again is applied');
  t.equal((await store.getKey(rec.id))!.usage.total_requests, 2, 'once');
});

t.test('a write waiting for the lock goes through once it is released', async (t) => {
  const path = join(tempDir(t), 'keygate.db');
  const store = await open(t, path, { lockWaitMs: 30_000 });
  const holder = raw(t, path);
  holder.exec('BEGIN IMMEDIATE');
  let settled = false;
  const rec = newKey();
  const write = store.commit({ keys: [{ rec, expected: 0 }], audit: [auditFor(rec.id, 1)] }).finally(() => (settled = true));
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 5);
  t.teardown(() => clearInterval(ticker));
  await waitFor(() => ticks >= 5, 10_000, 'time passes');
  t.notOk(settled, 'the write waits');
  holder.exec('COMMIT');
  const done = await within(write, 10_000, 'the write after the release');
  t.equal(done.keys[0]!.version, 1, 'the write answers once the lock is released');
  t.same((await store.listAudit({ tenant: null, limit: 10 })).data.map((a) => a.target_id), [rec.id], 'with its audit entry');
});

// ---------------------------------------------------------------------------------------------
// Two stores on one file, as two processes (the admin plane and a gateway worker) have.

t.test('a commit answers only after every other caching store has heard it and confirmed', async (t) => {
  const path = join(tempDir(t), 'keygate.db');
  const a = await open(t, path, { invalidationWaitMs: 60_000 });
  const b = await open(t, path, { invalidationWaitMs: 60_000 });
  const watcher = raw(t, path, { readonly: true });
  const order: string[] = [];
  b.onKeyChange((hash) => order.push(`b heard ${hash}`));
  const confirmed = () => watcher.prepare('SELECT min(seq) FROM members').pluck().get() as number;
  const newest = () => watcher.prepare('SELECT max(seq) FROM changes').pluck().get() as number;

  const rec = newKey();
  let confirmedAtAnswer = -1;
  const created = await within(
    a.putKey(rec, 0).then((k) => {
      order.push('a answered');
      confirmedAtAnswer = confirmed();
      return k;
    }),
    30_000,
    'the commit',
  );
  t.same(order, [`b heard ${rec.hash}`, 'a answered'], 'b heard the new key before a answered');
  t.equal(confirmedAtAnswer, newest(), 'and had recorded that it applied the change');

  // A revocation, and a re-hash (both lookups announced).
  order.length = 0;
  await within(a.putKey({ ...created, revoked_at: T0 }, 1).then(() => order.push('a answered')), 30_000, 'the revocation');
  t.same(order, [`b heard ${rec.hash}`, 'a answered'], 'the revocation too');
  order.length = 0;
  const rehashed = { ...created, version: 2, hash: 'e'.repeat(64) };
  await within(a.putKey(rehashed, 2).then(() => order.push('a answered')), 30_000, 'the re-hash');
  t.same(order, [`b heard ${rehashed.hash}`, `b heard ${rec.hash}`, 'a answered'], 'both hashes of a re-hash');

  // And the other way round: b writes, a (now a member too) hears it before b answers.
  const heardByA: string[] = [];
  a.onKeyChange((hash) => heardByA.push(hash!));
  const other = newKey();
  await within(b.putKey(other, 0).then(() => order.push(`b answered, a had heard ${heardByA.join()}`)), 30_000, 'b writes');
  t.equal(order.at(-1), `b answered, a had heard ${other.hash}`, 'a heard b\'s write before b answered');
  t.ok(order.includes(`b heard ${other.hash}`), 'b\'s own listener heard its write too');
});

t.test('a store that closed, or whose membership lapsed, is not waited for', async (t) => {
  const path = join(tempDir(t), 'keygate.db');
  const warnings: string[] = [];
  const a = await open(t, path, { invalidationWaitMs: 60_000, warn: (msg) => warnings.push(msg) });
  const b = await open(t, path);
  b.onKeyChange(() => {});
  await b.close();
  const db = raw(t, path);
  // A process killed without leaving: its row stays until it expires.
  db.prepare('INSERT INTO members (instance, pid, seq, expires) VALUES (?, ?, ?, ?)').run('dead', 999_999, 0, Date.now() - 1);
  const started = performance.now();
  await within(a.putKey(newKey(), 0), 10_000, 'the commit');
  t.ok(performance.now() - started < 5_000, 'answered without waiting out invalidation_wait');
  t.same(warnings, [], 'and without a warning');
});

t.test('a caching store that does not confirm makes a commit wait invalidation_wait_ms, warn, then answer', async (t) => {
  const path = join(tempDir(t), 'keygate.db');
  const warnings: Record<string, unknown>[] = [];
  const a = await open(t, path, { invalidationWaitMs: 300, warn: (msg, fields) => warnings.push({ msg, ...fields }) });
  // A member that polls once when it joins, then (as a process stuck in a long computation) never.
  const stuck = await open(t, path, { pollMs: 1_000_000_000 });
  const heard: (string | null)[] = [];
  stuck.onKeyChange((h) => heard.push(h));
  const rec = newKey();
  const started = performance.now();
  await within(a.putKey(rec, 0), 30_000, 'the commit');
  const waited = performance.now() - started;
  t.ok(waited >= 300, `the commit waited for the member (${waited.toFixed(0)} ms)`);
  t.ok(waited < 10_000, 'and no longer than about invalidation_wait_ms');
  t.same(warnings, [{ msg: 'gateway processes did not confirm a key change in time', lagging: 1, wait_ms: 300 }], 'and warned');
  t.same(heard, [], 'the stuck member has not heard it yet');
  stuck.pollChanges();
  t.same(heard, [rec.hash], 'it hears it as soon as it polls');
});

// ---------------------------------------------------------------------------------------------
// The admin lists in SQL against the in-memory reference, as properties over random data.

/** Letters, case pairs, non-ASCII (with case folding that changes lengths), and GLOB/LIKE specials. */
const CHARS = ['a', 'b', 'A', 'B', 'k', 'é', 'É', 'ß', 'İ', 'ı', 'Σ', '😀', '\uFFFD', 'Ａ', '中', '*', '?', '[', ']', '^', '%', '_', ' ', '-', '\\'];
const text = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...CHARS), minLength: min, maxLength: max });
const suffix = fc.string({ unit: fc.constantFrom(...'aAbBzZ09'), minLength: 1, maxLength: 3 });
const maybe = <T>(arb: fc.Arbitrary<T>, weight = 2) => fc.oneof({ weight, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
const NOW = T0 + 10_000;
/** A moment around NOW, or (more often) none. */
const around = fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: -2, max: 2 }).map((d) => NOW + d * 1000) });

/** A part of one of `names` (whole characters), any short text, an exact id, or nothing. */
const searchSpec = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.record({ of: fc.nat(), at: fc.nat(), len: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 2, arbitrary: text(1, 5) },
  { weight: 1, arbitrary: fc.record({ id: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant('') },
);
type SearchSpec = typeof searchSpec extends fc.Arbitrary<infer T> ? T : never;

function search(spec: SearchSpec, records: readonly { id: string; name: string }[]): string | undefined {
  if (spec === undefined || typeof spec === 'string') return spec;
  const r = records.length === 0 ? undefined : records[('id' in spec ? spec.id : spec.of) % records.length];
  if (r === undefined) return 'a';
  if ('id' in spec) return r.id;
  const chars = [...r.name];
  const part = chars.slice(spec.at % Math.max(chars.length, 1), (spec.at % Math.max(chars.length, 1)) + spec.len).join('');
  return part === '' ? 'a' : part;
}

/** Every page of a keyset-paged list, following its cursors (bounded). */
async function allPages<T>(list: (cursor: string | undefined) => Promise<Page<T>> | Page<T>, most: number): Promise<Page<T>[]> {
  const pages: Page<T>[] = [];
  let cursor: string | undefined;
  do {
    const page = await list(cursor);
    pages.push(page);
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined && pages.length <= most);
  return pages;
}

/** A fresh database per property run, in one directory removed at teardown. */
function databases(t: Test): () => string {
  const dir = tempDir(t);
  let n = 0;
  return () => join(dir, `run-${n++}.db`);
}

function equal(actual: unknown, expected: unknown, what: string): void {
  if (!isDeepStrictEqual(actual, expected)) throw new Error(`${what}\n  sql:       ${JSON.stringify(actual)}\n  reference: ${JSON.stringify(expected)}`);
}

const keySpec = fc.record({
  id: suffix,
  name: text(0, 6),
  tenant: fc.constantFrom(null, 'a', 'b'),
  environment: fc.constantFrom('production', 'test'),
  application: fc.constantFrom(null, 'app_1', 'app_2'),
  scopes: fc.subarray(['read', 'write', 'admin']),
  created: fc.nat(4),
  revoked_at: around,
  expires_at: around,
  suspended_at: around,
  app_suspended_at: around,
  not_before: around,
  grace_ends_at: around,
  used: fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 2, arbitrary: fc.nat(4) }),
});

const keyQuerySpec = fc.record({
  tenant: fc.constantFrom(null, null, 'a', 'b'),
  status: maybe(fc.constantFrom<KeyStatus>('pending', 'active', 'suspended', 'expired', 'revoked')),
  environment: maybe(fc.constantFrom('production', 'test', 'staging')),
  application: maybe(fc.constantFrom('app_1', 'app_2')),
  scope: maybe(fc.constantFrom('read', 'write', 'admin')),
  q: searchSpec,
  sort: fc.constantFrom<KeyQuery['sort']>('created_at', 'last_used_at', 'name'),
  order: fc.constantFrom<KeyQuery['order']>('asc', 'desc'),
  limit: fc.integer({ min: 1, max: 4 }),
});

t.test('names sort in code point order (UTF-8 bytes), in SQL and in the reference alike', async (t) => {
  const store = await open(t, join(tempDir(t), 'keygate.db'));
  const names = ['😀', 'Ａ', 'é', 'z', 'a', 'Zebra', '\uFFFD', '中'];
  const { keys } = await store.commit({ keys: names.map((name) => ({ rec: newKey({ name }), expected: 0 })) });
  const expected = ['Zebra', 'a', 'z', 'é', '中', 'Ａ', '\uFFFD', '😀'];
  for (const order of ['asc', 'desc'] as const) {
    const query = { tenant: null, sort: 'name' as const, order, limit: 3, now: T0 };
    const want = order === 'asc' ? expected : [...expected].reverse();
    const sql = await allPages((cursor) => store.listKeys({ ...query, cursor }), 10);
    const ref = await allPages((cursor) => queryKeys(keys, { ...query, cursor }), 10);
    t.same(sql.flatMap((p) => p.data.map((k) => k.name)), want, `sql, ${order}`);
    t.same(ref.flatMap((p) => p.data.map((k) => k.name)), want, `reference, ${order}`);
    t.same(sql.map((p) => p.next_cursor), ref.map((p) => p.next_cursor), 'the same cursors');
  }
});

t.test('listKeys in SQL pages exactly as the in-memory reference (queryKeys), cursor by cursor', async (t) => {
  const next = databases(t);
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(keySpec, { selector: (k) => k.id, maxLength: 25 }),
      fc.array(keyQuerySpec, { minLength: 1, maxLength: 6 }),
      async (specs, queries) => {
        const store = await SqliteStore.open({ path: next() });
        try {
          const model = new Map<string, KeyRecord>();
          const recs = specs.map((s) => {
            const { id, created, used, ...fields } = s;
            return newKey({ ...fields, id: `key_${id}`, created_at: T0 + created * 1000 });
          });
          if (recs.length > 0) {
            const { keys } = await store.commit({ keys: recs.map((rec) => ({ rec, expected: 0 })) });
            for (const k of keys) model.set(k.id, k);
          }
          const deltas = specs.flatMap((s) => (s.used === null ? [] : [{ key_id: `key_${s.id}`, requests: 1, errors: 0, first_at: T0 + s.used * 1000, last_at: T0 + s.used * 1000 }]));
          await store.recordUsage(deltas);
          for (const d of deltas) {
            const k = model.get(d.key_id)!;
            model.set(k.id, { ...k, last_used_at: d.last_at, usage: { total_requests: 1, error_count: 0 } });
          }
          for (const k of model.values()) equal(await store.getKey(k.id), k, `stored ${k.id}`);
          for (const spec of queries) {
            const query: KeyQuery = { ...spec, q: search(spec.q, recs), now: NOW };
            const sql = await allPages((cursor) => store.listKeys({ ...query, cursor }), model.size + 1);
            const ref = await allPages((cursor) => queryKeys(model.values(), { ...query, cursor }), model.size + 1);
            equal(sql.map((p) => ({ ids: p.data.map((k) => k.id), next: p.next_cursor })), ref.map((p) => ({ ids: p.data.map((k) => k.id), next: p.next_cursor })), `pages of ${JSON.stringify(query)}`);
            equal(sql, ref, `records of ${JSON.stringify(query)}`);
          }
        } finally {
          await store.close();
        }
      },
    ),
    runs(60),
  );
  t.pass('every page and cursor agreed');
});

const appSpec = fc.record({
  id: suffix,
  name: text(0, 6),
  tenant: fc.constantFrom(null, 'a', 'b'),
  created: fc.nat(3),
  suspended: fc.boolean(),
});

t.test('listApps in SQL pages exactly as queryApps', async (t) => {
  const next = databases(t);
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(appSpec, { selector: (a) => a.id, maxLength: 15 }),
      fc.array(fc.record({ tenant: fc.constantFrom(null, null, 'a', 'b'), status: maybe(fc.constantFrom('active' as const, 'suspended' as const)), q: searchSpec, limit: fc.integer({ min: 1, max: 4 }) }), { minLength: 1, maxLength: 5 }),
      async (specs, queries) => {
        const store = await SqliteStore.open({ path: next() });
        try {
          const apps: AppRecord[] = specs.map((s) => ({
            id: `app_${s.id}`,
            version: 0,
            tenant: s.tenant,
            name: s.name,
            description: null,
            meta: {},
            created_at: T0 + s.created * 1000,
            created_by: 'ops',
            updated_at: T0,
            suspended_at: s.suspended ? T0 : null,
            suspended_reason: s.suspended ? 'why not' : null,
          }));
          const stored = apps.length === 0 ? [] : (await store.commit({ apps: apps.map((rec) => ({ rec, expected: 0 })) })).apps;
          for (const spec of queries) {
            const query: AppQuery = { ...spec, q: search(spec.q, apps) };
            const sql = await allPages((cursor) => store.listApps({ ...query, cursor }), apps.length + 1);
            const ref = await allPages((cursor) => queryApps(stored, { ...query, cursor }), apps.length + 1);
            equal(sql, ref, `pages of ${JSON.stringify(query)}`);
          }
        } finally {
          await store.close();
        }
      },
    ),
    runs(40),
  );
  t.pass('every page and cursor agreed');
});

const auditSpec = fc.record({
  id: suffix,
  time: fc.nat(4),
  tenant: fc.constantFrom(null, 'a'),
  actor: fc.constantFrom('ops', 'ci'),
  action: fc.constantFrom<AuditEntry['action']>('key.created', 'key.revoked', 'application.created'),
  target_id: fc.constantFrom('key_1', 'key_2', 'app_1'),
});

const auditQuerySpec = fc.record({
  tenant: fc.constantFrom(null, null, 'a'),
  actor: maybe(fc.constantFrom('ops', 'ci')),
  action: maybe(fc.constantFrom('key.created', 'key.revoked')),
  target_id: maybe(fc.constantFrom('key_1', 'app_1')),
  from: maybe(fc.integer({ min: -1, max: 5 }).map((s) => T0 + s * 1000)),
  to: maybe(fc.integer({ min: -1, max: 5 }).map((s) => T0 + s * 1000)),
  limit: fc.integer({ min: 1, max: 4 }),
});

t.test('listAudit in SQL pages exactly as queryAudit', async (t) => {
  const next = databases(t);
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(auditSpec, { selector: (a) => a.id, maxLength: 20 }),
      fc.array(auditQuerySpec, { minLength: 1, maxLength: 5 }),
      async (specs, queries) => {
        const store = await SqliteStore.open({ path: next() });
        try {
          const entries = specs.map((s, i) => auditFor(s.target_id, i, { ...s, id: `aud_${s.id}`, time: T0 + s.time * 1000 }));
          // In a few commits, as they come.
          for (let i = 0; i < entries.length; i += 7) await store.commit({ audit: entries.slice(i, i + 7) });
          for (const spec of queries) {
            const query: AuditQuery = spec;
            const sql = await allPages((cursor) => store.listAudit({ ...query, cursor }), entries.length + 1);
            const ref = await allPages((cursor) => queryAudit(entries, { ...query, cursor }), entries.length + 1);
            equal(sql, ref, `pages of ${JSON.stringify(query)}`);
          }
        } finally {
          await store.close();
        }
      },
    ),
    runs(40),
  );
  t.pass('every page and cursor agreed');
});

const errorSpec = fc.record({ time: fc.nat(3), key_id: fc.constantFrom(null, 'key_1', 'key_2'), tenant: fc.constantFrom(null, 'a') });

t.test('recentErrors in SQL pages exactly as queryErrors over the samples kept', async (t) => {
  const next = databases(t);
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ samples: fc.array(errorSpec, { maxLength: 6 }), keep: fc.constantFrom(3, 5, 100) }), { minLength: 1, maxLength: 4 }),
      fc.array(
        fc.record({
          key_id: maybe(fc.constantFrom('key_1', 'key_2')),
          tenant: maybe(fc.constant('a')),
          from: maybe(fc.nat(3).map((s) => T0 + s)),
          to: maybe(fc.nat(3).map((s) => T0 + s)),
          limit: fc.integer({ min: 1, max: 4 }),
        }),
        { minLength: 1, maxLength: 5 },
      ),
      async (batches, queries) => {
        const store = await SqliteStore.open({ path: next() });
        try {
          let kept: ErrorSample[] = [];
          let n = 0;
          for (const [i, b] of batches.entries()) {
            // Out of time order, several in one millisecond, as gateways' batches arrive.
            const errors: ErrorSample[] = b.samples.map((s) => ({
              time: T0 + s.time,
              request_id: `r${n++}`,
              key_id: s.key_id,
              tenant: s.tenant,
              api: 'emails',
              method: 'GET',
              route: '/v1/*',
              status: 503,
              error: 'service_unavailable',
              reason: null,
            }));
            await store.ingestUsage({ id: `b${i}`, keys: [], buckets: [], errors, keep_errors: b.keep });
            // As both stores do: a batch's keep_errors applies when it brings samples.
            if (errors.length > 0) kept = [...kept, ...errors].slice(-b.keep);
          }
          for (const spec of queries) {
            const query: ErrorQuery = spec;
            let cursor: string | undefined;
            for (let page = 0; page <= kept.length + 1; page++) {
              const sql = await store.recentErrors({ ...query, cursor });
              const ref = queryErrors(kept, (e) => e, { ...query, cursor });
              equal(sql, ref, `page ${page} of ${JSON.stringify({ ...query, cursor })}`);
              if (sql.length < query.limit) break;
              cursor = errorCursor(sql.at(-1)!);
            }
          }
        } finally {
          await store.close();
        }
      },
    ),
    runs(40),
  );
  t.pass('every page agreed');
});

const bucketSpec = fc.record({
  scope: fc.constantFrom('*', 't:a', 'key_1'),
  gran: fc.constantFrom('m' as const, 'd' as const),
  at: fc.nat(3),
  fields: fc.dictionary(fc.constantFrom('n', 'ok', 's:200', 'lat', 'e:n|emails|GET|/v1/*', 'k:key_1'), fc.integer({ min: 0, max: 20 }).map((n) => n / 2), { minKeys: 1 }),
});

t.test('usageBuckets in SQL answers as the file store does, for any ranges', async (t) => {
  const next = databases(t);
  const D0 = T0 - (T0 % DAY);
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(bucketSpec, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.record({ scope: fc.constantFrom('*', 't:a', 'key_1', 'key_2'), gran: fc.constantFrom('m' as const, 'd' as const), from: fc.integer({ min: -1, max: 4 }), len: fc.integer({ min: 0, max: 5 }), offset: fc.constantFrom(0, 1) }), { minLength: 1, maxLength: 6 }),
      async (batches, ranges) => {
        const path = next();
        const sql = await SqliteStore.open({ path });
        const files = await FileStore.open({ dir: `${path}.files` });
        try {
          for (const [i, specs] of batches.entries()) {
            const buckets = specs.map((b) => ({ scope: b.scope, gran: b.gran, start: D0 + b.at * (b.gran === 'm' ? MINUTE : DAY), ttl_ms: 90 * DAY, fields: b.fields }));
            const batch: UsageBatch = { id: `b${i}`, keys: [], buckets, errors: [], keep_errors: 10 };
            await sql.ingestUsage(batch);
            await files.ingestUsage(batch);
          }
          for (const r of ranges) {
            const size = r.gran === 'm' ? MINUTE : DAY;
            // Bounds on bucket boundaries, or a millisecond past them.
            const from = D0 + r.from * size + r.offset;
            const to = from + r.len * size;
            equal(await sql.usageBuckets(r.scope, r.gran, from, to), await files.usageBuckets(r.scope, r.gran, from, to), `buckets ${JSON.stringify({ ...r, from, to })}`);
          }
        } finally {
          await sql.close();
          await files.close();
        }
      },
    ),
    runs(30),
  );
  t.pass('every range agreed');
});

// ---------------------------------------------------------------------------------------------
// Usage: retention, error samples kept, batches applied once.

t.test('usage retention: buckets past it (judged by the newest bucket written) are gone after a later ingest', async (t) => {
  const path = join(tempDir(t), 'keygate.db');
  let store = await open(t, path);
  const M0 = T0 - (T0 % MINUTE);
  const D0 = T0 - (T0 % DAY);
  const minute = (start: number, ttl = 2 * MINUTE): UsageBatch['buckets'][number] => ({ scope: '*', gran: 'm', start, ttl_ms: ttl, fields: { n: 1 } });
  const batch = (id: string, buckets: UsageBatch['buckets']): UsageBatch => ({ id, keys: [], buckets, errors: [], keep_errors: 10 });
  const starts = async () => (await store.usageBuckets('*', 'm', M0 - DAY, M0 + DAY)).map((b) => (b.start - M0) / MINUTE);
  const rows = () => {
    const db = raw(t, path, { readonly: true });
    const n = db.prepare("SELECT (SELECT count(*) FROM usage_buckets WHERE gran = 'm') + (SELECT count(*) FROM usage_fields WHERE gran = 'm')").pluck().get();
    db.close();
    return n;
  };

  // The minute M0 is kept 2 minutes after it ends: until the newest bucket starts at M0 + 3.
  await store.ingestUsage(batch('b1', [minute(M0), { scope: '*', gran: 'd', start: D0, ttl_ms: 30 * DAY, fields: { n: 1 } }]));
  await store.ingestUsage(batch('b2', [minute(M0 + 2 * MINUTE)]));
  t.same(await starts(), [0, 2], 'within retention: kept');
  await store.ingestUsage(batch('b3', [minute(M0 + 3 * MINUTE, 10 * MINUTE)]));
  t.same(await starts(), [2, 3], 'the minute whose retention ended is gone');
  t.equal(rows(), 4, 'its bucket row and its fields are deleted');
  t.same((await store.usageBuckets('*', 'd', D0, D0 + DAY)).map((b) => b.fields), [{ n: 1 }], 'the day bucket, with its longer retention, stays');

  // A bucket arriving late (an old minute) does not move the judgement back.
  await store.ingestUsage(batch('b4', [minute(M0 + MINUTE, 0)]));
  t.same(await starts(), [1, 2, 3], 'a late bucket is stored');
  await store.ingestUsage(batch('b5', [minute(M0 + 5 * MINUTE, 10 * MINUTE)]));
  t.same(await starts(), [3, 5], 'and pruned once the newest data passes its retention');

  // After a restart the newest bucket is read back from the database.
  store = await (async () => {
    await store.close();
    return open(t, path);
  })();
  await store.ingestUsage(batch('b6', [minute(M0 + 2 * MINUTE, 0)]));
  await store.ingestUsage(batch('b7', []));
  t.same(await starts(), [3, 5], 'a late bucket after a restart is judged by the newest one stored');
});

t.test('usage: error samples beyond keep_errors are dropped, and a batch sent twice applies once', async (t) => {
  const path = join(tempDir(t), 'keygate.db');
  const store = await open(t, path);
  const key = await store.putKey(newKey(), 0);
  const sample = (i: number): ErrorSample => ({ time: T0 + i, request_id: `r${i}`, key_id: key.id, tenant: null, api: null, method: 'GET', route: null, status: 500, error: 'upstream_error', reason: null });
  const batch = (id: string, from: number, count: number, keep: number): UsageBatch => ({
    id,
    keys: [{ key_id: key.id, requests: count, errors: count, first_at: T0 + from, last_at: T0 + from + count }],
    buckets: [{ scope: key.id, gran: 'm', start: T0 - (T0 % MINUTE), ttl_ms: DAY, fields: { n: count } }],
    errors: Array.from({ length: count }, (_, i) => sample(from + i)),
    keep_errors: keep,
  });
  const kept = () => {
    const db = raw(t, path, { readonly: true });
    const ids = db.prepare('SELECT request_id FROM usage_errors ORDER BY seq').pluck().all();
    db.close();
    return ids;
  };
  t.equal(await store.ingestUsage(batch('b1', 0, 5, 3)), true, 'a batch of 5 samples, keeping 3');
  t.same(kept(), ['r2', 'r3', 'r4'], 'the 3 newest samples kept, the rest deleted');
  t.same((await store.recentErrors({ limit: 10 })).map((e) => e.request_id), ['r4', 'r3', 'r2'], 'listed newest first');
  t.equal(await store.ingestUsage(batch('b2', 5, 2, 4)), true, 'a batch of 2, keeping 4');
  t.same(kept(), ['r3', 'r4', 'r5', 'r6'], 'each batch applies its own keep_errors');

  t.equal(await store.ingestUsage(batch('b2', 5, 2, 4)), false, 'the same batch again is refused');
  await Promise.all([store.ingestUsage(batch('b3', 7, 1, 4)), store.ingestUsage(batch('b3', 7, 1, 4))]);
  const got = (await store.getKey(key.id))!;
  t.same(got.usage, { total_requests: 8, error_count: 8 }, 'counted once per batch, even sent twice at once');
  t.same((await store.usageBuckets(key.id, 'm', 0, T0 + DAY))[0]!.fields, { n: 8 }, 'aggregates too');
  t.same(kept(), ['r4', 'r5', 'r6', 'r7'], 'and samples');
  t.same(store.dump().batches, ['b1', 'b2', 'b3'], 'each batch id remembered once');
});

// ---------------------------------------------------------------------------------------------
// Integrity check and backup.

t.test('integrityCheck answers ok; a backup taken while another store writes opens and holds the data', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'keygate.db');
  const writer = await open(t, path);
  // Larger than one step of SQLite's online backup (100 pages), so that a backup copying in
  // steps would be restarted by every write of the other connection.
  const before = await writer.commit({ keys: Array.from({ length: 800 }, (_, i) => ({ rec: newKey({ name: `before ${i}` }), expected: 0 })) });
  const source = await open(t, path);
  t.same(source.integrityCheck(), ['ok'], 'integrityCheck answers ok on a good database');

  let writing = true;
  const during: string[] = [];
  const writes = (async () => {
    for (let i = 0; writing; i++) {
      const rec = newKey({ name: `during ${i}` });
      await writer.commit({ keys: [{ rec, expected: 0 }], audit: [auditFor(rec.id, i)], events: [eventFor(rec.id, 'created', T0)] });
      during.push(rec.id);
      // Between writes, the event loop (the backup's steps) runs, as between requests.
      await new Promise((r) => setImmediate(r));
    }
  })();
  const dest = join(dir, 'backup.db');
  try {
    await waitFor(() => during.length >= 3, 30_000, 'the writer runs');
    await within(source.backup(dest), 60_000, 'the backup while another store writes');
  } finally {
    writing = false;
    await writes;
  }
  t.ok(during.length >= 3, `${during.length} commits meanwhile`);

  const copy = await open(t, dest);
  t.same(copy.integrityCheck(), ['ok'], 'the copy passes the integrity check');
  const copied = copy.dump();
  const ids = new Set(copied.keys.map((k) => k.id));
  t.ok(before.keys.every((k) => ids.has(k.id)), 'every key written before the backup is in it');
  t.same(await copy.getKeyByHash(before.keys[17]!.hash), before.keys[17], 'found by hash');
  const audited = new Set(copied.audit.map((a) => a.target_id));
  const evented = new Set(copied.events.map((e) => e.key_id));
  t.ok(during.every((id) => ids.has(id) === audited.has(id) && ids.has(id) === evented.has(id)), 'each commit during the backup is in it whole or not at all');
  t.equal((await copy.putKey(newKey(), 0)).version, 1, 'the copy is a working store');
});

// ---------------------------------------------------------------------------------------------
// The file store, imported.

function alertFor(keyId: string, i: number, tenant: string | null): Alert {
  return { id: `alr_${String(i).padStart(26, '0')}`, type: i % 2 ? 'key.revoked' : 'key.expiring', created_at: T0 + 1000 + Math.floor(i / 2), tenant, key: { id: keyId, name: `Key ${i}`, masked: 'gw_live_…' }, data: { i } };
}

function deliveryFor(alert: Alert, target: string, i: number): Delivery {
  return { id: `dlv_${target}_${i}`, alert_id: alert.id, target, state: 'pending', attempts: [], next_at: T0 + 2000 + i, created_at: alert.created_at };
}

/** A file store with every kind of record: keys (used, re-hashed, revoked), apps, audit, events, usage, alerts and deliveries. */
async function fillFileStore(dir: string): Promise<{ hashes: { old: string; now: string }; ids: string[] }> {
  const fs = await FileStore.open({ dir });
  try {
    const app: AppRecord = { id: 'app_one', version: 0, tenant: 'a', name: 'Mailer', description: null, meta: { team: 'x' }, created_at: T0, created_by: 'ops', updated_at: T0, suspended_at: null, suspended_reason: null };
    await fs.commit({ apps: [{ rec: app, expected: 0 }], audit: [auditFor('app_one', 0, { action: 'application.created', target_type: 'application', tenant: 'a' })] });
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const rec = newKey({ name: `Key ${i} ünï`, tenant: i % 3 === 0 ? 'a' : null, application: i % 4 === 0 ? 'app_one' : null, scopes: i % 2 ? ['read'] : [], created_at: T0 + i, expires_at: i === 5 ? T0 + 50 : null });
      await fs.commit({ keys: [{ rec, expected: 0 }], audit: [auditFor(rec.id, i + 1, { tenant: rec.tenant })], events: [eventFor(rec.id, 'created', T0 + i)] });
      ids.push(rec.id);
    }
    const M0 = T0 - (T0 % MINUTE);
    for (let i = 0; i < 12; i++) {
      await fs.ingestUsage({
        id: `batch-${i}`,
        keys: [{ key_id: ids[i % 5]!, requests: 2, errors: 1, first_at: T0 + 100 + i, last_at: T0 + 200 + i }],
        buckets: [
          { scope: '*', gran: 'm', start: M0 + i * MINUTE, ttl_ms: 5 * MINUTE, fields: { n: 2, 's:200': 1, 's:503': 1, lat: 1.5 } },
          { scope: ids[i % 5]!, gran: 'd', start: T0 - (T0 % DAY), ttl_ms: 30 * DAY, fields: { n: 2 } },
        ],
        errors: [{ time: T0 + 200 + i, request_id: `r${i}`, key_id: ids[i % 5]!, tenant: null, api: 'emails', method: 'GET', route: '/v1/*', status: 503, error: 'service_unavailable', reason: null }],
        keep_errors: 8,
      });
    }
    // A re-hash (a key moved to a new hash kind) and a revocation.
    const rehashed = (await fs.getKey(ids[7]!))!;
    const now = { ...rehashed, hash: 'd'.repeat(64) };
    await fs.commit({ keys: [{ rec: now, expected: rehashed.version }], events: [eventFor(rehashed.id, 'edited', T0 + 300)] });
    const revoked = (await fs.getKey(ids[2]!))!;
    await fs.commit({ keys: [{ rec: { ...revoked, revoked_at: T0 + 400, revoked_reason: 'leaked' }, expected: revoked.version }], audit: [auditFor(revoked.id, 99, { action: 'key.revoked' })], events: [eventFor(revoked.id, 'revoked', T0 + 400)] });
    // Alerts: some delivered, one pruned (its dedup key free again), one refused as a duplicate.
    for (let i = 0; i < 6; i++) {
      const alert = alertFor(ids[i]!, i, i % 2 === 0 ? 'a' : null);
      const deliveries = [deliveryFor(alert, 'webhook:ops', i), deliveryFor(alert, 'email', i)];
      await fs.addAlert(alert, `dedup-${i}`, deliveries);
      if (i % 3 === 0) await fs.putDelivery({ ...deliveries[0]!, state: 'delivered', attempts: [{ at: T0 + 1000 + i, ok: true, status: 200, error: null, duration_ms: 7 }], next_at: null });
    }
    await fs.addAlert(alertFor(ids[9]!, 9, null), 'dedup-1', []);
    await fs.pruneAlerts(T0 + 1000 + 1);
    await fs.quota(ids[0]!, { initial: 10, refill: 10, every: 'day' }, 'spend', 3, T0);
    await fs.quota(ids[1]!, { initial: 5, refill: null, every: null }, 'add', 100, T0);
    return { hashes: { old: rehashed.hash, now: now.hash }, ids };
  } finally {
    await fs.close();
  }
}

/** What the two stores answer to the admin plane's reads, for comparison. */
async function answers(store: Store, ids: string[]) {
  const M0 = T0 - (T0 % MINUTE);
  const out: Record<string, unknown> = {};
  for (const sort of ['created_at', 'last_used_at', 'name'] as const) {
    for (const tenant of [null, 'a']) {
      out[`keys ${sort} ${tenant}`] = await allPages((cursor) => store.listKeys({ tenant, sort, order: 'desc', limit: 7, cursor, now: T0 + 100 }), 100);
    }
  }
  out['revoked'] = await store.listKeys({ tenant: null, status: 'revoked', sort: 'name', order: 'asc', limit: 50, now: T0 + 100 });
  out['search'] = await store.listKeys({ tenant: null, q: 'KEY 1', sort: 'name', order: 'asc', limit: 50, now: T0 + 100 });
  for (const id of ids) {
    const k = await store.getKey(id);
    out[`key ${id}`] = k;
    out[`by hash ${id}`] = k && (await store.getKeyByHash(k.hash));
    out[`events ${id}`] = await store.listKeyEvents(id);
  }
  out['app'] = await store.getApp('app_one');
  out['apps'] = await store.listApps({ tenant: null, limit: 10 });
  out['app keys'] = (await store.keysOfApp('app_one')).map((k) => k.id).sort();
  out['audit'] = await allPages((cursor) => store.listAudit({ tenant: null, limit: 9, cursor }), 100);
  // The minutes still within retention (a file store serves older ones until it compacts; no import keeps them).
  out['usage minutes'] = await store.usageBuckets('*', 'm', M0 + 6 * MINUTE, M0 + 20 * MINUTE);
  out['usage days'] = await store.usageBuckets(ids[0]!, 'd', T0 - DAY, T0 + DAY);
  out['errors'] = await store.recentErrors({ limit: 50 });
  for (const tenant of [null, 'a']) out[`alerts ${tenant}`] = await allPages((cursor) => store.listAlerts({ tenant, limit: 2, cursor }), 100);
  for (let i = 0; i < 6; i++) out[`deliveries ${i}`] = await store.listDeliveries(`alr_${String(i).padStart(26, '0')}`);
  out['due deliveries'] = await store.dueDeliveries(T0 + 3000, 100);
  out['expiring'] = await store.expiringKeys(T0, T0 + 100, null, 10);
  return out;
}

const sortedBuckets = (d: StoreDump) => [...d.buckets].sort((a, b) => `${a.scope}${a.gran}${a.start}`.localeCompare(`${b.scope}${b.gran}${b.start}`));

t.test('migrateFileStore moves every record, hash, timeline, audit entry, aggregate, error sample and quota balance, and leaves the journal as it was', async (t) => {
  const dir = tempDir(t);
  const files = join(dir, 'data');
  const { hashes, ids } = await fillFileStore(files);
  const journal = join(files, 'journal.log');
  const journalBefore = sha256(journal);
  const fs = await FileStore.open({ dir: files });
  const source = fs.dump();
  const expected = await answers(fs, ids);
  await fs.close();
  t.equal(sha256(journal), journalBefore, 'opening and closing a file store with nothing to repair keeps its journal');

  const target = await open(t, join(dir, 'keygate.db'));
  const moved = await migrateFileStore(files, target);
  t.same(moved, { keys: 30, apps: 1, audit: 32, events: 37, buckets: source.buckets.length, errors: 8, batches: 12, alerts: 4, deliveries: 8, quotas: 2 }, 'the counts moved');
  const dump = target.dump();
  t.same({ ...dump, buckets: sortedBuckets(dump) }, { ...source, buckets: sortedBuckets(source) }, 'the dumps are equal');
  t.same(await answers(target, ids), expected, 'and every query answers the same');
  t.equal(await target.getKeyByHash(hashes.old), null, 'a re-hashed key is not found by its old hash');
  t.equal((await target.getKeyByHash(hashes.now))?.id, ids[7], 'but by its new one');
  t.equal(await target.ingestUsage({ id: 'batch-3', keys: [], buckets: [], errors: [], keep_errors: 8 }), false, 'batches applied before are known');
  t.equal(sha256(journal), journalBefore, 'the journal is byte-identical');
  t.notOk(existsSync(join(files, 'LOCK')), 'and its directory unlocked');

  const err = await rejection(t, migrateFileStore(files, target), 'a second migration');
  t.equal(err.code, 'KEYGATE_STORE_UNAVAILABLE', 'a second migration is refused');
  t.match(err.message, /already holds data; migrate only into a new database/, 'a non-empty database is refused');
  t.same(target.dump(), dump, 'the refused migration changed nothing');
  t.equal(await target.addAlert(alertFor(ids[20]!, 20, null), 'dedup-3', []), false, "an alert's dedup key moved with it");
  t.equal(await target.addAlert(alertFor(ids[21]!, 21, null), 'dedup-1', []), true, "a pruned alert's dedup key stays free");
});

t.test('migrateFileStore leaves a journal that a file store would repair on open byte-identical', async (t) => {
  // A file store cuts off a torn last line (and compacts a long journal) when it opens; the
  // import reads it as it is, so that the journal stays usable by the release it came from.
  const dir = tempDir(t);
  const files = join(dir, 'data');
  const fs = await FileStore.open({ dir: files });
  const rec = await fs.putKey(newKey(), 0);
  await fs.recordUsage([{ key_id: rec.id, requests: 3, errors: 0, first_at: T0, last_at: T0 }]);
  await fs.close();
  const journal = join(files, 'journal.log');
  appendFileSync(journal, `${'0'.repeat(8)} {"t":"c","keys":[{"id":"key_torn","na`);
  const before = sha256(journal);
  const target = await open(t, join(dir, 'keygate.db'));
  await migrateFileStore(files, target);
  t.equal(sha256(journal), before, 'the journal is byte-identical');
  t.same((await target.getKey(rec.id))!.usage, { total_requests: 3, error_count: 0 }, 'every whole line of it was read');
  t.equal(await target.getKey('key_torn'), null, 'the torn line was not');
});

t.test('migrateFileStore refuses a file store that a live process holds', async (t) => {
  const dir = tempDir(t);
  const files = join(dir, 'data');
  const fs = await FileStore.open({ dir: files });
  t.teardown(() => fs.close());
  await fs.putKey(newKey(), 0);
  const target = await open(t, join(dir, 'keygate.db'));
  t.equal((await rejection(t, migrateFileStore(files, target), 'migrate')).code, 'KEYGATE_STORE_LOCKED', 'StoreLockedError, as a file store open would give');
  t.same(target.dump().keys, [], 'nothing was imported');
});

t.test('openStore: a new database beside a file store\'s journal imports it, logged once; the next open does not import again', async (t) => {
  const dir = tempDir(t);
  const { ids } = await fillFileStore(dir);
  const journal = join(dir, 'journal.log');
  const before = sha256(journal);
  const lines: Record<string, any>[] = [];
  const logger = new Logger({ level: 'info', write: (line) => lines.push(JSON.parse(line)) });
  const spec = { type: 'sqlite' as const, path: join(dir, 'keygate.db'), lock_wait_ms: 5_000, poll_interval_ms: 2, invalidation_wait_ms: 500 };
  const first = await openStore(spec, logger);
  t.teardown(() => first.close());
  const imported = lines.filter((l) => l['msg'].startsWith('imported the file store'));
  t.equal(imported.length, 1, 'the import is logged');
  t.match(imported[0], { level: 'info', from: dir, to: spec.path, keys: 30, audit: 32 }, 'with where from, where to, and what');
  t.equal((await first.getKey(ids[3]!))?.id, ids[3], 'the keys are there');
  const added = await first.putKey(newKey(), 0);
  await first.close();
  t.equal(sha256(journal), before, 'the journal is left as it was');

  const second = await openStore(spec, logger);
  t.teardown(() => second.close());
  t.equal(lines.filter((l) => l['msg'].startsWith('imported the file store')).length, 1, 'no second import');
  t.equal((await second.getKey(added.id))?.id, added.id, 'what was written since is kept');
  t.equal((second as SqliteStore).dump().keys.length, 31, 'nothing twice');
});
