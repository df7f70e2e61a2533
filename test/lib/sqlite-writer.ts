import { createInterface } from 'node:readline';
import type { AuditEntry, KeyEvent } from '../../core/audit.js';
import { generateKey } from '../../core/key-format.js';
import { KeyHasher } from '../../core/key-hash.js';
import type { KeyRecord } from '../../core/record.js';
import { SqliteStore } from '../../core/store/sqlite-store.js';
import { keyRecord } from './records.js';

// The child process of test/sqlite-crash.test.ts. Waits for `go` on stdin (so that it can be
// started, and its modules loaded, ahead of time), opens the SQLite store at argv[2] and commits
// admin writes as fast as it can until it is killed, printing each after its commit answered:
//   created <id>   a new key, its key.created audit entry and its `created` event, in one commit
//   revoked <id>   an earlier key of this run revoked, with its key.revoked entry and event

const [path, run] = process.argv.slice(2) as [string, string];
const hasher = new KeyHasher(null);
const say = (line: string) => process.stdout.write(`${line}\n`);

function audit(rec: KeyRecord, action: 'key.created' | 'key.revoked'): AuditEntry {
  return {
    id: `aud_${action === 'key.created' ? 'c' : 'r'}_${rec.id}`,
    time: Date.now(),
    actor: 'ops',
    role: 'admin',
    tenant: null,
    ip: '127.0.0.1',
    request_id: `req_${rec.id}`,
    action,
    target_type: 'key',
    target_id: rec.id,
    changes: {},
  };
}

const event = (rec: KeyRecord, type: KeyEvent['type']): KeyEvent => ({ key_id: rec.id, type, scheduled_at: null, at: Date.now(), actor: 'ops', detail: {} });

for await (const line of createInterface({ input: process.stdin })) if (line === 'go') break;
say('opening');
const store = await SqliteStore.open({ path });
say('ready');
const live: KeyRecord[] = [];
for (let i = 0; ; i++) {
  if (i % 4 === 3 && live.length > 0) {
    const [old] = live.splice(Math.floor(live.length / 2), 1) as [KeyRecord];
    const revoked = { ...old, revoked_at: Date.now(), revoked_reason: 'crash test' };
    await store.commit({ keys: [{ rec: revoked, expected: old.version }], audit: [audit(old, 'key.revoked')], events: [event(old, 'revoked')] });
    say(`revoked ${old.id}`);
    continue;
  }
  const rec = keyRecord(generateKey('gw', 'live'), hasher, Date.now(), { id: `key_${run}_${i}`, name: `crash ${run} ${i}` });
  const [written] = (await store.commit({ keys: [{ rec, expected: 0 }], audit: [audit(rec, 'key.created')], events: [event(rec, 'created')] })).keys;
  live.push(written!);
  say(`created ${rec.id}`);
}
