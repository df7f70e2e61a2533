import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KeyHasher } from '../../core/key-hash.js';
import { SqliteStore } from '../../core/store/sqlite-store.js';
import { keyRecord } from '../lib/records.js';

// The SQLite change feed prunes `changes` by the time each writer wrote a change (its own
// Date.now()). After the machine's clock is set back, changes written later look older than
// those before them, and a prune can take them out of the middle of the feed. A process that
// had not read them yet must notice the hole, as it notices one at the front, and drop its
// cached keys: otherwise it goes on serving a key whose change it never heard of.

const hasher = new KeyHasher(null);

t.test('a change pruned from the middle of the feed (the clock was set back) drops every cached key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-gap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'keygate.db');
  // `writer` is the admin plane; `worker` a gateway process that reads the feed when told to.
  const writer = await SqliteStore.open({ path, invalidationWaitMs: 0 });
  const worker = await SqliteStore.open({ path, pollMs: 3_600_000 });
  t.teardown(async () => {
    await writer.close();
    await worker.close();
  });
  const heard: (string | null)[] = [];
  worker.onKeyChange((h) => heard.push(h));

  const now = Date.now();
  const before = keyRecord('kg_live_gapbeforegapbeforegapbefore01', hasher, now);
  const revoked = keyRecord('kg_live_gaprevokedgaprevokedgaprev02', hasher, now);
  await writer.putKey(before, 0);
  // The writer's clock is set back an hour while it commits this change.
  const realNow = Date.now;
  Date.now = () => realNow() - 3_600_000;
  try {
    await writer.putKey(revoked, 0);
  } finally {
    Date.now = realNow;
  }
  // Enough changes for the writer to prune: the one written "an hour ago" goes, the one
  // before it stays.
  const many = Array.from({ length: 256 }, (_, i) => ({
    rec: keyRecord(`kg_live_gapmanygapmanygapmanygap${String(i).padStart(4, '0')}`, hasher, now),
    expected: 0,
  }));
  await writer.commit({ keys: many });

  worker.pollChanges();
  t.ok(
    heard.includes(revoked.hash) || heard.includes(null),
    'the worker either heard the change or dropped everything it cached',
  );
});
