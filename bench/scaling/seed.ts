import { randomUUID } from 'node:crypto';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { audit, event, KEY_CONFIG_FIELDS } from '../../admin/keys.js';
import { diff, type Actor } from '../../core/audit.js';
import { generateKey } from '../../core/key-format.js';
import { KeyHasher } from '../../core/key-hash.js';
import { keyRecord } from '../../test/lib/records.js';
import { openBenchStore, sqlitePath } from './store.js';

/**
 * Fills a new file store (or a SQLite database, STORE `sqlite:PATH`, or a Redis store, STORE
 * `redis://HOST:PORT#PREFIX`: see store.ts) with N keys through the store's own API
 * (Store.commit), in commits of CHUNK keys, so the journal is exactly what Keygate writes
 * (checksummed lines, fsync'ed) in a hundredth of the lines that one commit per key would take;
 * on SQLite each commit is one transaction, as every admin write is. Each key is like
 * bench/target.ts's: scope `read`, API `bench`, allowlist 127.0.0.0/8, the default plan.
 * The plaintext keys go to KEYS_FILE, one a line, for the load generator.
 * Prints one JSON line: how long generating and committing took, and the bytes on disk (the
 * journal, or the database file and its WAL; 0 on Redis).
 *
 * --history also writes what KeyService.create commits with each key: its `key.created` audit
 * entry and its `created` event, as a store filled through the admin API holds them.
 * --chunk sets the keys per commit (one journal line each). The default, 10,000, makes a million
 * keys 100 lines, so the store does not rewrite (compact) its journal when it opens (it does
 * above 1,000 lines); 1,000 gives the shape of a journal the store has compacted itself.
 *
 *   node --import=tsx bench/scaling/seed.ts STORE N KEYS_FILE [--history] [--chunk 10000]
 */
const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { history: { type: 'boolean', default: false }, chunk: { type: 'string', default: '10000' } },
});
const [dir, nArg, keysFile] = positionals;
const n = Number(nArg);
if (!dir || !keysFile || !Number.isInteger(n) || n < 1 || n > 5_000_000) throw new Error('usage: seed.ts STORE N KEYS_FILE (N at most 5,000,000)');
const CHUNK = Number(values.chunk);
if (!Number.isInteger(CHUNK) || CHUNK < 1 || CHUNK > 20_000) throw new Error('--chunk: 1 to 20,000');
/** What KeyService.create audits of a new key (admin/keys.ts AUDITED_FIELDS that a new key sets). */
const AUDITED = [...KEY_CONFIG_FIELDS, 'environment', 'application', 'policy', 'not_before'] as const;
const actor: Actor = { name: 'seed', role: 'admin', tenant: null, ip: '127.0.0.1', request_id: randomUUID() };
/** Bytes on disk: the journal, or the database and its WAL (none once the last connection closed). */
function onDisk(spec: string): number {
  const files = spec.startsWith('sqlite:') ? [sqlitePath(spec), `${sqlitePath(spec)}-wal`] : [join(spec, 'journal.log')];
  return files.reduce((sum, f) => sum + (existsSync(f) ? statSync(f).size : 0), 0);
}

const t0 = performance.now();
const store = await openBenchStore(dir);
const hasher = new KeyHasher(null);
const now = Date.now();
const keys: string[] = new Array(n);
let generateMs = 0;
let commitMs = 0;
for (let i = 0; i < n; i += CHUNK) {
  const g0 = performance.now();
  const batch = [];
  const entries = [];
  const events = [];
  for (let j = i; j < Math.min(n, i + CHUNK); j++) {
    const key = generateKey('gw', 'live');
    keys[j] = key;
    const rec = keyRecord(key, hasher, now, { name: `scaling ${j}`, scopes: ['read'], apis: ['bench'], ip_allowlist: ['127.0.0.0/8'], created_by: actor.name });
    batch.push({ rec, expected: 0 });
    if (values.history) {
      entries.push(audit(actor, now, 'key.created', rec, diff(null, rec, AUDITED)));
      events.push(event(rec.id, 'created', null, now, actor));
    }
  }
  const c0 = performance.now();
  await store.commit({ keys: batch, audit: entries, events });
  commitMs += performance.now() - c0;
  generateMs += c0 - g0;
}
await store.close();
writeFileSync(keysFile, `${keys.join('\n')}\n`);
console.log(
  JSON.stringify({
    keys: n,
    commits: Math.ceil(n / CHUNK),
    history: values.history,
    generate_ms: Math.round(generateMs),
    commit_ms: Math.round(commitMs),
    total_ms: Math.round(performance.now() - t0),
    store_bytes: onDisk(dir),
  }),
);
