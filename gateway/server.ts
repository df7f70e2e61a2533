import { randomUUID } from 'node:crypto';
import { createServer, Server as HttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ServerHttp2Session } from 'node:http2';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Config } from '../config/schema.js';
import { systemClock, type Clock } from '../core/clock.js';
import { ERRORS, type ErrorCode } from '../core/errors.js';
import { clientOf, normalizePeer } from '../core/ip.js';
import { KeyHasher } from '../core/key-hash.js';
import { listenOn } from '../core/listen.js';
import { Logger } from '../core/log.js';
import { hstsValue, TlsContexts, TlsFilesError, type TlsProblem } from '../core/tls.js';
import type { Store } from '../core/store/store.js';
import type { Listener } from './context.js';
import type { Pool } from 'undici';
import { createH2Server } from './http2.js';
import { createPipeline, GatewayResponse, type Pipeline } from './pipeline.js';
import { buildRuntime, keyCompiler, type Runtime, type UsageSink } from './runtime.js';
import { forgetSharedParts } from './compiled-key.js';

export interface GatewayDeps {
  store: Store;
  clock?: Clock;
  log?: Logger;
  hasher?: KeyHasher;
  sinks?: UsageSink[];
}

export interface BoundListener {
  environment: string;
  host: string;
  port: number;
  url: string;
}

export interface Gateway {
  /** The runtime new requests are served by (the latest generation). */
  readonly runtime: Runtime;
  /**
   * Builds the runtime of `config` beside the running one, changing nothing yet (a reload,
   * docs/operations.md). `apply` swaps it in for new requests, while requests under way finish
   * on the runtime they started on; `abandon` lets it go. Only the reloadable parts of `config`
   * are read: the listeners, limits and store stay as they were at start-up.
   */
  prepareReload(config: Config): PreparedReload;
  /** Binds every listener; resolves with the bound addresses (port 0 becomes a real port). */
  listen(): Promise<BoundListener[]>;
  /**
   * Reads every TLS listener's certificate files again, changing nothing yet (a reload's part,
   * core/reload.ts): `apply` makes new handshakes use them. Throws TlsFilesError naming every
   * problem when any file is refused, and every listener keeps its certificates.
   */
  prepareTls(): { apply(): void };
  /** Stops accepting, lets in-flight requests finish for up to `drainMs`, then closes everything. */
  close(drainMs?: number): Promise<void>;
}

export interface PreparedReload {
  readonly runtime: Runtime;
  apply(): void;
  abandon(): void;
}

type GatewayServer = Server<typeof IncomingMessage, typeof GatewayResponse>;

/** A runtime and the pipeline built on it, with the requests that started on it and run still. */
interface Generation {
  readonly rt: Runtime;
  readonly pipeline: Pipeline;
  inFlight: number;
  /** Set once a newer generation serves new requests: this one ends with its last request. */
  retired: boolean;
}

export function hasherFor(config: Config): KeyHasher {
  return new KeyHasher(config.keys.pepper, config.keys.previous_peppers);
}

export function createGateway(config: Config, deps: GatewayDeps): Gateway {
  const log = deps.log ?? new Logger({ level: config.log.level, keyPrefix: config.keys.prefix });
  const runtimeDeps = { clock: deps.clock ?? systemClock, log, store: deps.store, hasher: deps.hasher ?? hasherFor(config) };
  const rt = buildRuntime(config, runtimeDeps);
  rt.sinks.push(...(deps.sinks ?? []));
  const servers: GatewayServer[] = [];
  const upgraded = new Set<Socket>();
  /** Open HTTP/2 connections: told to go (GOAWAY) at close, cut after the drain. */
  const sessions = new Set<ServerHttp2Session>();
  /**
   * The TCP connections of TLS listeners, cut after the drain: one still in its handshake, or
   * an HTTP/2 session's, is in no list of Node's that closeAllConnections reaches.
   */
  const tlsSockets = new Set<Socket>();
  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | null = null;
  /** Upstream pools → how many live generations use them; a pool closes when none does. */
  const poolUsers = new Map<Pool, number>();
  const live = new Set<Generation>();

  function open(runtime: Runtime): Generation {
    const g: Generation = {
      rt: runtime,
      pipeline: createPipeline(runtime, () => {
        if (--g.inFlight === 0 && g.retired) end(g);
        if (--inFlight === 0 && drained) drained();
      }),
      inFlight: 0,
      retired: false,
    };
    for (const pool of new Set(runtime.apis.map((a) => a.pool))) poolUsers.set(pool, (poolUsers.get(pool) ?? 0) + 1);
    live.add(g);
    return g;
  }

  /** A retired generation's last request is over: its watch stops, pools no generation uses close. */
  function end(g: Generation): void {
    // Past close(), which let go of every generation and pool itself.
    if (!live.delete(g)) return;
    g.pipeline.close();
    for (const pool of new Set(g.rt.apis.map((a) => a.pool))) {
      const users = poolUsers.get(pool)! - 1;
      if (users > 0) poolUsers.set(pool, users);
      else {
        poolUsers.delete(pool);
        pool.close().catch(() => undefined);
      }
    }
  }

  /** Read once per request, at its start: the request runs on this generation to its end. */
  let current = open(rt);
  rt.metrics?.inFlightFrom(() => inFlight);

  const limits = config.limits;
  const perIp = new ConnectionsPerIp(limits.max_connections_per_ip, () => current.rt);
  const listeners: Listener[] = [];
  const tlsContexts: TlsContexts[] = [];
  for (const l of config.listeners) {
    const tls = l.tls === null ? null : new TlsContexts(l.tls);
    const listener: Listener = {
      environment: l.environment,
      tls: tls !== null,
      hsts: l.tls?.hsts ? hstsValue(l.tls.hsts) : null,
      subjectHeader: l.tls?.client_subject_header ?? null,
    };
    listeners.push(listener);
    const httpOptions = {
      keepAliveTimeout: 65_000,
      // No limit on a whole request: uploads and long polls may take as long as they keep
      // moving. The head has its own limit, and an idle body the in-flight watch's.
      requestTimeout: 0,
      headersTimeout: limits.headers_timeout_ms,
      // How often Node checks heads against headersTimeout: a slow head is cut within
      // headers_timeout_ms plus this.
      connectionsCheckingInterval: Math.min(1_000, limits.headers_timeout_ms),
      ServerResponse: GatewayResponse,
    };
    const onRequest = (req: IncomingMessage, res: GatewayResponse) => {
      // (An HTTP/2 stream's socket is its connection's: ended only when the connection is.)
      // A request pipelined behind a response that closed the connection is not served.
      if (req.socket.writableEnded) return void req.socket.destroy();
      const g = current;
      inFlight++;
      g.inFlight++;
      g.pipeline.handle(req, res, listener);
    };
    let server: GatewayServer;
    if (tls === null) {
      server = createServer(httpOptions, onRequest);
    } else {
      const tlsOptions = tls.serverOptions(limits.tls_handshake_timeout_ms);
      server = (
        tls.settings.http2
          ? createH2Server(config, tlsOptions, GatewayResponse, onRequest as (req: IncomingMessage, res: never) => void, sessions)
          : createHttpsServer({ ...httpOptions, ...tlsOptions }, onRequest)
      ) as unknown as GatewayServer;
      tls.attach(server as unknown as HttpsServer);
      tlsContexts.push(tls);
    }
    // `Expect: 100-continue` is answered by the forward stage once every check passed, not by
    // Node before the key was looked at.
    server.on('checkContinue', (req: IncomingMessage, res: GatewayResponse) => {
      const g = current;
      inFlight++;
      g.inFlight++;
      g.pipeline.handle(req, res, listener);
    });
    server.maxConnections = limits.max_connections;
    // Node's own connection listener (which attaches the HTTP parser) runs only for
    // connections within the per-address limit; one over it never has a request parsed.
    const http = server.listeners('connection')[0] as (socket: Socket) => void;
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      if (!perIp.admit(socket, tls === null)) return;
      if (tls !== null) {
        tlsSockets.add(socket);
        socket.once('close', () => tlsSockets.delete(socket));
      }
      http.call(server, socket);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      // Held until replayed: Node's connection list no longer has it, so close() must.
      if (!upgraded.has(socket)) {
        upgraded.add(socket);
        socket.once('close', () => upgraded.delete(socket));
      }
      if (!isWebSocket(req)) return replayWithoutUpgrade(server, req, socket, head, () => closing);
      // A WebSocket's 101 and frames must not land in the middle of another response's body.
      whenIdle(socket, () => {
        if (closing) return void socket.destroy();
        current.pipeline.upgrade(req, socket, head, listener);
      });
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket, current.rt.config.headers.request_id, current.rt.docUrls));
    servers.push(server);
  }

  return {
    get runtime() {
      return current.rt;
    },
    prepareReload(next) {
      const prepared = buildRuntime(next, runtimeDeps, current.rt);
      let settled = false;
      return {
        runtime: prepared,
        apply() {
          if (closing) return this.abandon();
          if (settled) return;
          settled = true;
          const old = current;
          // A cached key points at its plan's policy (and quota) object: with other plans, every
          // key is compiled again on its next use (gateway/key-cache.ts).
          // The shared parts made from the old plans are forgotten first (gateway/compiled-key.ts).
          if (JSON.stringify(old.rt.config.plans) !== JSON.stringify(next.plans)) {
            forgetSharedParts();
            prepared.keys.recompile(keyCompiler(prepared.plans, prepared.planQuotas));
          }
          current = open(prepared);
          old.retired = true;
          if (old.inFlight === 0) end(old);
        },
        abandon() {
          if (settled) return;
          settled = true;
          for (const a of prepared.apis) if (!poolUsers.has(a.pool)) a.pool.close().catch(() => undefined);
        },
      };
    },
    prepareTls() {
      // Every listener's files read and checked first; only then is any put in use.
      const problems: TlsProblem[] = [];
      const ready: { apply(): void }[] = [];
      for (const t of tlsContexts) {
        try {
          ready.push(t.prepareReload());
        } catch (err) {
          if (!(err instanceof TlsFilesError)) throw err;
          problems.push(...err.problems);
        }
      }
      if (problems.length > 0) throw new TlsFilesError(problems);
      return { apply: () => ready.forEach((r) => r.apply()) };
    },
    async listen() {
      const bound: BoundListener[] = [];
      for (const [i, server] of servers.entries()) {
        const l = config.listeners[i]!;
        const at = await listenOn(server, l.port, l.host, l.tls === null ? 'http' : 'https');
        listeners[i]!.address = at.url.slice(at.url.indexOf('//') + 2);
        bound.push({ environment: l.environment, ...at });
        log.info('gateway listening', { environment: l.environment, address: at.host, port: at.port });
      }
      return bound;
    },
    async close(drainMs = config.shutdown.drain_timeout_ms) {
      closing = true;
      const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      for (const s of servers) s.closeIdleConnections();
      for (const session of sessions) session.close();
      let drainedInTime = true;
      if (inFlight > 0) {
        drainedInTime = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), drainMs);
          drained = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
      }
      // An HTTP/2 server tracks its HTTP/1.1 connections as http's does, without the method.
      for (const s of servers) HttpServer.prototype.closeAllConnections.call(s);
      for (const session of sessions) session.destroy();
      for (const socket of tlsSockets) socket.destroy();
      for (const socket of upgraded) socket.destroy();
      await Promise.all(closed);
      for (const g of live) g.pipeline.close();
      live.clear();
      rt.tunnels.close();
      rt.limiter.close();
      // Requests still running past the drain deadline are cut off rather than awaited.
      const pools = [...poolUsers.keys()];
      poolUsers.clear();
      await Promise.all(pools.map((p) => (drainedInTime ? p.close() : p.destroy())));
      // Spans of the requests just finished go to the collector, within its timeout. The tracer
      // outlives reloads (tracing is a restart-only section), so the first runtime's is every one's.
      await rt.tracer?.close();
    },
  };
}

/** A WebSocket opening handshake (RFC 6455 §4.1): a GET asking to upgrade to `websocket`. */
function isWebSocket(req: IncomingMessage): boolean {
  return req.method === 'GET' && req.headers.upgrade?.toLowerCase() === 'websocket';
}

const UPGRADE_ONLY = new Set(['upgrade', 'http2-settings']);

/** The response a connection is writing, if any (Node keeps it on the socket). */
function busyWith(socket: Socket): ServerResponse | null {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
}

/**
 * Calls `go` once the responses still being written on `socket` (requests pipelined ahead of
 * an upgrade) are over. Node let go of the connection when it saw the upgrade, and with it of
 * the listener that tells a response the socket drained: without one put back meanwhile, a
 * response larger than the socket's buffer would wait for that forever.
 */
function whenIdle(socket: Socket, go: () => void): void {
  const busy = busyWith(socket);
  if (busy === null) return go();
  const drained = () => busy.emit('drain');
  socket.on('drain', drained);
  busy.once('close', () => {
    socket.off('drain', drained);
    if (!socket.destroyed) whenIdle(socket, go);
  });
}

/**
 * Node hands every request with `Connection: upgrade` to the 'upgrade' event, whatever it
 * asks to upgrade to. Any other upgrade (`h2c`, say) is optional for the server (RFC 9110
 * §7.8), so the request is served as plain HTTP: its head is written again without `Upgrade`,
 * `HTTP2-Settings` and their `Connection` tokens, put back in front of what the socket still
 * holds, and the socket handed to the server as a new connection, which parses it as it
 * parses any request (a body, chunked or not, and later keep-alive requests included).
 *
 * Requests pipelined ahead of it may still be answering on the socket: their responses belong
 * to the connection Node just let go of, and one handed over now would queue its answer
 * behind them where nothing ever sends it (the connection hangs, and the requests behind it
 * are run upstream unanswered). So the hand-over waits, with the socket paused, until the last
 * of them is written; the answers go out one per request, in order. `closing` stops it once
 * the gateway shuts down.
 */
function replayWithoutUpgrade(server: GatewayServer, req: IncomingMessage, socket: Socket, head: Buffer, closing: () => boolean): void {
  if (busyWith(socket) !== null) {
    socket.pause();
    return whenIdle(socket, () => replayWithoutUpgrade(server, req, socket, head, closing));
  }
  if (closing()) {
    socket.destroy();
    return;
  }
  let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (UPGRADE_ONLY.has(lower)) continue;
    let value = raw[i + 1]!;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '' && !UPGRADE_ONLY.has(t.toLowerCase()))
        .join(', ');
      if (value === '') continue;
    }
    text += `${raw[i]}: ${value}\r\n`;
  }
  if (head.length > 0) socket.unshift(head);
  socket.unshift(Buffer.from(`${text}\r\n`, 'latin1'));
  server.emit('connection', socket);
  socket.resume();
}

const CLIENT_ERRORS: Readonly<Record<string, readonly [number, string, ErrorCode, string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', 'bad_request', 'The request headers are too large; send fewer or shorter ones.'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout', 'request_timeout', 'The request head did not arrive in time, so the connection is closed; send it again.'],
};

/**
 * Open connections per client address (`limits.max_connections_per_ip`), across every
 * listener: one address cannot hold all of a listener's `max_connections`. The address is the
 * socket peer (an IPv6 /64 counts as one); a trusted proxy speaks for many clients and is not counted. A connection over
 * the limit is answered 429 `too_many_connections` and closed before anything is read.
 */
class ConnectionsPerIp {
  readonly #open = new Map<string, number>();
  readonly #max: number;
  /** The runtime new connections meet: its trusted proxies, request-id header and doc links (a reload may change them). */
  readonly #rt: () => Runtime;

  constructor(max: number, rt: () => Runtime) {
    this.#max = max;
    this.#rt = rt;
  }

  readonly #counted = new WeakSet<Socket>();

  /**
   * Counts a new connection; false when it is over the limit: then a plain-HTTP one is answered
   * and closed, and a TLS one (nothing can be said before a handshake, which is what the limit
   * spares) is closed.
   */
  admit(socket: Socket, plain: boolean): boolean {
    // A connection handed to the server again (replayWithoutUpgrade) is counted once.
    if (this.#counted.has(socket)) return true;
    const peer = normalizePeer(socket.remoteAddress);
    const rt = this.#rt();
    if (!rt.trusted.empty && rt.trusted.isTrusted(peer)) return true;
    // An IPv6 client counts by its /64: one host may hold every address of it.
    const ip = clientOf(peer);
    const open = this.#open.get(ip) ?? 0;
    if (open >= this.#max) {
      if (!plain) {
        socket.destroy();
        return false;
      }
      const requestId = randomUUID();
      const body = JSON.stringify({
        error: 'too_many_connections',
        message: ERRORS.too_many_connections.message,
        doc_url: rt.docUrls.too_many_connections,
        request_id: requestId,
      });
      socket.end(
        `HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
          `cache-control: no-store\r\nretry-after: 1\r\n${rt.config.headers.request_id}: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
      );
      // What the client sent meanwhile is read and dropped (closing with it unread would reset
      // the connection before the 429 is read); the connection goes once the client closes
      // its side, or after a second.
      socket.on('error', () => socket.destroy());
      socket.once('end', () => socket.destroy());
      socket.resume();
      setTimeout(() => socket.destroy(), 1_000).unref();
      return false;
    }
    this.#counted.add(socket);
    this.#open.set(ip, open + 1);
    socket.once('close', () => {
      const n = this.#open.get(ip)!;
      if (n <= 1) this.#open.delete(ip);
      else this.#open.set(ip, n - 1);
    });
    return true;
  }
}

/**
 * A request Node could not parse or did not receive in time: answered in the gateway's error
 * shape (docs/architecture.md, Error body) with a fresh request id, 431 for oversized
 * headers, 408 for a timeout, 400 otherwise; then the connection is closed. A socket already
 * answering a request, or one the client reset, is only closed, as Node itself does.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket, requestIdHeader: string, docUrls: Readonly<Record<ErrorCode, string>>): void {
  const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  // A TLS handshake that failed or timed out (tlsClientError, which https servers pass on
  // here) has no channel to answer on.
  const tlsFailure = err.code !== undefined && (err.code.startsWith('ERR_TLS_') || err.code.startsWith('ERR_SSL_'));
  if (err.code === 'ECONNRESET' || tlsFailure || !socket.writable || current?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, text, code, message] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'Bad Request', 'bad_request', 'The request is not valid HTTP, so the connection is closed.'];
  const requestId = randomUUID();
  const body = JSON.stringify({ error: code, message, doc_url: docUrls[code], request_id: requestId });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `cache-control: no-store\r\n${requestIdHeader}: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
  );
}
