import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { generateKey, keyDisplayParts, randomBase62 } from '../core/key-format.js';
import { KeyHasher } from '../core/key-hash.js';
import type { Alert, Delivery } from '../core/alerts.js';
import type { KeyRecord } from '../core/record.js';
import { FileStore } from '../core/store/file-store.js';

import { ROOT, startKeygate } from './lib/cli.js';
import { keyRecord } from './lib/records.js';
import { startUpstream } from './lib/upstream.js';
import { StoreLockedError, StoreUnavailableError, VersionConflictError } from '../core/internal-errors.js';

// The embedded file store: compare-and-set writes, replay after a restart, torn journal
// lines, the LOCK file (in-process, stale, live owner), and an acknowledged admin write
// surviving `kill -9` of the real CLI.

const JOURNAL = 'journal.log';
const LOCK = 'LOCK';
const hasher = new KeyHasher(null);

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-fs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh key record (version 0) with a few fields set, so that round trips carry them. */
function newRecord(over: Partial<KeyRecord> = {}): KeyRecord {
  return keyRecord(generateKey('gw', 'live'), hasher, Date.UTC(2026, 5, 1, 12), {
    name: 'a key',
    scopes: ['read_campaigns'],
    rate_limit: { limit: 10, window_seconds: 60, burst: null },
    ip_allowlist: ['203.0.113.0/24'],
    meta: { team: 'growth', nested: { n: 1 } },
    created_by: 'ops',
    ...over,
  });
}

/** Opens a store and closes it at teardown (closing twice is harmless). */
async function openStore(t: Test, dir: string, warnings?: string[]): Promise<FileStore> {
  const store = await FileStore.open({ dir, warn: (msg) => warnings?.push(msg) });
  t.teardown(() => store.close());
  return store;
}

/** The rejection of `p`, asserting that it rejects with an instance of `type`. */
async function rejectsWith(t: Test, p: Promise<unknown>, type: new (...args: any[]) => Error, msg: string): Promise<Error | null> {
  try {
    await p;
  } catch (err) {
    t.type(err, type, msg);
    return err as Error;
  }
  t.fail(`${msg}: expected a ${type.name}, but it resolved`);
  return null;
}

/** Spawns a process and waits (bounded) until it has exited. */
function waitExit(child: ReturnType<typeof spawn>, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

t.test('putKey / getKey / getKeyByHash round trip', async (t) => {
  const store = await openStore(t, tempDir(t));
  const rec = newRecord();
  const saved = await store.putKey(rec, 0);
  t.equal(saved.version, 1, 'a new key is stored as version 1');
  t.same(saved, { ...rec, version: 1 }, 'everything else as given');
  t.same(await store.getKey(rec.id), saved, 'by id');
  t.same(await store.getKeyByHash(rec.hash), saved, 'by hash');
  t.equal(await store.getKey('key_missing'), null, 'unknown id: null');
  t.equal(await store.getKeyByHash(hasher.hash(generateKey('gw', 'live'))), null, 'unknown hash: null');
});

t.test('compare-and-set on version', async (t) => {
  const store = await openStore(t, tempDir(t));
  const changed: (string | null)[] = [];
  store.onKeyChange((h) => changed.push(h));
  const v1 = await store.putKey(newRecord(), 0);
  const v2 = await store.putKey({ ...v1, name: 'renamed' }, 1);
  t.equal(v2.version, 2);
  t.equal(changed.length, 2, 'listeners hear about every write');

  await rejectsWith(t, store.putKey({ ...v1, name: 'stale write' }, 1), VersionConflictError, 'a stale expectedVersion is refused');
  await rejectsWith(t, store.putKey({ ...v1, name: 'future write' }, 5), VersionConflictError, 'a version from the future is refused');
  await rejectsWith(t, store.putKey({ ...v1, name: 'recreate' }, 0), VersionConflictError, 'version 0 for an existing id is refused');
  t.same(await store.getKey(v1.id), v2, 'the refused writes changed nothing');
  t.equal(changed.length, 2, 'and told nobody');

  // Concurrent writers that read the same version: exactly one wins.
  const results = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => store.putKey({ ...v2, name: `writer ${n}` }, 2)));
  const won = results.filter((r) => r.status === 'fulfilled');
  t.equal(won.length, 1, 'one writer wins');
  for (const r of results) if (r.status === 'rejected') t.type(r.reason, VersionConflictError);
  const winner = (won[0] as PromiseFulfilledResult<KeyRecord>).value;
  t.same(await store.getKey(v1.id), winner, 'the winner is what is stored');
  t.equal(winner.version, 3);
});

t.test('a second new key with the same hash is refused', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(t, dir);
  const first = await store.putKey(newRecord(), 0);
  const twin = newRecord({ hash: first.hash, name: 'twin' });
  await rejectsWith(t, store.putKey(twin, 0), VersionConflictError, 'a second key with the same hash is refused');
  t.equal(await store.getKey(twin.id), null, 'the twin was not stored');
  t.same(await store.getKeyByHash(first.hash), first, 'the hash still finds the first key');
  await store.close();
  const again = await openStore(t, dir);
  t.equal(await again.getKey(twin.id), null, 'nor journaled');
  t.same(await again.getKeyByHash(first.hash), first);
});

t.test('close and reopen: every record is replayed, latest version wins', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(t, dir);
  const saved: KeyRecord[] = [];
  for (let i = 0; i < 20; i++) saved.push(await store.putKey(newRecord({ name: `key ${i}` }), 0));
  // Several versions of some records.
  saved[3] = await store.putKey({ ...saved[3]!, name: 'three, edited' }, 1);
  saved[3] = await store.putKey({ ...saved[3]!, revoked_at: Date.UTC(2026, 5, 2), revoked_reason: 'leaked' }, 2);
  saved[7] = await store.putKey({ ...saved[7]!, suspended_at: Date.UTC(2026, 5, 2) }, 1);
  await store.close();
  await rejectsWith(t, store.putKey(newRecord(), 0), StoreUnavailableError, 'a closed store refuses writes');
  t.notOk(existsSync(join(dir, LOCK)), 'close releases the LOCK');

  const warnings: string[] = [];
  const reopened = await openStore(t, dir, warnings);
  t.same(warnings, [], 'a clean journal replays without warnings');
  for (const rec of saved) {
    t.same(await reopened.getKey(rec.id), rec, `${rec.name}: by id`);
    t.same(await reopened.getKeyByHash(rec.hash), rec, `${rec.name}: by hash`);
  }
  const page = await reopened.listKeys({ tenant: null, sort: 'created_at', order: 'desc', limit: 100, now: Date.UTC(2026, 5, 3) });
  t.equal(page.data.length, 20, 'listed once each');
  const v4 = await reopened.putKey({ ...saved[3]!, name: 'after reopen' }, 3);
  t.equal(v4.version, 4, 'versions continue from the replayed one');
});

t.test('a torn last journal line is skipped on reopen', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(t, dir);
  const a = await store.putKey(newRecord({ name: 'a' }), 0);
  const b = await store.putKey(newRecord({ name: 'b' }), 0);
  await store.close();
  // A crash in the middle of an append: half a line, no newline.
  const torn = `${'0'.repeat(8)} {"t":"key","v":{"id":"key_torn","name":"half`;
  appendFileSync(join(dir, JOURNAL), torn);

  const warnings: string[] = [];
  const reopened = await openStore(t, dir, warnings);
  t.equal(warnings.length, 1, 'one warning for the torn line');
  t.same(await reopened.getKey(a.id), a, 'earlier records intact');
  t.same(await reopened.getKey(b.id), b);
  t.equal(await reopened.getKey('key_torn'), null, 'the torn record is not there');
  const c = await reopened.putKey(newRecord({ name: 'c' }), 0);
  const b2 = await reopened.putKey({ ...b, name: 'b edited' }, 1);
  await reopened.close();

  const warnings2: string[] = [];
  const third = await openStore(t, dir, warnings2);
  t.same(warnings2, [], 'the torn bytes were cut off: no warning the second time');
  t.same(await third.getKey(a.id), a);
  t.same(await third.getKey(b.id), b2, 'a write after the reopen persisted');
  t.same(await third.getKey(c.id), c, 'a new key after the reopen persisted');
  t.notOk(readFileSync(join(dir, JOURNAL), 'utf8').includes('key_torn'));
});

t.test('a last journal line with a bad checksum is skipped on reopen', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(t, dir);
  const a = await store.putKey(newRecord({ name: 'a' }), 0);
  const bad = await store.putKey(newRecord({ name: 'corrupted' }), 0);
  await store.close();
  // Damage the checksum of the last line, which is otherwise complete and well-formed JSON.
  const path = join(dir, JOURNAL);
  const lines = readFileSync(path, 'utf8').split('\n');
  t.equal(lines.at(-1), '', 'the journal ends with a newline');
  const last = lines.at(-2)!;
  t.ok(last.includes(bad.id), 'the last line is the last write');
  lines[lines.length - 2] = (last.startsWith('00000000') ? '11111111' : '00000000') + last.slice(8);
  writeFileSync(path, lines.join('\n'));

  const warnings: string[] = [];
  const reopened = await openStore(t, dir, warnings);
  t.equal(warnings.length, 1, 'one warning for the corrupt line');
  t.same(await reopened.getKey(a.id), a, 'the earlier record is intact');
  t.equal(await reopened.getKey(bad.id), null, 'the corrupt record is not trusted');
  t.equal(await reopened.getKeyByHash(bad.hash), null);
  const c = await reopened.putKey(newRecord({ name: 'c' }), 0);
  await reopened.close();

  const warnings2: string[] = [];
  const third = await openStore(t, dir, warnings2);
  t.same(warnings2, []);
  t.same(await third.getKey(a.id), a);
  t.same(await third.getKey(c.id), c, 'the write after the reopen persisted');
});

t.test('a long journal is compacted on open into bounded lines, losing nothing', async (t) => {
  const dir = tempDir(t);
  const first = await openStore(t, dir);
  const ids: string[] = [];
  for (let i = 0; i < 1200; i++) {
    const rec = await first.putKey(newRecord(), 0);
    ids.push(rec.id);
    if (i % 2 === 0) await first.putKey({ ...rec, name: `renamed ${i}` }, rec.version);
  }
  await first.commit({ audit: [{ id: 'aud_1', time: 1, actor: 'ops', role: 'admin', tenant: null, ip: '127.0.0.1', request_id: 'r', action: 'key.created', target_type: 'key', target_id: ids[0]!, changes: {} }] });
  await first.close();
  const before = readFileSync(join(dir, JOURNAL), 'utf8').split('\n').filter(Boolean).length;
  t.equal(before, 1801, 'one line per commit before compaction');
  const second = await openStore(t, dir);
  const lines = readFileSync(join(dir, JOURNAL), 'utf8').split('\n').filter(Boolean);
  t.ok(lines.length < 10, `compacted to ${lines.length} lines`);
  t.ok(lines.every((l) => l.length < 2_000_000), 'no line holds everything');
  for (const [i, id] of ids.entries()) {
    const rec = await second.getKey(id);
    if (!rec || rec.name !== (i % 2 === 0 ? `renamed ${i}` : 'a key')) t.fail(`key ${i} lost or stale after compaction`);
  }
  t.equal((await second.listAudit({ tenant: null, limit: 10 })).data.length, 1, 'audit entries survive compaction');
  await second.close();
  const compacted = statSync(join(dir, JOURNAL));
  const third = await openStore(t, dir);
  t.ok(await third.getKey(ids[1199]!), 'the compacted journal replays');
  t.equal(statSync(join(dir, JOURNAL)).ino, compacted.ino, 'and is not rewritten again by the next open');
});

t.test('a compacted journal keeps alerts, their deliveries as last written and their dedup keys, and not pruned ones', async (t) => {
  const dir = tempDir(t);
  const first = await openStore(t, dir);
  const T0 = Date.UTC(2026, 5, 1, 12);
  const alert = (i: number): Alert => ({ id: `alr_${String(i).padStart(26, '0')}`, type: 'key.rate_limited', created_at: T0 + i, tenant: i % 2 ? 'a' : null, key: null, data: { i } });
  const delivery = (a: Alert): Delivery => ({ id: `dlv_${a.id}`, alert_id: a.id, target: 'webhook:ops', state: 'pending', attempts: [], next_at: T0, created_at: a.created_at });
  for (let i = 0; i < 5; i++) await first.addAlert(alert(i), `dedup-${i}`, [delivery(alert(i))]);
  // Retries of one delivery: a line each, enough for the next open to compact.
  let retried = delivery(alert(4));
  for (let n = 0; n < 1100; n++) {
    retried = { ...retried, attempts: [...retried.attempts.slice(-2), { at: T0 + n, ok: false, status: 500, error: null, duration_ms: n }], next_at: T0 + n + 1 };
    await first.putDelivery(retried);
  }
  t.equal(await first.pruneAlerts(T0 + 2), 2);
  await first.close();
  const second = await openStore(t, dir);
  const lines = readFileSync(join(dir, JOURNAL), 'utf8').split('\n').filter(Boolean);
  t.ok(lines.length < 20, `compacted to ${lines.length} lines`);
  await second.close();
  const third = await openStore(t, dir);
  t.same((await third.listAlerts({ tenant: null, limit: 10 })).data.map((a) => a.id), [4, 3, 2].map((i) => alert(i).id), 'the alerts kept, none pruned');
  t.same(await third.listDeliveries(alert(4).id), [retried], 'a delivery as last written');
  t.same(await third.listDeliveries(alert(0).id), [], "a pruned alert's deliveries are gone");
  t.same((await third.dueDeliveries(T0 + 10_000, 10)).map((d) => d.id), [2, 3, 4].map((i) => `dlv_${alert(i).id}`), 'due in order of next_at');
  t.equal(await third.addAlert(alert(9), 'dedup-3', []), false, 'a kept dedup key');
  t.equal(await third.addAlert(alert(9), 'dedup-0', []), true, 'a pruned one is free');
});

t.test('LOCK: a second open in the same process is refused', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(t, dir);
  await rejectsWith(t, FileStore.open({ dir }), StoreLockedError, 'the second open is refused');
  t.equal(readFileSync(join(dir, LOCK), 'utf8'), String(process.pid), 'the LOCK holds our pid');
  await store.close();
  const again = await openStore(t, dir);
  t.ok(again, 'after close the directory can be opened again');
});

// One directory under two spellings is still one directory: two stores must never append
// to one journal.

t.test('LOCK: the same directory spelled another way (relative path) is refused too', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(t, dir);
  const other = relative(process.cwd(), dir);
  t.not(other, dir, 'a different spelling of the same directory');
  let second: FileStore | null = null;
  let error: unknown = null;
  try {
    second = await FileStore.open({ dir: other });
  } catch (err) {
    error = err;
  }
  await second?.close();
  t.ok(error instanceof StoreLockedError, 'the second open is refused: two stores must never append to one journal');
  await store.close();
});

t.test('LOCK: a lock left by a dead process does not block open', async (t) => {
  const dir = tempDir(t);
  const dead = spawn(process.execPath, ['-e', ''], { stdio: 'ignore', env: {} });
  await waitExit(dead);
  t.ok(dead.pid, 'the process had a pid');
  writeFileSync(join(dir, LOCK), String(dead.pid));
  const store = await openStore(t, dir);
  t.equal(readFileSync(join(dir, LOCK), 'utf8'), String(process.pid), 'the stale lock was taken over');
  const rec = await store.putKey(newRecord(), 0);
  t.equal(rec.version, 1, 'and the store works');
  await store.close();
  t.notOk(existsSync(join(dir, LOCK)));
});

t.test('LOCK: a lock held by a live process makes open fail, naming the pid', async (t) => {
  const dir = tempDir(t);
  const storeUrl = pathToFileURL(join(ROOT, 'core/store/file-store.ts')).href;
  const holder = spawn(
    process.execPath,
    [
      '--import=tsx',
      '--input-type=module',
      '-e',
      `const { FileStore } = await import(${JSON.stringify(storeUrl)});
       await FileStore.open({ dir: process.argv[1] });
       process.stdout.write('locked\\n');
       setInterval(() => {}, 1000);`,
      dir,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => {
    if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  holder.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the lock holder did not start: ${err}`)), 10_000);
    holder.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes('locked\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    holder.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the lock holder exited with ${code}: ${err}`));
    });
  });
  t.equal(readFileSync(join(dir, LOCK), 'utf8'), String(holder.pid), 'the child holds the lock');

  const failure = await FileStore.open({ dir }).then(
    async (s) => {
      await s.close();
      return null;
    },
    (e: unknown) => e,
  );
  t.type(failure, StoreLockedError, 'open refused');
  t.match((failure as Error).message, new RegExp(`\\b${holder.pid}\\b`), 'the message names the owner pid');
  t.equal(readFileSync(join(dir, LOCK), 'utf8'), String(holder.pid), 'the refused open left the lock alone');

  holder.kill('SIGKILL');
  await waitExit(holder);
  const store = await openStore(t, dir);
  t.ok(store, 'once the owner is killed, the lock is taken over');
});

t.test('kill -9 right after an acknowledged admin write: the key survives a restart', async (t) => {
  const dir = tempDir(t);
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const token = `fs-test-admin-${randomBase62(24)}`;
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(
    configPath,
    `listeners:
  - { port: 0, host: 127.0.0.1, environment: production }
trusted_proxies: []
scopes: { catalog: [read_campaigns] }
apis:
  - { name: emails, path_prefix: /v1/emails, upstream: "${upstream.url}", timeout_ms: 5000, unlisted: allow }
admin:
  port: 0
  host: 127.0.0.1
  tokens:
    - { name: ops, token: "\${KG_FS_TEST_TOKEN}", role: admin }
store: { type: file, path: ${JSON.stringify(join(dir, 'data'))} }
demo_upstream: null
log: { level: info }
`,
  );
  const env = { KG_FS_TEST_TOKEN: token };
  const auth = { authorization: `Bearer ${token}` };

  const first = await startKeygate(configPath, { env });
  t.teardown(() => first.stop('SIGKILL'));
  const created: { id: string; key: string }[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await request(`${first.adminUrl}/v1/keys`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `survivor ${i}`, scopes: ['read_campaigns'] }),
    });
    const body = (await res.body.json()) as { id: string; key: string };
    t.equal(res.statusCode, 201, `key ${i} created`);
    if (i === 2) first.proc.child.kill('SIGKILL'); // at once on the last acknowledgement
    created.push(body);
  }
  const exit = await first.stop('SIGKILL');
  t.equal(exit.signal, 'SIGKILL', 'the first process was killed');
  t.equal(readFileSync(join(dir, 'data', LOCK), 'utf8'), String(first.proc.pid), 'it left its LOCK behind');

  const second = await startKeygate(configPath, { env });
  t.teardown(() => second.stop('SIGKILL'));
  t.ok(second.adminUrl && second.gw['production'], 'the restart is not blocked by the stale LOCK');
  for (const [i, k] of created.entries()) {
    const res = await request(`${second.adminUrl}/v1/keys/${k.id}`, { headers: auth });
    const body = (await res.body.json()) as Record<string, unknown>;
    t.equal(res.statusCode, 200, `key ${i} is back`);
    t.equal(body['name'], `survivor ${i}`);
    t.equal(body['status'], 'active');
    const through = await request(`${second.gw['production']}/v1/emails/list`, { headers: { authorization: `Bearer ${k.key}` } });
    await through.body.text();
    t.equal(through.statusCode, 200, `key ${i} works through the gateway`);
    t.equal(upstream.seen.at(-1)?.headers['x-key-id'], k.id, 'the upstream saw the key id');
  }
  const stopped = await second.stop('SIGTERM');
  t.equal(stopped.code, 0, 'the restarted process stops cleanly');
  t.notOk(existsSync(join(dir, 'data', LOCK)), 'and releases its LOCK');
});
