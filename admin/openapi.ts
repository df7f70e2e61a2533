import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Route, Tag } from './http.js';
import { jsonValue } from './key-input.js';
import { wireSchemas } from './openapi-schemas.js';

type Json = Record<string, unknown>;

const TAGS: Record<Tag, string> = {
  Keys: 'API keys through their lifecycle: create, list, edit, regenerate, suspend, reactivate, revoke, and their timeline.',
  Applications:
    'The consumer applications that own keys. Suspending one suspends its keys with it; a rate limit or a quota (or credits) set on one is shared by all its keys (docs/quotas.md).',
  Usage: 'Traffic and errors the gateways record, per key or overall, and the gateways’ intake of usage events.',
  Audit: 'Every change made through this API or by the scheduler: who, when, from where, and what changed.',
  Alerts: 'What Keygate raised about keys and traffic (expiry, revocation, leaks, limits, errors), and where each alert was delivered.',
  Catalog: 'What the configuration offers keys: policy templates and the scope catalog.',
  Operations: 'Liveness, readiness, metrics and this document. They need no token.',
};

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: ref('Error') } } });

/** The error answers operations share, by the status they document. */
const ERROR_RESPONSES = {
  BadRequest: errorResponse(
    '`validation_failed`: a query parameter or body field is not valid, or the route takes no such parameter; `details` names each one. `bad_request`: a malformed path.',
  ),
  Unauthorized: errorResponse('`unauthorized`: no admin token, or one that is not recognised.'),
  Forbidden: errorResponse('`forbidden`: the token’s role may not do this.'),
  NotFound: errorResponse('`not_found`: no such record, or one of another tenant.'),
  PayloadTooLarge: errorResponse('`payload_too_large`: the body is larger than the configured limit.'),
  UnsupportedMediaType: errorResponse('`unsupported_media_type`: a body that is not declared as JSON.'),
  ServerError: errorResponse('`internal_error` (500), or `service_unavailable` (503) while the store cannot be reached.'),
};

const ERROR_BODY = {
  type: 'object',
  description: 'Every error answer of both planes. Some codes add fields of their own.',
  required: ['error', 'message', 'doc_url', 'request_id'],
  additionalProperties: true,
  properties: {
    error: { type: 'string', description: 'A stable code to branch on, e.g. `validation_failed`.' },
    reason: { type: 'string', description: 'Qualifies some codes, e.g. `revoked` for `invalid_token`.' },
    message: { type: 'string', description: 'What went wrong, for a person.' },
    doc_url: { type: 'string', description: "The error code's section of docs/errors.md (`errors.doc_base_url#<code>`)." },
    request_id: { type: 'string', description: 'The `X-Request-Id` of the request; quote it when asking for help.' },
    details: {
      type: 'array',
      description: 'For `validation_failed`: each field that is not valid.',
      items: {
        type: 'object',
        required: ['path', 'message'],
        properties: { path: { type: 'string', description: 'The field, like `rate_limit.limit`.' }, message: { type: 'string' } },
      },
    },
  },
};

/**
 * JSON Schema of an input schema. Definitions zod hoists into a local `$defs` (recursive parts,
 * given a name with `.meta({ id })`) move to `components.schemas` under that name, where every
 * operation shares them; `#/$defs/…` references would not resolve in an OpenAPI document.
 */
function jsonSchema(schema: z.ZodType, schemas: Json): Json {
  const out = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Json;
  delete out['$schema'];
  const defs = out['$defs'] as Json | undefined;
  if (!defs) return out;
  delete out['$defs'];
  const relink = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith('#/$defs/')) (node as Json)[k] = `#/components/schemas/${v.slice(8)}`;
      else relink(v);
    }
  };
  relink(out);
  for (const [name, def] of Object.entries(defs)) {
    if (/^_*schema\d+$/.test(name)) throw new Error(`an unnamed shared schema in the admin API; name it with .meta({ id }): ${JSON.stringify(def).slice(0, 200)}`);
    relink(def);
    if (name in schemas && JSON.stringify(schemas[name]) !== JSON.stringify(def)) throw new Error(`two admin API schemas are named ${name}`);
    schemas[name] = def;
  }
  return out;
}

/** Query parameters of a route, each with its schema, description and whether it is required or deprecated. */
function queryParameters(query: z.ZodType, schemas: Json): Json[] {
  const q = jsonSchema(query, schemas) as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(q.properties ?? {}).map(([name, schema]) => {
    const { description, deprecated, ...rest } = schema;
    return {
      name,
      in: 'query',
      required: q.required?.includes(name) ?? false,
      ...(description === undefined ? {} : { description }),
      ...(deprecated === true ? { deprecated: true } : {}),
      schema: rest,
    };
  });
}

/** OpenAPI 3.1 of the admin routes, built from the same route table and schemas that serve them. */
export function buildOpenApi<C>(routes: readonly Route<C>[], config: Config) {
  const schemas: Json = { Error: ERROR_BODY };
  jsonSchema(z.strictObject({ value: jsonValue }), schemas);
  Object.assign(schemas, wireSchemas(config));
  const used = new Set<keyof typeof ERROR_RESPONSES>(['BadRequest', 'ServerError']);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const d = r.doc;
    const params: Json[] = [...r.path.matchAll(/\{([a-z_]+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      description: d.tag === 'Applications' ? 'The application’s id (`app_…`).' : 'The key’s id (`key_…`).',
      schema: { type: 'string' },
    }));
    if (d.query) params.push(...queryParameters(d.query, schemas));

    const responses: Record<string, unknown> = {};
    for (const [status, res] of Object.entries(d.responses)) {
      const content: Json = {};
      if (res.schema) content['application/json'] = { schema: ref(res.schema) };
      for (const [type, schema] of Object.entries(res.media ?? {})) content[type] = { schema };
      responses[status] = { description: res.description, ...(Object.keys(content).length ? { content } : {}) };
    }
    const use = (status: number, name: keyof typeof ERROR_RESPONSES) => {
      if (String(status) in responses) return;
      used.add(name);
      responses[status] = { $ref: `#/components/responses/${name}` };
    };
    use(400, 'BadRequest');
    if (r.permission !== 'public') {
      use(401, 'Unauthorized');
      use(403, 'Forbidden');
    }
    if (r.path.includes('{')) use(404, 'NotFound');
    if (d.conflict) responses['409'] = errorResponse(d.conflict);
    if (d.body) {
      use(413, 'PayloadTooLarge');
      use(415, 'UnsupportedMediaType');
    }
    responses['default'] = { $ref: '#/components/responses/ServerError' };

    const op: Json = { operationId: d.operationId, tags: [d.tag], summary: d.summary, description: d.description };
    if (params.length) op['parameters'] = params;
    if (d.body) {
      if (!(d.body.name in schemas)) schemas[d.body.name] = jsonSchema(d.body.schema, schemas);
      // Required exactly when the route refuses an empty body.
      op['requestBody'] = { required: !d.body.schema.safeParse(undefined).success, content: { 'application/json': { schema: ref(d.body.name) } } };
    }
    op['responses'] = responses;
    if (r.permission === 'public') op['security'] = [];
    (paths[r.path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Keygate admin API',
      version: '1',
      summary: 'Manage the API keys a Keygate gateway enforces.',
      description: [
        'The control plane of Keygate: keys through their lifecycle, the applications that own them, usage, and the audit log.',
        `This deployment issues keys with the prefix \`${config.keys.prefix}\` for the environments ${Object.keys(config.keys.environments).map((e) => `\`${e}\``).join(', ')}.`,
        'Send an admin token as `Authorization: Bearer <token>`; its role (admin, developer, viewer, gateway) decides what it may do.',
        'Lists are paged: pass the `next_cursor` of one page as `cursor` to get the next. Times are RFC 3339 in UTC.',
      ].join('\n\n'),
      contact: { name: 'The operators of this Keygate deployment' },
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: '/', description: 'This admin listener' }],
    security: [{ bearer: [] }],
    tags: (Object.entries(TAGS) as [Tag, string][]).map(([name, description]) => ({ name, description })),
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An admin token from the configuration (`admin.tokens`).' } },
      schemas,
      responses: Object.fromEntries(Object.entries(ERROR_RESPONSES).filter(([name]) => used.has(name as keyof typeof ERROR_RESPONSES))),
    },
    paths,
  };
}
