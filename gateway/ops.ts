import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TlsContexts } from '../core/tls.js';
import { Registry } from 'prom-client';
import type { ErrorCode } from '../core/errors.js';
import type { ProcessMetrics } from '../core/metrics.js';
import type { Runtime } from './runtime.js';
import { createVerifyApi, readVerifyToken } from './verify.js';

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
 * so load balancers should keep it; 503 only while stopping) and `/metrics` (Prometheus); and,
 * with `status_listener.verify.enabled`, the verify API (gateway/verify.ts, docs/verify.md).
 * A request must arrive whole within `status_listener.verify.timeout_ms`. Over TLS when
 * `status_listener.tls` is set (`tls` built from it by the caller, who reloads it).
 */
export function createOpsServer(
  runtime: Runtime | (() => Runtime),
  stopping: () => boolean,
  processMetrics?: ProcessMetrics,
  tls: TlsContexts | null = null,
): Server {
  // A function gives the gateway's current runtime (a reload swaps it); its metrics, store and
  // limiter are the same in every generation, its doc links are the configuration's latest.
  const current = typeof runtime === 'function' ? runtime : () => runtime;
  const rt = current();
  const registry = rt.metrics === null ? null : processMetrics ? Registry.merge([rt.metrics.registry, processMetrics.registry]) : rt.metrics.registry;
  // The verify API judges keys by the current generation's APIs, routes, scopes and plans: it is
  // built again, once, for each runtime a reload brings (status_listener itself is read at
  // start-up only, so whether it is on does not change).
  let verifyOf = rt;
  const token = readVerifyToken(rt);
  let verify = createVerifyApi(rt, token);
  const currentVerify = () => {
    const now = current();
    if (now !== verifyOf) {
      verifyOf = now;
      verify = createVerifyApi(now, token);
    }
    return verify;
  };
  const timeoutMs = rt.config.status_listener?.verify.timeout_ms ?? 10_000;
  const options = { requestTimeout: timeoutMs, headersTimeout: timeoutMs, connectionsCheckingInterval: Math.min(1_000, timeoutMs) };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const verify = currentVerify();
    if (verify !== null && verify.handle(req, res, path)) return;
    const json = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(text);
    };
    const fail = (status: number, code: ErrorCode, message: string) => json(status, { error: code, message, doc_url: current().docUrls[code] });
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
    fail(404, 'not_found', `Try /healthz, /readyz${registry === null ? '' : ', /metrics'}${verify === null ? '' : ', POST /v1/keys/verify or /auth'}.`);
  };
  if (tls === null) return createServer(options, handler);
  const server = createHttpsServer({ ...options, ...tls.serverOptions(rt.config.limits.tls_handshake_timeout_ms) }, handler);
  tls.attach(server);
  return server as unknown as Server;
}

