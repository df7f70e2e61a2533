import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Runtime, UsageEvent } from './runtime.js';

/** Counts of a usage pipeline (shipper or recorder) for the metrics below. */
export interface UsageCounts {
  shipped: number;
  retried: number;
  dropped: number;
}

const STATUS_CLASS = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

/**
 * The gateway's Prometheus metrics. Requests are counted from the usage event (a sink, after
 * the response is over), so nothing is added to the checks before the response; label sets
 * come from the config (APIs, route templates) and a fixed list of outcomes, never from keys.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'api' | 'route' | 'status_class' | 'outcome'>;
  readonly #duration: Histogram<'api'>;
  readonly #upstream: Histogram<'api'>;
  readonly #overhead: Histogram<'api'>;
  readonly #decisions: Counter<'decision'>;
  #usage: (() => UsageCounts) | null = null;

  constructor(rt: Runtime) {
    const registers = [this.registry];
    this.#requests = new Counter({
      name: 'keygate_requests_total',
      help: 'Requests answered by the gateway, by API, route template, status class and outcome',
      labelNames: ['api', 'route', 'status_class', 'outcome'],
      registers,
    });
    const latency = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    this.#duration = new Histogram({ name: 'keygate_request_duration_seconds', help: 'Time from request to the end of the response', labelNames: ['api'], buckets: latency, registers });
    this.#upstream = new Histogram({ name: 'keygate_upstream_duration_seconds', help: 'Time the upstream took to answer (to its response headers)', labelNames: ['api'], buckets: latency, registers });
    this.#overhead = new Histogram({
      name: 'keygate_gateway_overhead_seconds',
      help: "Time the gateway added to a forwarded request: its total less the upstream's",
      labelNames: ['api'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    this.#decisions = new Counter({
      name: 'keygate_rate_limit_decisions_total',
      help: 'Rate-limit decisions: allowed, limited (429), or unavailable (503, the store failing closed)',
      labelNames: ['decision'],
      registers,
    });
    let lastHits = 0;
    let lastMisses = 0;
    new Counter({
      name: 'keygate_key_cache_hits_total',
      help: 'Key lookups answered from the in-memory cache',
      registers,
      collect() {
        const { hits } = rt.keys.stats;
        this.inc(hits - lastHits);
        lastHits = hits;
      },
    });
    new Counter({
      name: 'keygate_key_cache_misses_total',
      help: 'Key lookups that had to ask the store',
      registers,
      collect() {
        const { misses } = rt.keys.stats;
        this.inc(misses - lastMisses);
        lastMisses = misses;
      },
    });
    new Gauge({ name: 'keygate_key_cache_entries', help: 'Entries in the key cache', registers, collect() { this.set(rt.keys.size); } });
    new Gauge({ name: 'keygate_store_up', help: 'Whether the key store can be reached (1) or not (0)', registers, collect() { this.set(rt.store.available ? 1 : 0); } });
    new Gauge({
      name: 'keygate_degraded',
      help: 'Whether this gateway runs degraded (1): its store or shared rate limiter cannot be reached',
      registers,
      collect() {
        this.set(!rt.store.available || rt.limiter.degraded ? 1 : 0);
      },
    });
    const source = () => this.#usage?.() ?? null;
    const usage = (name: keyof UsageCounts, help: string) => {
      let last = 0;
      new Counter({
        name: `keygate_usage_events_${name}_total`,
        help,
        registers,
        collect() {
          const now = source()?.[name] ?? 0;
          this.inc(Math.max(0, now - last));
          last = now;
        },
      });
    };
    usage('shipped', 'Usage events delivered to the admin plane or the store');
    usage('retried', 'Usage batches written or sent again after a failure');
    usage('dropped', 'Usage events dropped for lack of buffer room');
  }

  /** Where the usage counters come from (the shipper or recorder this gateway hands events to). */
  usageFrom(source: () => UsageCounts): void {
    this.#usage = source;
  }

  /** The usage sink: one call per finished request. */
  readonly record = (e: UsageEvent): void => {
    const api = e.api ?? 'none';
    const cls = STATUS_CLASS[Math.floor(e.status / 100)] ?? '5xx';
    this.#requests.labels(api, e.route ?? 'none', cls, e.outcome).inc();
    const seconds = e.latency_ms / 1000;
    this.#duration.labels(api).observe(seconds);
    if (e.upstream_ms !== null) {
      this.#upstream.labels(api).observe(e.upstream_ms / 1000);
      this.#overhead.labels(api).observe(Math.max(0, e.latency_ms - e.upstream_ms) / 1000);
    }
    if (e.rate_limit_remaining !== null) {
      this.#decisions.labels(e.outcome === 'rate_limit_exceeded' ? 'limited' : e.outcome === 'service_unavailable' ? 'unavailable' : 'allowed').inc();
    }
  };
}
