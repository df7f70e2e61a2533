import { randomUUID } from 'node:crypto';
import type { Logger } from '../core/log.js';
import type { Store, UsageBatch } from '../core/store/store.js';
import { addRequest, type KeyUsageDelta } from '../core/usage.js';
import { errorSample, expandRow, foldRow, MINUTE, type AggregatedEvent, type BucketDelta, type ErrorSample, type UsageRow } from '../core/usage-agg.js';

export interface UsageRecorderOptions {
  /** How often pending usage is written to the store. */
  flushIntervalMs: number;
  /** Most keys with pending usage; traffic of further keys is dropped and counted until a flush. */
  maxPendingKeys: number;
  /** Retention of per-minute and per-day aggregates. */
  minuteTtlMs: number;
  dayTtlMs: number;
  errorsKept: number;
  /** Sealed batches kept while the store refuses them (one per flush); older ones are dropped. */
  maxQueuedBatches?: number;
}

/** Traffic folded since the last flush. */
interface Pending {
  events: number;
  keys: Map<string, KeyUsageDelta>;
  /** Requests by key (or none), tenant and minute; spread over the aggregate buckets when sealed. */
  rows: Map<string, UsageRow>;
  /** The row each key (null: no key) was last folded into, which nearly every next request of it shares. */
  last: Map<string | null, UsageRow>;
  errors: ErrorSample[];
}

const empty = (): Pending => ({ events: 0, keys: new Map(), rows: new Map(), last: new Map(), errors: [] });

/**
 * Turns the gateway's usage events into what the store keeps: per-key counters, per-minute and
 * per-day aggregates, and samples of errors. Events handed over in process (`add`) are folded
 * and written in one batch per flush, off the request path; a batch the store refuses is kept,
 * under its id, and written again (the store applies a batch id once). Batches that gateways
 * send over HTTP (`ingest`) are written before they are acknowledged, so a gateway keeps and
 * resends what was not.
 */
export class UsageRecorder {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #options: UsageRecorderOptions;
  #pending = empty();
  readonly #queue: { batch: UsageBatch; events: number }[] = [];
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  /** Requests whose usage was dropped (too many keys pending, or too many batches queued). */
  dropped = 0;
  /** Requests whose usage is in the store. */
  stored = 0;
  /** Writes of a batch that failed and were (or will be) tried again. */
  retried = 0;

  constructor(store: Store, log: Logger, options: UsageRecorderOptions) {
    this.#store = store;
    this.#log = log;
    this.#options = options;
  }

  /** One finished request, handed over in process. */
  add(event: AggregatedEvent): void {
    const p = this.#pending;
    if (event.key_id !== null && p.keys.size >= this.#options.maxPendingKeys && !p.keys.has(event.key_id)) {
      this.dropped++;
      return;
    }
    fold(p, event);
  }

  /** Stores a gateway's batch of events before answering; false when the batch was stored before. */
  async ingest(id: string, events: readonly AggregatedEvent[]): Promise<boolean> {
    const p = empty();
    for (const e of events) fold(p, e);
    const applied = await this.#store.ingestUsage(this.#seal(id, p));
    if (applied) this.stored += events.length;
    return applied;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), this.#options.flushIntervalMs);
    this.#timer.unref();
  }

  /** Seals what is pending into a batch and writes every queued batch, oldest first. */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    if (this.#pending.events > 0) {
      const p = this.#pending;
      this.#pending = empty();
      this.#queue.push({ batch: this.#seal(randomUUID(), p), events: p.events });
      const max = this.#options.maxQueuedBatches ?? 600;
      while (this.#queue.length > max) {
        const lost = this.#queue.shift()!;
        this.dropped += lost.events;
        this.#log.error('usage batch dropped: the store refused too many in a row', { requests: lost.events });
      }
    }
    if (this.#queue.length === 0) return;
    this.#flushing = this.#writeQueue();
    try {
      await this.#flushing;
    } finally {
      this.#flushing = null;
    }
  }

  async #writeQueue(): Promise<void> {
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      try {
        await this.#store.ingestUsage(head.batch);
      } catch (err) {
        this.retried++;
        this.#log.warn('usage not stored yet; kept for the next flush', { batches: this.#queue.length, err: (err as Error).message });
        return;
      }
      this.#queue.shift();
      this.stored += head.events;
    }
  }

  /** Requests folded or queued but not yet in the store. */
  get pending(): number {
    return this.#pending.events + this.#queue.reduce((n, q) => n + q.events, 0);
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
  }

  #seal(id: string, p: Pending): UsageBatch {
    const buckets = new Map<string, BucketDelta>();
    for (const row of p.rows.values()) expandRow(buckets, row);
    return {
      id,
      keys: [...p.keys.values()],
      buckets: [...buckets.values()].map((b) => ({ ...b, ttl_ms: b.gran === 'm' ? this.#options.minuteTtlMs : this.#options.dayTtlMs })),
      errors: p.errors.slice(-this.#options.errorsKept),
      keep_errors: this.#options.errorsKept,
    };
  }
}

/** One request into the pending traffic: its key's counters, its row, and an error sample if it failed. */
function fold(p: Pending, e: AggregatedEvent): void {
  p.events++;
  if (e.key_id !== null) addRequest(p.keys, e.key_id, e.time, e.status);
  const start = e.time - (e.time % MINUTE);
  let row = p.last.get(e.key_id);
  if (row === undefined || row.start !== start || row.tenant !== e.tenant) {
    const id = `${e.key_id === null ? '' : `k${e.key_id}`}\u0000${e.tenant === null ? '' : `t${e.tenant}`}\u0000${start}`;
    row = p.rows.get(id);
    if (row === undefined) p.rows.set(id, (row = { key_id: e.key_id, tenant: e.tenant, start, fields: {} }));
    p.last.set(e.key_id, row);
  }
  foldRow(row.fields, e);
  if (e.status >= 400) p.errors.push(errorSample(e));
}

/** The recorder's options from the config's `usage` section. */
export function recorderOptions(usage: {
  flush_interval_ms: number;
  max_pending_keys: number;
  minute_retention_hours: number;
  day_retention_days: number;
  errors_kept: number;
}): UsageRecorderOptions {
  return {
    flushIntervalMs: usage.flush_interval_ms,
    maxPendingKeys: usage.max_pending_keys,
    minuteTtlMs: usage.minute_retention_hours * 3_600_000,
    dayTtlMs: usage.day_retention_days * 86_400_000,
    errorsKept: usage.errors_kept,
  };
}
