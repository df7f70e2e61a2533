import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

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
