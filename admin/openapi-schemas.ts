import type { Config } from '../config/schema.js';
import { ALERT_TYPES } from '../core/alerts.js';
import { AUDIT_ACTIONS } from '../core/audit.js';

/**
 * The JSON Schemas of what the admin API answers, by component name: the shapes that
 * core/record.ts (keyToWire), core/application.ts, core/audit.ts and the route files build.
 * test/admin-openapi.test.ts checks real answers against them, so they cannot drift apart.
 */
type Json = Record<string, unknown>;

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const nullable = (schema: Json): Json =>
  '$ref' in schema ? { oneOf: [schema, { type: 'null' }] } : { ...schema, type: [schema['type'], 'null'] };
const str = (description?: string): Json => (description ? { type: 'string', description } : { type: 'string' });
const int = (description?: string): Json => (description ? { type: 'integer', description } : { type: 'integer' });
const num = (description?: string): Json => (description ? { type: 'number', description } : { type: 'number' });
const time = (description: string): Json => ({ type: 'string', format: 'date-time', description });
const array = (items: Json, description?: string): Json => ({ type: 'array', items, ...(description ? { description } : {}) });
const object = (properties: Record<string, Json>, description?: string, optional: readonly string[] = []): Json => ({
  type: 'object',
  ...(description ? { description } : {}),
  required: Object.keys(properties).filter((k) => !optional.includes(k)),
  properties,
});
const page = (item: string, description: string): Json =>
  object({ data: array(ref(item)), next_cursor: nullable(str('Pass as `cursor` for the next page; null on the last page.')) }, description);

export function wireSchemas(config: Config): Record<string, Json> {
  const environments = Object.keys(config.keys.environments);
  const usage = {
    range: object({ from: time('Start of the window.'), to: time('End of the window (exclusive).'), granularity: { type: 'string', enum: ['minute', 'day'] } }),
    totals: object({
      requests: int(),
      successes: int(),
      errors: int(),
      client_errors: int('4xx answers.'),
      server_errors: int('5xx answers.'),
      success_rate: nullable(num('Successes over requests, 0 to 1; null without requests.')),
      avg_latency_ms: nullable(num()),
      p50_latency_ms: nullable(num()),
      p95_latency_ms: nullable(num()),
      p99_latency_ms: nullable(num()),
      avg_upstream_latency_ms: nullable(num()),
      bytes_in: int(),
      bytes_out: int(),
    }),
    series: array(object({ starts_at: time('Start of the bucket.'), requests: int(), successes: int(), errors: int() }), 'One point per minute or day of the window, empty ones included.'),
    endpoints: array(
      object({ api: nullable(str()), method: str(), route: nullable(str('The route rule matched; null when none did.')), requests: int(), errors: int(), success_rate: num(), avg_latency_ms: num() }),
      'The busiest endpoints.',
    ),
    status_codes: { type: 'object', additionalProperties: { type: 'integer' }, description: 'Requests by status code.' },
    errors_by_status: { type: 'object', additionalProperties: { type: 'integer' }, description: 'Requests by 4xx and 5xx status code.' },
    countries: { type: 'object', additionalProperties: { type: 'integer' }, description: 'Requests by client country, where the gateway is told it.' },
    rate_limit: object(
      {
        exceeded: int('Requests refused with 429.'),
        would_have_been_refused: int('Requests a limit in shadow mode let through that it would have refused (docs/quotas.md).'),
        peak_requests_per_minute: int(),
        limit_per_minute: nullable(num("The key's limit per minute; null when it has none.")),
      },
      undefined,
      ['limit_per_minute'],
    ),
  };
  return {
    Health: object({ status: { type: 'string', enum: ['ok'] } }, 'The process is up.'),
    LeakReport: object(
      {
        label: { type: 'string', enum: ['true_positive', 'false_positive'], description: 'true_positive: a live key of this deployment (and of the token’s tenant).' },
        action: nullable({ type: 'string', enum: ['notify', 'suspend', 'revoke', 'rotate'], description: 'What the key got (`leaks.action`, or suspend for rotate when its policy has no rotation webhook); null for a false positive.' }),
        key: nullable(ref('Key')),
      },
      'What a reported string was, and what was done.',
    ),
    GithubLeakLabels: array(
      object({
        token_hash: str('SHA-256 of the token, in hex.'),
        token_type: str('The type GitHub sent.'),
        label: { type: 'string', enum: ['true_positive', 'false_positive'] },
      }),
      'One label per token, in the order sent.',
    ),
    ReloadResult: object(
      {
        ok: { type: 'boolean', description: 'True: the file was applied.' },
        generation: int('The configuration generation running now: 1 as started, one more per reload applied.'),
        changed: array(str(), 'The reloadable sections the file changed, applied.'),
        restart_required: array(object({ path: str(), message: str() }), 'Changes to sections read at start-up only: not applied until a restart.'),
        errors: array(object({ path: str(), message: str(), line: int(), column: int() }, undefined, ['line', 'column'])),
        workers: array(ref('WorkerReload'), 'Each gateway worker’s answer; absent without workers.'),
      },
      'What a configuration reload did.',
      ['workers'],
    ),
    WorkerReload: object(
      {
        worker: int('The worker’s id (node:cluster).'),
        ok: { type: 'boolean' },
        generation: int('This worker’s configuration generation.'),
        changed: array(str()),
        restart_required: array(object({ path: str(), message: str() })),
        errors: array(object({ path: str(), message: str(), line: int(), column: int() }, undefined, ['line', 'column'])),
      },
      'One gateway worker’s answer to a reload.',
    ),
    Readiness: object(
      { status: { type: 'string', enum: ['ready', 'degraded'] }, store: object({ kind: str('The store type.'), reachable: { type: 'boolean' } }) },
      'Whether the admin plane can reach its store.',
    ),
    RateLimit: object(
      {
        limit: int('Requests per window.'),
        window_seconds: num(),
        burst: nullable(int('Bucket capacity; null means `limit`.')),
      },
      "A key's own token bucket; it replaces the limits of the key's plan.",
    ),
    Quota: object(
      {
        limit: int('Units per period.'),
        period: nullable({ type: 'string', enum: ['hour', 'day', 'month'], description: 'The calendar period (UTC); null with `refill: false`.' }),
        refill: { type: 'boolean', description: 'false: `limit` units once, never refilled.' },
        mode: { type: 'string', enum: ['enforce', 'shadow'], description: '`shadow`: counted and reported, never refused.' },
        refund_on: array({ type: 'string', enum: ['5xx'] }, 'Upstream answers whose units are given back.'),
      },
      'Units per calendar period (docs/quotas.md).',
    ),
    Credits: object(
      {
        remaining: int('The balance a key starts with.'),
        refill: nullable(object({ amount: int('The balance each refill sets.'), every: { type: 'string', enum: ['day', 'month'] } })),
        mode: { type: 'string', enum: ['enforce', 'shadow'], description: '`shadow`: counted and reported, never refused.' },
        refund_on: array({ type: 'string', enum: ['5xx'] }, 'Upstream answers whose units are given back.'),
      },
      'A balance of units, refilled or not (docs/quotas.md).',
    ),
    KeyWithBalance: {
      description: 'A key record with what is left of its quota or credits.',
      allOf: [
        ref('Key'),
        object({
          balance: nullable(
            object(
              { remaining: int('Units left.'), refills_at: nullable(time('When the balance is next set to its refill amount; null when it never is.')) },
              'The key’s balance; null when neither the key nor its plan has a quota or credits.',
            ),
          ),
        }),
      ],
    },
    Key: object(
      {
        id: str(),
        name: str(),
        description: nullable(str()),
        environment: { type: 'string', enum: environments },
        masked: str('The key with its secret part elided, for display.'),
        status: { type: 'string', enum: ['pending', 'active', 'suspended', 'expired', 'revoked'] },
        scopes: array(str()),
        apis: nullable(array(str(), 'The APIs the key may call; null means every API.')),
        plan: nullable(str('The rate-limit plan; null means the policy’s or `default`.')),
        rate_limit: nullable(ref('RateLimit')),
        quota: nullable(ref('Quota')),
        credits: nullable(ref('Credits')),
        ip_allowlist: nullable(array(str(), 'Addresses and CIDRs the key may be used from; null means anywhere.')),
        application: nullable(str('The id of the application that owns the key.')),
        policy: nullable(str()),
        meta: { type: 'object', additionalProperties: ref('JsonValue') },
        created_at: time('When the key was created.'),
        created_by: nullable(str('The admin token that created it.')),
        updated_at: time('The last change to the record.'),
        expires_at: nullable(time('When the key stops working.')),
        not_before: nullable(time('When the key starts working.')),
        last_used_at: nullable(time('The latest request made with it.')),
        revoked_at: nullable(time('When the key was revoked, or its regeneration grace ended.')),
        revoked_reason: nullable(str('Why: as given to revoke, or `regenerated` / `rotation grace ended`.')),
        suspended_at: nullable(time('When the key, or its application, was suspended.')),
        suspended_reason: nullable(str('Why: as given to suspend, or `application suspended`.')),
        replaces: nullable(str('The key this one was regenerated from.')),
        replaced_by: nullable(str('The key regenerated from this one.')),
        grace_ends_at: nullable(time('After a regeneration with grace: when this key stops working.')),
        rotate_at: nullable(time('When the key’s policy rotates it next.')),
        usage: object({ total_requests: int(), error_count: int('4xx and 5xx answers.') }),
      },
      'A key record: never the key itself, never its hash.',
    ),
    IssuedKey: {
      description: 'A key record with the key itself, shown this once.',
      allOf: [
        ref('Key'),
        object({
          key: str('The key: store it now, it is not shown again.'),
          curl: str('A request this key may make, as a curl command; a shell comment saying why when it may make none.'),
        }),
      ],
    },
    KeyList: page('Key', 'A page of keys.'),
    KeyEvent: object(
      {
        type: { type: 'string', enum: ['created', 'activated', 'first_used', 'edited', 'suspended', 'reactivated', 'rotated', 'expired', 'revoked', 'leaked'] },
        scheduled_at: nullable(time('When it was due, for what the scheduler does.')),
        occurred_at: time('When it happened.'),
        actor: str(),
        detail: { type: 'object', additionalProperties: true },
      },
      'A step of a key’s lifecycle.',
    ),
    KeyTimeline: object(
      {
        data: array(ref('KeyEvent'), 'Oldest first.'),
        scheduled: array(object({ type: str(), scheduled_at: time('When it is due.') }), 'What is due later, soonest first.'),
        next_cursor: nullable(str('Pass as `cursor` for the next page; null on the last page.')),
      },
      'A page of a key’s lifecycle, with what is scheduled next.',
    ),
    Application: object(
      {
        id: str(),
        name: str(),
        description: nullable(str()),
        status: { type: 'string', enum: ['active', 'suspended'] },
        meta: { type: 'object', additionalProperties: ref('JsonValue') },
        plan: nullable(str("A plan whose limit all the application's keys share; null: none (or `rate_limit`).")),
        rate_limit: nullable(ref('RateLimit')),
        quota: nullable(ref('Quota')),
        credits: nullable(ref('Credits')),
        tenant: nullable(str()),
        created_at: time('When the application was created.'),
        created_by: nullable(str()),
        updated_at: time('The last change to the record.'),
        suspended_at: nullable(time('When it was suspended.')),
        suspended_reason: nullable(str('Why, as given to suspend.')),
      },
      'A consumer application: the owner of keys.',
    ),
    ApplicationWithBalance: {
      description: 'An application record with what is left of the quota or credits its keys share.',
      allOf: [
        ref('Application'),
        object({
          balance: nullable(
            object(
              { remaining: int('Units left.'), refills_at: nullable(time('When the balance is next set to its refill amount; null when it never is.')) },
              'The shared balance; null when the application has no quota or credits.',
            ),
          ),
        }),
      ],
    },
    ApplicationList: page('Application', 'A page of applications.'),
    AuditEntry: object(
      {
        id: str(),
        occurred_at: time('When the change was made.'),
        actor: str('The admin token, or `scheduler`.'),
        role: str(),
        tenant: nullable(str()),
        ip: str('The client address of the admin call.'),
        request_id: str(),
        action: { type: 'string', enum: [...AUDIT_ACTIONS] },
        target_type: { type: 'string', enum: ['key', 'application', 'config'] },
        target_id: str(),
        changes: {
          type: 'object',
          description: 'Each changed field, old and new value; times in RFC 3339.',
          additionalProperties: object({ from: {}, to: {} }),
        },
      },
      'One change made through the admin API or by the scheduler.',
    ),
    AuditList: page('AuditEntry', 'A page of the audit log, newest first.'),
    Policy: object({
      name: str(),
      description: nullable(str()),
      plan: nullable(str()),
      rate_limit: nullable(ref('RateLimit')),
      expires_in_seconds: nullable(int()),
      ip_allowlist: nullable(array(str())),
      allow_regeneration: { type: 'boolean' },
      regeneration_grace_seconds: int(),
      rotation: nullable(object({ every_days: int(), grace_seconds: int() })),
    }, 'A policy template from the configuration.'),
    PolicyList: object({ data: array(ref('Policy')) }, 'Every configured policy.'),
    ApiCatalog: object(
      {
        gateway_urls: { type: 'object', additionalProperties: { type: 'string' }, description: 'The gateway’s base URL per environment.' },
        credential: object({
          header: str('The header that carries the key.'),
          scheme: nullable(str('`Bearer` when the header is Authorization.')),
          query_param: nullable(str('A query parameter that may carry the key instead; null when none may.')),
        }),
        plans: array(object({ name: str(), limit: int('Requests per window.'), window_seconds: num(), burst: nullable(int('Bucket capacity; null means `limit`.')) }), 'The rate-limit plans keys name.'),
        data: array(
          object({
            name: str(),
            host: nullable(str('The Host the API answers on; null: any.')),
            path_prefix: str(),
            max_body_bytes: int('Largest request body accepted.'),
            routes: array(
              object({
                name: nullable(str()),
                method: str('An HTTP method, or `*` for any.'),
                path: str('`:name` matches one segment, a trailing `*` the rest.'),
                example_path: str('The path with each `:name` written as NAME, for examples.'),
                scopes: array(str(), 'Scopes a key needs, all of them.'),
                plan: nullable(str('A plan this route counts against instead of the key’s.')),
                rate_limit: nullable(ref('RateLimit')),
                max_body_bytes: int(),
              }),
              'The route rules, in the order the gateway tries them.',
            ),
            unlisted: object({ policy: { type: 'string', enum: ['deny', 'allow', 'scopes'] }, scopes: array(str()) }, 'What a request matching no rule gets.'),
            cors: nullable(object({ origins: array(str()), methods: array(str()), headers: array(str()) }, 'Browser origins that may call the API.')),
          }),
        ),
      },
      'The APIs of the gateway, as a developer calling them sees them.',
    ),
    ScopeCatalog: object(
      {
        data: array(object({ name: str(), description: nullable(str()), category: str(), dangerous: { type: 'boolean', description: 'Grants something hard to undo (deletes, money, administration); pickers mark it.' } })),
        categories: array(object({ name: str(), scopes: array(str()) })),
        presets: array(object({ name: str(), scopes: array(str()) }), 'Names that expand to several scopes when a key is given them.'),
      },
      'The scopes keys may hold.',
    ),
    UsageSummary: object({ ...usage, keys: array(object({ key_id: str(), requests: int(), errors: int() }), 'The busiest keys.') }, 'Traffic over a window.'),
    KeyUsageSummary: object({ key_id: str(), ...usage }, 'A key’s traffic over a window.'),
    ErrorSample: object(
      {
        occurred_at: time('When the request was answered.'),
        request_id: str(),
        key_id: nullable(str()),
        api: nullable(str()),
        method: str(),
        route: nullable(str()),
        status: int(),
        error: str('The error code answered.'),
        reason: nullable(str()),
        message: str(),
      },
      'A request that was answered with an error.',
    ),
    ErrorSampleList: page('ErrorSample', 'A page of recent errors, newest first.'),
    Alert: object(
      {
        id: str('Unique: receivers deduplicate deliveries on it.'),
        type: { type: 'string', enum: [...ALERT_TYPES] },
        created_at: time('When it was raised.'),
        tenant: nullable(str()),
        key: nullable(object({ id: str(), name: str(), masked: str('The key with its secret part elided.') }, 'The key it is about; null for alerts about all traffic.')),
        data: { type: 'object', additionalProperties: true, description: 'What happened, by type (docs/alerts.md).' },
      },
      'Something a key owner should hear about.',
    ),
    AlertList: page('Alert', 'A page of alerts, newest first.'),
    DeliveryList: object(
      {
        data: array(
          object({
            id: str(),
            alert_id: str(),
            target: str('`webhook:<name>` or `email`.'),
            state: { type: 'string', enum: ['pending', 'delivered', 'failed'] },
            next_attempt_at: nullable(time('When it is tried next; null once delivered or given up.')),
            created_at: time('When it was queued.'),
            attempts: array(
              object({
                at: time('When it was tried.'),
                ok: { type: 'boolean' },
                status: nullable(int('The receiver’s HTTP status or SMTP reply code.')),
                error: nullable(str()),
                duration_ms: int(),
              }),
            ),
          }),
        ),
      },
      'An alert’s deliveries, oldest first.',
    ),
    OpenApiDocument: {
      type: 'object',
      description: 'An OpenAPI 3.1 document: this one.',
      required: ['openapi', 'info', 'paths'],
      properties: { openapi: str('The OpenAPI version.'), info: { type: 'object', additionalProperties: true }, paths: { type: 'object', additionalProperties: true } },
      additionalProperties: true,
    },
    UsageBatchResult: object({ stored: int('Events stored.'), duplicate: { type: 'boolean', description: 'The batch id was stored before; nothing was added.' } }),
  };
}
