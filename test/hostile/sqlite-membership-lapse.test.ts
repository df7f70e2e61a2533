import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import t from 'tap';
import { KeyHasher } from '../../core/key-hash.js';
import { SqliteStore } from '../../core/store/sqlite-store.js';
import { keyRecord } from '../lib/records.js';
import { waitFor } from '../lib/within.js';

// A key change on the SQLite store answers once every live process that caches keys has
// applied it (core/store/sqlite/changes.ts). "Live" is a row in `members` renewed every second
// and trusted for five: a write lock held longer by another program (an sqlite3 shell, a backup
// tool: docs/operations.md names both) stops every renewal, so when the lock goes, the first
// revocation finds no member alive and answers at once, while the gateway processes still
// serve the key from their caches until their next poll.

const hasher = new KeyHasher(null);

t.test('a revocation right after a long external lock still waits for the live gateway process', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-lapse-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'keygate.db');
  const admin = await SqliteStore.open({ path, invalidationWaitMs: 2_000 });
  // A gateway process; it polls when told to, so that the test sees what the wait alone gives.
  const gateway = await SqliteStore.open({ path, pollMs: 3_600_000, lockWaitMs: 50 });
  t.teardown(async () => {
    await admin.close();
    await gateway.close();
  });
  const heard: (string | null)[] = [];
  gateway.onKeyChange((h) => heard.push(h));
  const key = keyRecord('kg_live_lapselapselapselapselapselaps1', hasher, Date.now());
  const creating = admin.putKey(key, 0);
  gateway.pollChanges();
  const created = await creating;

  const shell = new BetterSqlite3(path);
  t.teardown(() => shell.close());
  shell.exec('BEGIN IMMEDIATE');
  const alive = shell.prepare('SELECT count(*) FROM members WHERE expires > ?').pluck();
  await waitFor(() => (alive.get(Date.now()) as number) === 0, 10_000, 'the memberships to lapse under the lock');
  shell.exec('ROLLBACK');

  const before = heard.length;
  const revoked = admin.putKey({ ...created, revoked_at: Date.now(), revoked_reason: 'test' }, created.version);
  let answered = false;
  void revoked.then(() => (answered = true));
  // The gateway process reads the feed some while after the commit, as a busy one does.
  await new Promise((r) => setImmediate(r));
  t.notOk(answered && heard.length === before, 'the revocation has not answered before the gateway process applied it');
  gateway.pollChanges();
  await revoked;
  t.same(heard.slice(before), [key.hash], 'the gateway process applied it');
});
