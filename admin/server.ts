import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Actor } from '../core/audit.js';
import { systemClock, type Clock } from '../core/clock.js';
import { errorDocUrls, HttpError } from '../core/errors.js';
import { normalizePeer, parseCidr, TrustedProxies } from '../core/ip.js';
import { KeyHasher } from '../core/key-hash.js';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { listenOn } from '../core/listen.js';
import { hstsValue, TlsContexts } from '../core/tls.js';
import { Logger } from '../core/log.js';
import type { ProcessMetrics } from '../core/metrics.js';
import { Registry } from 'prom-client';
import { type Store } from '../core/store/store.js';
import { issuesToDetails } from '../core/validation.js';
import { AlertService } from './alerts/service.js';
import { Deliverer } from './alerts/deliver.js';
import { alertRoutes } from './alerts/routes.js';
import { AlertWatch } from './alerts/watch.js';
import { AppService } from './applications.js';
import { authorize, TokenAuth } from './auth.js';
import { readJson, requestIdOf, sendError, validationError, type Call, type Route } from './http.js';
import { keySchemas } from './key-input.js';
import { KeyService } from './keys.js';
import { buildOpenApi } from './openapi.js';
import { leakRoutes } from './leaks.js';
import { adminRoutes } from './routes.js';
import { Scheduler } from './scheduler.js';
import { recorderOptions, UsageRecorder } from './usage.js';
import { AdminMetrics } from './metrics.js';
import { createDashboard } from './dashboard/dashboard.js';
import { usageRoutes } from './usage-routes.js';
import { reloadRoute, type ReloadHandler } from './reload-route.js';
import type { PreparedPart } from '../core/reload.js';
import { InvalidCursorError, StoreUnavailableError } from '../core/internal-errors.js';

export interface AdminDeps {
  store: Store;
  clock?: Clock;
  log?: Logger;
  hasher?: KeyHasher;
  /** Process-wide metrics (store round trips, Node) to serve beside the admin plane's own. */
  processMetrics?: ProcessMetrics;
  /** Where the gateway answers, per environment, for the curl example of a new key. */
  gatewayUrls?: Record<string, string>;
  /** False: the alert watch and deliverer run only when told (`tick()`), as tests drive them with a ManualClock. */
  alertTimers?: boolean;
  /** Reloads the process's configuration (POST /v1/admin/reload); absent, the route answers 409. */
  reload?: ReloadHandler;
}

export interface Admin {
  readonly keys: KeyService;
  readonly apps: AppService;
  readonly scheduler: Scheduler;
  readonly alerts: { service: AlertService; watch: AlertWatch; deliverer: Deliverer };
  /** Where the gateway's usage events go when both planes run in one process. */
  readonly usage: UsageRecorder;
  /**
   * Builds what the reloadable sections of `next` give the admin plane (routes, scopes,
   * policies, trusted proxies), changing nothing until `apply` (core/reload.ts).
   */
  prepareReload(next: Config): PreparedPart;
  listen(): Promise<{ host: string; port: number; url: string }>;
  /**
   * Reads the admin listener's certificate files again (admin.tls), changing nothing until
   * `apply`; throws TlsFilesError when any is refused.
   */
  prepareTls(): PreparedPart;
  close(): Promise<void>;
}

export function createAdmin(config: Config, deps: AdminDeps): Admin {
  const clock = deps.clock ?? systemClock;
  const log = deps.log ?? new Logger({ level: config.log.level, keyPrefix: config.keys.prefix });
  const hasher = deps.hasher ?? new KeyHasher(config.keys.pepper, config.keys.previous_peppers);
  const keys = new KeyService(config, deps.store, clock, hasher);
  const apps = new AppService(deps.store, clock);
  const scheduler = new Scheduler(keys, deps.store, log, config.scheduler.interval_ms);
  const alertService = new AlertService(config, deps.store, clock, log);
  keys.onCommitted((events, records) => alertService.fromKeyEvents(events, records));
  const alerts = {
    service: alertService,
    watch: new AlertWatch(config, deps.store, alertService, clock, log),
    deliverer: new Deliverer(config, deps.store, alertService, clock, log),
  };
  const usage = new UsageRecorder(deps.store, log, recorderOptions(config.usage));
  const auth = new TokenAuth(config.admin.tokens);
  const limit = config.admin.max_body_bytes;
  const dashboard = config.dashboard.enabled ? createDashboard(config, { clock, auth, gatewayUrls: deps.gatewayUrls ?? {} }) : null;
  const metrics = config.metrics.enabled ? new AdminMetrics(deps.store, usage) : null;
  const registry = metrics && deps.processMetrics ? Registry.merge([metrics.registry, deps.processMetrics.registry]) : (metrics?.registry ?? null);

  const parse = <S extends z.ZodType>(schema: S, input: unknown): z.output<S> => {
    const result = schema.safeParse(input);
    if (!result.success) throw validationError(issuesToDetails(result.error.issues));
    return result.data;
  };

  /**
   * What the admin plane reads from the reloadable sections of the configuration (scopes,
   * policies, APIs, plans, trusted proxies, error links): built at start-up and by each reload,
   * and swapped whole; a request reads the plane once, at its start.
   */
  interface Plane {
    readonly routes: readonly Route<Call>[];
    readonly proxies: TrustedProxies;
    readonly docUrls: ReturnType<typeof errorDocUrls>;
  }

  function buildPlane(config: Config): Plane {
    const schemas = keySchemas(config);
    const routes: Route<Call>[] = [
      ...adminRoutes({ config, keys, apps, schemas, log, gatewayUrls: deps.gatewayUrls ?? {}, store: deps.store }),
      ...usageRoutes({ config, keys, store: deps.store, clock, usage }),
      ...leakRoutes({ config, keys }),
      ...alertRoutes({ store: deps.store }),
      reloadRoute({ store: deps.store, clock, log, reload: deps.reload ?? null }),
    ];
    let openapi: string | undefined; // built on first use, from the whole table including this route
    routes.push({
      method: 'GET',
      path: '/openapi.json',
      pattern: /^\/openapi\.json$/,
      permission: 'public',
      doc: {
        operationId: 'getOpenApi',
        tag: 'Operations',
        summary: 'This document',
        description: 'The OpenAPI 3.1 description of this API, built from the routes that serve it.',
        responses: { 200: { description: 'The OpenAPI document.', schema: 'OpenApiDocument' } },
      },
      handler: async (c) => {
        openapi ??= JSON.stringify(buildOpenApi(routes, config));
        c.res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(openapi), 'x-request-id': c.requestId });
        c.res.end(openapi);
      },
    });
    if (registry) {
      routes.push({
        method: 'GET',
        path: '/metrics',
        pattern: /^\/metrics$/,
        permission: 'public',
        doc: {
          operationId: 'getMetrics',
          tag: 'Operations',
          summary: 'Prometheus metrics',
          description: 'The admin plane’s metrics and the process’s, for Prometheus to scrape.',
          responses: { 200: { description: 'Prometheus text exposition format.', media: { 'text/plain': { type: 'string' } } } },
        },
        handler: async (c) => {
          const text = await registry.metrics();
          c.res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text), 'x-request-id': c.requestId });
          c.res.end(text);
        },
      });
    }
    return { routes, proxies: new TrustedProxies(config.trusted_proxies.map((c) => parseCidr(c)!)), docUrls: errorDocUrls(config.errors.doc_base_url) };
  }

  let plane = buildPlane(config);

  let closing = false;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Once closing, each answer ends its connection: a client that keeps its connection busy
    // (a gateway shipping usage back to back) would otherwise hold the close open.
    if (closing) res.shouldKeepAlive = false;
    const requestId = requestIdOf(req);
    const { routes, proxies, docUrls } = plane;
    // The documented path of the route that answered; 'unmatched' for anything else.
    let matched = 'unmatched';
    if (metrics) {
      const began = performance.now();
      res.once('finish', () => metrics.record(matched, req.method ?? 'GET', res.statusCode, (performance.now() - began) / 1000));
    }
    try {
      const url = new URL(req.url ?? '/', 'http://admin');
      const path = url.pathname;
      const clientIp = () => proxies.resolve(normalizePeer(req.socket.remoteAddress), req.headers['x-forwarded-for']).ip;
      if (dashboard && (path === '/dashboard' || path.startsWith('/dashboard/'))) {
        matched = '/dashboard';
        await dashboard.handle(req, res, path, requestId, clientIp());
        return;
      }
      const allowed: string[] = [];
      for (const r of routes) {
        const m = r.pattern.exec(path);
        if (m === null) continue;
        if (r.method !== req.method) {
          allowed.push(r.method);
          continue;
        }
        matched = r.path;
        // A bearer token wins; without one, the dashboard's session cookie stands for a token.
        const principal =
          r.permission === 'public' ? null : ((req.headers.authorization === undefined ? dashboard?.principalOf(req, `${r.method} ${r.path}`) : null) ?? auth.authenticate(req));
        if (principal) authorize(principal, r.permission);
        // A parameter a route does not take is refused, not ignored: a misspelt filter must not read as "none match".
        if (r.doc.query === undefined && url.search.length > 1) {
          throw validationError([...new Set(url.searchParams.keys())].map((name) => ({ path: name, message: 'unknown query parameter; this route takes none' })));
        }
        const ip = clientIp();
        const actor: Actor = { name: principal?.name ?? 'anonymous', role: principal?.role ?? 'none', tenant: principal?.tenant ?? null, ip, request_id: requestId };
        const call: Call = { req, res, requestId, url, actor, parse, body: (max = limit) => readJson(req, res, max) };
        await r.handler(call, m.slice(1).map(decodeURIComponent));
        return;
      }
      if (allowed.length > 0) {
        res.setHeader('allow', allowed.join(', '));
        throw new HttpError('method_not_allowed', `${path} answers ${allowed.join(', ')}.`);
      }
      throw new HttpError('not_found', `No admin route ${req.method} ${path}.`);
    } catch (err) {
      sendError(res, toHttpError(err, log, requestId), requestId, docUrls);
    }
  }

  const tlsConfig = config.admin.tls;
  const tls = tlsConfig === null ? null : new TlsContexts(tlsConfig);
  const hsts = tlsConfig?.hsts ? hstsValue(tlsConfig.hsts) : null;
  const server: Server =
    tls === null
      ? createServer((req, res) => void handle(req, res))
      : (createHttpsServer(tls.serverOptions(config.limits.tls_handshake_timeout_ms), (req, res) => {
          if (hsts !== null) res.setHeader('strict-transport-security', hsts);
          void handle(req, res);
        }) as unknown as Server);
  if (tls !== null) tls.attach(server as unknown as HttpsServer);
  return {
    keys,
    apps,
    scheduler,
    alerts,
    usage,
    prepareReload(next) {
      const built = buildPlane(next);
      return {
        apply() {
          keys.reconfigure(next);
          alertService.reconfigure(next);
          alerts.watch.reconfigure(next);
          plane = built;
        },
      };
    },
    prepareTls() {
      return tls?.prepareReload() ?? { apply() {} };
    },
    async listen() {
      await dashboard?.ready();
      const bound = await listenOn(server, config.admin.port, config.admin.host, tls === null ? 'http' : 'https');
      if (config.scheduler.enabled) scheduler.start();
      if (config.alerts.enabled && deps.alertTimers !== false) {
        alerts.watch.start();
        alerts.deliverer.start();
      }
      usage.start();
      log.info('admin listening', { address: bound.host, port: bound.port });
      return bound;
    },
    async close() {
      await scheduler.close();
      await Promise.all([alerts.watch.close(), alerts.deliverer.close()]);
      await usage.close();
      closing = true;
      await new Promise<void>((resolve) => {
        // Connections busy now are idle after their answer; they are closed then.
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        server.close(() => {
          clearInterval(idle);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}

function toHttpError(err: unknown, log: Logger, requestId: string): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof InvalidCursorError) return validationError([{ path: 'cursor', message: err.message }]);
  if (err instanceof StoreUnavailableError) {
    log.warn('store unavailable', { request_id: requestId, err: err.message, uncertain: err.uncertain });
    return new HttpError(
      'service_unavailable',
      err.uncertain
        ? 'The key store did not answer in time. The change may still be applied, whole or not at all: check the record before retrying.'
        : 'The key store is unavailable; nothing was changed. Retry shortly.',
    );
  }
  if (err instanceof URIError) return new HttpError('bad_request', 'Malformed percent-encoding in the path.');
  log.error('admin request failed', { request_id: requestId, err: err instanceof Error ? err.stack : String(err) });
  return new HttpError('internal_error');
}
