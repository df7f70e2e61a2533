import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { generateKey } from '../core/key-format.js';
import { KeyHasher } from '../core/key-hash.js';
import { SqliteBuckets } from '../core/store/sqlite/buckets.js';
import { backup } from '../core/store/sqlite/maintenance.js';
import { SqliteStore } from '../core/store/sqlite-store.js';
import { keyRecord } from './lib/records.js';

// The SQLite store's files hold key hashes, audit and usage: this user's alone (0600), the
// database, its -wal and -shm, the -limits database of the workers' buckets, and backups.

const mode = (p: string) => statSync(p).mode & 0o777;

t.test('every file the SQLite store writes is readable by its owner only', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-files-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'data', 'keygate.db');
  const store = await SqliteStore.open({ path });
  await store.putKey(keyRecord(generateKey('gw', 'live'), new KeyHasher(null), Date.now()), 0);
  const buckets = new SqliteBuckets(`${path}-limits`);
  await buckets.take('k', 10, 0.001, 1);
  for (const f of [path, `${path}-wal`, `${path}-shm`, `${path}-limits`, `${path}-limits-wal`]) {
    t.ok(existsSync(f), `${f.slice(dir.length)} exists`);
    t.equal(mode(f), 0o600, `${f.slice(dir.length)} is 0600`);
  }
  buckets.close();
  await store.backup(join(dir, 'in-process.db'));
  t.equal(mode(join(dir, 'in-process.db')), 0o600, 'a backup the store writes');
  await store.close();
  backup(path, join(dir, 'cli.db'));
  t.equal(mode(join(dir, 'cli.db')), 0o600, 'a backup keygate backup writes');
  t.throws(() => backup(path, join(dir, 'missing', 'x.db')), /cannot write the backup to/);
  t.notOk(existsSync(join(dir, 'missing')), 'nothing left behind');
});
