import { randomUUID } from 'node:crypto';
import { Pool } from 'undici';
import type { Logger } from '../core/log.js';
import type { UsageEvent } from './runtime.js';

export interface UsageShipperOptions {
  /** The admin plane's base URL. */
  url: string;
  /** An admin token with role `gateway`. */
  token: string;
  flushIntervalMs: number;
  maxBufferedEvents: number;
  maxBatchEvents: number;
  timeoutMs: number;
}

interface Batch {
  id: string;
  events: UsageEvent[];
  /** Failed sends so far, for the backoff. */
  tries: number;
}

/**
 * Sends a gateway's usage events to the admin plane when the two run apart: in batches, off the
 * request path, one batch in flight at a time, oldest first. A batch keeps its id until the
 * admin plane has stored it, so a resend after a lost answer is not counted twice. While the
 * admin plane is away (a restart), batches wait, retried with exponential backoff up to 5 s;
 * past `maxBufferedEvents` new events are dropped and counted, never blocking a request.
 */
export class UsageShipper {
  readonly #options: UsageShipperOptions;
  readonly #log: Logger;
  readonly #pool: Pool;
  readonly #sender = randomUUID();
  #seq = 0;
  #current: UsageEvent[] = [];
  readonly #queue: Batch[] = [];
  #buffered = 0;
  #timer: NodeJS.Timeout | null = null;
  #sending: Promise<void> | null = null;
  #retryAt = 0;
  #closed = false;
  /** Events the admin plane has stored, resent batches, events dropped for lack of room. */
  shipped = 0;
  retried = 0;
  dropped = 0;

  constructor(options: UsageShipperOptions, log: Logger) {
    this.#options = options;
    this.#log = log;
    const origin = new URL(options.url);
    this.#pool = new Pool(origin.origin, { connections: 2, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs });
  }

  /** One finished request. Synchronous and cheap: an array push. */
  add(event: UsageEvent): void {
    if (this.#buffered >= this.#options.maxBufferedEvents) {
      this.dropped++;
      return;
    }
    this.#buffered++;
    this.#current.push(event);
    if (this.#current.length >= this.#options.maxBatchEvents) this.#seal();
  }

  start(): void {
    this.#timer ??= setInterval(() => this.flush(), this.#options.flushIntervalMs);
    this.#timer.unref();
  }

  /** Seals the events so far into a batch and sends what is queued (unless backing off). */
  flush(): Promise<void> {
    this.#seal();
    if (this.#sending === null && this.#queue.length > 0 && performance.now() >= this.#retryAt) {
      this.#sending = this.#drain().finally(() => (this.#sending = null));
    }
    return this.#sending ?? Promise.resolve();
  }

  /** Events not yet stored by the admin plane. */
  get pending(): number {
    return this.#buffered;
  }

  /** Sends everything left, trying for up to `graceMs`; what is still unsent then is logged as lost. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    const until = performance.now() + graceMs;
    while (this.#buffered > 0 && performance.now() < until) {
      this.#retryAt = 0;
      await this.flush();
      if (this.#buffered > 0) await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, until - performance.now()))));
    }
    this.#closed = true;
    if (this.#buffered > 0) this.#log.error('usage events not delivered before shutdown', { events: this.#buffered });
    await this.#pool.close();
  }

  #seal(): void {
    if (this.#current.length === 0) return;
    this.#queue.push({ id: `${this.#sender}:${this.#seq++}`, events: this.#current, tries: 0 });
    this.#current = [];
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 && !this.#closed) {
      const batch = this.#queue[0]!;
      if (!(await this.#send(batch))) {
        batch.tries++;
        this.retried++;
        this.#retryAt = performance.now() + Math.min(5_000, 100 * 2 ** Math.min(batch.tries - 1, 6));
        return;
      }
      this.#queue.shift();
      this.#buffered -= batch.events.length;
      this.shipped += batch.events.length;
    }
  }

  async #send(batch: Batch): Promise<boolean> {
    try {
      const res = await this.#pool.request({
        method: 'POST',
        path: new URL('/v1/usage/events', this.#options.url).pathname,
        headers: { authorization: `Bearer ${this.#options.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id: batch.id, events: batch.events }),
      });
      const text = await res.body.text();
      if (res.statusCode === 200) return true;
      // A 4xx other than 429 will not get better by resending: say so loudly, keep retrying
      // (an operator can fix the token or the admin plane without losing the events).
      this.#log.warn('usage batch refused by the admin plane', { status: res.statusCode, body: text.slice(0, 300), events: batch.events.length });
      return false;
    } catch (err) {
      if (batch.tries === 0) this.#log.warn('usage batch not delivered; will retry', { err: (err as Error).message, events: batch.events.length });
      return false;
    }
  }
}
