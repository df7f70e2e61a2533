import { randomUUID } from 'node:crypto';
import type { Store } from '../../core/store/store.js';

/**
 * Work an admin plane does every `intervalMs`, in one admin process at a time (the store lease
 * `name`). Passes never overlap: a tick during a slow pass joins it. `close` hands the lease
 * back, so that a restarted process takes over at once rather than when it lapses.
 */
export class LeasedPeriodic {
  readonly #store: Store;
  readonly #name: string;
  readonly #intervalMs: number;
  readonly #pass: () => Promise<number>;
  readonly #holder: string;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<number> | null = null;
  #held = false;

  /** `pass` runs only while this process holds the lease, and resolves with what it did. */
  constructor(store: Store, name: string, intervalMs: number, pass: () => Promise<number>) {
    this.#store = store;
    this.#name = name;
    this.#intervalMs = intervalMs;
    this.#pass = pass;
    this.#holder = `${name}-${process.pid}-${randomUUID().slice(0, 8)}`;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.tick(), this.#intervalMs);
    this.#timer.unref();
  }

  /** One pass now (0 when another process holds the lease). Rejects when the pass or the lease does. */
  tick(): Promise<number> {
    this.#running ??= this.#leased().finally(() => (this.#running = null));
    return this.#running;
  }

  async #leased(): Promise<number> {
    this.#held = await this.#store.lease(this.#name, this.#holder, Math.max(this.#intervalMs * 3, 30_000));
    return this.#held ? this.#pass() : 0;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => 0);
    // A lease with no time left: the next process to ask takes it.
    if (this.#held) await this.#store.lease(this.#name, this.#holder, 0).catch(() => false);
  }
}
