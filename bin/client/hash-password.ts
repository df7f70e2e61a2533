import { hashPassword } from '../../core/password.js';
import type { Context, Runnable } from './command.js';
import { UsageError } from './errors.js';

// `keygate hash-password`: a dashboard user's password_hash (docs/cli.md). The password comes
// from standard input, never from an argument: arguments land in shell history and in ps.

/** Everything a pipe sends, as text. */
export async function readAll(stdin: NodeJS.ReadStream): Promise<string> {
  let s = '';
  stdin.setEncoding('utf8');
  for await (const chunk of stdin) s += chunk as string;
  return s;
}

/** One line typed at the terminal without echo; Ctrl-C or Ctrl-D with nothing typed abandon it. */
function prompt(ctx: Context, question: string): Promise<string> {
  const stdin = ctx.stdin;
  ctx.err(question);
  return new Promise((resolve, reject) => {
    let line = '';
    const done = (f: () => void) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      ctx.err('\n');
      f();
    };
    const onData = (chunk: string) => {
      for (const c of chunk) {
        if (c === '\r' || c === '\n') return done(() => resolve(line));
        if (c === '\u0003' || (c === '\u0004' && line === '')) return done(() => reject(new UsageError('no password given')));
        if (c === '\u007f' || c === '\b') line = line.slice(0, -1);
        else if (c >= ' ') line += c;
      }
    };
    stdin.setEncoding('utf8');
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

export const HASH_PASSWORD_COMMAND: Runnable = {
  name: 'hash-password',
  summary:
    'Reads a password from standard input and prints its scrypt hash, for a dashboard user\'s password_hash. ' +
    'At a terminal it asks twice, without echo; from a pipe it reads one line. It never takes the password as an argument: arguments land in shell history and in ps.',
  options: {},
  api: false,
  noArguments: 'hash-password reads the password from stdin, never from an argument: arguments land in shell history and are visible in ps',
  examples: ['keygate hash-password', "printf '%s\\n' \"$PASSWORD\" | keygate hash-password"],
  async run(ctx) {
    let password: string;
    if (ctx.stdin.isTTY) {
      password = await prompt(ctx, 'password: ');
      if (password !== '' && (await prompt(ctx, 'again: ')) !== password) throw new UsageError('the two passwords differ');
    } else {
      const input = (await readAll(ctx.stdin)).replace(/\r?\n$/, '');
      if (/[\r\n]/.test(input)) throw new UsageError('the password must be one line');
      password = input;
    }
    if (password === '') throw new UsageError('the password is empty');
    ctx.out(`${await hashPassword(password)}\n`);
  },
};
