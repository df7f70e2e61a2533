// Memory of N cached keys, two (or more) builds of Keygate side by side on one Redis: for comparing
// a change against the commit before it on a loaded host, where the two must share the drift.
// Each build's gateway process (its bench/scaling/target.ts, compiled to dist-bench/ as
// bench/scaling.ts compiles it, Keygate's default V8 flags plus --expose-gc, pinned to CPU 0)
// is filled by a sequential pass over every key at the same time as the others (wrk and
// bench/scaling/sequential.lua, CPU 1); then process memory (VmRSS, V8 heap, no forced GC) right
// after, after 30 s idle, and after three rounds of 10 s of random-key load per build
// (alternating; req/s and gateway CPU per request).
// The Redis comes from an RDB file of a store bench/scaling.ts seeded
// (`redis-cli -p PORT --rdb FILE` while it runs), with its keys file, so no seeding is repeated.
//
//   node bench/scaling/ab-memory.mjs RDB_FILE KEYS_FILE NAME=TREE [NAME=TREE ...]
//     TREE: a checkout with node_modules and dist-bench/ built (tsc -p tsconfig.bench.json, and
//     core/**/*.lua and *.sql copied beside it, as bench/scaling.ts does).
import { dirname, basename } from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
const [redisPort, upPort] = [46101, 46102];
const [rdb, keysFile, ...specs] = process.argv.slice(2);
if (!rdb || !keysFile || specs.length === 0) throw new Error('usage: ab-memory.mjs RDB_FILE KEYS_FILE NAME=TREE [NAME=TREE ...]');
const trees = Object.fromEntries(specs.map((s) => s.split('=')));
const script = (name) => new URL(name, import.meta.url).pathname;
const procs = [];
process.on('exit', () => procs.forEach((p) => { try { p.kill('SIGKILL'); } catch {} }));
const log = (m) => console.log(`${new Date().toISOString().slice(11, 19)} ${m}`);
function start(cmd, cwd, stdin = 'ignore') {
  const p = spawn(cmd[0], cmd.slice(1), { cwd, stdio: [stdin, 'pipe', 'inherit'] });
  procs.push(p);
  p.lines = [];
  p.waiters = [];
  let buf = '';
  p.stdout.on('data', (c) => {
    buf += c;
    let nl;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl); buf = buf.slice(nl + 1);
      const w = p.waiters.findIndex((x) => line.startsWith(x.prefix));
      if (w === -1) p.lines.push(line); else p.waiters.splice(w, 1)[0].resolve(line);
    }
  });
  p.next = (prefix) => {
    const i = p.lines.findIndex((l) => l.startsWith(prefix));
    if (i !== -1) return Promise.resolve(p.lines.splice(i, 1)[0]);
    return new Promise((resolve) => p.waiters.push({ prefix, resolve }));
  };
  return p;
}
const redis = start(['taskset', '-c', '1', 'redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--dir', dirname(rdb), '--dbfilename', basename(rdb), '--save', '', '--appendonly', 'no']);
for (;;) {
  try { if (execFileSync('redis-cli', ['-p', String(redisPort), 'ping']).toString().trim() === 'PONG') break; } catch {}
  await new Promise((r) => setTimeout(r, 500));
}
log(`redis up, dbsize ${execFileSync('redis-cli', ['-p', String(redisPort), 'dbsize']).toString().trim()}`);
start(['taskset', '-c', '1', process.execPath, '--import=tsx', script('../upstream.ts'), String(upPort)], Object.values(trees)[0]);
await new Promise((r) => setTimeout(r, 3000));
const targets = {};
let port = 46110; // the Redis, upstream and gateway ports below
for (const [name, dir] of Object.entries(trees)) {
  const t = start(['taskset', '-c', '0', process.execPath, '--expose-gc', 'dist-bench/bench/scaling/target.js', `redis://127.0.0.1:${redisPort}#scaling-1000000`, String(++port), `http://127.0.0.1:${upPort}`, '1000000'], dir, 'pipe');
  t.port = port;
  log(`${name} ${await t.next('ready ')}`);
  targets[name] = t;
}
const mem = async (t, gc = false) => { t.stdin.write(gc ? 'mem\n' : 'mem nogc\n'); return JSON.parse((await t.next('mem ')).slice(4)); };
const MB = (b) => (b / 1048576).toFixed(0);
const show = async (label) => {
  for (const [name, t] of Object.entries(targets)) {
    const m = await mem(t);
    log(`${label} ${name}: rss ${MB(m.vm_rss)} MB, hwm ${MB(m.vm_hwm)}, heap used ${MB(m.heap_used)} / total ${MB(m.heap_total)}, old ${MB(m.spaces.old_space.size)}/${MB(m.spaces.old_space.used)}, arraybuffers ${MB(m.array_buffers)}, cache ${m.cache_size}, hits ${m.cache_hits} misses ${m.cache_misses}`);
  }
};
const cpu = (t) => { const f = readFileSync(`/proc/${t.pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
// Both first passes at once, sharing CPU 0 alike.
const t0 = Date.now();
const c0 = Object.fromEntries(Object.entries(targets).map(([n, t]) => [n, cpu(t)]));
await Promise.all(Object.entries(targets).map(async ([name, t]) => {
  const w = start(['taskset', '-c', '1', 'wrk', '-t1', '-c50', '-d3600s', '-s', script('sequential.lua'), `http://127.0.0.1:${t.port}/bench`, '--', keysFile]);
  await w.next('pass done');
  w.kill('SIGINT');
  log(`${name} first pass done in ${((Date.now() - t0) / 1000).toFixed(0)} s, gateway CPU ${(cpu(t) - c0[name]).toFixed(0)} s`);
}));
await show('after the fill');
await new Promise((r) => setTimeout(r, 30_000));
await show('after 30 s idle');
// Warm random load, alternating, 3 rounds of 10 s each.
for (let round = 1; round <= 3; round++) {
  for (const [name, t] of Object.entries(targets)) {
    const c = cpu(t);
    const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', '-c50', '-d10s', '-s', script('random.lua'), `http://127.0.0.1:${t.port}/bench`, '--', keysFile]).toString();
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
    const reqs = Number(/(\d+) requests in/.exec(out)?.[1]);
    log(`round ${round} ${name}: ${rps} req/s, ${(((cpu(t) - c) * 1e6) / reqs).toFixed(1)} CPU us a request`);
  }
}
await show('after the warm rounds');
process.exit(0);
