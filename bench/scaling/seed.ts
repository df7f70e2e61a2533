import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKey } from '../../core/key-format.js';
import { KeyHasher } from '../../core/key-hash.js';
import { FileStore } from '../../core/store/file-store.js';
import { keyRecord } from '../../test/lib/records.js';

/**
 * Fills a new file store with N keys through the store's own API (FileStore.commit), in
 * commits of CHUNK keys, so the journal is exactly what Keygate writes (checksummed lines,
 * fsync'ed) in a hundredth of the lines that one commit per key would take. Each key is like
 * bench/target.ts's: scope `read`, API `bench`, allowlist 127.0.0.0/8, the default plan.
 * The plaintext keys go to KEYS_FILE, one a line, for the load generator.
 * Prints one JSON line: how long generating and committing took, and the journal's size.
 *
 *   node --import=tsx bench/scaling/seed.ts DIR N KEYS_FILE
 */
const [dir, nArg, keysFile] = process.argv.slice(2);
const n = Number(nArg);
if (!dir || !keysFile || !Number.isInteger(n) || n < 1 || n > 5_000_000) throw new Error('usage: seed.ts DIR N KEYS_FILE (N at most 5,000,000)');
/**
 * Keys per commit (one journal line each): large enough that a million keys are 100 lines, so
 * the store does not compact its journal on open (it does above 1,000 lines).
 */
const CHUNK = 10_000;

const t0 = performance.now();
const store = await FileStore.open({ dir });
const hasher = new KeyHasher(null);
const now = Date.now();
const keys: string[] = new Array(n);
let generateMs = 0;
let commitMs = 0;
for (let i = 0; i < n; i += CHUNK) {
  const g0 = performance.now();
  const batch = [];
  for (let j = i; j < Math.min(n, i + CHUNK); j++) {
    const key = generateKey('gw', 'live');
    keys[j] = key;
    batch.push({ rec: keyRecord(key, hasher, now, { name: `scaling ${j}`, scopes: ['read'], apis: ['bench'], ip_allowlist: ['127.0.0.0/8'] }), expected: 0 });
  }
  const c0 = performance.now();
  await store.commit({ keys: batch });
  commitMs += performance.now() - c0;
  generateMs += c0 - g0;
}
await store.close();
writeFileSync(keysFile, `${keys.join('\n')}\n`);
console.log(
  JSON.stringify({
    keys: n,
    commits: Math.ceil(n / CHUNK),
    generate_ms: Math.round(generateMs),
    commit_ms: Math.round(commitMs),
    total_ms: Math.round(performance.now() - t0),
    journal_bytes: statSync(join(dir, 'journal.log')).size,
  }),
);
