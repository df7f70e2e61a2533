/** Rejects when `promise` has not settled within `ms`: a hung connection fails the test rather than the run. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))),
  ]);
}

/** Resolves once `condition` holds, checked every few milliseconds; rejects after `ms`. */
export function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  return within(
    (async () => {
      while (!condition()) await new Promise((r) => setTimeout(r, 5));
    })(),
    ms,
    what,
  );
}
