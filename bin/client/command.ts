import type { Command, Parsed } from './args.js';
import type { AdminClient } from './http.js';

/** What a command's `run` is given. */
export interface Context {
  p: Parsed;
  /** The admin API at `--url`; unusable for commands with `api: false`. */
  client: AdminClient;
  out(text: string): void;
  err(text: string): void;
  now(): number;
  /** The standard input, for hash-password. */
  stdin: NodeJS.ReadStream;
}

export interface Runnable extends Command {
  /** Validates what it still must, calls the API, prints. Throws UsageError, ApiError, UnreachableError. */
  run(ctx: Context): Promise<void>;
}

/** Prints the API's answer as one JSON document. */
export const printJson = (ctx: Context, body: unknown): void => ctx.out(`${JSON.stringify(body, null, 2)}\n`);

/**
 * A list route's pages: the one asked for, or with `--all` every page from there on, followed
 * by `next_cursor`; the pages' data joined into one `{ data, next_cursor }`.
 */
export async function pages(ctx: Context, path: string, query: Record<string, string | number | undefined>): Promise<{ data: any[]; next_cursor: string | null }> {
  let page = await ctx.client.call('GET', path, { query });
  if (ctx.p.values.all !== true) return page;
  const data = [...page.data];
  while (page.next_cursor !== null) {
    page = await ctx.client.call('GET', path, { query: { ...query, cursor: page.next_cursor } });
    data.push(...page.data);
  }
  return { data, next_cursor: null };
}

/** The footer of a page that has a next one. */
export function more(ctx: Context, next: string | null, command: string): void {
  if (next !== null) ctx.out(`more: ${command} --cursor ${next}   (or --all)\n`);
}
