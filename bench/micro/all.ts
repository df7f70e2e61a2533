import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FileResult } from './lib.js';
import { have } from '../lib.js';

/**
 * Every hot-function micro-benchmark, each in a process of its own (so one's JIT state and
 * heap do not colour the next), pinned to one CPU when taskset is there; then one table of
 * nanoseconds per call, also written to bench/results/micro.json.
 *   npm run bench:micro [-- key-parse hash ...]   (default: all of them)
 * Environment: MICRO_RUNS, MICRO_RUN_MS (see lib.ts).
 */
const ALL = ['key-parse', 'hash', 'lru-hit', 'invalid-key-brake', 'ip-allowlist', 'route-match', 'scope-check', 'token-bucket', 'quota', 'usage-sinks', 'error-body', 'cors', 'trace'];
const asked = process.argv.slice(2).filter((a) => ALL.includes(a));
const files = asked.length > 0 ? asked : ALL;
/** Per file: lru-hit builds a million-key cache, the rest take seconds. */
const TIMEOUT_MS = 5 * 60_000;

const pin = have('taskset') && cpus().length > 1;
const dir = mkdtempSync(join(tmpdir(), 'keygate-micro-'));
const results: (FileResult & { file: string; seconds: number })[] = [];
try {
  for (const file of files) {
    const out = join(dir, `${file}.json`);
    const args = ['--import=tsx', `bench/micro/${file}.ts`];
    const cmd = pin ? ['taskset', '-c', '1', process.execPath, ...args] : [process.execPath, ...args];
    const t0 = performance.now();
    const run = spawnSync(cmd[0]!, cmd.slice(1), { stdio: 'inherit', timeout: TIMEOUT_MS, env: { ...process.env, MICRO_OUT: out } });
    if (run.status !== 0) throw new Error(`bench/micro/${file}.ts failed (${run.signal ?? `exit ${run.status}`})`);
    results.push({ file, seconds: (performance.now() - t0) / 1000, ...(JSON.parse(readFileSync(out, 'utf8')) as FileResult) });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const fmt = (ns: number) => (ns >= 100 ? ns.toFixed(0) : ns.toFixed(1));
console.log(`\nAll micro-benchmarks (median of ${results[0]?.cases[0]?.runs ?? '?'} runs; ${pin ? 'pinned to CPU 1' : 'not pinned'})\n`);
console.log('| benchmark | case | ns/call | min | max |');
console.log('| --- | --- | ---: | ---: | ---: |');
for (const r of results) for (const c of r.cases) console.log(`| ${r.file} | ${c.name.trim()} | ${fmt(c.ns)} | ${fmt(c.min_ns)} | ${fmt(c.max_ns)} |`);
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/micro.json',
  JSON.stringify({ when: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model ?? null, pinned: pin, files: results }, null, 2),
);
console.log('\nwritten to bench/results/micro.json');
