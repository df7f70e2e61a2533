import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SqliteBuckets } from '../../core/store/sqlite/buckets.js';

/**
 * One SqliteBuckets.take (core/store/sqlite/buckets.ts), the round trip the shared limiter
 * makes for a lease when gateway workers share a SQLite store, in µs, each take awaited before
 * the next (as the limiter does per bucket):
 *   - one process, one bucket (the baseline the ratios are against);
 *   - one process, a random bucket of 100,000;
 *   - two processes on one bucket of one file, each taking as fast as it can: what contention
 *     (SQLITE_BUSY, retried on a later turn of the event loop) costs each.
 * The bucket never runs dry: every take writes. Runs each case for `MS` ms (default 2,000).
 *   node --import=tsx bench/micro/sqlite-buckets.ts [MS]
 */
const [role, childPath, childMs] = process.argv.slice(2);
const CAP = 1e12;
const PER_MS = 1e6;

/** Takes from `ids()` for `ms`, one at a time; how many. */
async function drive(buckets: SqliteBuckets, ms: number, ids: () => string): Promise<{ takes: number; ms: number }> {
  let takes = 0;
  const start = performance.now();
  const end = start + ms;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) await buckets.take(ids(), CAP, PER_MS, 1);
    takes += 100;
  }
  return { takes, ms: performance.now() - start };
}

if (role === 'child') {
  const buckets = new SqliteBuckets(childPath!, { busyMs: 60_000 });
  const lines = createInterface({ input: process.stdin });
  console.log('ready');
  for await (const line of lines) if (line === 'go') break;
  const r = await drive(buckets, Number(childMs), () => 'one');
  console.log(JSON.stringify(r));
  buckets.close();
  lines.close();
} else {
  const ms = Number(role ?? 2_000) || 2_000;
  const dir = mkdtempSync(join(tmpdir(), 'kgm-sqlite-buckets-'));
  try {
    const path = join(dir, 'keygate.db-limits');
    const buckets = new SqliteBuckets(path, { busyMs: 60_000 });
    const us = (r: { takes: number; ms: number }) => (r.ms * 1000) / r.takes;
    await drive(buckets, 300, () => 'one'); // warm-up
    const alone = us(await drive(buckets, ms, () => 'one'));
    const names = Array.from({ length: 100_000 }, (_, i) => `key_${i}`);
    for (const id of names) await buckets.take(id, CAP, PER_MS, 1);
    const many = us(await drive(buckets, ms, () => names[Math.floor(Math.random() * names.length)]!));

    const child = spawn(process.execPath, ['--import=tsx', 'bench/micro/sqlite-buckets.ts', 'child', path, String(ms)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    while (!out.startsWith('ready\n')) await new Promise((r) => setTimeout(r, 10));
    child.stdin.write('go\n');
    const mine = await drive(buckets, ms, () => 'one');
    await new Promise((r) => child.once('close', r));
    const theirs = JSON.parse(out.split('\n')[1]!) as { takes: number; ms: number };
    buckets.close();

    const row = (name: string, v: number) => console.log(`| ${name} | ${v.toFixed(1)} | ${(v / alone).toFixed(2)} |`);
    console.log('\nSqliteBuckets.take, awaited one at a time\n');
    console.log('| case | µs per take | × one process, one bucket |');
    console.log('| --- | ---: | ---: |');
    row('one process, one bucket', alone);
    row('one process, a random bucket of 100,000', many);
    row('two processes on one bucket: this one', us(mine));
    row('two processes on one bucket: the other', us(theirs));
    console.log(`- two processes together: ${Math.round(((mine.takes + theirs.takes) / Math.max(mine.ms, theirs.ms)) * 1000)} takes/s; one alone: ${Math.round(1e6 / alone)} takes/s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
