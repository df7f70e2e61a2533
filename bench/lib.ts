import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

// What the benchmark scripts share: finding and installing tools, free loopback ports, pinning
// to a CPU and reading a process's CPU time.

/** Whether `cmd` is on the PATH. */
export function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Installs Debian package `pkg` with apt-get when `cmd` is missing. */
export function install(cmd: string, pkg: string): void {
  if (have(cmd)) return;
  process.stderr.write(`${cmd} not found; installing it (apt-get install -y ${pkg})\n`);
  execFileSync('sh', ['-c', `apt-get update -qq && apt-get install -y -qq ${pkg}`], { stdio: 'inherit' });
}

/**
 * A throw-away self-signed certificate for `localhost` and 127.0.0.1 (EC P-256, valid a day),
 * made with the openssl CLI in `dir`: the TLS rows' listeners (Keygate's and nginx's) share it.
 * Load generators do not verify it.
 */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'bench.crt');
  const key = join(dir, 'bench.key');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { cert, key };
}

/** A free loopback port (the OS picks it; the listener is closed before the caller binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

let canPin: boolean | undefined;
/** `cmd` pinned to CPU `cpu` with taskset, or as it is when taskset is missing. */
export function pinned(cpu: number, cmd: string[]): string[] {
  canPin ??= have('taskset');
  return canPin ? ['taskset', '-c', String(cpu), ...cmd] : cmd;
}

/** A process's parent and the user + system CPU seconds it has used so far (Linux /proc). */
export function procStat(pid: number): { ppid: number; cpu: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / 100 };
}

/** User + system CPU seconds of a process and of each of its descendants so far, by pid (Linux /proc). */
export function treeCpu(root: number): Map<number, number> {
  const stats = new Map<number, { ppid: number; cpu: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      stats.set(Number(d), procStat(Number(d)));
    } catch {
      // gone meanwhile
    }
  }
  const out = new Map<number, number>();
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    const s = stats.get(pid);
    if (s === undefined) continue;
    out.set(pid, s.cpu);
    for (const [child, c] of stats) if (c.ppid === pid) queue.push(child);
  }
  return out;
}

/** Busy and total CPU seconds of the machine and of each CPU so far (/proc/stat; busy excludes idle and iowait). */
export function machineCpu(): { name: string; busy: number; total: number }[] {
  const tick = 100;
  return readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((l) => /^cpu\d* /.test(l))
    .map((l) => {
      const [name, ...f] = l.split(/\s+/);
      const n = f.slice(0, 8).map(Number);
      const total = n.reduce((a, b) => a + b, 0);
      return { name: name!, busy: (total - n[3]! - n[4]!) / tick, total: total / tick };
    });
}

/**
 * Which of `pids` holds each established TCP connection to local `port`, by the peer's port
 * (Linux /proc: the socket's inode in /proc/net/tcp, matched against each process's open fds).
 * Tells apart the workers of a node:cluster gateway that share one listener.
 */
export function socketOwners(port: number, pids: readonly number[]): Map<number, number> {
  const peers = new Map<string, number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      // local address, remote address, state (01: established), …, inode
      if (f.length < 10 || f[3] !== '01' || parseInt(f[1]!.split(':')[1]!, 16) !== port) continue;
      peers.set(f[9]!, parseInt(f[2]!.split(':')[1]!, 16));
    }
  }
  const owners = new Map<number, number>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
      const peer = inode === undefined ? undefined : peers.get(inode);
      if (peer !== undefined) owners.set(peer, pid);
    }
  }
  return owners;
}
