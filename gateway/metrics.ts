import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { buildInfo, countFrom, METHODS } from '../core/metrics.js';
import type { Limiter } from '../core/limiter.js';
import type { Store } from '../core/store/store.js';
import type { KeyCache } from './key-cache.js';
import type { CompiledApi } from './routes.js';
import type { Tracer } from './trace.js';
import type { UsageEvent } from './usage-event.js';

/** Counts of a usage pipeline (shipper or recorder) for the metrics below. */
export interface UsageCounts {
  shipped: number;
  retried: number;
  dropped: number;
}

/** Status classes; a status below 200 (a WebSocket's 101) is 1xx, one of 600 or more 5xx. */
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const METHOD_INDEX = new Map<string, number>(METHODS.map((m, i) => [m, i]));
const OTHER = METHODS.length - 1;
/** Slots of a route's per-request tables: one per method and status class. */
const SLOTS = METHODS.length * STATUS_CLASSES.length;
/** `would_deny`: a limit in shadow mode would have refused; `quota_exceeded`: the quota refused (docs/quotas.md). */
const DECISIONS = ['allowed', 'limited', 'unavailable', 'would_deny', 'quota_exceeded'] as const;

/** The label values of requests that matched no API. */
const NONE = 'none';

type RequestLabel = 'api' | 'route' | 'method' | 'status_class' | 'outcome';

/** Requests of one label set counted since the last scrape. */
interface RequestCell {
  readonly outcome: string;
  readonly labels: Readonly<Record<RequestLabel, string>>;
  n: number;
}

/** One label set's observations since the last scrape. */
interface Series {
  readonly labels: Readonly<Record<string, string>>;
  /** prom-client's key for these labels in its histogram's hashMap (see BatchedHistogram). */
  readonly hash: string;
  /** Per bucket, the observations it is the first to hold (the last slot: above every bound). */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** prom-client's per-label-set histogram state, as `zero()` creates it (lib/histogram.js). */
interface HistogramEntry {
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

/**
 * A prom-client Histogram fed in batches: observations are counted into plain arrays and added
 * to the histogram when prom-client collects it (at each scrape). prom-client has no public
 * call that adds a batch, so this adds to the entry its `zero()` makes for the label set,
 * found under the key prom-client gives it (lib/util.js hashObject: `name:value,` for each
 * label name in sorted order): bucket counts by upper bound, sum and count, as `observe()`
 * adds them. prom-client is pinned to an exact version, and test/metrics.test.ts reads these
 * histograms back through a scrape.
 */
class BatchedHistogram {
  readonly #bounds: readonly number[];
  readonly #names: readonly string[];
  readonly #series: Series[] = [];

  constructor(config: { name: string; help: string; labelNames: readonly string[]; buckets: number[]; registers: Registry[] }) {
    this.#bounds = config.buckets;
    this.#names = [...config.labelNames].sort();
    const series = this.#series;
    const bounds = this.#bounds;
    new Histogram({
      ...config,
      collect() {
        const map = (this as unknown as { hashMap: Record<string, HistogramEntry | undefined> }).hashMap;
        for (const s of series) {
          if (s.count === 0) continue;
          let e = map[s.hash];
          if (e === undefined) {
            this.zero(s.labels);
            e = map[s.hash];
            if (e === undefined) throw new Error(`prom-client keeps histogram entries under another key than ${s.hash}`);
          }
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

  /** A new label set (made once; the caller keeps it and observes into it). */
  series(labels: Readonly<Record<string, string>>): Series {
    let hash = '';
    for (const name of this.#names) hash += `${name}:${labels[name]},`;
    const s: Series = { labels, hash, counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
    this.#series.push(s);
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

/** A route's requests of one method and status class: counts by outcome, and their durations. */
interface Slot {
  readonly cells: RequestCell[];
  readonly duration: Series;
}

/**
 * The metrics of one `route` label of one API, made when the config is loaded: a request finds
 * it with two map lookups (API name, route template: the same strings every time), then its
 * slot by index of method and status class. Slots are made as they are first used, so a route
 * nobody calls costs a small object.
 */
interface RouteStats {
  readonly api: string;
  readonly route: string;
  /** By method × status class (METHODS index × 5 + class index); null until the first request. */
  slots: (Slot | undefined)[] | null;
  upstream: Series | null;
  overhead: Series | null;
}

interface ApiStats {
  readonly byRoute: Map<string, RouteStats>;
  /** Requests matching none of the API's rules (`unlisted`): labelled with its prefix and `*`. */
  readonly unlisted: RouteStats;
}

function routeStats(api: string, route: string): RouteStats {
  return { api, route, slots: null, upstream: null, overhead: null };
}

/** The slot of a status class (0 for 1xx … 4 for 5xx). */
function classOf(status: number): number {
  return status < 200 ? 0 : status >= 500 ? 4 : Math.floor(status / 100) - 1;
}

/**
 * The gateway's Prometheus metrics. Requests are counted from the usage event (a sink, after
 * the response is over), so nothing is added to the checks before the response; label sets
 * come from the config (APIs, route templates), fixed lists of methods, status classes and
 * outcomes, never from keys or raw paths. The sink runs on every request, so it allocates
 * nothing once a label set has been seen: counters and histogram buckets are plain numbers
 * found by index and handed to prom-client when it collects, at each scrape.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #duration: BatchedHistogram;
  readonly #upstream: BatchedHistogram;
  readonly #overhead: BatchedHistogram;
  readonly #apis = new Map<string, ApiStats>();
  readonly #none = routeStats(NONE, NONE);
  readonly #allCells: RequestCell[] = [];
  /** Rate-limit decisions since the last scrape, by DECISIONS index. */
  readonly #decided = [0, 0, 0, 0, 0];
  #usage: (() => UsageCounts) | null = null;
  #inFlight: (() => number) | null = null;

  constructor(rt: { readonly keys: KeyCache; readonly store: Store; readonly limiter: Limiter; readonly apis: readonly CompiledApi[]; readonly tracer?: Tracer | null }) {
    const registers = [this.registry];
    const cells = this.#allCells;
    const decided = this.#decided;
    for (const api of rt.apis) {
      const byRoute = new Map<string, RouteStats>();
      for (const rule of api.routes.rules) if (!byRoute.has(rule.template)) byRoute.set(rule.template, routeStats(api.name, rule.template));
      const unlisted = api.unlistedTemplate;
      this.#apis.set(api.name, { byRoute, unlisted: byRoute.get(unlisted) ?? routeStats(api.name, unlisted) });
    }
    buildInfo(this.registry);
    new Counter({
      name: 'keygate_requests_total',
      help: 'Requests answered by the gateway, by API, route template, method, status class and outcome',
      labelNames: ['api', 'route', 'method', 'status_class', 'outcome'],
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
    this.#duration = new BatchedHistogram({
      name: 'keygate_request_duration_seconds',
      help: 'Time from request to the end of the response, by API, route template, method and status class',
      labelNames: ['api', 'route', 'method', 'status_class'],
      buckets: latency,
      registers,
    });
    this.#upstream = new BatchedHistogram({
      name: 'keygate_upstream_duration_seconds',
      help: 'Time the upstream took to answer (to its response headers), by API and route template',
      labelNames: ['api', 'route'],
      buckets: latency,
      registers,
    });
    this.#overhead = new BatchedHistogram({
      name: 'keygate_gateway_overhead_seconds',
      help: "Time the gateway added to a forwarded request: its total less the upstream's, by API and route template",
      labelNames: ['api', 'route'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    const inFlight = () => this.#inFlight?.() ?? 0;
    new Gauge({
      name: 'keygate_requests_in_flight',
      help: 'HTTP requests received and not yet answered in full (WebSocket tunnels not included)',
      registers,
      collect() {
        this.set(inFlight());
      },
    });
    new Counter({
      name: 'keygate_rate_limit_decisions_total',
      help: 'Rate-limit and quota decisions: allowed, limited (429), unavailable (503, the store failing closed), would_deny (a shadow limit would have refused), quota_exceeded (429)',
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
    countFrom(this.registry, 'keygate_trace_spans_exported_total', 'Spans taken by the OTLP collector (tracing.otlp)', () => rt.tracer?.exporter?.exported ?? 0);
    countFrom(
      this.registry,
      'keygate_trace_spans_dropped_total',
      'Spans dropped: the export queue full, or their batch refused by the collector, unreachable or late',
      () => rt.tracer?.exporter?.dropped ?? 0,
    );
  }

  /** Where the usage counters come from (the shipper or recorder this gateway hands events to). */
  usageFrom(source: () => UsageCounts): void {
    this.#usage = source;
  }

  /** Where the in-flight gauge reads its value (the gateway's count of unanswered requests). */
  inFlightFrom(source: () => number): void {
    this.#inFlight = source;
  }

  /** The usage sink: one call per finished request. */
  readonly record = (e: UsageEvent): void => {
    const r = this.#routeOf(e.api, e.route);
    const i = (METHOD_INDEX.get(e.method) ?? OTHER) * STATUS_CLASSES.length + classOf(e.status);
    const slot = (r.slots ??= new Array<Slot | undefined>(SLOTS))[i] ?? this.#slot(r, i);
    this.#cell(r, slot, e.outcome).n++;
    this.#duration.observe(slot.duration, e.latency_ms / 1000);
    if (e.upstream_ms !== null) {
      this.#upstream.observe((r.upstream ??= this.#upstream.series({ api: r.api, route: r.route })), e.upstream_ms / 1000);
      this.#overhead.observe((r.overhead ??= this.#overhead.series({ api: r.api, route: r.route })), Math.max(0, e.latency_ms - e.upstream_ms) / 1000);
    }
    if (e.rate_limit_remaining !== null) this.#decided[decision(e)]!++;
  };

  /**
   * The stats of a request's API and route. Events name only configured APIs and rules, made
   * in the constructor; one naming others (events built by hand) gets stats made here once.
   */
  #routeOf(api: string | null, route: string | null): RouteStats {
    if (api === null) return this.#none;
    let a = this.#apis.get(api);
    if (a === undefined) this.#apis.set(api, (a = { byRoute: new Map(), unlisted: routeStats(api, NONE) }));
    if (route === null) return a.unlisted;
    let r = a.byRoute.get(route);
    if (r === undefined) a.byRoute.set(route, (r = routeStats(api, route)));
    return r;
  }

  #cell(r: RouteStats, slot: Slot, outcome: string): RequestCell {
    const cells = slot.cells;
    for (let i = 0; i < cells.length; i++) if (cells[i]!.outcome === outcome) return cells[i]!;
    const { method, status_class } = slot.duration.labels;
    const cell: RequestCell = { outcome, labels: { api: r.api, route: r.route, method: method!, status_class: status_class!, outcome }, n: 0 };
    cells.push(cell);
    this.#allCells.push(cell);
    return cell;
  }

  #slot(r: RouteStats, i: number): Slot {
    const m = Math.floor(i / STATUS_CLASSES.length);
    const labels = { api: r.api, route: r.route, method: METHODS[m]!, status_class: STATUS_CLASSES[i - m * STATUS_CLASSES.length]! };
    const slot: Slot = { cells: [], duration: this.#duration.series(labels) };
    r.slots![i] = slot;
    return slot;
  }
}

/** The DECISIONS index of a request the rate limit looked at. */
function decision(e: UsageEvent): number {
  if (e.outcome === 'rate_limit_exceeded') return 1;
  if (e.outcome === 'service_unavailable') return 2;
  if (e.outcome === 'quota_exceeded') return 4;
  return e.would_deny != null ? 3 : 0;
}
