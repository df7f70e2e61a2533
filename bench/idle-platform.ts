import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/**
 * What the platform alone (Node, V8 and the machine) pays when work comes back after a quiet
 * spell, with no network and no Keygate code: the after-idle figure of `npm run bench` set
 * against the least any Node process can lose here (issue 23). Each loop runs in its own
 * process, `--cycles` times: one second of work in 100 ms slices (warm), `--idle` seconds of
 * nothing, one second again; it reports the first second after idle against the warm second,
 * its first 100 ms slice, and the minor page faults the process took in each.
 *
 * - `alloc`: short-lived objects, as a request handler makes them (the young generation in use);
 * - `cpu`: integer arithmetic on a few locals (no heap to speak of), the control.
 *
 * `--node-flags` starts a third loop, `alloc` under those Node flags (`--no-memory-reducer`,
 * say), to compare. The loops are pinned to CPU 0 when taskset exists.
 *
 *   node --import=tsx bench/idle-platform.ts [--cycles 3] [--idle 20] [--node-flags=--no-memory-reducer]
 */
const SLICE_MS = 100;
const SLICES = 10;
/** What the loops keep: `alloc`'s survivors, `cpu`'s result (so that neither is optimised away). */
const kept: object[] = new Array(256);
let next = 0;
let sink = 0;

if (process.argv[2] === '--child') {
  await child(process.argv[3] as 'alloc' | 'cpu', Number(process.argv[4]), Number(process.argv[5]));
  process.exit(0);
}

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '3' },
    idle: { type: 'string', default: '20' },
    'node-flags': { type: 'string', default: '' },
  },
});
const cycles = Math.min(10, Math.max(1, Number(values.cycles) || 1));
const idle = Math.min(600, Math.max(0, Number(values.idle) || 0));
const flags = values['node-flags'].split(' ').filter((f) => f !== '');
const taskset = spawnSync('taskset', ['--version']).status === 0;
const loops: { name: string; kind: 'alloc' | 'cpu'; flags: string[] }[] = [
  { name: 'alloc', kind: 'alloc', flags: [] },
  { name: 'cpu', kind: 'cpu', flags: [] },
  ...(flags.length > 0 ? [{ name: `alloc ${flags.join(' ')}`, kind: 'alloc' as const, flags }] : []),
];

console.log(`${cycles} cycles of 1 s warm, ${idle} s idle, 1 s after${taskset ? '; pinned to CPU 0' : ''}\n`);
console.log('| loop | first second / warm (median) | per cycle | first 100 ms / warm (median) | minor faults: warm second, first second after (median) |');
console.log('|---|---:|---|---:|---:|');
for (const loop of loops) {
  const args = [...loop.flags, '--import=tsx', fileURLToPath(import.meta.url), '--child', loop.kind, String(cycles), String(idle)];
  const cmd = taskset ? ['taskset', '-c', '0', process.execPath, ...args] : [process.execPath, ...args];
  const run = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: (cycles * (idle + 3) + 30) * 1000 });
  if (run.status !== 0) throw new Error(`${loop.name}: exited with ${run.status}\n${run.stderr}`);
  const rows = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Cycle);
  const ratio = median(rows.map((r) => r.after / r.warm));
  console.log(
    `| ${loop.name} | ${ratio.toFixed(3)} | ${rows.map((r) => (r.after / r.warm).toFixed(3)).join(', ')} | ` +
      `${median(rows.map((r) => r.firstSlice / (r.warm / SLICES))).toFixed(2)} | ${median(rows.map((r) => r.warmFaults))}, ${median(rows.map((r) => r.afterFaults))} |`,
  );
}

interface Cycle {
  /** Units of work: the warm second's (its median slice's times ten), the second after idle's, the first 100 ms after's. */
  warm: number;
  after: number;
  firstSlice: number;
  warmFaults: number;
  afterFaults: number;
}

async function child(kind: 'alloc' | 'cpu', cycles: number, idleS: number): Promise<void> {
  const work = kind === 'alloc' ? allocate : compute;
  runSlices(work, 30); // 3 s to optimise the loop and grow the heap to its working size
  for (let c = 0; c < cycles; c++) {
    let f0 = minorFaults();
    const warm = runSlices(work, SLICES);
    const warmFaults = minorFaults() - f0;
    await new Promise((resolve) => setTimeout(resolve, idleS * 1000));
    f0 = minorFaults();
    const after = runSlices(work, SLICES);
    const afterFaults = minorFaults() - f0;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    // The warm rate is the median slice's: a collection that lands in one slice does not move it.
    const out: Cycle = { warm: median(warm) * SLICES, after: sum(after), firstSlice: after[0]!, warmFaults, afterFaults };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  }
}

/** Units of `work` done in each of `n` slices of SLICE_MS. */
function runSlices(work: () => void, n: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < n; s++) {
    const end = performance.now() + SLICE_MS;
    let units = 0;
    while (performance.now() < end) {
      work();
      units++;
    }
    out.push(units);
  }
  return out;
}

/** A hundred small objects, one in 64 kept a while in a ring of 256 (as a request's few survivors are). */
function allocate(): void {
  for (let i = 0; i < 100; i++) {
    const o = { a: i, b: `x${i}`, c: [i, i + 1] };
    if ((i & 63) === 0) kept[next++ & 255] = o;
  }
}

function compute(): void {
  let x = sink;
  for (let i = 0; i < 1_000; i++) x = (x * 31 + i) | 0;
  sink = x;
}

/** This process's minor page faults so far (/proc/self/stat, field 10). */
function minorFaults(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
