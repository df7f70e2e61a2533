// What the CLI's commands throw, each mapped to one exit code by bin/client/cli.ts (docs/cli.md,
// "Exit codes"): 1 the API refused, 2 the command was used wrongly, 3 the admin plane is out of reach.

/** Exit 2: an unknown option or verb, a missing or malformed value; caught before any request. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'usage';
}

/** Exit 1: the admin API answered with an error. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null,
    readonly details: readonly { path?: string; message?: string }[],
  ) {
    super(message);
  }
}

/** Exit 3: no answer from the admin plane at `url` (refused, timed out, unknown host), or not its API. */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`cannot reach the admin plane at ${url}: ${reason}`);
  }
}
