import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitUntil } from './redis.js';

// Real Redis topologies for the store's Sentinel and Cluster modes: processes on private
// loopback ports, without persistence, in temporary directories that `stop` removes.

/** Runs redis-cli against 127.0.0.1:port; its output, or null when it fails or takes over 2 s. */
export function redisCli(port: number, args: string[], timeoutMs = 2_000): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: timeoutMs }, (err, stdout) =>
      resolve(err ? null : stdout),
    );
  });
}

function spawnRedis(args: string[]): ChildProcess {
  // 'ignore': nobody reads the output, so a chatty server can never block on a full pipe.
  return spawn('redis-server', args, { stdio: 'ignore' });
}

async function killAll(procs: ChildProcess[]): Promise<void> {
  await Promise.all(
    procs.map(
      (proc) =>
        new Promise<void>((resolve) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
          proc.once('exit', () => resolve());
          proc.kill('SIGKILL');
        }),
    ),
  );
}

/** Rejects if `proc` exits before `wait` settles, so a server that cannot start fails fast. */
async function whileRunning<T>(procs: ChildProcess[], wait: Promise<T>): Promise<T> {
  let onExit: (() => void) | undefined;
  const exited = new Promise<never>((_, reject) => {
    onExit = () => reject(new Error('a redis process exited while starting'));
    for (const p of procs) p.once('exit', onExit);
  });
  try {
    return await Promise.race([wait, exited]);
  } finally {
    for (const p of procs) p.off('exit', onExit!);
  }
}

/** One master and one sentinel watching it as `name` (quorum 1). */
export class RedisSentinelSet {
  readonly name: string;
  readonly masterPort: number;
  readonly sentinelPort: number;
  readonly #dir: string;
  readonly #procs: ChildProcess[] = [];

  private constructor(name: string, masterPort: number, sentinelPort: number) {
    this.name = name;
    this.masterPort = masterPort;
    this.sentinelPort = sentinelPort;
    this.#dir = mkdtempSync(join(tmpdir(), 'keygate-sentinel-'));
  }

  static async start(name = 'mymaster', timeoutMs = 15_000): Promise<RedisSentinelSet> {
    const set = new RedisSentinelSet(name, await freePort(), await freePort());
    try {
      await set.#start(timeoutMs);
    } catch (err) {
      await set.stop();
      throw err;
    }
    return set;
  }

  async #start(timeoutMs: number): Promise<void> {
    const master = spawnRedis(['--port', String(this.masterPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.#dir]);
    this.#procs.push(master);
    await whileRunning(
      [master],
      waitUntil(async () => (await redisCli(this.masterPort, ['PING']))?.trim() === 'PONG', `redis master on ${this.masterPort}`, timeoutMs),
    );
    // A sentinel rewrites its config file, so it must be a writable file of its own.
    const conf = join(this.#dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${this.sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${this.#dir}`,
        `sentinel monitor ${this.name} 127.0.0.1 ${this.masterPort} 1`,
        `sentinel down-after-milliseconds ${this.name} 1000`,
        `sentinel failover-timeout ${this.name} 5000`,
        '',
      ].join('\n'),
    );
    const sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
    this.#procs.push(sentinel);
    // Ready once the sentinel names the master and has reached it: flags exactly "master" (no
    // s_down, no disconnected) and a run id, which it learns only from the master's INFO.
    await whileRunning(
      [master, sentinel],
      waitUntil(
        async () => {
          const addr = await redisCli(this.sentinelPort, ['SENTINEL', 'get-master-addr-by-name', this.name]);
          if (addr?.split('\n').map((l) => l.trim())[1] !== String(this.masterPort)) return false;
          const info = (await redisCli(this.sentinelPort, ['SENTINEL', 'master', this.name]))?.split('\n').map((l) => l.trim()) ?? [];
          const flags = info[info.indexOf('flags') + 1];
          const runid = info[info.indexOf('runid') + 1];
          return info.includes('flags') && flags === 'master' && info.includes('runid') && !!runid;
        },
        `sentinel on ${this.sentinelPort} to report master ${this.name}`,
        timeoutMs,
      ),
    );
  }

  get sentinels(): { host: string; port: number }[] {
    return [{ host: '127.0.0.1', port: this.sentinelPort }];
  }

  async stop(): Promise<void> {
    await killAll(this.#procs.splice(0));
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** `n` master nodes (no replicas) sharing the 16384 slots. */
export class RedisClusterSet {
  readonly ports: number[];
  readonly #dir: string;
  /** The running process of each node, by port. */
  readonly #procs = new Map<number, ChildProcess>();

  private constructor(ports: number[]) {
    this.ports = ports;
    this.#dir = mkdtempSync(join(tmpdir(), 'keygate-cluster-'));
  }

  static async start(n = 3, timeoutMs = 20_000): Promise<RedisClusterSet> {
    const ports: number[] = [];
    // freePort closes its listener before answering, so ask until the ports are distinct.
    while (ports.length < n) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const set = new RedisClusterSet(ports);
    try {
      await set.#start(timeoutMs);
    } catch (err) {
      await set.stop();
      throw err;
    }
    return set;
  }

  async #start(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    const left = () => Math.max(1, until - Date.now());
    for (const port of this.ports) this.#spawn(port);
    for (const port of this.ports) await this.#answers(port, left());
    const created = await new Promise<{ ok: boolean; out: string }>((resolve) => {
      execFile(
        'redis-cli',
        ['--cluster', 'create', ...this.ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
        { timeout: left() },
        (err, stdout, stderr) => resolve({ ok: !err, out: `${stdout}${stderr}` }),
      );
    });
    if (!created.ok) throw new Error(`redis-cli --cluster create failed:\n${created.out}`);
    await this.waitOk(left());
  }

  #spawn(port: number): void {
    this.#procs.set(
      port,
      spawnRedis([
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--dir', this.#dir,
        '--cluster-enabled', 'yes',
        // Kept across a restart: the node comes back with its id, epoch and slots.
        '--cluster-config-file', join(this.#dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', '2000',
        '--save', '',
        '--appendonly', 'no',
      ]),
    );
  }

  async #answers(port: number, timeoutMs: number): Promise<void> {
    await whileRunning([...this.#procs.values()], waitUntil(async () => (await redisCli(port, ['PING']))?.trim() === 'PONG', `cluster node on ${port}`, timeoutMs));
  }

  /** Until every running node reports `cluster_state:ok`. */
  async waitOk(timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (const port of this.#procs.keys()) {
      await whileRunning(
        [...this.#procs.values()],
        waitUntil(
          async () => (await redisCli(port, ['CLUSTER', 'INFO']))?.includes('cluster_state:ok') ?? false,
          `cluster_state:ok on ${port}`,
          Math.max(1, until - Date.now()),
        ),
      );
    }
  }

  /** The port of the node that serves `key`'s slot. */
  async ownerOf(key: string): Promise<number> {
    const slot = Number((await redisCli(this.ports[0]!, ['CLUSTER', 'KEYSLOT', key]))?.trim());
    for (const port of this.ports) {
      if (!this.#procs.has(port)) continue;
      const nodes = (await redisCli(port, ['CLUSTER', 'NODES'])) ?? '';
      for (const line of nodes.split('\n')) {
        const f = line.split(' ');
        if (!f[2]?.split(',').includes('master')) continue;
        const owns = f.slice(8).some((r) => {
          const [lo, hi] = r.split('-').map(Number);
          return slot >= lo! && slot <= (hi ?? lo)!;
        });
        if (owns) return Number(f[1]!.split('@')[0]!.split(':')[1]);
      }
    }
    throw new Error(`no node owns the slot of ${key}`);
  }

  /** SIGKILL one node, as in a crash. */
  async kill(port: number): Promise<void> {
    const proc = this.#procs.get(port);
    this.#procs.delete(port);
    if (proc) await killAll([proc]);
  }

  /** Starts a killed node again on its port, with its cluster config; waits until it answers. */
  async restart(port: number, timeoutMs = 10_000): Promise<void> {
    if (this.#procs.has(port)) return;
    this.#spawn(port);
    await this.#answers(port, timeoutMs);
  }

  get nodes(): { host: string; port: number }[] {
    return this.ports.map((port) => ({ host: '127.0.0.1', port }));
  }

  async stop(): Promise<void> {
    const procs = [...this.#procs.values()];
    this.#procs.clear();
    await killAll(procs);
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
