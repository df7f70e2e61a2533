import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { freePort, have, install, pinned, procStat } from './lib.js';

/**
 * What a gateway pays when load comes back after a quiet spell: one target process (a kind of
 * bench/target.ts), loaded with wrk for `--load` seconds, then left idle for `--idle` seconds,
 * `--cycles` times over, each load split in two halves. Prints, per half, requests per second
 * and the target's CPU time per request (from /proc). `--node-flags` starts the target with
 * extra Node flags (`--no-memory-reducer`, say) to compare. The target is pinned to CPU 0, wrk
 * and the upstream to CPU 1, when taskset is there; wrk is installed when missing.
 *
 *   node --import=tsx bench/after-idle.ts [--kind gateway] [--cycles 3] [--load 10] [--idle 70] [--node-flags=--no-memory-reducer]
 */
const { values } = parseArgs({
  options: {
    kind: { type: 'string', default: 'gateway' },
    cycles: { type: 'string', default: '3' },
    load: { type: 'string', default: '10' },
    idle: { type: 'string', default: '70' },
    'node-flags': { type: 'string', default: '' },
  },
});
const cycles = Math.min(10, Math.max(1, Number(values.cycles)));
const load = Math.min(60, Math.max(2, Number(values.load)));
const idle = Math.min(600, Math.max(0, Number(values.idle)));
const flags = values['node-flags'].split(' ').filter((f) => f !== '');
install('wrk', 'wrk');
const pin = have('taskset');
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

/** Starts a Node script; resolves with what follows `ready` on its first such line. */
function start(cpu: number, args: string[]): Promise<{ pid: number; line: string }> {
  const cmd = pinned(cpu, [process.execPath, ...args]);
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('did not start in 30 s')), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const line = out.split('\n').find((l) => l.startsWith('ready'));
      if (line === undefined) return;
      clearTimeout(timer);
      resolve({ pid: child.pid!, line: line.slice(5).trim() });
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
}

const cpuSeconds = (pid: number) => procStat(pid).cpu;

const upstreamPort = await freePort();
await start(1, ['--import=tsx', 'bench/upstream.ts', String(upstreamPort)]);
const port = await freePort();
const target = await start(0, [...flags, '--import=tsx', 'bench/target.ts', values.kind, String(port), `http://127.0.0.1:${upstreamPort}`]);
const url = `http://127.0.0.1:${port}/bench`;
const key = target.line;

function run(seconds: number): { rps: number; cpuUs: number } {
  const cpu0 = cpuSeconds(target.pid);
  const cmd = pinned(1, ['wrk', '-t1', '-c50', `-d${seconds}s`, '-H', `Authorization: Bearer ${key}`, url]);
  const out = execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  if (/Non-2xx/.test(out)) throw new Error(`non-2xx answers:\n${out}`);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]), cpuUs: ((cpuSeconds(target.pid) - cpu0) * 1e6) / requests };
}

console.log(`${values.kind}${flags.length > 0 ? ` with ${flags.join(' ')}` : ''}: ${cycles} cycles of ${load} s load (two halves) and ${idle} s idle${pin ? '; pinned' : ''}\n`);
console.log('| cycle | half | req/s | CPU µs/req |');
console.log('| ---: | ---: | ---: | ---: |');
for (let c = 1; c <= cycles; c++) {
  if (c > 1) await new Promise((r) => setTimeout(r, idle * 1000));
  for (const half of [1, 2]) {
    const s = run(Math.max(1, Math.round(load / 2)));
    console.log(`| ${c} | ${half} | ${s.rps.toFixed(0)} | ${s.cpuUs.toFixed(1)} |`);
  }
}
process.exit(0);
