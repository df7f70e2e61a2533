import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recorderOptions, UsageRecorder } from '../../admin/usage.js';
import { parseConfig } from '../../config/load.js';
import { generateKey } from '../../core/key-format.js';
import { KeyHasher } from '../../core/key-hash.js';
import { Logger } from '../../core/log.js';
import { SqliteStore } from '../../core/store/sqlite-store.js';
import { keyRecord } from '../../test/lib/records.js';

/**
 * What a usage flush costs a gateway process on the SQLite store: a UsageRecorder (as every
 * gateway worker runs one, `usage.flush_interval_ms` apart) folds one request of each of K
 * distinct keys, then flushes; the CPU time of the flush (sealing the batch and
 * SqliteStore.ingestUsage: the keys' counters, every bucket field of the key and overall scopes,
 * the commit) and its wall time, median of `rounds` flushes after one unmeasured. The cost grows
 * with the distinct keys a flush carries, not with the requests. On a new database of K keys.
 *
 *   node --import=tsx bench/micro/sqlite-usage.ts [K ...] [--rounds 15]   (default K: 100 1000 10000)
 */
const args = process.argv.slice(2);
const r = args.indexOf('--rounds');
const rounds = r === -1 ? 15 : Math.max(2, Number(args.splice(r, 2)[1]));
const sizes = args.map(Number).filter((k) => Number.isInteger(k) && k >= 1 && k <= 100_000);
if (sizes.length === 0) sizes.push(100, 1000, 10_000);

const config = parseConfig({
  listeners: [{ port: 1, environment: 'production' }],
  admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
});
const hasher = new KeyHasher(null);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log('| distinct keys a flush | CPU ms a flush | CPU µs a key | wall ms a flush |');
console.log('| ---: | ---: | ---: | ---: |');
for (const k of sizes) {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-sqlite-usage-'));
  const store = await SqliteStore.open({ path: join(dir, 'keygate.db') });
  const now = Date.now();
  const ids = [];
  for (let i = 0; i < k; i += 10_000) {
    const batch = [];
    for (let j = i; j < Math.min(k, i + 10_000); j++) {
      batch.push({ rec: keyRecord(generateKey('gw', 'live'), hasher, now, { name: `usage ${j}`, scopes: ['read'], apis: ['bench'] }), expected: 0 });
    }
    for (const c of (await store.commit({ keys: batch })).keys) ids.push(c.id);
  }
  const recorder = new UsageRecorder(store, new Logger({ level: 'warn' }), { ...recorderOptions(config.usage), flushIntervalMs: 1e9 });
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    const time = Date.now();
    for (const id of ids) {
      recorder.add({
        time, request_id: 'r', key_id: id, tenant: null, api: 'bench', method: 'GET', route: '/*', status: 200, outcome: 'ok', reason: null,
        latency_ms: 1.3 + (round % 7) * 0.25, upstream_ms: 0.8, bytes_in: 0, bytes_out: 180, country: null,
      });
    }
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await recorder.flush();
    const c = process.cpuUsage(c0);
    if (recorder.pending !== 0) throw new Error('the flush did not store its batch');
    if (round === 0) continue;
    cpu.push((c.user + c.system) / 1000);
    wall.push(performance.now() - t0);
  }
  console.log(`| ${k.toLocaleString('en-US')} | ${median(cpu).toFixed(1)} | ${((median(cpu) * 1000) / k).toFixed(0)} | ${median(wall).toFixed(1)} |`);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
