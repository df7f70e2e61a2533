import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TlsContexts } from '../core/tls.js';
import { Registry } from 'prom-client';
import type { ErrorCode } from '../core/errors.js';
import type { ProcessMetrics } from '../core/metrics.js';
import type { Runtime } from './runtime.js';

/** What a gateway process can do right now, as /readyz reports it. */
export interface GatewayHealth {
  /**
   * `ready`; `degraded` while the store cannot be reached (cached keys still pass, uncached
   * ones get 503, rate limits follow `on_store_failure`); `stopping` once a shutdown began.
   */
  status: 'ready' | 'degraded' | 'stopping';
  store: { kind: string; reachable: boolean };
  /** `shared` (Redis buckets), `local` (this process's), or `fallback` (shared, but failing). */
  rate_limiter: 'shared' | 'local' | 'fallback';
  cached_keys: number;
}

export function gatewayHealth(rt: Runtime, stopping: boolean): GatewayHealth {
  const reachable = rt.store.available;
  const fallback = rt.limiter.degraded;
  return {
    status: stopping ? 'stopping' : reachable && !fallback ? 'ready' : 'degraded',
    store: { kind: rt.store.kind, reachable },
    rate_limiter: fallback ? 'fallback' : rt.limiter.shared ? 'shared' : 'local',
    cached_keys: rt.keys.size,
  };
}

/**
 * The operations listener beside the gateway's client listeners: `/healthz` (the process
 * answers), `/readyz` (200 `ready` or `degraded`: a degraded gateway still serves cached keys,
 * so load balancers should keep it; 503 only while stopping) and `/metrics` (Prometheus).
 * Over TLS when `status_listener.tls` is set (`tls` built from it by the caller, who reloads it).
 */
export function createOpsServer(rt: Runtime, stopping: () => boolean, processMetrics?: ProcessMetrics, tls: TlsContexts | null = null): Server {
  const registry = rt.metrics === null ? null : processMetrics ? Registry.merge([rt.metrics.registry, processMetrics.registry]) : rt.metrics.registry;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    const json = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(text);
    };
    const fail = (status: number, code: ErrorCode, message: string) => json(status, { error: code, message, doc_url: rt.docUrls[code] });
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'method_not_allowed', 'Use GET.');
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      const health = gatewayHealth(rt, stopping());
      return json(health.status === 'stopping' ? 503 : 200, health);
    }
    if (path === '/metrics' && registry !== null) {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        () => fail(500, 'internal_error', 'Metrics could not be collected.'),
      );
      return;
    }
    fail(404, 'not_found', `Try /healthz, /readyz${registry === null ? '' : ' or /metrics'}.`);
  };
  if (tls === null) return createServer(handler);
  const server = createHttpsServer(tls.serverOptions(rt.config.limits.tls_handshake_timeout_ms), handler);
  tls.attach(server);
  return server as unknown as Server;
}

