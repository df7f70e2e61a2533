import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';

/**
 * Proxy benchmark: the same wrk load, in one invocation, against
 *   direct   the upstream itself
 *   bare     a proxy made of Keygate's forwarding code alone
 *   gateway  Keygate with full enforcement (scopes, API list, allowlist, rate limit) on an LRU hit
 * Targets run interleaved, round after round, so drift hits all alike; medians are reported
 * with ratios to the direct upstream and to the bare proxy. Besides requests per second, the
 * CPU time the serving process spent per request is read from /proc: when the proxy is not
 * the only bottleneck (wrk and the upstream share one core), it is the steadier measure. With taskset, the proxy gets CPU 0
 * and wrk and the upstream share CPU 1.
 *
 *   npm run bench -- [--duration 5] [--rounds 3] [--connections 50]
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '2' },
  },
});
const duration = Math.min(60, Number(values.duration));
const rounds = Math.min(10, Number(values.rounds));
const connections = Math.min(1000, Number(values.connections));
const warmup = Math.min(30, Number(values.warmup));

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (!have('wrk')) {
  process.stderr.write('wrk not found; installing it (apt-get install -y wrk)\n');
  execFileSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq wrk'], { stdio: 'inherit' });
}
const pin = have('taskset');
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** User + system CPU seconds a process has used so far (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function start(cpu: number, args: string[]): Promise<{ pid: number; line: string }> {
  const cmd = pin ? ['taskset', '-c', String(cpu), process.execPath, ...args] : [process.execPath, ...args];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start in 20 s`)), 20_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const line = out.split('\n').find((l) => l.startsWith('ready'));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve({ pid: child.pid!, line: line.slice(6).trim() });
      }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  /** CPU time the serving process spent per request, in microseconds. */
  cpuUs: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

function wrk(url: string, seconds: number, headers: string[], pid: number): Sample {
  const cpuBefore = cpuSeconds(pid);
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const cmd = pin ? ['taskset', '-c', '1', 'wrk', ...args] : ['wrk', ...args];
  const out = execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) throw new Error(`${url}: ${non2xx[1]} non-2xx responses; the target is misconfigured`);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99: toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    cpuUs: ((cpuSeconds(pid) - cpuBefore) * 1e6) / requests,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const upstreamPort = await freePort();
const up = await start(1, ['--import=tsx', 'bench/upstream.ts', String(upstreamPort)]);
const upstream = `http://127.0.0.1:${upstreamPort}`;
const targets: { name: string; url: string; headers: string[]; pid: number }[] = [
  { name: 'direct upstream', url: `${upstream}/bench`, headers: [], pid: up.pid },
];
for (const kind of ['bare', 'gateway'] as const) {
  const port = await freePort();
  const { pid, line: key } = await start(0, ['--import=tsx', 'bench/target.ts', kind, String(port), upstream]);
  targets.push({
    name: kind === 'bare' ? 'bare proxy (forwarding only)' : 'keygate, full enforcement',
    url: `http://127.0.0.1:${port}/bench`,
    headers: [`Authorization: Bearer ${key}`],
    pid,
  });
}
// Every target gets the same request bytes, the key included.
for (const t of targets) t.headers = targets[targets.length - 1]!.headers;

process.stderr.write(`warm-up ${warmup} s each; ${rounds} rounds of ${duration} s, ${connections} connections${pin ? ', pinned' : ''}\n`);
for (const t of targets) wrk(t.url, warmup, t.headers, t.pid);
const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
for (let r = 0; r < rounds; r++) {
  for (const t of targets) {
    const s = wrk(t.url, duration, t.headers, t.pid);
    samples.get(t.name)!.push(s);
    process.stderr.write(`round ${r + 1} ${t.name}: ${s.rps.toFixed(0)} req/s p50 ${s.p50} ms p99 ${s.p99} ms ${s.cpuUs.toFixed(1)} CPU us/req\n`);
  }
}

const rows = targets.map((t) => {
  const s = samples.get(t.name)!;
  return {
    target: t.name,
    rps: median(s.map((x) => x.rps)),
    p50_ms: median(s.map((x) => x.p50)),
    p99_ms: median(s.map((x) => x.p99)),
    cpu_us: median(s.map((x) => x.cpuUs)),
  };
});
const direct = rows[0]!.rps;
const bare = rows[1]!.rps;
const bareCpu = rows[1]!.cpu_us;
const table = rows.map((r) => ({ ...r, vs_direct: r.rps / direct, vs_bare: r.rps / bare, cpu_vs_bare: r.cpu_us / bareCpu }));
const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
console.log(line(['target', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'req/s × direct', 'req/s × bare', 'CPU × bare']));
console.log(line(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
for (const r of table) {
  console.log(
    line([r.target, r.rps.toFixed(0), r.p50_ms.toFixed(2), r.p99_ms.toFixed(2), r.cpu_us.toFixed(1), r.vs_direct.toFixed(2), r.vs_bare.toFixed(2), r.cpu_vs_bare.toFixed(2)]),
  );
}
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/proxy.json', JSON.stringify({ when: new Date().toISOString(), duration, rounds, connections, pinned: pin, rows: table }, null, 2));
process.exit(0);
