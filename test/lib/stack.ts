import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request } from 'undici';
import { createAdmin, type Admin } from '../../admin/server.js';
import { parseConfig } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import { ManualClock } from '../../core/clock.js';
import { ConfigReloader } from '../../core/reload.js';
import { Logger } from '../../core/log.js';
import { SqliteStore } from '../../core/store/sqlite-store.js';
import type { Store } from '../../core/store/store.js';
import { createGateway, type Gateway } from '../../gateway/server.js';
import type { UsageEvent } from '../../gateway/runtime.js';
import { startUpstream, type Upstream } from './upstream.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const VIEWER_TOKEN = 'test-viewer-token-0123456789';
export const DEV_TOKEN = 'test-developer-token-0123456789';
export const TENANT_A_TOKEN = 'test-tenant-a-token-0123456789';
export const TENANT_B_TOKEN = 'test-tenant-b-token-0123456789';
export const TENANT_A_ADMIN_TOKEN = 'test-tenant-a-admin-token-0123456789';

/**
 * A config for tests: every port 0, the given upstream behind four APIs, loopback only. They
 * let requests that match no route rule through (`unlisted: allow`), as tests send all kinds
 * of paths; test/hostile/route-bypass.test.ts covers the default, `deny`.
 */
export function testConfig(upstream: string, overrides: Record<string, unknown> = {}): Config {
  return parseConfig(
    {
      listeners: [
        { port: 0, host: '127.0.0.1', environment: 'production' },
        { port: 0, host: '127.0.0.1', environment: 'test' },
      ],
      trusted_proxies: [],
      scopes: {
        catalog: ['read_campaigns', { name: 'write_campaigns', dangerous: true }, 'read_contacts', 'send_email'],
        presets: { read_only: ['read_campaigns', 'read_contacts'] },
      },
      plans: { default: { limit: 100, window_seconds: 60 }, tiny: { limit: 2, window_seconds: 60 } },
      apis: [
        {
          name: 'emails',
          path_prefix: '/v1/emails',
          upstream,
          timeout_ms: 2000,
          unlisted: 'allow',
          routes: [
            { method: 'POST', path: '/v1/emails/send', scopes: ['send_email'] },
            { method: 'GET', path: '/v1/emails/limited', scopes: [], rate_limit: { limit: 1, window_seconds: 60 } },
          ],
        },
        { name: 'contacts', path_prefix: '/v1/contacts', upstream, unlisted: 'allow' },
        { name: 'slow', path_prefix: '/v1/slow', upstream, timeout_ms: 200, unlisted: 'allow' },
        // Port 1 on loopback: nothing listens, connections are refused.
        { name: 'dead', path_prefix: '/v1/dead', upstream: 'http://127.0.0.1:1', unlisted: 'allow' },
      ],
      admin: {
        port: 0,
        tokens: [
          { name: 'ops', token: ADMIN_TOKEN, role: 'admin' },
          { name: 'viewer', token: VIEWER_TOKEN, role: 'viewer' },
          { name: 'dev', token: DEV_TOKEN, role: 'developer' },
          { name: 'tenant-a', token: TENANT_A_TOKEN, role: 'developer', tenant: 'a' },
          { name: 'tenant-b', token: TENANT_B_TOKEN, role: 'developer', tenant: 'b' },
          { name: 'tenant-a-admin', token: TENANT_A_ADMIN_TOKEN, role: 'admin', tenant: 'a' },
        ],
      },
      log: { level: 'error' },
      // Tests drive the scheduler with tick() and a ManualClock.
      scheduler: { enabled: false },
      ...overrides,
    },
    'test',
  );
}

/**
 * An API at /v1/emails with one rule that lets every method and path through with no scope:
 * for tests of what happens around the route rules (limits, headers, connections).
 */
export function catchAllApi(upstream: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'emails', path_prefix: '/v1/emails', upstream, routes: [{ method: '*', path: '/v1/emails/*' }], ...extra };
}

export interface Stack {
  config: Config;
  clock: ManualClock;
  store: Store;
  upstream: Upstream;
  gateway: Gateway;
  admin: Admin;
  /** Gateway base URL per environment. */
  gw: Record<string, string>;
  adminUrl: string;
  events: UsageEvent[];
  dir: string;
  logs: string[];
  /** Creates a key through the admin API; returns the plaintext and the record. */
  createKey(body?: Record<string, unknown>, token?: string): Promise<{ key: string; id: string; record: Record<string, unknown> }>;
  adminCall(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  close(): Promise<void>;
}

export interface StackOptions {
  overrides?: (upstream: string) => Record<string, unknown>;
  /** Wraps the store, e.g. to make it fail on demand. */
  wrapStore?: (store: Store) => Store;
  /** Opens another store (e.g. Redis) instead of the default, a SQLite database in a temp dir. */
  openStore?: (config: Config) => Promise<Store>;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const upstream = await startUpstream();
  const config = testConfig(upstream.url, options.overrides?.(upstream.url) ?? {});
  const dir = mkdtempSync(join(tmpdir(), 'keygate-test-'));
  const clock = new ManualClock(Date.UTC(2026, 5, 1, 12));
  const logs: string[] = [];
  const log = new Logger({ level: 'debug', write: (l) => logs.push(l), keyPrefix: config.keys.prefix });
  const inner = options.openStore ? await options.openStore(config) : await SqliteStore.open({ path: join(dir, 'keygate.db') });
  const store = options.wrapStore ? options.wrapStore(inner) : inner;
  const events: UsageEvent[] = [];
  const gw: Record<string, string> = {};
  // POST /v1/admin/reload reads the stack's configuration again (as JSON, which is YAML).
  const reloader = new ConfigReloader({
    initial: config,
    read: () => JSON.stringify(config),
    source: 'test',
    adjust: (c) => c,
    log,
    state: { generation: 1, lastSuccess: 1, lastAt: clock.now() / 1000 },
  });
  // Tests drive the alert watch and deliverer with tick(), as the scheduler.
  const admin = createAdmin(config, { store, clock, log, gatewayUrls: gw, alertTimers: false, reload: () => reloader.reload() });
  const gateway = createGateway(config, { store, clock, log, sinks: [(e) => events.push(e), (e) => admin.usage.add(e)] });
  reloader.add({ name: 'admin', prepare: (next) => admin.prepareReload(next) });
  reloader.add({ name: 'gateway', prepare: (next) => gateway.prepareReload(next) });
  for (const l of await gateway.listen()) gw[l.environment] = l.url;
  const adminUrl = (await admin.listen()).url;

  const adminCall: Stack['adminCall'] = async (method, path, body, token = ADMIN_TOKEN) => {
    const res = await request(adminUrl + path, {
      method: method as 'GET',
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };

  return {
    config,
    clock,
    store,
    upstream,
    gateway,
    admin,
    gw,
    adminUrl,
    events,
    dir,
    logs,
    adminCall,
    async createKey(body = {}, token = ADMIN_TOKEN) {
      const res = await adminCall('POST', '/v1/keys', { name: 'test key', ...body }, token);
      if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
      return { key: res.body.key, id: res.body.id, record: res.body };
    },
    async close() {
      await gateway.close(0);
      await admin.close();
      await store.close();
      await upstream.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A request through the gateway with a real socket; the body is read whole (small bodies only). */
export async function call(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: any; text: string }> {
  const res = await request(url, {
    method: (options.method ?? 'GET') as 'GET',
    headers: options.headers,
    body: options.body,
  });
  const text = await res.body.text();
  let body: unknown = undefined;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.statusCode, headers: res.headers, body, text };
}

export const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** A request whose path is sent exactly as written (URL parsers would resolve dot segments). */
export function rawCall(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string | string[]>; body?: string } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: any; text: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: u.hostname, port: u.port, path, method: options.method ?? 'GET', headers: options.headers, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode!, headers: res.headers, body, text });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
