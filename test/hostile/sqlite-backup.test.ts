import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { SqliteStore } from '../../core/store/sqlite-store.js';
import { backup } from '../../core/store/sqlite/maintenance.js';

// `keygate backup --to FILE` (core/store/sqlite/maintenance.ts): a destination that cannot be
// written is the operator's typo, and the error must say so, not send them to store.path.

t.test('a backup into a directory that does not exist names the destination, not store.path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-backup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'keygate.db');
  await (await SqliteStore.open({ path: db })).close();
  const dest = join(dir, 'no-such-dir', 'backup.db');
  t.throws(() => backup(db, dest), { message: new RegExp(`^cannot write the backup to ${dest.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `) });
  try {
    backup(db, dest);
  } catch (err) {
    t.notMatch((err as Error).message, 'store.path', 'the database itself is fine');
  }
});
