import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { buildInfo, countFrom, methodLabel } from '../core/metrics.js';
import type { Store } from '../core/store/store.js';
import type { UsageRecorder } from './usage.js';

/**
 * The admin plane's Prometheus metrics: its API calls by documented route (never by raw path
 * or key), the usage it stores, and whether its store answers.
 */
export class AdminMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'route' | 'method' | 'status'>;
  readonly #duration: Histogram<'route'>;

  constructor(store: Store, usage: UsageRecorder) {
    const registers = [this.registry];
    buildInfo(this.registry);
    this.#requests = new Counter({
      name: 'keygate_admin_requests_total',
      help: 'Admin API calls by documented route, method (OTHER for methods outside RFC 9110 and PATCH) and status',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'keygate_admin_request_duration_seconds',
      help: 'Time taken by admin API calls',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    countFrom(this.registry, 'keygate_usage_events_stored_total', 'Usage events written to the store', () => usage.stored);
    countFrom(this.registry, 'keygate_usage_events_retried_total', 'Usage batches written again after the store refused them', () => usage.retried);
    countFrom(this.registry, 'keygate_usage_events_dropped_total', 'Usage events dropped (too many keys pending, or too many batches refused)', () => usage.dropped);
    new Gauge({ name: 'keygate_usage_events_pending', help: 'Usage events received but not yet stored', registers, collect() { this.set(usage.pending); } });
    new Gauge({ name: 'keygate_store_up', help: 'Whether the store can be reached (1) or not (0)', registers, collect() { this.set(store.available ? 1 : 0); } });
  }

  /** One admin call, once its answer is sent. */
  record(route: string, method: string, status: number, seconds: number): void {
    this.#requests.labels(route, methodLabel(method), String(status)).inc();
    this.#duration.labels(route).observe(seconds);
  }
}
