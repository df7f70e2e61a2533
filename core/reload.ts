import { checkConfigText } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from './internal-errors.js';
import type { Logger } from './log.js';
import { formatPath, type ConfigDetail } from './validation.js';

/**
 * Configuration reload (docs/operations.md, "Reloading the configuration"): the file is read
 * and validated whole; every part of the process that a reload reaches prepares what the new
 * configuration needs beside what runs; only when every part is ready are they all applied,
 * one after another without an await in between, so a request sees the old configuration or
 * the new one, never a mix. Anything refused (a problem in the file, a part that cannot
 * prepare) leaves everything as it was.
 */

/** The top-level sections a reload applies. Every other one is read at start-up only. */
export const RELOADABLE: ReadonlySet<string> = new Set(['apis', 'plans', 'scopes', 'policies', 'trusted_proxies', 'headers', 'errors', 'log']);

/** What one part built for the next configuration, not yet in use. */
export interface PreparedPart {
  /** Puts it in use. Synchronous: the parts are applied together, between two events. */
  apply(): void;
  /** Lets it go (another part refused the reload). */
  abandon?(): void;
}

/**
 * A part of the process that a reload reaches: the gateway, the admin plane, the logger
 * (bin/main.ts registers them with ConfigReloader.add), and whatever else joins. `prepare`
 * reads files and builds objects; it throws a ConfigError (its details are reported) or any
 * error (reported under the part's name) to refuse the reload whole.
 *
 * TLS certificates join as one more part: `prepare` reads the certificate and key files that
 * the running listeners name (`next.listeners` is the listeners as started, a section a reload
 * does not apply, so a renewed file at the same path is what changes), checks them and builds
 * the secure contexts; `apply` hands them to the servers (`tls.Server#setSecureContext`, or the
 * SNI callback's table), so new handshakes use them and open connections keep theirs.
 */
export interface ReloadablePart {
  readonly name: string;
  prepare(next: Config): PreparedPart | Promise<PreparedPart>;
}

/** A change the file makes that a reload does not apply: named, kept as it runs. */
export interface RestartRequired {
  path: string;
  message: string;
}

/** What a reload did, as the log, the admin route and the workers' answers report it. */
export interface ReloadOutcome {
  /** Applied (true), or refused whole with `errors` (false). */
  ok: boolean;
  /** The configuration generation running once the reload is over: 1 at start-up, one more per applied reload. */
  generation: number;
  /** Reloadable sections whose value changed (and were applied when `ok`). */
  changed: string[];
  /** Changes found in sections read at start-up only, not applied. */
  restart_required: RestartRequired[];
  errors: ConfigDetail[];
}

/** Each process's answer, when a primary relays a reload to its gateway workers. */
export interface WorkerOutcome extends ReloadOutcome {
  worker: number;
}

/** At most this many changed paths are named per section that needs a restart. */
const MAX_PATHS = 20;

/**
 * What of `next` a running process applies: the reloadable sections of `next`, the others as
 * they run (`running`). Also which reloadable sections changed, and the paths of changes that
 * need a restart. Only paths are named, never values (a changed secret shows as its path).
 */
export function planReload(running: Config, next: Config): { effective: Config; changed: string[]; restartRequired: RestartRequired[] } {
  const effective: Record<string, unknown> = {};
  const changed: string[] = [];
  const restartRequired: RestartRequired[] = [];
  const sections = new Set([...Object.keys(running), ...Object.keys(next)]);
  for (const section of sections) {
    const was = (running as Record<string, unknown>)[section];
    const now = (next as Record<string, unknown>)[section];
    if (RELOADABLE.has(section)) {
      effective[section] = now;
      if (!same(was, now)) changed.push(section);
      continue;
    }
    effective[section] = was;
    const paths: (string | number)[][] = [];
    differences(was, now, [section], paths);
    for (const p of paths.slice(0, MAX_PATHS)) restartRequired.push({ path: formatPath(p), message: 'changed; read at start-up only, so not applied: restart Keygate to apply it' });
    if (paths.length > MAX_PATHS) restartRequired.push({ path: section, message: `${paths.length - MAX_PATHS} more changes; restart Keygate to apply them` });
  }
  return { effective: Object.freeze(effective) as Config, changed, restartRequired };
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The paths under which `a` and `b` differ, leaf by leaf (an array's entries by index). */
function differences(a: unknown, b: unknown, path: (string | number)[], out: (string | number)[][]): void {
  if (same(a, b)) return;
  const objects = a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b);
  if (!objects) return void out.push(path);
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) differences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], [...path, Array.isArray(a) ? Number(k) : k], out);
}

/** Gauges a reload keeps up to date (core/metrics.ts serves them). */
export interface ReloadState {
  generation: number;
  /** 1 when the last reload (or the start) applied its configuration, 0 when it was refused. */
  lastSuccess: 0 | 1;
  /** Epoch seconds of the last reload, or of the start. */
  lastAt: number;
}

export interface ReloaderOptions {
  /** The configuration running now, as start-up applied it. */
  initial: Config;
  /** The file's text now (read again at each reload). */
  read: () => string;
  /** How problems name the file (as `--check` names it). */
  source: string;
  /** What the process makes of a parsed file before using it (the `--role` override, a worker's role). */
  adjust: (config: Config) => Config;
  log: Logger;
  state: ReloadState;
  /** Log the new file's warnings (as start-up does); off in gateway workers, whose primary logs them. */
  warnings?: boolean;
  now?: () => number;
}

/**
 * Runs reloads one at a time (a SIGHUP during a reload waits for it) over the registered
 * parts. `reload()` never throws: what went wrong is in its outcome and in the log.
 */
export class ConfigReloader {
  readonly #parts: ReloadablePart[] = [];
  readonly #o: ReloaderOptions;
  #running: Config;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: ReloaderOptions) {
    this.#o = options;
    this.#running = options.initial;
  }

  /** The parts a reload reaches, in the order they are prepared and applied. */
  get parts(): readonly ReloadablePart[] {
    return this.#parts;
  }

  add(part: ReloadablePart): void {
    this.#parts.push(part);
  }

  get config(): Config {
    return this.#running;
  }

  /**
   * Reads the file (or takes `text`, as a worker does from its primary, so that every process
   * applies the same text) and applies it. `after` runs once the parts are applied, before
   * the next reload may start (the primary relays to its workers there).
   */
  reload(text?: string, after?: (outcome: ReloadOutcome, text: string | null) => Promise<void>): Promise<ReloadOutcome> {
    const run = this.#queue.then(async () => {
      let read: string | null = null;
      const outcome = await this.#reload(() => (read = text ?? this.#o.read()));
      await after?.(outcome, read);
      return outcome;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #reload(read: () => string): Promise<ReloadOutcome> {
    const { log, state } = this.#o;
    const refuse = (errors: ConfigDetail[], changed: string[] = [], restartRequired: RestartRequired[] = []): ReloadOutcome => {
      state.lastSuccess = 0;
      state.lastAt = this.#now();
      for (const e of errors) log.error('configuration reload: problem', { ...e });
      log.error('configuration reload refused; the running configuration is kept', { source: this.#o.source, errors: errors.length, generation: state.generation });
      return { ok: false, generation: state.generation, changed, restart_required: restartRequired, errors };
    };
    let next: Config;
    let warnings: ConfigDetail[];
    try {
      const checked = checkConfigText(read(), this.#o.source);
      next = this.#o.adjust(checked.config);
      warnings = checked.warnings;
    } catch (err) {
      if (err instanceof ConfigError) return refuse(err.details);
      return refuse([{ path: '', message: `cannot read ${this.#o.source}: ${(err as Error).message}` }]);
    }
    const plan = planReload(this.#running, next);
    const prepared: PreparedPart[] = [];
    const errors: ConfigDetail[] = [];
    for (const part of this.#parts) {
      try {
        prepared.push(await part.prepare(plan.effective));
      } catch (err) {
        if (err instanceof ConfigError) errors.push(...err.details);
        else errors.push({ path: part.name, message: (err as Error).message });
      }
    }
    if (errors.length > 0) {
      for (const p of prepared) p.abandon?.();
      return refuse(errors, plan.changed, plan.restartRequired);
    }
    // No await from here to the end of the loop: every part changes between the same two events.
    for (const p of prepared) p.apply();
    this.#running = plan.effective;
    state.generation++;
    state.lastSuccess = 1;
    state.lastAt = this.#now();
    if (this.#o.warnings !== false) for (const w of warnings) log.warn('configuration warning', { path: w.path, warning: w.message });
    for (const r of plan.restartRequired) log.warn('configuration reload: not applied, needs a restart', { ...r });
    log.info('configuration reloaded', { source: this.#o.source, generation: state.generation, changed: plan.changed, restart_required: plan.restartRequired.map((r) => r.path) });
    return { ok: true, generation: state.generation, changed: plan.changed, restart_required: plan.restartRequired, errors: [] };
  }

  #now(): number {
    return (this.#o.now?.() ?? Date.now()) / 1000;
  }
}
