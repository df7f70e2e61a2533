import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { generateKey } from '../core/key-format.js';
import { KeyHasher } from '../core/key-hash.js';
import { SqliteStore } from '../core/store/sqlite-store.js';
import { keyRecord } from './lib/records.js';

// The SQLite change feed (core/store/sqlite/changes.ts) with a large change: a commit of more
// keys than one poll reads makes the other processes drop every cached key at once rather than
// read them all, and the commit still answers only after they did.

t.test('a change of more keys than a poll reads is one "drop everything", confirmed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-feed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'keygate.db');
  const admin = await SqliteStore.open({ path, invalidationWaitMs: 10_000 });
  const gateway = await SqliteStore.open({ path });
  t.teardown(async () => {
    await admin.close();
    await gateway.close();
  });
  const heard: (string | null)[] = [];
  gateway.onKeyChange((h) => heard.push(h));
  const hasher = new KeyHasher(null);
  const keys = Array.from({ length: 1500 }, () => ({ rec: keyRecord(generateKey('gw', 'live'), hasher, Date.now()), expected: 0 }));
  const began = performance.now();
  await admin.commit({ keys });
  t.ok(performance.now() - began < 10_000, 'answered once the gateway confirmed, before the wait ran out');
  t.same(heard, [null], 'the gateway dropped everything, once');
  // Small changes after it are read one by one again.
  const one = await admin.putKey(keyRecord(generateKey('gw', 'live'), hasher, Date.now()), 0);
  t.same(heard.slice(1), [one.hash]);
});
