import type { Logger } from '../core/log.js';
import type { Store } from '../core/store/store.js';
import { addRequest, mergeDeltas, type KeyUsageDelta } from '../core/usage.js';

export interface UsageRecorderOptions {
  /** How often pending usage is written to the store. */
  flushIntervalMs: number;
  /** Most keys with pending usage; traffic of further keys is dropped and counted until a flush. */
  maxPendingKeys: number;
}

/**
 * Takes the gateway's usage events and writes them to the store in batches: one delta per key
 * per flush, off the request path. A batch the store refuses is folded back into the next one,
 * so nothing is lost while the store is briefly away; only traffic beyond `maxPendingKeys`
 * distinct keys is dropped, and counted.
 */
export class UsageRecorder {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #options: UsageRecorderOptions;
  #pending = new Map<string, KeyUsageDelta>();
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  /** Requests whose usage was dropped because too many keys were pending. */
  dropped = 0;

  constructor(store: Store, log: Logger, options: UsageRecorderOptions) {
    this.#store = store;
    this.#log = log;
    this.#options = options;
  }

  /** One finished request. Requests without a resolved key have no per-key usage. */
  add(event: { key_id: string | null; time: number; status: number }): void {
    if (event.key_id === null) return;
    if (this.#pending.size >= this.#options.maxPendingKeys && !this.#pending.has(event.key_id)) {
      this.dropped++;
      return;
    }
    addRequest(this.#pending, event.key_id, event.time, event.status);
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), this.#options.flushIntervalMs);
    this.#timer.unref();
  }

  /** Writes what is pending; resolves when it is stored (or kept for the next try). */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    this.#flushing = this.#store.recordUsage([...batch.values()]).then(
      () => {},
      (err: unknown) => {
        mergeDeltas(batch, this.#pending.values());
        this.#pending = batch;
        this.#log.warn('usage not stored yet; kept for the next flush', { keys: batch.size, err: (err as Error).message });
      },
    );
    try {
      await this.#flushing;
    } finally {
      this.#flushing = null;
    }
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
  }
}
