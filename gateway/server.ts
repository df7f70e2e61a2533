import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Config } from '../config/schema.js';
import { systemClock, type Clock } from '../core/clock.js';
import { KeyHasher } from '../core/key-hash.js';
import { Logger } from '../core/log.js';
import type { Store } from '../core/store/store.js';
import { createPipeline, GatewayResponse } from './pipeline.js';
import { buildRuntime, type Runtime, type UsageSink } from './runtime.js';

export interface GatewayDeps {
  store: Store;
  clock?: Clock;
  log?: Logger;
  hasher?: KeyHasher;
  sinks?: UsageSink[];
  /** Node HTTP server limits (tests shorten the header timeout); Node's defaults otherwise. */
  serverOptions?: Pick<ServerOptions, 'headersTimeout' | 'connectionsCheckingInterval' | 'maxHeaderSize'>;
}

export interface BoundListener {
  environment: string;
  host: string;
  port: number;
  url: string;
}

export interface Gateway {
  readonly runtime: Runtime;
  /** Binds every listener; resolves with the bound addresses (port 0 becomes a real port). */
  listen(): Promise<BoundListener[]>;
  /** Stops accepting, lets in-flight requests finish for up to `drainMs`, then closes everything. */
  close(drainMs?: number): Promise<void>;
}

type GatewayServer = Server<typeof IncomingMessage, typeof GatewayResponse>;

export function hasherFor(config: Config): KeyHasher {
  return new KeyHasher(config.keys.pepper, config.keys.previous_peppers);
}

export function createGateway(config: Config, deps: GatewayDeps): Gateway {
  const log = deps.log ?? new Logger({ level: config.log.level, keyPrefix: config.keys.prefix });
  const rt = buildRuntime(config, {
    clock: deps.clock ?? systemClock,
    log,
    store: deps.store,
    hasher: deps.hasher ?? hasherFor(config),
  });
  rt.sinks.push(...(deps.sinks ?? []));
  if (config.log.access) rt.sinks.push((event) => log.info('request', { ...event, time: new Date(event.time).toISOString() }));
  const servers: GatewayServer[] = [];
  const upgraded = new Set<Socket>();
  let inFlight = 0;
  let drained: (() => void) | null = null;
  const pipeline = createPipeline(rt, () => {
    if (--inFlight === 0 && drained) drained();
  });

  for (const l of config.listeners) {
    const listener = Object.freeze({ environment: l.environment });
    const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0, ServerResponse: GatewayResponse, ...deps.serverOptions }, (req, res) => {
      inFlight++;
      pipeline.handle(req, res, listener);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      if (!isWebSocket(req)) return replayWithoutUpgrade(server, req, socket, head);
      upgraded.add(socket);
      socket.once('close', () => upgraded.delete(socket));
      pipeline.upgrade(req, socket, head, listener);
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket, config.headers.request_id));
    servers.push(server);
  }

  return {
    runtime: rt,
    async listen() {
      const bound: BoundListener[] = [];
      for (const [i, server] of servers.entries()) {
        const l = config.listeners[i]!;
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(l.port, l.host, () => {
            server.off('error', reject);
            resolve();
          });
        });
        const addr = server.address() as AddressInfo;
        const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
        bound.push({ environment: l.environment, host: addr.address, port: addr.port, url: `http://${host}:${addr.port}` });
        log.info('gateway listening', { environment: l.environment, address: addr.address, port: addr.port });
      }
      return bound;
    },
    async close(drainMs = config.shutdown.drain_timeout_ms) {
      const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      for (const s of servers) s.closeIdleConnections();
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
      for (const s of servers) s.closeAllConnections();
      for (const socket of upgraded) socket.destroy();
      await Promise.all(closed);
      rt.tunnels.close();
      rt.limiter.close();
      // Requests still running past the drain deadline are cut off rather than awaited.
      await Promise.all(rt.apis.map((a) => (drainedInTime ? a.pool.close() : a.pool.destroy())));
    },
  };
}

/** A WebSocket opening handshake (RFC 6455 §4.1): a GET asking to upgrade to `websocket`. */
function isWebSocket(req: IncomingMessage): boolean {
  return req.method === 'GET' && req.headers.upgrade?.toLowerCase() === 'websocket';
}

const UPGRADE_ONLY = new Set(['upgrade', 'http2-settings']);

/**
 * Node hands every request with `Connection: upgrade` to the 'upgrade' event, whatever it
 * asks to upgrade to. Any other upgrade (`h2c`, say) is optional for the server (RFC 9110
 * §7.8), so the request is served as plain HTTP: its head is written again without `Upgrade`,
 * `HTTP2-Settings` and their `Connection` tokens, put back in front of what the socket still
 * holds, and the socket handed to the server as a new connection, which parses it as it
 * parses any request (a body, chunked or not, and later keep-alive requests included).
 */
function replayWithoutUpgrade(server: GatewayServer, req: IncomingMessage, socket: Socket, head: Buffer): void {
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
}

const CLIENT_ERRORS: Readonly<Record<string, readonly [number, string, string, string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', 'bad_request', 'Request headers are too large.'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout', 'bad_request', 'The request was not received in time.'],
};

/**
 * A request Node could not parse or did not receive in time: answered in the gateway's error
 * shape (DESIGN.md §4) with a fresh request id, 431 for oversized headers, 408 for a timeout,
 * 400 otherwise; then the connection is closed. A socket already answering a request, or
 * one the client reset, is only closed, as Node itself does.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket, requestIdHeader: string): void {
  const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, text, code, message] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'Bad Request', 'bad_request', 'Malformed HTTP request.'];
  const requestId = randomUUID();
  const body = JSON.stringify({ error: code, message, request_id: requestId });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `cache-control: no-store\r\n${requestIdHeader}: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
  );
}
