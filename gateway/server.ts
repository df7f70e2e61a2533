import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Config } from '../config/schema.js';
import { systemClock, type Clock } from '../core/clock.js';
import { KeyHasher } from '../core/key-hash.js';
import { Logger } from '../core/log.js';
import type { Store } from '../core/store/store.js';
import { createPipeline } from './pipeline.js';
import { buildRuntime, type Runtime, type UsageSink } from './runtime.js';

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
  readonly runtime: Runtime;
  /** Binds every listener; resolves with the bound addresses (port 0 becomes a real port). */
  listen(): Promise<BoundListener[]>;
  /** Stops accepting, lets in-flight requests finish for up to `drainMs`, then closes everything. */
  close(drainMs?: number): Promise<void>;
}

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
  const pipeline = createPipeline(rt);
  const servers: Server[] = [];
  const upgraded = new Set<Socket>();
  let inFlight = 0;
  let drained: (() => void) | null = null;
  const onDone = () => {
    if (--inFlight === 0 && drained) drained();
  };

  for (const l of config.listeners) {
    const listener = Object.freeze({ environment: l.environment });
    const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
      inFlight++;
      pipeline.handle(req, res, listener, onDone);
    });
    server.on('upgrade', (req, socket: Socket, head: Buffer) => {
      upgraded.add(socket);
      socket.once('close', () => upgraded.delete(socket));
      pipeline.upgrade(req, socket, head, listener);
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (socket.writable && err.code !== 'ECONNRESET') {
        const body = JSON.stringify({ error: 'bad_request', message: 'Malformed HTTP request.', request_id: '' });
        socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      } else {
        socket.destroy();
      }
    });
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
      pipeline.close();
      rt.limiter.close();
      // Requests still running past the drain deadline are cut off rather than awaited.
      await Promise.all(rt.apis.map((a) => (drainedInTime ? a.pool.close() : a.pool.destroy())));
    },
  };
}
