import type { Config } from '../config/schema.js';
import { toIso } from '../core/clock.js';
import { auditToWire, type KeyEvent } from '../core/audit.js';
import type { Logger } from '../core/log.js';
import type { KeyRecord } from '../core/record.js';
import { decodeCursor, encodeCursor } from '../core/store/query.js';
import { InvalidCursorError } from '../core/internal-errors.js';
import type { Store } from '../core/store/store.js';
import type { AppService } from './applications.js';
import { apiCatalog } from './api-catalog.js';
import { curlExamples } from './curl-example.js';
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

const KEY = { description: 'The key record.', schema: 'Key' };
const APP = { description: 'The application record.', schema: 'Application' };
const KEY_CONFLICT = 'A key that is revoked or expired can no longer change; the message says which. Also when concurrent changes kept this one from applying: try again.';

/** Every admin route: method, documented path, the permission it needs, its doc, its handler. */
export function adminRoutes(d: RouteDeps): Route<Call>[] {
  const { keys, apps, schemas, log, config } = d;

  const curlExample = curlExamples(config, d.gatewayUrls);
  const apis = apiCatalog(config, d.gatewayUrls);

  const issued = (c: Call, record: KeyRecord, key: string, what: string) => {
    log.info(what, { request_id: c.requestId, key_id: record.id, by: c.actor.name });
    sendJson(c.res, 201, { ...keys.wire(record), key, curl: curlExample(record, key) }, c.requestId);
  };
  const keyReply = (c: Call, rec: KeyRecord) => sendJson(c.res, 200, keys.wire(rec), c.requestId);

  return [
    route('GET', '/healthz', 'public', {
      operationId: 'getHealth',
      tag: 'Operations',
      summary: 'Liveness',
      description: 'Answers while the process runs, whatever the state of its store.',
      responses: { 200: { description: 'The process is up.', schema: 'Health' } },
    }, async (c) => sendJson(c.res, 200, { status: 'ok' }, c.requestId)),
    // The admin plane can neither read nor write without its store: unready while it is away.
    route('GET', '/readyz', 'public', {
      operationId: 'getReadiness',
      tag: 'Operations',
      summary: 'Readiness',
      description: 'Ready while the store can be reached; the admin plane can neither read nor write without it.',
      responses: { 200: { description: 'Ready to serve.', schema: 'Readiness' }, 503: { description: 'The store cannot be reached.', schema: 'Readiness' } },
    }, async (c) =>
      d.store.available
        ? sendJson(c.res, 200, { status: 'ready', store: { kind: d.store.kind, reachable: true } }, c.requestId)
        : sendJson(c.res, 503, { status: 'degraded', store: { kind: d.store.kind, reachable: false } }, c.requestId),
    ),

    route('POST', '/v1/keys', 'write_keys', {
      operationId: 'createKey',
      tag: 'Keys',
      summary: 'Create a key',
      description:
        'Issues a key. The answer holds the key itself, shown this once, and a `curl` example of a request the key may make. ' +
        'Fields left out come from the key’s policy, if it names one. Give `plan` or `rate_limit`, not both: a `rate_limit` replaces the plan’s limits.',
      body: { schema: schemas.create, name: 'CreateKeyRequest' },
      responses: { 201: { description: 'The new key record, with `key` and `curl`.', schema: 'IssuedKey' } },
    }, async (c) => {
      const input = c.parse(schemas.create, (await c.body()) ?? {});
      const { record, key } = await keys.create(input, c.actor);
      issued(c, record, key, 'key created');
    }),
    route('GET', '/v1/keys', 'read', {
      operationId: 'listKeys',
      tag: 'Keys',
      summary: 'List keys',
      description: 'Keys newest first (or as `sort` and `order` say), filtered, a page at a time. A tenant’s token sees its tenant’s keys only.',
      query: schemas.list,
      responses: { 200: { description: 'A page of keys.', schema: 'KeyList' } },
    }, async (c) => {
      const query = c.parse(schemas.list, Object.fromEntries(c.url.searchParams));
      const page = await keys.list(query, c.actor);
      sendJson(c.res, 200, { data: page.data.map((r) => keys.wire(r)), next_cursor: page.next_cursor }, c.requestId);
    }),
    route('GET', '/v1/keys/{id}', 'read', {
      operationId: 'getKey',
      tag: 'Keys',
      summary: 'Get a key',
      description: 'One key record: never the key itself, never its hash. Only here, the record carries `balance`: what is left of its quota or credits.',
      responses: { 200: { description: 'The key record, with `balance`.', schema: 'KeyWithBalance' } },
    }, async (c, [id]) => {
      const rec = await keys.get(id!, c.actor);
      sendJson(c.res, 200, { ...keys.wire(rec), balance: await keys.balance(rec) }, c.requestId);
    }),
    route('PATCH', '/v1/keys/{id}', 'write_keys', {
      operationId: 'updateKey',
      tag: 'Keys',
      summary: 'Edit a key',
      description: 'Changes the fields given and leaves the others; the gateways apply the change on the next request. Give `plan` or `rate_limit`, not both.',
      body: { schema: schemas.update, name: 'UpdateKeyRequest' },
      responses: { 200: KEY },
      conflict: `\`conflict\`: ${KEY_CONFLICT}`,
    }, async (c, [id]) => {
      const patch = c.parse(schemas.update, (await c.body()) ?? {});
      keyReply(c, await keys.update(id!, patch, c.actor));
    }),
    route('POST', '/v1/keys/{id}/regenerate', 'write_keys', {
      operationId: 'regenerateKey',
      tag: 'Keys',
      summary: 'Regenerate a key',
      description:
        'Issues a successor with the same configuration. The old key is revoked now, or keeps working for `grace_period_seconds` (default: the policy’s), ' +
        'its answers carrying `Deprecation` and `Sunset` meanwhile. Only the latest key of a chain can be regenerated.',
      body: { schema: schemas.regenerate, name: 'RegenerateKeyRequest' },
      responses: { 201: { description: 'The new key record, with `key` and `curl`.', schema: 'IssuedKey' } },
      conflict: '`conflict`: the key was regenerated already, is revoked or expired, or its policy does not allow regenerating by hand.',
    }, async (c, [id]) => {
      const { grace_period_seconds } = c.parse(schemas.regenerate, await c.body());
      const { record, key } = await keys.regenerate(id!, grace_period_seconds, c.actor);
      issued(c, record, key, 'key regenerated');
    }),
    route('POST', '/v1/keys/{id}/revoke', 'write_keys', {
      operationId: 'revokeKey',
      tag: 'Keys',
      summary: 'Revoke a key',
      description: 'Revokes the key for good: the very next request with it is refused. The `reason` shows on the record (`revoked_reason`) and in the audit log.',
      body: { schema: schemas.revoke, name: 'RevokeKeyRequest' },
      responses: { 200: KEY },
      conflict: '`already_revoked`: the key was revoked before.',
    }, async (c, [id]) => {
      const { reason } = c.parse(schemas.revoke, await c.body());
      keyReply(c, await keys.revoke(id!, reason, c.actor));
    }),
    route('POST', '/v1/keys/{id}/suspend', 'write_keys', {
      operationId: 'suspendKey',
      tag: 'Keys',
      summary: 'Suspend a key',
      description: 'Stops the key until it is reactivated. The `reason` shows on the record (`suspended_reason`) and in the audit log.',
      body: { schema: schemas.suspend, name: 'SuspendKeyRequest' },
      responses: { 200: KEY },
      conflict: `\`conflict\`: the key is suspended already. ${KEY_CONFLICT}`,
    }, async (c, [id]) => {
      const { reason } = c.parse(schemas.suspend, await c.body());
      keyReply(c, await keys.suspend(id!, reason, c.actor));
    }),
    route('POST', '/v1/keys/{id}/reactivate', 'write_keys', {
      operationId: 'reactivateKey',
      tag: 'Keys',
      summary: 'Reactivate a key',
      description: 'Lifts the key’s own suspension. A key suspended through its application stays suspended until the application is reactivated.',
      responses: { 200: KEY },
      conflict: `\`conflict\`: the key is not suspended, or only through its application. ${KEY_CONFLICT}`,
    }, async (c, [id]) => {
      await c.body();
      keyReply(c, await keys.reactivate(id!, c.actor));
    }),
    route('POST', '/v1/keys/{id}/credits', 'write_keys', {
      operationId: 'changeKeyCredits',
      tag: 'Keys',
      summary: 'Set or top up a key’s balance',
      description:
        'Sets the balance of the key’s quota or credits (`set`) or adds to it (`add`), at once for every gateway; the audit log records it as `key.credits_changed` with the balance before and after. ' +
        'The next refill (if the quota refills) sets the balance to the refill amount again. See docs/quotas.md.',
      body: { schema: schemas.credits, name: 'ChangeCreditsRequest' },
      responses: { 200: { description: 'The key record, with its new `balance`.', schema: 'KeyWithBalance' } },
      conflict: '`conflict`: the key has no quota or credits (nor has its plan), or is revoked or expired.',
    }, async (c, [id]) => {
      const input = c.parse(schemas.credits, (await c.body()) ?? {});
      const { rec, remaining, refills_at } = await keys.changeCredits(id!, input, c.actor);
      log.info('key credits changed', { request_id: c.requestId, key_id: rec.id, by: c.actor.name, remaining });
      sendJson(c.res, 200, { ...keys.wire(rec), balance: { remaining, refills_at } }, c.requestId);
    }),
    route('GET', '/v1/keys/{id}/events', 'read', {
      operationId: 'listKeyEvents',
      tag: 'Keys',
      summary: 'A key’s timeline',
      description: 'The key’s lifecycle, oldest first, a page at a time, with what is scheduled next (activation, rotation, end of grace, expiry).',
      query: schemas.events,
      responses: { 200: { description: 'A page of the timeline.', schema: 'KeyTimeline' } },
    }, async (c, [id]) => {
      const q = c.parse(schemas.events, Object.fromEntries(c.url.searchParams));
      const rec = await keys.get(id!, c.actor);
      const events = await keys.events(id!, c.actor);
      // Timelines only grow at the end, so a position is a stable cursor.
      const from = q.cursor === undefined ? 0 : eventPosition(q.cursor, rec.id);
      const data = events.slice(from, from + q.limit).map(eventToWire);
      const next_cursor = from + q.limit < events.length ? encodeCursor(from + q.limit, rec.id) : null;
      sendJson(c.res, 200, { data, scheduled: upcoming(rec, keys.clock.now()), next_cursor }, c.requestId);
    }),

    route('POST', '/v1/applications', 'admin', {
      operationId: 'createApplication',
      tag: 'Applications',
      summary: 'Create an application',
      description: 'Registers a consumer application; keys name it in `application`.',
      body: { schema: schemas.appCreate, name: 'CreateApplicationRequest' },
      responses: { 201: APP },
    }, async (c) => {
      const input = c.parse(schemas.appCreate, (await c.body()) ?? {});
      sendJson(c.res, 201, apps.wire(await apps.create(input, c.actor)), c.requestId);
    }),
    route('GET', '/v1/applications', 'read', {
      operationId: 'listApplications',
      tag: 'Applications',
      summary: 'List applications',
      description: 'Applications newest first, filtered, a page at a time.',
      query: schemas.appList,
      responses: { 200: { description: 'A page of applications.', schema: 'ApplicationList' } },
    }, async (c) => {
      const query = c.parse(schemas.appList, Object.fromEntries(c.url.searchParams));
      const page = await apps.list(query, c.actor);
      sendJson(c.res, 200, { data: page.data.map((a) => apps.wire(a)), next_cursor: page.next_cursor }, c.requestId);
    }),
    route('GET', '/v1/applications/{id}', 'read', {
      operationId: 'getApplication',
      tag: 'Applications',
      summary: 'Get an application',
      description: 'One application record. Only here (and in the answers to PATCH and to credits), the record carries `balance`: what is left of its shared quota or credits.',
      responses: { 200: { description: 'The application record, with `balance`.', schema: 'ApplicationWithBalance' } },
    }, async (c, [id]) => sendJson(c.res, 200, await apps.wireWithBalance(await apps.get(id!, c.actor)), c.requestId)),
    route('PATCH', '/v1/applications/{id}', 'admin', {
      operationId: 'updateApplication',
      tag: 'Applications',
      summary: 'Edit an application',
      description:
        'Changes the fields given and leaves the others; a change of the shared limit or quota reaches every key of the application that is not revoked. ' +
        'Give `plan` or `rate_limit`, not both, and `quota` or `credits`, not both (one given clears the other). The balance is kept: a new quota does not reset it.',
      body: { schema: schemas.appUpdate, name: 'UpdateApplicationRequest' },
      responses: { 200: { description: 'The updated application record, with `balance`.', schema: 'ApplicationWithBalance' } },
      conflict: '`conflict`: concurrent changes kept this one from applying; try again.',
    }, async (c, [id]) => {
      const patch = c.parse(schemas.appUpdate, (await c.body()) ?? {});
      sendJson(c.res, 200, await apps.wireWithBalance(await apps.update(id!, patch, c.actor)), c.requestId);
    }),
    route('POST', '/v1/applications/{id}/credits', 'admin', {
      operationId: 'changeApplicationCredits',
      tag: 'Applications',
      summary: 'Set or top up an application’s shared balance',
      description:
        'Sets the balance of the quota or credits that the application’s keys share (`set`) or adds to it (`add`), at once for every gateway; ' +
        'the audit log records it as `application.credits_changed` with the balance before and after. ' +
        'The next refill (if the quota refills) sets the balance to the refill amount again. See docs/quotas.md.',
      body: { schema: schemas.credits, name: 'ChangeCreditsRequest' },
      responses: { 200: { description: 'The application record, with its new `balance`.', schema: 'ApplicationWithBalance' } },
      conflict: '`conflict`: the application has no quota or credits.',
    }, async (c, [id]) => {
      const input = c.parse(schemas.credits, (await c.body()) ?? {});
      const { app, remaining, refills_at } = await apps.changeCredits(id!, input, c.actor);
      log.info('application credits changed', { request_id: c.requestId, application: app.id, by: c.actor.name, remaining });
      sendJson(c.res, 200, { ...apps.wire(app), balance: { remaining, refills_at } }, c.requestId);
    }),
    route('POST', '/v1/applications/{id}/suspend', 'admin', {
      operationId: 'suspendApplication',
      tag: 'Applications',
      summary: 'Suspend an application',
      description: 'Suspends the application and, in the same change, every key it owns that is not revoked.',
      body: { schema: schemas.suspend, name: 'SuspendApplicationRequest' },
      responses: { 200: APP },
      conflict: '`conflict`: the application is suspended already, or it or its keys kept changing; try again.',
    }, async (c, [id]) => {
      const { reason } = c.parse(schemas.suspend, await c.body());
      sendJson(c.res, 200, apps.wire(await apps.suspend(id!, reason, c.actor)), c.requestId);
    }),
    route('POST', '/v1/applications/{id}/reactivate', 'admin', {
      operationId: 'reactivateApplication',
      tag: 'Applications',
      summary: 'Reactivate an application',
      description: 'Reactivates the application and the keys suspended through it; keys suspended on their own stay suspended.',
      responses: { 200: APP },
      conflict: '`conflict`: the application is not suspended, or it or its keys kept changing; try again.',
    }, async (c, [id]) => {
      await c.body();
      sendJson(c.res, 200, apps.wire(await apps.reactivate(id!, c.actor)), c.requestId);
    }),

    route('GET', '/v1/audit', 'read', {
      operationId: 'listAuditEntries',
      tag: 'Audit',
      summary: 'Read the audit log',
      description:
        'Who did what to which key or application, when and from where, newest first, a page at a time. ' +
        'A tenant’s token sees its tenant’s entries only. `application_id` is the former name of `application`, still accepted.',
      query: schemas.audit,
      responses: { 200: { description: 'A page of the audit log.', schema: 'AuditList' } },
    }, async (c) => {
      const q = c.parse(schemas.audit, Object.fromEntries(c.url.searchParams));
      const page = await d.store.listAudit({
        tenant: c.actor.tenant,
        actor: q.actor,
        action: q.action,
        target_id: q.key_id ?? q.application ?? q.application_id,
        from: q.from,
        to: q.to,
        limit: q.limit,
        cursor: q.cursor,
      });
      sendJson(c.res, 200, { data: page.data.map(auditToWire), next_cursor: page.next_cursor }, c.requestId);
    }),
    route('GET', '/v1/policies', 'read', {
      operationId: 'listPolicies',
      tag: 'Catalog',
      summary: 'List policies',
      description: 'The policy templates of the configuration, whole (they are few). Rotation webhooks are not shown.',
      responses: { 200: { description: 'Every policy.', schema: 'PolicyList' } },
    }, async (c) => sendJson(c.res, 200, { data: policiesToWire(config) }, c.requestId)),
    route('GET', '/v1/apis', 'read', {
      operationId: 'listApis',
      tag: 'Catalog',
      summary: 'List the gateway’s APIs',
      description:
        'The APIs the gateway serves and their route rules, as a developer calling them needs them: the gateway URL of each environment, the credential header, ' +
        'each route’s method, path, scopes and rate limit, the plans, and the browser origins allowed (CORS). Upstream addresses and connection settings are not shown.',
      responses: { 200: { description: 'Every API.', schema: 'ApiCatalog' } },
    }, async (c) => sendJson(c.res, 200, apis(), c.requestId)),
    route('GET', '/v1/scopes', 'read', {
      operationId: 'getScopeCatalog',
      tag: 'Catalog',
      summary: 'Get the scope catalog',
      description: 'The scopes keys may hold, by category, and the presets that expand to several of them.',
      responses: { 200: { description: 'The catalog.', schema: 'ScopeCatalog' } },
    }, async (c) => sendJson(c.res, 200, scopesToWire(config), c.requestId)),
  ];
}

/** The position a timeline cursor of this key points at. */
function eventPosition(cursor: string, keyId: string): number {
  const [position, id] = decodeCursor(cursor);
  if (id !== keyId || typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0) {
    throw new InvalidCursorError('cursor is not one this server issued for this key');
  }
  return position;
}

function eventToWire(e: KeyEvent) {
  return { type: e.type, scheduled_at: toIso(e.scheduled_at), occurred_at: toIso(e.at), actor: e.actor, detail: e.detail };
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
