import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { Store } from './store/store.js';

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
 * Metrics of the process rather than of a plane: Node's process metrics and the store's round
 * trips. Each plane's /metrics merges these with its own, so a process running both planes
 * reports them once per endpoint without counting anything twice.
 */
export class ProcessMetrics {
  readonly registry = new Registry();
  readonly storeDuration: Histogram<'operation'>;
  readonly storeErrors: Counter<'operation'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
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
