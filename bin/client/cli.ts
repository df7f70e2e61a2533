import { APP_COMMANDS } from './apps.js';
import { parse, usageOf } from './args.js';
import { AUDIT_COMMAND } from './audit.js';
import type { Context, Runnable } from './command.js';
import { ApiError, UnreachableError, UsageError } from './errors.js';
import { clean } from './format.js';
import { HASH_PASSWORD_COMMAND } from './hash-password.js';
import { AdminClient } from './http.js';
import { KEY_COMMANDS } from './keys.js';
import { USAGE_COMMAND } from './usage.js';

// The admin-API client: `keygate <noun> <verb>` (docs/cli.md). Exit codes: 0 done, 1 the API
// refused, 2 used wrongly (nothing was sent), 3 the admin plane could not be reached.

/** Nouns with verbs, and the nouns that are a command by themselves. */
const GROUPS: Readonly<Record<string, readonly Runnable[]>> = { keys: KEY_COMMANDS, apps: APP_COMMANDS };
const SINGLE: Readonly<Record<string, Runnable>> = { usage: USAGE_COMMAND, audit: AUDIT_COMMAND, 'hash-password': HASH_PASSWORD_COMMAND };

/** Where a command writes and what it reads; a test may give its own. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  stdin: NodeJS.ReadStream;
  env: NodeJS.ProcessEnv;
  now(): number;
}

const PROCESS_IO: Io = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  stdin: process.stdin,
  env: process.env,
  now: () => Date.now(),
};

function groupUsage(noun: string, commands: readonly Runnable[]): string {
  const verbs = commands.map((c) => c.name.slice(noun.length + 1));
  const width = Math.max(...verbs.map((v) => v.length)) + 2;
  return [
    `usage: keygate ${noun} <${verbs.join('|')}> [options]`,
    '',
    'verbs:',
    ...commands.map((c, i) => `  ${verbs[i]!.padEnd(width)}${c.summary.split('. ')[0]!.replace(/\.$/, '')}`),
    '',
    `keygate ${noun} <verb> --help lists a verb's options, with examples.`,
    '',
  ].join('\n');
}

const wantsHelp = (argv: readonly string[]) => {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
};

/** Runs `keygate <noun> …` (argv starts with the noun) and answers the exit code. */
export async function clientMain(argv: readonly string[], io: Io = PROCESS_IO): Promise<number> {
  // `keygate keys list | head -1`: a reader that goes away is not an error of this command.
  if (io === PROCESS_IO) process.stdout.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? process.exit(0) : undefined));
  const noun = argv[0]!;
  let command: Runnable | undefined = SINGLE[noun];
  let rest = argv.slice(1);
  const group = GROUPS[noun];
  if (group !== undefined) {
    const verb = rest[0];
    if (verb === undefined || verb === '--help' || verb === '-h') {
      (verb === undefined ? io.stderr : io.stdout)(groupUsage(noun, group));
      return verb === undefined ? 2 : 0;
    }
    command = group.find((c) => c.name === `${noun} ${verb}`);
    if (command === undefined) {
      io.stderr(`keygate ${noun}: unknown verb "${clean(verb)}"\n${groupUsage(noun, group)}`);
      return 2;
    }
    rest = rest.slice(1);
  }
  if (command === undefined) throw new Error(`not a client noun: ${noun}`);
  if (wantsHelp(rest)) {
    io.stdout(usageOf(command));
    return 0;
  }
  let client: AdminClient | null = null;
  try {
    const p = parse(command, rest, io.env, (line) => io.stderr(`${line}\n`));
    if (p.token !== null) client = new AdminClient(p.url, p.token, p.timeoutMs);
    const ctx: Context = {
      p,
      client: client!,
      out: io.stdout,
      err: io.stderr,
      now: io.now,
      stdin: io.stdin,
    };
    await command.run(ctx);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`keygate ${command.name}: ${clean(err.message)}\n\n${usageOf(command)}`);
      return 2;
    }
    if (err instanceof ApiError) {
      io.stderr(`error: ${clean(err.code)}: ${clean(err.message)}\n`);
      for (const d of err.details) io.stderr(`  ${clean(String(d.path ?? ''))}${d.path ? ': ' : ''}${clean(String(d.message ?? ''))}\n`);
      if (err.requestId !== null) io.stderr(`request id: ${clean(err.requestId)}\n`);
      return 1;
    }
    if (err instanceof UnreachableError) {
      io.stderr(`error: ${clean(err.message)}\n`);
      return 3;
    }
    throw err;
  } finally {
    await client?.close();
  }
}
