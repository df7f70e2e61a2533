import type { Socket } from 'node:net';
import type { Clock } from '../core/clock.js';
import { INVALID_TOKEN_REASONS, type InvalidTokenReason } from '../core/errors.js';
import type { KeyHasher } from '../core/key-hash.js';
import type { Logger } from '../core/log.js';
import { unusable, type CompiledKey } from './compiled-key.js';
import type { RequestContext } from './context.js';
import { isMissing, type KeyCache } from './key-cache.js';
import { closeFrame, FrameCursor } from './ws-frames.js';

/** RFC 6455 §7.4.1: the endpoint received something that violates its policy. */
const POLICY_VIOLATION = 1008;
/** How long a closing tunnel waits for a frame to end and the close frames to go out before both sockets are destroyed. */
const CLOSE_BOUND_MS = 1_000;
/** How often open tunnels' keys are judged against the clock again (expiry, the end of a rotation grace). */
const SWEEP_MS = 1_000;

/**
 * One direction of a tunnel: bytes relayed as they come (with backpressure, as pipe() does),
 * the frame boundaries followed (ws-frames.ts) so that the stream can be cut between frames.
 */
class Relay {
  readonly #src: Socket;
  readonly #dst: Socket;
  readonly #cursor = new FrameCursor();
  /** Set once the relay is to stop at the next frame boundary; called when it has. */
  #then: (() => void) | null = null;
  #stopped = false;
  #holds = 0;

  constructor(src: Socket, dst: Socket) {
    this.#src = src;
    this.#dst = dst;
    src.on('data', (chunk: Buffer) => this.#data(chunk));
    dst.on('drain', () => {
      if (this.#holds === 0) src.resume();
    });
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Relays `chunk` as if it had come from the source (what came with the handshake). */
  write(chunk: Buffer): void {
    this.#cursor.advance(chunk, false);
    if (!this.#dst.write(chunk)) this.#src.pause();
  }

  /** Stops relaying until `release`, leaving what comes in the source's buffers. */
  hold(): void {
    this.#holds++;
    this.#src.pause();
  }

  release(): void {
    // A stop in between has let go of every hold already.
    if (this.#holds > 0 && --this.#holds === 0 && !this.#stopped) this.#src.resume();
  }

  /** Relays up to the next frame boundary, then nothing more; `then` runs at that boundary. */
  stopAtBoundary(then: () => void): void {
    this.#then = then;
    if (this.#cursor.atBoundary) return this.#stop();
    // The frame under way must be relayed to its end, held or not.
    this.#holds = 0;
    this.#src.resume();
  }

  #data(chunk: Buffer): void {
    if (this.#stopped) return;
    if (this.#then === null) return this.write(chunk);
    const end = this.#cursor.advance(chunk, true);
    if (end > 0) this.#dst.write(end === chunk.length ? chunk : chunk.subarray(0, end));
    if (this.#cursor.atBoundary) this.#stop();
  }

  #stop(): void {
    this.#stopped = true;
    // What the source sends from now on (its answer to the close frame) is read and dropped.
    this.#src.resume();
    this.#then!();
  }
}

/** An open WebSocket: the client's socket and the upstream's, relayed both ways after the 101. */
class Tunnel {
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly toClient: Relay;
  readonly toUpstream: Relay;
  #closing = false;

  constructor(client: Socket, upstream: Socket) {
    this.#client = client;
    this.#upstream = upstream;
    this.toClient = new Relay(upstream, client);
    this.toUpstream = new Relay(client, upstream);
    // Either side gone: the other goes too, unless a close is under way and its frame already out.
    upstream.once('close', () => {
      if (!this.#closing || !this.toClient.stopped) client.destroy();
    });
    client.once('close', () => {
      if (!this.#closing || !this.toUpstream.stopped) upstream.destroy();
    });
    upstream.on('error', () => upstream.destroy());
  }

  hold(): void {
    this.toClient.hold();
    this.toUpstream.hold();
  }

  release(): void {
    this.toClient.release();
    this.toUpstream.release();
  }

  /**
   * Closes both ends with `code` (RFC 6455 §5.5.1, §7). A close frame written while the other
   * side is in the middle of a frame would land inside that frame's payload and corrupt the
   * stream, so each direction is relayed to its next frame boundary first (the relays follow
   * the frame headers, which costs a few operations per frame), then closed with an unmasked
   * frame to the client and a masked one to the upstream, as a client's must be (§5.3). A
   * frame that does not end within CLOSE_BOUND_MS (a peer sending one huge frame slowly) is
   * not waited for: both sockets are destroyed then, whatever state they are in.
   */
  close(code: number, reason: string): void {
    if (this.#closing) return;
    this.#closing = true;
    setTimeout(() => {
      this.#client.destroy();
      this.#upstream.destroy();
    }, CLOSE_BOUND_MS).unref();
    this.toClient.stopAtBoundary(() => this.#client.end(closeFrame(code, reason, false)));
    this.toUpstream.stopAtBoundary(() => this.#upstream.end(closeFrame(code, reason, true)));
  }

  destroy(): void {
    this.#client.destroy();
    this.#upstream.destroy();
  }
}

/** The open tunnels of one key, and what the gateway last read of it. */
interface KeyTunnels {
  /** The key, for reading it again (KeyCache.load needs it; the request context holds it as long). */
  readonly token: string;
  key: CompiledKey;
  /** Clock reading when `key` was read; a read older than the cache TTL is read again. */
  readAt: number;
  readonly open: Set<Tunnel>;
}

/**
 * The open WebSockets, by the cache id of their key, so that a key that stops being usable
 * closes its WebSockets (close code 1008) within the same bound as it refuses new requests
 * (docs/architecture.md, WebSockets):
 *   - a change of the key (the key cache's change feed, KeyCache.onChange) holds its tunnels,
 *     reads the key again and closes them if it is revoked, suspended, expired or gone; the
 *     tunnels are held from the change on, so with a change that waits for every gateway (the
 *     Redis store) nothing is relayed after the change is answered;
 *   - changes that may have been missed (null from the feed) read every key again;
 *   - `sweep` judges every key against the clock (expiry and the end of a rotation grace come
 *     without a change) and reads again those read longer than the cache TTL ago, the same
 *     safety net a cached key has. It runs every SWEEP_MS while a tunnel is open.
 * A key the store cannot be asked about keeps its tunnels open, as it keeps working when cached.
 */
export class Tunnels {
  readonly #byKey = new Map<string, KeyTunnels>();
  readonly #keys: KeyCache;
  readonly #hasher: KeyHasher;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #ttlMs: number;
  #timer: NodeJS.Timeout | null = null;

  constructor(keys: KeyCache, deps: { hasher: KeyHasher; clock: Clock; log: Logger; ttlMs: number }) {
    this.#keys = keys;
    this.#hasher = deps.hasher;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#ttlMs = deps.ttlMs;
    keys.onChange((id) => {
      if (id === null) {
        for (const group of this.#byKey.values()) group.readAt = -Infinity;
        void this.sweep();
        return;
      }
      const group = this.#byKey.get(id);
      if (group !== undefined) void this.#changed(id, group);
    });
  }

  /**
   * Relays a WebSocket the upstream accepted: `upstreamHead` (what came after its 101) to the
   * client and the request's `head` to the upstream, then everything both ways.
   */
  open(ctx: RequestContext, client: Socket, upstream: Socket, upstreamHead: Buffer): void {
    const tunnel = new Tunnel(client, upstream);
    const id = this.#hasher.cacheId(ctx.token!);
    let group = this.#byKey.get(id);
    if (group === undefined) {
      group = { token: ctx.token!, key: ctx.key!, readAt: ctx.now, open: new Set() };
      this.#byKey.set(id, group);
    }
    group.open.add(tunnel);
    const gone = group;
    client.once('close', () => {
      gone.open.delete(tunnel);
      if (gone.open.size === 0 && this.#byKey.get(id) === gone) this.#byKey.delete(id);
      if (this.#byKey.size === 0) this.#stopTimer();
    });
    if (this.#timer === null) this.#timer = setInterval(() => void this.sweep(), SWEEP_MS).unref();
    if (upstreamHead.length > 0) tunnel.toClient.write(upstreamHead);
    if (ctx.head !== null && ctx.head.length > 0) tunnel.toUpstream.write(ctx.head);
  }

  /** Judges every open tunnel's key against the clock, reading again those read longer than the cache TTL ago. */
  async sweep(): Promise<void> {
    const now = this.#clock.now();
    const reads: Promise<void>[] = [];
    for (const [id, group] of this.#byKey) {
      if (now - group.readAt >= this.#ttlMs) reads.push(this.#read(id, group));
      else this.#judge(group, group.key);
    }
    await Promise.all(reads);
  }

  get size(): number {
    let n = 0;
    for (const group of this.#byKey.values()) n += group.open.size;
    return n;
  }

  close(): void {
    this.#stopTimer();
    for (const group of this.#byKey.values()) for (const tunnel of group.open) tunnel.destroy();
    this.#byKey.clear();
  }

  async #changed(id: string, group: KeyTunnels): Promise<void> {
    const held = [...group.open];
    for (const tunnel of held) tunnel.hold();
    try {
      await this.#read(id, group);
    } finally {
      for (const tunnel of held) tunnel.release();
    }
  }

  async #read(id: string, group: KeyTunnels): Promise<void> {
    try {
      const entry = await this.#keys.load(id, group.token);
      if (isMissing(entry)) return this.#closeAll(group, 'not_found');
      group.key = entry;
      group.readAt = this.#clock.now();
      this.#judge(group, entry);
    } catch (err) {
      this.#log.warn('websocket key check failed', { err: String(err) });
    }
  }

  #judge(group: KeyTunnels, key: CompiledKey): void {
    const reason = key.life === null ? undefined : unusable(key.life, this.#clock.now());
    if (reason !== undefined) this.#closeAll(group, reason);
  }

  #closeAll(group: KeyTunnels, reason: InvalidTokenReason): void {
    for (const tunnel of group.open) tunnel.close(POLICY_VIOLATION, INVALID_TOKEN_REASONS[reason]);
  }

  #stopTimer(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
