import type { Config } from '../config/schema.js';
import { toIso } from '../core/clock.js';
import type { KeyEvent } from '../core/audit.js';
import type { Logger } from '../core/log.js';
import type { KeyRecord } from '../core/record.js';
import type { Store } from '../core/store/store.js';
import type { AppService } from './applications.js';
import { route, sendJson, type Route } from './http.js';
import type { KeySchemas } from './key-input.js';
import type { KeyService } from './keys.js';
import type { Call } from './http.js';

export interface RouteDeps {
  config: Config;
  keys: KeyService;
  apps: AppService;
  schemas: KeySchemas;
  log: Logger;
  store: Store;
  gatewayUrls: Record<string, string>;
}

const KEY = 'The key record';
const APP = 'The application record';

/** Every admin route: method, documented path, the permission it needs, its doc, its handler. */
export function adminRoutes(d: RouteDeps): Route<Call>[] {
  const { keys, apps, schemas, log, config } = d;

  function curlExample(environment: string, key: string): string {
    const base = d.gatewayUrls[environment] ?? gatewayUrl(config, environment);
    const path = config.apis[0]?.path_prefix ?? '/';
    return `curl -H "Authorization: Bearer ${key}" ${base}${path}`;
  }

  const issued = (c: Call, record: KeyRecord, key: string, what: string) => {
    log.info(what, { request_id: c.requestId, key_id: record.id, by: c.actor.name });
    sendJson(c.res, 201, { ...keys.wire(record), key, curl: curlExample(record.environment, key) }, c.requestId);
  };
  const keyReply = (c: Call, rec: KeyRecord) => sendJson(c.res, 200, keys.wire(rec), c.requestId);

  return [
    route('GET', '/healthz', 'public', { summary: 'Liveness', responses: { 200: 'The process is up' } }, async (c) =>
      sendJson(c.res, 200, { status: 'ok' }, c.requestId),
    ),
    // The admin plane can neither read nor write without its store: unready while it is away.
    route('GET', '/readyz', 'public', { summary: 'Readiness', responses: { 200: 'Ready to serve', 503: 'The store cannot be reached' } }, async (c) =>
      d.store.available
        ? sendJson(c.res, 200, { status: 'ready', store: { kind: d.store.kind, reachable: true } }, c.requestId)
        : sendJson(c.res, 503, { status: 'degraded', store: { kind: d.store.kind, reachable: false } }, c.requestId),
    ),

    route('POST', '/v1/keys', 'write_keys', { summary: 'Create a key; the key itself is in this answer only', body: schemas.create, responses: { 201: 'The new key record, with `key` and a `curl` example' } }, async (c) => {
      const input = c.parse(schemas.create, (await c.body()) ?? {});
      const { record, key } = await keys.create(input, c.actor);
      issued(c, record, key, 'key created');
    }),
    route('GET', '/v1/keys', 'read', { summary: 'List keys, newest first', query: schemas.list, responses: { 200: '`{ data, next_cursor }`' } }, async (c) => {
      const query = c.parse(schemas.list, Object.fromEntries(c.url.searchParams));
      const page = await keys.list(query, c.actor);
      sendJson(c.res, 200, { data: page.data.map((r) => keys.wire(r)), next_cursor: page.next_cursor }, c.requestId);
    }),
    route('GET', '/v1/keys/{id}', 'read', { summary: 'One key (never the key itself, never its hash)', responses: { 200: KEY } }, async (c, [id]) =>
      keyReply(c, await keys.get(id!, c.actor)),
    ),
    route('PATCH', '/v1/keys/{id}', 'write_keys', { summary: 'Edit a key; the gateway applies it on the next request', body: schemas.update, responses: { 200: KEY } }, async (c, [id]) => {
      const patch = c.parse(schemas.update, (await c.body()) ?? {});
      keyReply(c, await keys.update(id!, patch, c.actor));
    }),
    route('POST', '/v1/keys/{id}/regenerate', 'write_keys', { summary: 'Issue a successor key, with an optional grace for the old one', body: schemas.regenerate, responses: { 201: 'The new key record, with `key`' } }, async (c, [id]) => {
      const { grace_period_seconds } = c.parse(schemas.regenerate, await c.body());
      const { record, key } = await keys.regenerate(id!, grace_period_seconds, c.actor);
      issued(c, record, key, 'key regenerated');
    }),
    route('POST', '/v1/keys/{id}/revoke', 'write_keys', { summary: 'Revoke a key for good', body: schemas.revoke, responses: { 200: KEY } }, async (c, [id]) => {
      const { reason } = c.parse(schemas.revoke, await c.body());
      keyReply(c, await keys.revoke(id!, reason, c.actor));
    }),
    route('POST', '/v1/keys/{id}/suspend', 'write_keys', { summary: 'Suspend a key (reversible)', body: schemas.suspend, responses: { 200: KEY } }, async (c, [id]) => {
      const { reason } = c.parse(schemas.suspend, await c.body());
      keyReply(c, await keys.suspend(id!, reason, c.actor));
    }),
    route('POST', '/v1/keys/{id}/reactivate', 'write_keys', { summary: 'Lift a key’s own suspension', responses: { 200: KEY } }, async (c, [id]) => {
      await c.body();
      keyReply(c, await keys.reactivate(id!, c.actor));
    }),
    route('GET', '/v1/keys/{id}/events', 'read', { summary: 'The key’s lifecycle timeline, with what is scheduled next', responses: { 200: '`{ data, scheduled }`' } }, async (c, [id]) => {
      const rec = await keys.get(id!, c.actor);
      const events = await keys.events(id!, c.actor);
      sendJson(c.res, 200, { data: events.map(eventToWire), scheduled: upcoming(rec, keys.clock.now()) }, c.requestId);
    }),

    route('POST', '/v1/applications', 'admin', { summary: 'Create an application', body: schemas.appCreate, responses: { 201: APP } }, async (c) => {
      const input = c.parse(schemas.appCreate, (await c.body()) ?? {});
      sendJson(c.res, 201, apps.wire(await apps.create(input, c.actor)), c.requestId);
    }),
    route('GET', '/v1/applications', 'read', { summary: 'List applications, newest first', query: schemas.appList, responses: { 200: '`{ data, next_cursor }`' } }, async (c) => {
      const query = c.parse(schemas.appList, Object.fromEntries(c.url.searchParams));
      const page = await apps.list(query, c.actor);
      sendJson(c.res, 200, { data: page.data.map((a) => apps.wire(a)), next_cursor: page.next_cursor }, c.requestId);
    }),
    route('GET', '/v1/applications/{id}', 'read', { summary: 'One application', responses: { 200: APP } }, async (c, [id]) =>
      sendJson(c.res, 200, apps.wire(await apps.get(id!, c.actor)), c.requestId),
    ),
    route('PATCH', '/v1/applications/{id}', 'admin', { summary: 'Edit an application', body: schemas.appUpdate, responses: { 200: APP } }, async (c, [id]) => {
      const patch = c.parse(schemas.appUpdate, (await c.body()) ?? {});
      sendJson(c.res, 200, apps.wire(await apps.update(id!, patch, c.actor)), c.requestId);
    }),
    route('POST', '/v1/applications/{id}/suspend', 'admin', { summary: 'Suspend an application and, with it, every one of its keys', body: schemas.suspend, responses: { 200: APP } }, async (c, [id]) => {
      const { reason } = c.parse(schemas.suspend, await c.body());
      sendJson(c.res, 200, apps.wire(await apps.suspend(id!, reason, c.actor)), c.requestId);
    }),
    route('POST', '/v1/applications/{id}/reactivate', 'admin', { summary: 'Reactivate an application; keys suspended on their own stay suspended', responses: { 200: APP } }, async (c, [id]) => {
      await c.body();
      sendJson(c.res, 200, apps.wire(await apps.reactivate(id!, c.actor)), c.requestId);
    }),

    route('GET', '/v1/audit', 'read', { summary: 'Who did what to which key or application, newest first', query: schemas.audit, responses: { 200: '`{ data, next_cursor }`' } }, async (c) => {
      const q = c.parse(schemas.audit, Object.fromEntries(c.url.searchParams));
      const page = await d.store.listAudit({
        tenant: c.actor.tenant,
        actor: q.actor,
        action: q.action,
        target_id: q.key_id ?? q.application_id,
        from: q.from,
        to: q.to,
        limit: q.limit,
        cursor: q.cursor,
      });
      sendJson(c.res, 200, { data: page.data.map((e) => ({ ...e, time: toIso(e.time) })), next_cursor: page.next_cursor }, c.requestId);
    }),
    route('GET', '/v1/policies', 'read', { summary: 'Policy templates from the configuration', responses: { 200: '`{ data }`' } }, async (c) =>
      sendJson(c.res, 200, { data: policiesToWire(config) }, c.requestId),
    ),
    route('GET', '/v1/scopes', 'read', { summary: 'The scope catalog, by category, with presets', responses: { 200: '`{ data, categories, presets }`' } }, async (c) =>
      sendJson(c.res, 200, scopesToWire(config), c.requestId),
    ),
  ];
}

function eventToWire(e: KeyEvent) {
  return { type: e.type, scheduled_at: toIso(e.scheduled_at), at: toIso(e.at), actor: e.actor, detail: e.detail };
}

/** What is due later for this key: activation, rotation, end of grace, expiry. */
function upcoming(rec: KeyRecord, now: number) {
  const out: { type: string; scheduled_at: string | null }[] = [];
  const add = (type: string, at: number | null) => {
    if (at !== null && at > now) out.push({ type, scheduled_at: toIso(at) });
  };
  if (rec.revoked_at === null) {
    if (rec.activated_at === null) add('activated', rec.not_before);
    if (rec.replaced_by === null) add('rotated', rec.rotate_at);
    add('revoked', rec.grace_ends_at);
    add('expired', rec.expires_at);
  }
  return out.sort((a, b) => (a.scheduled_at! < b.scheduled_at! ? -1 : 1));
}

function policiesToWire(config: Config) {
  return Object.entries(config.policies).map(([name, p]) => ({
    name,
    description: p.description,
    plan: p.plan,
    rate_limit: p.rate_limit,
    expires_in_seconds: p.expires_in_seconds,
    ip_allowlist: p.ip_allowlist,
    allow_regeneration: p.allow_regeneration,
    regeneration_grace_seconds: p.regeneration_grace_seconds,
    // The webhook's address and secret stay in the configuration.
    rotation: p.rotation ? { every_days: p.rotation.every_days, grace_seconds: p.rotation.grace_seconds } : null,
  }));
}

function scopesToWire(config: Config) {
  const categories = new Map<string, string[]>();
  for (const s of config.scopes.catalog) {
    let list = categories.get(s.category);
    if (!list) categories.set(s.category, (list = []));
    list.push(s.name);
  }
  return {
    data: config.scopes.catalog,
    categories: [...categories].map(([name, scopes]) => ({ name, scopes })),
    presets: Object.entries(config.scopes.presets).map(([name, scopes]) => ({ name, scopes })),
  };
}

function gatewayUrl(config: Config, environment: string): string {
  const l = config.listeners.find((x) => x.environment === environment) ?? config.listeners[0];
  if (!l) return 'http://127.0.0.1:8080';
  const host = l.host.includes(':') ? `[${l.host}]` : l.host === '0.0.0.0' ? '127.0.0.1' : l.host;
  return `http://${host}:${l.port}`;
}
