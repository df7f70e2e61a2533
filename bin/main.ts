import './tune-v8.js'; // first: V8 flags set before the rest loads (bin/v8-flags.ts)
import cluster from 'node:cluster';
import { existsSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createAdmin, type Admin } from '../admin/server.js';
import type { ReloadAnswer } from '../admin/reload-route.js';
import { ConfigReloader, type ReloadOutcome, type WorkerOutcome } from '../core/reload.js';
import { recorderOptions, UsageRecorder } from '../admin/usage.js';
import { checkConfigFile, configWarnings, defaultConfigPath } from '../config/load.js';
import { ConfigError } from '../core/internal-errors.js';
import { formatDetail, type ConfigDetail } from '../core/validation.js';
import type { Config } from '../config/schema.js';
import { Logger } from '../core/log.js';
import { openStore } from '../core/store/open.js';
import { observedStore, ProcessMetrics } from '../core/metrics.js';
import type { Store } from '../core/store/store.js';
import { VERSION } from '../core/version.js';
import { createGateway, type Gateway } from '../gateway/server.js';
import { listenOn } from '../core/listen.js';
import { TlsContexts } from '../core/tls.js';
import { createOpsServer } from '../gateway/ops.js';
import { UsageShipper } from '../gateway/usage-shipper.js';
import { createDemoUpstream } from './demo-upstream.js';
import { BACKUP_USAGE, backupCommand, checkStore, migrateCommand } from './store-commands.js';
import { isClientCommand } from './client/nouns.js';

const USAGE = `usage: keygate [--config FILE] [--role gateway|admin|all] [--check [--store]] [--version]
       keygate backup [--config FILE] --to FILE
       keygate migrate --from file:DIR --to sqlite:FILE
       keygate <keys|apps|usage|audit|hash-password> … [--url URL] [--json]

  --config FILE   configuration (default: ./gateway.yaml, else ./gateway.yaml.example)
  --role ROLE     run the gateway, the admin plane, or both (overrides the config's role)
  --check         validate the configuration, print every error, and exit
  --store         with --check: also run SQLite's integrity check on the store (read-only)
  -v, --version   print the version and exit

  backup          copy the sqlite store to FILE, consistent, while Keygate runs
  migrate         copy a file store (DIR) into a new sqlite database (FILE)

  keys            create, list, show, edit, regenerate, suspend, reactivate, revoke keys
  apps            create, list, show, edit, suspend, reactivate applications
  usage           traffic over every key or one (--key ID --range 24h)
  audit           the audit log (--actor --action --target)
  hash-password   scrypt hash of a password read from stdin, for a dashboard user
                  The admin commands call the admin API at --url (default $KEYGATE_URL, else
                  http://127.0.0.1:8081) with the token in $KEYGATE_TOKEN; each has --help.
                  Exit codes: 0 done, 1 the API refused, 2 used wrongly, 3 admin API unreachable.
                  docs/cli.md has them all.
`;

export async function main(argv: string[]): Promise<number> {
  if (isClientCommand(argv[0])) return (await import('./client/cli.js')).clientMain(argv);
  if (argv[0] === 'migrate') return migrateCommand(argv.slice(1));
  const command = argv[0] === 'backup' ? 'backup' : null;
  if (command !== null) argv = argv.slice(1);
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        role: { type: 'string' },
        check: { type: 'boolean', default: false },
        store: { type: 'boolean', default: false },
        to: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'v', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`keygate ${VERSION}\n`);
    return 0;
  }
  if (command === 'backup' ? args.to === undefined || args.check || args.store || args.role !== undefined : args.to !== undefined) {
    process.stderr.write(`${command === 'backup' ? BACKUP_USAGE : '--to belongs to keygate backup\n'}${USAGE}`);
    return 2;
  }
  if (args.store && !args.check) {
    process.stderr.write(`--store goes with --check\n${USAGE}`);
    return 2;
  }
  if (args.role !== undefined && !['gateway', 'admin', 'all'].includes(args.role)) {
    process.stderr.write(`--role must be gateway, admin or all\n${USAGE}`);
    return 2;
  }
  const path = resolve(defaultConfigPath(args.config));
  if (!existsSync(path)) {
    process.stderr.write(`${path}: no such file\n`);
    return 2;
  }
  // Problems name the file as it was given, as compilers do (docs/configuration.md).
  const source = args.config ?? relative(process.cwd(), path);
  let config: Config;
  let warnings: ConfigDetail[];
  // What this process makes of the file, at start-up and at each reload.
  const adjust = (c: Config): Config => {
    if (args.role !== undefined) c = { ...c, role: args.role as Config['role'] };
    // A worker of a multi-process gateway runs the gateway only; its primary runs the rest.
    if (cluster.isWorker) c = { ...c, role: 'gateway' };
    return c;
  };
  try {
    ({ config, warnings } = checkConfigFile(path));
    config = adjust(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const d of err.details) process.stderr.write(`${formatDetail(source, d)}\n`);
      process.stderr.write(`${source}: ${err.details.length} error${err.details.length === 1 ? '' : 's'}\n`);
      return 1;
    }
    throw err;
  }
  if (command === 'backup') return backupCommand(config, args.to!);
  if (args.check) {
    for (const w of warnings) process.stdout.write(`${formatDetail(source, w, 'warning')}\n`);
    process.stdout.write(`${source}: configuration is valid\n`);
    return args.store ? checkStore(config) : 0;
  }
  return run(config, path, source, adjust);
}

async function run(config: Config, path: string, source: string, adjust: (c: Config) => Config): Promise<number> {
  const log = new Logger({ level: config.log.level, keyPrefix: config.keys.prefix });
  const processMetrics = new ProcessMetrics();
  const reloader = new ConfigReloader({
    initial: config,
    read: () => readFileSync(path, 'utf8'),
    source,
    adjust,
    log,
    state: processMetrics.reload,
    warnings: cluster.isPrimary,
  });
  reloader.add({ name: 'log', prepare: (next) => ({ apply: () => log.setLevel(next.log.level) }) });
  let started = false;
  let workers: Workers | null = null;
  /** A reload of this process and, from a primary, of every gateway worker (docs/operations.md). */
  const reloadAll = async (trigger: string): Promise<ReloadAnswer> => {
    log.info('configuration reload', { trigger, source });
    let relayed: WorkerOutcome[] | undefined;
    const outcome = await reloader.reload(undefined, async (own, text) => {
      if (workers === null || !own.ok || text === null) return;
      relayed = await workers.reload(text);
      for (const w of relayed) if (!w.ok) log.error('configuration reload refused by a gateway worker', { worker: w.worker, generation: w.generation, errors: w.errors });
    });
    return relayed === undefined ? outcome : { ...outcome, workers: relayed };
  };
  // Installed first: SIGHUP's default action ends the process.
  process.on('SIGHUP', () => {
    if (cluster.isWorker) return log.debug('SIGHUP ignored by a gateway worker: its primary relays reloads');
    if (!started) return log.warn('SIGHUP ignored: Keygate is still starting');
    void reloadAll('SIGHUP');
  });
  if (cluster.isWorker) {
    process.on('message', (m: { type?: string; id?: number; text?: string }) => {
      if (m?.type !== 'keygate-reload' || typeof m.text !== 'string') return;
      if (!started) {
        // A worker still starting (one replacing a worker that died) read the file as it started.
        const message = 'this worker is still starting, on the file as it read it then; reload again once it has started';
        const outcome: ReloadOutcome = { ok: false, generation: processMetrics.reload.generation, changed: [], restart_required: [], errors: [{ path: '', message }] };
        return void process.send?.({ type: 'keygate-reloaded', id: m.id, outcome });
      }
      void reloader.reload(m.text).then((outcome) => process.send?.({ type: 'keygate-reloaded', id: m.id, outcome }));
    });
  }
  // Once per gateway: the workers of a multi-process one read the same file.
  if (cluster.isPrimary) for (const w of configWarnings(config)) log.warn('configuration warning', { path: w.path, warning: w.message });
  let store: Store;
  try {
    store = observedStore(await openStore(config.store, log), processMetrics);
  } catch (err) {
    log.error('cannot open the store', { err: (err as Error).message });
    return 1;
  }
  let demo: Server | null = null;
  let gateway: Gateway | null = null;
  let admin: Admin | null = null;
  let usage: UsageRecorder | UsageShipper | null = null;
  let ops: Server | null = null;
  let stopping = false;
  workers = cluster.isPrimary && config.role !== 'admin' && config.workers > 1 ? new Workers(config.workers, log) : null;
  try {
    if (config.demo_upstream) {
      demo = createDemoUpstream();
      const d = config.demo_upstream;
      await new Promise<void>((ok, fail) => demo!.once('error', fail).listen(d.port, d.host, ok));
      log.info('demo upstream listening', { address: d.host, port: d.port });
    }
    const gatewayUrls: Record<string, string> = {};
    if (config.role !== 'gateway') {
      admin = createAdmin(config, { store, log, gatewayUrls, processMetrics, reload: (by) => reloadAll(`POST /v1/admin/reload by ${by.name}`) });
      const plane = admin;
      reloader.add({ name: 'admin', prepare: (next) => plane.prepareReload(next) });
      // Certificates at the paths the listeners started with, read again: a renewed file is used.
      reloader.add({ name: 'admin certificates', prepare: () => plane.prepareTls() });
    }
    if (workers) {
      // The workers run the gateway and share its listeners; this process runs the rest.
      await workers.start();
    } else if (config.role !== 'admin') {
      // With the admin plane in this process, usage is handed over in memory; a gateway on
      // its own sends it to the admin plane (usage.ship_to) or writes it to the store itself.
      const ship = config.usage.ship_to;
      if (!admin && ship) {
        usage = new UsageShipper(
          { url: ship.url, token: ship.token, flushIntervalMs: config.usage.flush_interval_ms, maxBufferedEvents: ship.max_buffered_events, maxBatchEvents: ship.max_batch_events, timeoutMs: ship.timeout_ms },
          log,
        );
      } else if (!admin) {
        usage = new UsageRecorder(store, log, recorderOptions(config.usage));
      }
      usage?.start();
      const recorder = admin?.usage ?? usage!;
      gateway = createGateway(config, { store, log, sinks: [(e) => recorder.add(e)] });
      const gw = gateway;
      reloader.add({ name: 'gateway', prepare: (next) => gw.prepareReload(next) });
      reloader.add({ name: 'gateway certificates', prepare: () => gw.prepareTls() });
      gateway.runtime.metrics?.usageFrom(() =>
        recorder instanceof UsageShipper ? recorder : { shipped: recorder.stored, retried: recorder.retried, dropped: recorder.dropped },
      );
      for (const l of await gateway.listen()) gatewayUrls[l.environment] ??= l.url;
      if (config.status_listener) {
        const opsTls = config.status_listener.tls === null ? null : new TlsContexts(config.status_listener.tls);
        ops = createOpsServer(() => gw.runtime, () => stopping, processMetrics, opsTls);
        if (opsTls !== null) reloader.add({ name: 'status listener certificates', prepare: () => opsTls.prepareReload() });
        const bound = await listenOn(ops, config.status_listener.port, config.status_listener.host, opsTls === null ? 'http' : 'https');
        log.info('status listening', { address: bound.host, port: bound.port });
      }
    }
    await admin?.listen();
  } catch (err) {
    log.error('start-up failed', { err: (err as Error).message });
    await Promise.allSettled([gateway?.close(0), admin?.close(), usage?.close(), workers?.stop()]);
    ops?.close();
    await store.close();
    demo?.close();
    return 1;
  }
  started = true;
  if (cluster.isWorker) process.send?.({ type: 'keygate-ready' });
  log.info('keygate started', { version: VERSION, config: path, role: config.role, store: store.kind, workers: config.workers, worker: cluster.isWorker ? cluster.worker!.id : null });

  return new Promise<number>((done) => {
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('shutting down', { signal, drain_ms: config.shutdown.drain_timeout_ms });
      await Promise.allSettled([gateway?.close(), admin?.close(), workers?.stop()]);
      await usage?.close();
      ops?.closeAllConnections();
      ops?.close();
      await store.close();
      demo?.closeAllConnections();
      demo?.close();
      log.info('stopped');
      done(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  });
}

/** How long a primary waits for each worker's answer to a reload. */
const RELOAD_ANSWER_MS = 30_000;

/**
 * The primary of a multi-process gateway: forks the workers (each runs this CLI as a gateway),
 * replaces one that dies, and on stop lets each drain and waits for all of them.
 */
class Workers {
  readonly #count: number;
  readonly #log: Logger;
  #stopping = false;
  #reloads = 0;

  constructor(count: number, log: Logger) {
    this.#count = count;
    this.#log = log;
  }

  async start(): Promise<void> {
    cluster.on('exit', (worker, code, signal) => {
      if (this.#stopping) return;
      this.#log.error('gateway worker died; starting another', { worker: worker.id, code, signal });
      cluster.fork();
    });
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.#count; i++) {
      const w = cluster.fork();
      ready.push(
        new Promise((ok, fail) => {
          w.on('message', (m: { type?: string }) => m?.type === 'keygate-ready' && ok());
          w.once('exit', (code) => fail(new Error(`gateway worker exited with ${code} during start-up`)));
        }),
      );
    }
    await Promise.all(ready);
  }

  /**
   * Relays a reload to every live worker, with the file's text the primary read (so each
   * applies the same), and collects each one's outcome; a worker that does not answer within
   * RELOAD_ANSWER_MS is reported as refused.
   */
  async reload(text: string): Promise<WorkerOutcome[]> {
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is NonNullable<typeof w> => w !== undefined && !w.isDead());
    const id = ++this.#reloads;
    return Promise.all(
      alive.map(
        (w) =>
          new Promise<WorkerOutcome>((ok) => {
            const refused = (message: string): WorkerOutcome => ({ worker: w.id, ok: false, generation: 0, changed: [], restart_required: [], errors: [{ path: '', message }] });
            const timer = setTimeout(() => finish(refused(`worker ${w.id} did not answer the reload within ${RELOAD_ANSWER_MS} ms`)), RELOAD_ANSWER_MS);
            const onMessage = (m: { type?: string; id?: number; outcome?: ReloadOutcome }) => {
              if (m?.type === 'keygate-reloaded' && m.id === id && m.outcome) finish({ worker: w.id, ...m.outcome });
            };
            const onExit = () => finish(refused(`worker ${w.id} exited during the reload`));
            const finish = (outcome: WorkerOutcome) => {
              clearTimeout(timer);
              w.off('message', onMessage);
              w.off('exit', onExit);
              ok(outcome);
            };
            w.on('message', onMessage);
            w.once('exit', onExit);
            w.send({ type: 'keygate-reload', id, text });
          }),
      ),
    ).then((all) => all.sort((a, b) => a.worker - b.worker));
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    const alive = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined && !w.isDead());
    await Promise.all(
      alive.map(
        (w) =>
          new Promise<void>((ok) => {
            w!.once('exit', () => ok());
            w!.process.kill('SIGTERM');
          }),
      ),
    );
  }
}
