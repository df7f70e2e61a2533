import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';

/**
 * Proxy benchmark: the same wrk load, in one invocation, against
 *   direct   the upstream itself
 *   bare     a proxy made of Keygate's forwarding code alone
 *   gateway  Keygate with full enforcement (scopes, API list, allowlist, rate limit) on an LRU hit
 * Targets run interleaved, round after round, so drift hits all alike; medians are reported
 * with ratios to the direct upstream and to the bare proxy. With taskset, the proxy gets CPU 0
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

async function start(cpu: number, args: string[]): Promise<string> {
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
        resolve(line.slice(6).trim());
      }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

function wrk(url: string, seconds: number, headers: string[]): Sample {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  const cmd = pin ? ['taskset', '-c', '1', 'wrk', ...args] : ['wrk', ...args];
  const out = execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) throw new Error(`${url}: ${non2xx[1]} non-2xx responses; the target is misconfigured`);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99: toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const upstreamPort = await freePort();
await start(1, ['--import=tsx', 'bench/upstream.ts', String(upstreamPort)]);
const upstream = `http://127.0.0.1:${upstreamPort}`;
const targets: { name: string; url: string; headers: string[] }[] = [{ name: 'direct upstream', url: `${upstream}/bench`, headers: [] }];
for (const kind of ['bare', 'gateway'] as const) {
  const port = await freePort();
  const key = await start(0, ['--import=tsx', 'bench/target.ts', kind, String(port), upstream]);
  targets.push({
    name: kind === 'bare' ? 'bare proxy (forwarding only)' : 'keygate, full enforcement',
    url: `http://127.0.0.1:${port}/bench`,
    headers: kind === 'gateway' ? [`Authorization: Bearer ${key}`] : [],
  });
}

process.stderr.write(`warm-up ${warmup} s each; ${rounds} rounds of ${duration} s, ${connections} connections${pin ? ', pinned' : ''}\n`);
for (const t of targets) wrk(t.url, warmup, t.headers);
const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
for (let r = 0; r < rounds; r++) {
  for (const t of targets) {
    const s = wrk(t.url, duration, t.headers);
    samples.get(t.name)!.push(s);
    process.stderr.write(`round ${r + 1} ${t.name}: ${s.rps.toFixed(0)} req/s p50 ${s.p50} ms p99 ${s.p99} ms\n`);
  }
}

const rows = targets.map((t) => {
  const s = samples.get(t.name)!;
  return { target: t.name, rps: median(s.map((x) => x.rps)), p50_ms: median(s.map((x) => x.p50)), p99_ms: median(s.map((x) => x.p99)) };
});
const direct = rows[0]!.rps;
const bare = rows[1]!.rps;
const table = rows.map((r) => ({ ...r, vs_direct: r.rps / direct, vs_bare: r.rps / bare }));
const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
console.log(line(['target', 'req/s', 'p50 ms', 'p99 ms', '× direct', '× bare proxy']));
console.log(line(['---', '---:', '---:', '---:', '---:', '---:']));
for (const r of table) {
  console.log(line([r.target, r.rps.toFixed(0), r.p50_ms.toFixed(2), r.p99_ms.toFixed(2), r.vs_direct.toFixed(2), r.vs_bare.toFixed(2)]));
}
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/proxy.json', JSON.stringify({ when: new Date().toISOString(), duration, rounds, connections, pinned: pin, rows: table }, null, 2));
process.exit(0);
