import type { Socket } from 'node:net';
import type { RequestContext } from './context.js';

/** Why the watch gave up on a request. */
export type Expiry = 'timeout' | 'body_idle' | 'response_idle';

/** Whether a request announced a body (RFC 9112 §6.3) that has not been read to its end. */
export function bodyUnread(ctx: RequestContext): boolean {
  const req = ctx.req;
  if (req.complete) return false;
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/**
 * A response sent before the request's body was read (a refusal, a preflight): on HTTP/1.1 the
 * connection closes after it (`Connection: close`, lingering), since it would otherwise read
 * the rest of the body, however slowly it comes, before serving another request. An HTTP/2
 * stream ends on its own (Node resets a stream whose response ended first), and a connection
 * header is not allowed there (RFC 9113 §8.2.2).
 */
export function closeUnderUnreadBody(ctx: RequestContext, headers: Record<string, unknown>): void {
  if (ctx.req.httpVersionMajor === 2 || !bodyUnread(ctx)) return;
  headers['connection'] = 'close';
  lingerOnClose(ctx.conn);
}

/** How long a connection closed under an unread body goes on reading and dropping it. */
const LINGER_MS = 2_000;

/**
 * Closes `socket` the way nginx's lingering close does, once Node closes it after a response
 * that said `connection: close`: the write side first, then what the client still sends is
 * read and dropped until it closes its side, for at most LINGER_MS. Closing at once with the
 * client's bytes unread would reset the connection, and a client still writing its body would
 * lose the answer it was sent (a 413, a 401) to that reset.
 */
export function lingerOnClose(socket: Socket): void {
  socket.destroySoon = function linger(this: Socket): void {
    if (this.destroyed) return;
    this.end();
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
    this.once('end', () => this.destroy());
  };
}

/**
 * The requests being forwarded, in a list threaded through their contexts (no allocation per
 * request, O(1) in and out), swept every `tickMs` for the two limits that no upstream timer
 * sees (docs/operations.md, Security):
 *
 * - `timeout_ms` counted from the request's arrival: a request queued for a pool connection,
 *   or still uploading its body, has no undici timer running yet.
 * - `limits.body_idle_timeout_ms`: a request body that stopped moving. A body held back by the
 *   gateway itself (waiting for a pool connection, or the upstream not reading) has data
 *   buffered and is not idle; only a client that sends nothing is.
 * - `limits.response_idle_timeout_ms`: a response the client stopped reading (its buffers full,
 *   nothing written for that long). Such a client holds its upstream connection as long as
 *   it likes otherwise, since undici waits for the response to drain.
 *
 * One timer per gateway, however many requests; a sweep costs a few comparisons per request
 * in flight.
 */
export class InFlight {
  #head: RequestContext | null = null;
  readonly #timer: NodeJS.Timeout;
  readonly #bodyIdleMs: number;
  readonly #responseIdleMs: number;
  readonly #onExpired: (ctx: RequestContext, why: Expiry) => void;

  constructor(options: { tickMs: number; bodyIdleMs: number; responseIdleMs: number; onExpired: (ctx: RequestContext, why: Expiry) => void }) {
    this.#bodyIdleMs = options.bodyIdleMs;
    this.#responseIdleMs = options.responseIdleMs;
    this.#onExpired = options.onExpired;
    this.#timer = setInterval(() => this.#sweep(performance.now()), options.tickMs);
    this.#timer.unref();
  }

  /** Watches `ctx`, whose upstream answer is due by `ctx.deadline`. */
  add(ctx: RequestContext, now: number): void {
    if (ctx.linked) return;
    ctx.linked = true;
    ctx.bodyBytes = ctx.conn.bytesRead;
    ctx.bodyMovedAt = now;
    ctx.sentMovedAt = 0;
    ctx.prev = null;
    ctx.next = this.#head;
    if (this.#head !== null) this.#head.prev = ctx;
    this.#head = ctx;
  }

  remove(ctx: RequestContext): void {
    if (!ctx.linked) return;
    ctx.linked = false;
    if (ctx.prev === null) this.#head = ctx.next;
    else ctx.prev.next = ctx.next;
    if (ctx.next !== null) ctx.next.prev = ctx.prev;
    ctx.prev = ctx.next = null;
  }

  /** One pass over the list. */
  #sweep(now: number): void {
    for (let ctx = this.#head; ctx !== null; ) {
      const next = ctx.next;
      const why = this.#verdict(ctx, now);
      if (why !== null) {
        this.remove(ctx);
        this.#onExpired(ctx, why);
      }
      ctx = next;
    }
  }

  /** An idle body is judged first: when both limits have passed, the client stalled the upstream. */
  #verdict(ctx: RequestContext, now: number): Expiry | null {
    if (bodyUnread(ctx)) {
      const read = ctx.conn.bytesRead;
      if (read !== ctx.bodyBytes || ctx.req.readableLength > 0) {
        ctx.bodyBytes = read;
        ctx.bodyMovedAt = now;
      } else if (now - ctx.bodyMovedAt >= this.#bodyIdleMs) {
        return 'body_idle';
      }
    }
    if (ctx.status === 0) return now >= ctx.deadline ? 'timeout' : null;
    const res = ctx.res!;
    if (!res.writableNeedDrain) {
      ctx.sentMovedAt = 0;
      return null;
    }
    const sent = ctx.conn.bytesWritten;
    if (ctx.sentMovedAt === 0 || sent !== ctx.sentBytes) {
      ctx.sentBytes = sent;
      ctx.sentMovedAt = now;
      return null;
    }
    return now - ctx.sentMovedAt >= this.#responseIdleMs ? 'response_idle' : null;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#head = null;
  }
}
