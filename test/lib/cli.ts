import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the CLI's working directory unless a test says otherwise. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));
/** The directories `npm run build` compiles into dist/ (scripts/build.mjs). */
const BUILT_FROM = ['bin', 'core', 'config', 'gateway', 'admin'];

/** The newest modification time of any file under `dir` (milliseconds). */
function newest(dir: string): number {
  let max = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    max = Math.max(max, e.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return max;
}

let chosen: readonly [string, ...string[]] | undefined;
/**
 * How tests start keygate: the compiled CLI (`bin/keygate.js`, what users run) when dist/ was
 * built after every source last changed (`npm ci` builds it through the prepare script), else
 * the sources through tsx, so an edit is tested without a build. A start through tsx costs a
 * child two to three times the CPU, which the suite's CLI and multi-process files pay on every
 * child. `KEYGATE_TEST_CLI=source` or `=dist` forces one.
 */
export function cliProgram(): readonly [string, ...string[]] {
  if (chosen) return chosen;
  const forced = process.env.KEYGATE_TEST_CLI;
  const compiled = forced === 'dist' || (forced !== 'source' && distIsFresh());
  chosen = compiled ? [process.execPath, join(ROOT, 'bin', 'keygate.js')] : [process.execPath, '--import=tsx', ENTRY];
  return chosen;
}

/** Whether dist/ was built (scripts/build.mjs) after every source it is built from last changed. */
export function distIsFresh(): boolean {
  try {
    return statSync(join(ROOT, 'dist', '.built')).mtimeMs > Math.max(...BUILT_FROM.map((d) => newest(join(ROOT, d))));
  } catch {
    return false;
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CliProcess {
  child: ChildProcess;
  pid: number;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once the process has exited (and its output has been read to the end). */
  exited: Promise<Exit>;
  /** The first JSON log line on stdout that satisfies `pred`, waiting up to `timeoutMs` (a minute). */
  waitForLog(pred: (line: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>;
  /** Every JSON log line on stdout so far. */
  logs(): Record<string, any>[];
}

/**
 * The child's environment: ours minus what tap adds for its own children (coverage loaders,
 * TAP_* switches), plus `env`. The product is not under test by tap's process tracking.
 */
function childEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k.startsWith('TAP') || k.startsWith('_TAPJS_')) continue;
    out[k] = v;
  }
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

export interface CliOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** The program and its first arguments; default: cliProgram(). */
  command?: readonly [string, ...string[]];
  /** Written to the child's stdin (a pipe), which is then closed; default: no stdin. */
  input?: string;
}

/** Starts `keygate ARGS` (cliProgram() unless `command` says otherwise) as a child process. */
export function spawnCli(args: string[], options: CliOptions = {}): CliProcess {
  const [program, ...first] = options.command ?? cliProgram();
  const child = spawn(program, [...first, ...args], {
    cwd: options.cwd ?? ROOT,
    env: childEnv(options.env ?? {}),
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    out += c;
    wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    err += c;
  });
  let done = false;
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => {
      done = true;
      wake();
      resolve({ code, signal });
    });
  });
  const logs = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, any>];
        } catch {
          return [];
        }
      });
  return {
    child,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    exited,
    logs,
    waitForLog(pred, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = logs().find(pred);
          if (hit) return finish(() => resolve(hit));
          if (done) return finish(() => reject(new Error(`keygate exited before the expected log line\nstdout:\n${out}\nstderr:\n${err}`)));
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`no matching log line within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`))),
          timeoutMs,
        );
        const finish = (f: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          f();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/**
 * Runs `keygate ARGS` to completion and returns its exit code and output. `timeoutMs` (a
 * minute) only bounds a hung child: on a loaded 2-core machine a start under tsx can take 15 s.
 */
export async function runCli(
  args: string[],
  options: CliOptions & { timeoutMs?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const p = spawnCli(args, options);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const exit = await p.exited;
  clearTimeout(timer);
  return { ...exit, stdout: p.stdout(), stderr: p.stderr() };
}

export interface RunningKeygate {
  proc: CliProcess;
  adminUrl: string;
  /** Gateway base URL per environment. */
  gw: Record<string, string>;
  /** Sends `signal` and waits (bounded) for the exit; SIGKILLs the child if it does not go. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

/**
 * Starts keygate with the given config and waits for "keygate started"; the bound ports
 * (configs may use port 0) are read from the "gateway listening" / "admin listening" lines.
 */
export async function startKeygate(configPath: string, options: CliOptions = {}): Promise<RunningKeygate> {
  const proc = spawnCli(['--config', configPath], options);
  try {
    // Up to a minute: on a loaded 2-core machine a start under tsx (workers: one per process) can take 15 s.
    await proc.waitForLog((l) => l.msg === 'keygate started', 60_000);
  } catch (err) {
    proc.child.kill('SIGKILL');
    await proc.exited;
    throw err;
  }
  const gw: Record<string, string> = {};
  let adminUrl = '';
  for (const l of proc.logs()) {
    if (l.msg === 'gateway listening') gw[l.environment] ??= `http://${l.address}:${l.port}`;
    if (l.msg === 'admin listening') adminUrl = `http://${l.address}:${l.port}`;
  }
  return {
    proc,
    adminUrl,
    gw,
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
      const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
      const exit = await proc.exited;
      clearTimeout(timer);
      return exit;
    },
  };
}
