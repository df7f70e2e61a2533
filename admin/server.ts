import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import type { Config } from '../config/schema.js';
import { systemClock, type Clock } from '../core/clock.js';
import { HttpError } from '../core/errors.js';
import { KeyHasher } from '../core/key-hash.js';
import { Logger } from '../core/log.js';
import { InvalidCursorError, StoreUnavailableError, type Store } from '../core/store/store.js';
import { issuesToDetails } from '../core/validation.js';
import { authorize, TokenAuth, type Principal } from './auth.js';
import { readJson, requestIdOf, route, sendError, sendJson, validationError, type Route } from './http.js';
import { keySchemas } from './key-input.js';
import { KeyService } from './keys.js';

export interface AdminDeps {
  store: Store;
  clock?: Clock;
  log?: Logger;
  hasher?: KeyHasher;
  /** Where the gateway answers, per environment, for the curl example of a new key. */
  gatewayUrls?: Record<string, string>;
}

export interface Admin {
  readonly keys: KeyService;
  listen(): Promise<{ host: string; port: number; url: string }>;
  close(): Promise<void>;
}

/** The caller of the unauthenticated health routes. */
const PUBLIC: Principal = Object.freeze({ name: 'anonymous', role: 'viewer', tenant: null });

interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  url: URL;
  principal: Principal;
}

export function createAdmin(config: Config, deps: AdminDeps): Admin {
  const clock = deps.clock ?? systemClock;
  const log = deps.log ?? new Logger({ level: config.log.level, keyPrefix: config.keys.prefix });
  const hasher = deps.hasher ?? new KeyHasher(config.keys.pepper, config.keys.previous_peppers);
  const keys = new KeyService(config, deps.store, clock, hasher);
  const auth = new TokenAuth(config.admin.tokens);
  const schemas = keySchemas(config);
  const limit = config.admin.max_body_bytes;

  function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
    const result = schema.safeParse(input);
    if (!result.success) throw validationError(issuesToDetails(result.error.issues));
    return result.data;
  }

  function curlExample(environment: string, key: string): string {
    const base = deps.gatewayUrls?.[environment] ?? gatewayUrl(config, environment);
    const path = config.apis[0]?.path_prefix ?? '/';
    return `curl -H "Authorization: Bearer ${key}" ${base}${path === '/' ? '/' : path}`;
  }

  const routes: Route<Call>[] = [
    route('GET', '/healthz', async (c) => sendJson(c.res, 200, { status: 'ok' }, c.requestId), true),
    route('GET', '/readyz', async (c) => sendJson(c.res, 200, { status: 'ready', store: deps.store.kind }, c.requestId), true),
    route('POST', '/v1/keys', async (c) => {
      authorize(c.principal, 'write_keys');
      const input = parse(schemas.create, (await readJson(c.req, c.res, limit)) ?? {});
      const { record, key } = await keys.create(input, c.principal);
      log.info('key created', { request_id: c.requestId, key_id: record.id, by: c.principal.name });
      sendJson(c.res, 201, { ...keys.wire(record), key, curl: curlExample(record.environment, key) }, c.requestId);
    }),
    route('GET', '/v1/keys', async (c) => {
      authorize(c.principal, 'read');
      const query = parse(schemas.list, Object.fromEntries(c.url.searchParams));
      const page = await keys.list(query, c.principal);
      sendJson(c.res, 200, { data: page.data.map((r) => keys.wire(r)), next_cursor: page.next_cursor }, c.requestId);
    }),
    route('GET', '/v1/keys/:id', async (c, [id]) => {
      authorize(c.principal, 'read');
      sendJson(c.res, 200, keys.wire(await keys.get(id!, c.principal)), c.requestId);
    }),
    route('POST', '/v1/keys/:id/revoke', async (c, [id]) => {
      authorize(c.principal, 'write_keys');
      const { reason } = parse(schemas.revoke, await readJson(c.req, c.res, limit));
      const rec = await keys.revoke(id!, reason, c.principal);
      log.info('key revoked', { request_id: c.requestId, key_id: rec.id, by: c.principal.name });
      sendJson(c.res, 200, keys.wire(rec), c.requestId);
    }),
  ];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = requestIdOf(req);
    try {
      const url = new URL(req.url ?? '/', 'http://admin');
      const path = url.pathname;
      const allowed: string[] = [];
      for (const r of routes) {
        const m = r.pattern.exec(path);
        if (m === null) continue;
        if (r.method !== req.method) {
          allowed.push(r.method);
          continue;
        }
        const principal = r.public ? PUBLIC : auth.authenticate(req);
        await r.handler({ req, res, requestId, url, principal }, m.slice(1).map(decodeURIComponent));
        return;
      }
      if (allowed.length > 0) {
        res.setHeader('allow', allowed.join(', '));
        throw new HttpError('method_not_allowed', `${path} answers ${allowed.join(', ')}.`);
      }
      throw new HttpError('not_found', `No admin route ${req.method} ${path}.`);
    } catch (err) {
      sendError(res, toHttpError(err, log, requestId), requestId);
    }
  }

  const server: Server = createServer((req, res) => void handle(req, res));
  return {
    keys,
    async listen() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.admin.port, config.admin.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const addr = server.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      log.info('admin listening', { address: addr.address, port: addr.port });
      return { host: addr.address, port: addr.port, url: `http://${host}:${addr.port}` };
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}

function toHttpError(err: unknown, log: Logger, requestId: string): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof InvalidCursorError) return validationError([{ path: 'cursor', message: err.message }]);
  if (err instanceof StoreUnavailableError) {
    log.warn('store unavailable', { request_id: requestId, err: err.message });
    return new HttpError('service_unavailable', 'The key store is unavailable; nothing was changed. Retry shortly.');
  }
  if (err instanceof URIError) return new HttpError('bad_request', 'Malformed percent-encoding in the path.');
  log.error('admin request failed', { request_id: requestId, err: err instanceof Error ? err.stack : String(err) });
  return new HttpError('internal_error');
}

function gatewayUrl(config: Config, environment: string): string {
  const l = config.listeners.find((x) => x.environment === environment) ?? config.listeners[0];
  if (!l) return 'http://127.0.0.1:8080';
  const host = l.host.includes(':') ? `[${l.host}]` : l.host === '0.0.0.0' ? '127.0.0.1' : l.host;
  return `http://${host}:${l.port}`;
}
