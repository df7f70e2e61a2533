import { setFlagsFromString } from 'node:v8';

/**
 * V8 flags a Keygate process sets for itself at start-up, before the rest of its code loads.
 *
 * `--no-allocation-site-pretenuring`. V8 counts, per allocation site (an object or array
 * literal), how many of its objects survive a young-generation collection; past a threshold it
 * allocates that site's objects straight into the old generation from then on. Under gateway
 * load it makes that call for sites whose objects live only as long as a request, and each such
 * object, dead within milliseconds, keeps the young objects it points to alive until the next
 * full collection: they are promoted with it. `node --trace-gc-nvp` on bench/target.ts under
 * 10 s of wrk load: about 400 bytes promoted a request with pretenuring, 125 without, and half
 * the time in young-generation pauses. docs/performance.md, V8 flags, has the figures.
 *
 * A process started with the flag on node's command line, either way, keeps what it was given.
 */
export const TUNING: readonly string[] = ['--no-allocation-site-pretenuring'];

/** A V8 flag's name without dashes, negation or value: `--no-foo_bar=1` and `--foo-bar` → `foo-bar`. */
function flagName(arg: string): string {
  return arg.replace(/^--?/, '').split('=')[0]!.replaceAll('_', '-').replace(/^no-?/, '');
}

/** The flags of TUNING that node's own command line (`execArgv`) does not already set either way. */
export function flagsToSet(execArgv: readonly string[]): string[] {
  const given = new Set(execArgv.map(flagName));
  return TUNING.filter((flag) => !given.has(flagName(flag)));
}

/** Sets what flagsToSet returns for this process. */
export function tuneV8(): void {
  for (const flag of flagsToSet(process.execArgv)) setFlagsFromString(flag);
}
