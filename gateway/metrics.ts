import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { countFrom } from '../core/metrics.js';
import type { Limiter } from '../core/limiter.js';
import type { Store } from '../core/store/store.js';
import type { KeyCache } from './key-cache.js';
import type { UsageEvent } from './usage-event.js';

/** Counts of a usage pipeline (shipper or recorder) for the metrics below. */
export interface UsageCounts {
  shipped: number;
  retried: number;
  dropped: number;
}

const STATUS_CLASS = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];
const DECISIONS = ['allowed', 'limited', 'unavailable'] as const;

/** Requests of one label set counted since the last scrape. */
interface RequestCell {
  readonly labels: Readonly<Record<'api' | 'route' | 'status_class' | 'outcome', string>>;
  n: number;
}

/** One label set's observations since the last scrape. */
interface Series {
  readonly labels: { api: string };
  /** Per bucket, the observations it is the first to hold (the last slot: above every bound). */
  readonly counts: Float64Array;
  sum: number;
  count: number;
  /** prom-client's entry for these labels, and the map it was found in (reset() replaces it). */
  entry: HistogramEntry | null;
  entryIn: object | null;
}

/** prom-client's per-label-set histogram state, as `zero()` creates it (lib/histogram.js). */
interface HistogramEntry {
  labels: Record<string, string>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

/**
 * A prom-client Histogram labelled by API, fed in batches: observations are counted into
 * plain arrays and added to the histogram when prom-client collects it (at each scrape).
 * prom-client has no public call that adds a batch, so this adds to the entry its `zero()`
 * makes for the label set: bucket counts by upper bound, sum and count, as `observe()` adds
 * them. prom-client is pinned to an exact version, and test/metrics.test.ts reads these
 * histograms back through a scrape.
 */
class BatchedHistogram {
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, Series>();

  constructor(config: { name: string; help: string; buckets: number[]; registers: Registry[] }) {
    this.#bounds = config.buckets;
    const series = this.#series;
    const bounds = this.#bounds;
    new Histogram<'api'>({
      ...config,
      labelNames: ['api'],
      collect() {
        const map = (this as unknown as { hashMap: Record<string, HistogramEntry> }).hashMap;
        for (const s of series.values()) {
          if (s.count === 0) continue;
          if (s.entry === null || s.entryIn !== map) {
            const find = () => Object.values(map).find((e) => e.labels['api'] === s.labels.api) ?? null;
            if (find() === null) this.zero(s.labels);
            s.entry = find();
            s.entryIn = map;
          }
          const e = s.entry!;
          e.count += s.count;
          e.sum += s.sum;
          for (let i = 0; i < bounds.length; i++) e.bucketValues[bounds[i]!]! += s.counts[i]!;
          s.counts.fill(0);
          s.sum = 0;
          s.count = 0;
        }
      },
    });
  }

  /** The series of one API (kept: look it up once per request, observe into it). */
  of(api: string): Series {
    let s = this.#series.get(api);
    if (s === undefined) {
      s = { labels: { api }, counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0, entry: null, entryIn: null };
      this.#series.set(api, s);
    }
    return s;
  }

  observe(s: Series, value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
}

/** The three histograms' series of one API. */
interface ApiSeries {
  duration: Series;
  upstream: Series;
  overhead: Series;
}

/**
 * The gateway's Prometheus metrics. Requests are counted from the usage event (a sink, after
 * the response is over), so nothing is added to the checks before the response; label sets
 * come from the config (APIs, route templates) and a fixed list of outcomes, never from keys.
 * The sink runs on every request, so it allocates nothing once a label set has been seen:
 * counters and histogram buckets are plain numbers found through maps of the label values (the
 * same strings each time) and handed to prom-client when it collects, at each scrape.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'api' | 'route' | 'status_class' | 'outcome'>;
  readonly #duration: BatchedHistogram;
  readonly #upstream: BatchedHistogram;
  readonly #overhead: BatchedHistogram;
  readonly #decisions: Counter<'decision'>;
  /** api → route → outcome → cells by status class. */
  readonly #cells = new Map<string, Map<string, Map<string, (RequestCell | undefined)[]>>>();
  readonly #allCells: RequestCell[] = [];
  /** Rate-limit decisions since the last scrape, by DECISIONS index. */
  readonly #decided = [0, 0, 0];
  readonly #series = new Map<string, ApiSeries>();
  #usage: (() => UsageCounts) | null = null;

  constructor(rt: { readonly keys: KeyCache; readonly store: Store; readonly limiter: Limiter }) {
    const registers = [this.registry];
    const cells = this.#allCells;
    const decided = this.#decided;
    this.#requests = new Counter({
      name: 'keygate_requests_total',
      help: 'Requests answered by the gateway, by API, route template, status class and outcome',
      labelNames: ['api', 'route', 'status_class', 'outcome'],
      registers,
      collect() {
        for (const c of cells) {
          if (c.n === 0) continue;
          this.inc(c.labels, c.n);
          c.n = 0;
        }
      },
    });
    const latency = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    this.#duration = new BatchedHistogram({ name: 'keygate_request_duration_seconds', help: 'Time from request to the end of the response', buckets: latency, registers });
    this.#upstream = new BatchedHistogram({ name: 'keygate_upstream_duration_seconds', help: 'Time the upstream took to answer (to its response headers)', buckets: latency, registers });
    this.#overhead = new BatchedHistogram({
      name: 'keygate_gateway_overhead_seconds',
      help: "Time the gateway added to a forwarded request: its total less the upstream's",
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    this.#decisions = new Counter({
      name: 'keygate_rate_limit_decisions_total',
      help: 'Rate-limit decisions: allowed, limited (429), or unavailable (503, the store failing closed)',
      labelNames: ['decision'],
      registers,
      collect() {
        for (let i = 0; i < DECISIONS.length; i++) {
          if (decided[i] === 0) continue;
          this.inc({ decision: DECISIONS[i]! }, decided[i]);
          decided[i] = 0;
        }
      },
    });
    countFrom(this.registry, 'keygate_key_cache_hits_total', 'Key lookups answered from the in-memory cache', () => rt.keys.stats.hits);
    countFrom(this.registry, 'keygate_key_cache_misses_total', 'Key lookups that had to ask the store', () => rt.keys.stats.misses);
    new Gauge({ name: 'keygate_key_cache_entries', help: 'Known keys in the key cache', registers, collect() { this.set(rt.keys.size); } });
    new Gauge({
      name: 'keygate_key_cache_unknown_entries',
      help: 'Keys the store did not know, remembered apart from the known ones (keys.cache.negative_max)',
      registers,
      collect() {
        this.set(rt.keys.negativeSize);
      },
    });
    new Gauge({ name: 'keygate_store_up', help: 'Whether the key store can be reached (1) or not (0)', registers, collect() { this.set(rt.store.available ? 1 : 0); } });
    new Gauge({
      name: 'keygate_degraded',
      help: 'Whether this gateway runs degraded (1): its store or shared rate limiter cannot be reached',
      registers,
      collect() {
        this.set(!rt.store.available || rt.limiter.degraded ? 1 : 0);
      },
    });
    const usage = (name: keyof UsageCounts, help: string) =>
      countFrom(this.registry, `keygate_usage_events_${name}_total`, help, () => this.#usage?.()[name] ?? 0);
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
    this.#cell(api, e.route ?? 'none', e.outcome, e.status).n++;
    const s = this.#seriesOf(api);
    this.#duration.observe(s.duration, e.latency_ms / 1000);
    if (e.upstream_ms !== null) {
      this.#upstream.observe(s.upstream, e.upstream_ms / 1000);
      this.#overhead.observe(s.overhead, Math.max(0, e.latency_ms - e.upstream_ms) / 1000);
    }
    if (e.rate_limit_remaining !== null) this.#decided[e.outcome === 'rate_limit_exceeded' ? 1 : e.outcome === 'service_unavailable' ? 2 : 0]!++;
  };

  #cell(api: string, route: string, outcome: string, status: number): RequestCell {
    let routes = this.#cells.get(api);
    if (routes === undefined) this.#cells.set(api, (routes = new Map()));
    let outcomes = routes.get(route);
    if (outcomes === undefined) routes.set(route, (outcomes = new Map()));
    let byClass = outcomes.get(outcome);
    if (byClass === undefined) outcomes.set(outcome, (byClass = []));
    const i = Math.min(5, Math.max(0, Math.floor(status / 100)));
    let cell = byClass[i];
    if (cell === undefined) {
      byClass[i] = cell = { labels: { api, route, status_class: STATUS_CLASS[i]!, outcome }, n: 0 };
      this.#allCells.push(cell);
    }
    return cell;
  }

  #seriesOf(api: string): ApiSeries {
    let s = this.#series.get(api);
    if (s === undefined) {
      s = { duration: this.#duration.of(api), upstream: this.#upstream.of(api), overhead: this.#overhead.of(api) };
      this.#series.set(api, s);
    }
    return s;
  }
}
