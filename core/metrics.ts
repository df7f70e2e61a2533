import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ReloadState } from './reload.js';
import type { Store } from './store/store.js';
import { VERSION } from './version.js';

/**
 * `keygate_build_info{version, node_version, platform, arch} 1`, the Prometheus convention for
 * what is running (join on it to see a fleet's versions). Each plane's registry has its own.
 */
export function buildInfo(registry: Registry): void {
  new Gauge({
    name: 'keygate_build_info',
    help: 'Always 1: the Keygate version running, and the Node.js, platform and architecture it runs on',
    labelNames: ['version', 'node_version', 'platform', 'arch'],
    registers: [registry],
  }).set({ version: VERSION, node_version: process.version, platform: process.platform, arch: process.arch }, 1);
}

/** The `method` label's values: the methods of RFC 9110 and PATCH; any other method is OTHER. */
export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE', 'OTHER'] as const;
const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS);

/** A request's method as a `method` label: itself when METHODS has it, else OTHER (a client picks methods). */
export function methodLabel(method: string): string {
  return KNOWN_METHODS.has(method) ? method : 'OTHER';
}

/**
 * prom-client's default gauges named `_total`, which Prometheus keeps for counters (`promtool
 * check metrics` refuses them). Each is the sum of the gauge beside it that counts by type:
 * `sum(nodejs_active_handles)` is what `nodejs_active_handles_total` said, and so for requests
 * and resources.
 */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * A counter that follows a running total kept elsewhere (a plain number the hot path bumps):
 * at each scrape it adds what the total grew by since the last one.
 */
export function countFrom(registry: Registry, name: string, help: string, read: () => number): void {
  let last = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      this.inc(Math.max(0, now - last));
      last = now;
    },
  });
}

/**
 * Metrics of the process rather than of a plane: Node's process metrics (prom-client's
 * defaults but MISNAMED_DEFAULTS) and the store's round trips. Each plane's /metrics merges
 * these with its own, so a process running both planes reports them once per endpoint without
 * counting anything twice.
 */
export class ProcessMetrics {
  readonly registry = new Registry();
  readonly storeDuration: Histogram<'operation'>;
  readonly storeErrors: Counter<'operation'>;
  /** The configuration's generation and the last reload's result (core/reload.ts keeps them). */
  readonly reload: ReloadState = { generation: 1, lastSuccess: 1, lastAt: Date.now() / 1000 };

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(name);
    this.storeDuration = new Histogram({
      name: 'keygate_store_operation_duration_seconds',
      help: 'Time taken by store operations (a Redis round trip, or a file store write and sync)',
      labelNames: ['operation'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [this.registry],
    });
    this.storeErrors = new Counter({
      name: 'keygate_store_errors_total',
      help: 'Store operations that failed (unreachable, timed out, or refused)',
      labelNames: ['operation'],
      registers: [this.registry],
    });
    const reload = this.reload;
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read());
        },
      });
    gauge('keygate_config_generation', 'The configuration running: 1 as started, one more for each reload applied', () => reload.generation);
    gauge('keygate_config_last_reload_success', 'Whether the last configuration reload (or the start) applied its configuration (1) or was refused (0)', () => reload.lastSuccess);
    gauge('keygate_config_last_reload_timestamp_seconds', 'When the last configuration reload was tried (or the process started), in Unix seconds', () => reload.lastAt);
  }

  observe(operation: string, seconds: number, ok: boolean): void {
    this.storeDuration.labels(operation).observe(seconds);
    if (!ok) this.storeErrors.labels(operation).inc();
  }
}

/** Store methods that are timed; the others (onKeyChange, close, getters) pass straight through. */
const TIMED = new Set([
  'getKeyByHash', 'getKey', 'putKey', 'commit', 'listKeys', 'keysOfApp', 'dueKeys', 'getApp', 'listApps', 'listAudit',
  'listKeyEvents', 'lease', 'recordUsage', 'ingestUsage', 'usageBuckets', 'recentErrors',
]);

/**
 * The store with every operation timed into `metrics`. Version conflicts are answers, not
 * failures, so only StoreUnavailableError-like errors (code KEYGATE_STORE_UNAVAILABLE) count
 * as errors. Getters and methods run on the store itself, so its private state stays reachable.
 */
export function observedStore<S extends Store>(store: S, metrics: ProcessMetrics): S {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      let fn = wrapped.get(prop);
      if (fn === undefined) {
        const method = value as (...args: unknown[]) => Promise<unknown>;
        fn = TIMED.has(String(prop))
          ? async (...args: unknown[]) => {
              const began = performance.now();
              try {
                const out = await method.apply(target, args);
                metrics.observe(String(prop), (performance.now() - began) / 1000, true);
                return out;
              } catch (err) {
                const unavailable = (err as { code?: string }).code === 'KEYGATE_STORE_UNAVAILABLE';
                metrics.observe(String(prop), (performance.now() - began) / 1000, !unavailable);
                throw err;
              }
            }
          : method.bind(target);
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
}
