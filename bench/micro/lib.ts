import { writeFileSync } from 'node:fs';

/**
 * The measuring loop every micro-benchmark shares. A case is a batch function that runs the
 * measured call `n` times in its own loop and returns a number folded from the results: the
 * loop lives in the benchmark file, so each call site stays monomorphic, and the returned value
 * goes into a sink the JIT cannot prove dead.
 *
 * Each case is calibrated (the batch size that takes about `runMs`), warmed up, then run `runs`
 * times; the median nanoseconds per call is reported with the fastest and slowest run. Batch
 * sizes are bounded by MAX_ITERATIONS, so a case never runs for long even when one call is
 * cheaper than the timer's resolution.
 *
 * Environment: MICRO_RUNS (default 7), MICRO_RUN_MS (default 100), MICRO_OUT (a path: the
 * results are also written there as JSON, for bench/micro/all.ts).
 */
export type Batch = (n: number) => number;

export interface CaseResult {
  name: string;
  /** Median nanoseconds per call over the runs. */
  ns: number;
  min_ns: number;
  max_ns: number;
  iterations: number;
  runs: number;
}

export interface FileResult {
  title: string;
  cases: CaseResult[];
  notes: string[];
}

const MAX_ITERATIONS = 20_000_000;
const MIN_ITERATIONS = 100;
const runs = clamp(Number(process.env.MICRO_RUNS ?? 7), 3, 31);
const runMs = clamp(Number(process.env.MICRO_RUN_MS ?? 100), 10, 2_000);

let sink = 0;

function clamp(v: number, lo: number, hi: number): number {
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : lo;
}

function timeBatch(batch: Batch, n: number): number {
  const t0 = process.hrtime.bigint();
  const out = batch(n);
  const ns = Number(process.hrtime.bigint() - t0);
  // NaN and Infinity still count as "used": the sink only has to be read at the end.
  sink = (sink + (out === out ? out : 1)) % 1_000_003;
  return ns;
}

/** Nanoseconds per call of `batch`'s measured operation. */
export function measure(name: string, batch: Batch, options: { maxIterations?: number } = {}): CaseResult {
  const cap = Math.min(MAX_ITERATIONS, options.maxIterations ?? MAX_ITERATIONS);
  // Calibrate: grow the batch until it takes a tenth of a run, then scale to a whole run.
  let n = Math.min(MIN_ITERATIONS, cap);
  let ns = timeBatch(batch, n);
  while (ns < runMs * 1e5 && n < cap) {
    n = Math.min(cap, n * 4);
    ns = timeBatch(batch, n);
  }
  const size = (calls: number, took: number) => Math.max(MIN_ITERATIONS, Math.min(cap, Math.round((calls * runMs * 1e6) / Math.max(took, 1))));
  // Warm-up: two whole runs, so the optimised code is what gets measured; the batch size is
  // set again from the second, as calibration may have timed code not yet optimised.
  let iterations = size(n, ns);
  timeBatch(batch, iterations);
  iterations = size(iterations, timeBatch(batch, iterations));
  const per: number[] = [];
  for (let r = 0; r < runs; r++) per.push(timeBatch(batch, iterations) / iterations);
  per.sort((a, b) => a - b);
  return { name, ns: per[Math.floor(per.length / 2)]!, min_ns: per[0]!, max_ns: per[per.length - 1]!, iterations, runs };
}

function fmt(ns: number): string {
  return ns >= 100 ? ns.toFixed(0) : ns.toFixed(1);
}

/** Prints one table (and writes MICRO_OUT when set). */
export function report(title: string, cases: CaseResult[], notes: string[] = []): void {
  console.log(`\n${title}\n`);
  console.log('| case | ns/call (median) | min | max | calls per run |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const c of cases) console.log(`| ${c.name} | ${fmt(c.ns)} | ${fmt(c.min_ns)} | ${fmt(c.max_ns)} | ${c.iterations} |`);
  for (const n of notes) console.log(`- ${n}`);
  if (sink === -1) console.log('(sink)');
  const out = process.env.MICRO_OUT;
  if (out) writeFileSync(out, JSON.stringify({ title, cases, notes } satisfies FileResult));
}

/** A random permutation of 0..n-1 (for access patterns that defeat caches and predictors). */
export function shuffled(n: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}
