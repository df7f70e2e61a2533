import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { onSubscriberReady, type Client, type Warn } from './connection.js';
import type { ScriptClient } from './scripts.js';

/** How long a membership is held, and how often it is renewed, in ms. */
const MEMBERSHIP_TTL_MS = 5_000;
const MEMBERSHIP_RENEW_MS = 1_000;

/**
 * The invalidation protocol between the processes sharing one deployment. A commit that
 * changes lookup hashes publishes them, with a sequence number, on `{prefix}:invalidate`
 * (commit.lua). Every process hears them here and tells its `onKeyChange` listeners; a process
 * that caches keys is a member (listed in `{prefix}:members`, renewed while it runs) and
 * acknowledges each sequence number in `{prefix}:acks` once its listeners have dropped the
 * hashes. The writer then waits (bounded) until no live member lags, so a revocation's answer
 * means every gateway already refuses the key.
 */
export class Invalidation {
  readonly #client: ScriptClient;
  readonly #sub: Client;
  readonly #tag: string;
  readonly #waitMs: number;
  readonly #warn: Warn;
  readonly #emitter = new EventEmitter();
  readonly #instance = randomUUID();
  /** Set once something caches keys from this store: it is then a member that acknowledges. */
  #membership: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(client: ScriptClient, sub: Client, tag: string, waitMs: number, warn: Warn) {
    this.#client = client;
    this.#sub = sub;
    this.#tag = tag;
    this.#waitMs = waitMs;
    this.#warn = warn;
    this.#emitter.setMaxListeners(0);
  }

  /** Subscribes to the invalidation channel; true once Redis has acknowledged it, false if that failed. */
  subscribe(): Promise<boolean> {
    const channel = `${this.#tag}:invalidate`;
    let connectedOnce = false;
    this.#sub.on('message', (ch: string, msg: string) => {
      if (ch !== channel) return;
      const parts = msg.split(' ');
      for (let i = 1; i < parts.length; i++) this.#emitter.emit('key', parts[i]!);
      // Dropped from every cache of this process: say so, so that the writer can answer.
      if (this.#membership !== undefined) {
        this.#client.hset(`${this.#tag}:acks`, this.#instance, parts[0]!).catch(() => {});
      }
    });
    // Messages published while the subscriber was away are lost: after a reconnect, every
    // cached key is suspect.
    const watched = onSubscriberReady(this.#sub, () => {
      if (connectedOnce) {
        this.#warn('redis subscriber reconnected; dropping cached keys', {});
        this.#emitter.emit('key', null);
      }
      connectedOnce = true;
    });
    if (!watched) this.#warn('cannot watch the redis cluster subscriber for reconnects; cached keys are not dropped after one', {});
    return this.#sub.subscribe(channel).then(
      () => true,
      (err: Error) => {
        this.#warn('redis subscribe failed', { err: err.message });
        return false;
      },
    );
  }

  /** Tells every listener to drop every cached key (unless closed). */
  dropAll(): void {
    if (!this.#closed) this.#emitter.emit('key', null);
  }

  /**
   * Waits (polling, bounded by `invalidationWaitMs`) until every live cache holder has
   * acknowledged invalidation `seq`, so that a revocation's answer means every gateway refuses
   * the key from then on. A holder that does not acknowledge in time only delays the answer;
   * the write stands, and that holder's cache TTL still bounds how long it may be stale.
   */
  async awaitAcks(seq: string): Promise<void> {
    if (seq === '0' || this.#waitMs <= 0) return;
    const until = performance.now() + this.#waitMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
      let lagging: number;
      try {
        lagging = await this.#client.kgLagging(`${this.#tag}:members`, this.#tag, seq);
      } catch {
        return; // Redis went away after the write: nobody can be waited for.
      }
      if (lagging === 0) return;
      if (performance.now() >= until) {
        this.#warn('gateways did not confirm a key change in time', { lagging, wait_ms: this.#waitMs });
        return;
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  onKeyChange(listener: (hash: string | null) => void): () => void {
    this.#joinMembers();
    this.#emitter.on('key', listener);
    return () => this.#emitter.off('key', listener);
  }

  /** Keeps this process listed as a cache holder while it runs. */
  #joinMembers(): void {
    if (this.#membership !== undefined) return;
    const renew = () =>
      void this.#client.kgMember(`${this.#tag}:members`, this.#tag, this.#instance, MEMBERSHIP_TTL_MS).catch(() => {});
    this.#membership = setInterval(renew, MEMBERSHIP_RENEW_MS);
    this.#membership.unref();
    renew();
  }

  /** Leaves the members, so that no writer waits for this process; the store closes the connections. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#membership === undefined) return;
    clearInterval(this.#membership);
    await this.#client.hdel(`${this.#tag}:members`, this.#instance).catch(() => {});
  }
}
