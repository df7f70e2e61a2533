import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Route } from './http.js';

const errorBody = {
  type: 'object',
  required: ['error', 'message', 'request_id'],
  properties: {
    error: { type: 'string' },
    reason: { type: 'string' },
    message: { type: 'string' },
    request_id: { type: 'string' },
    details: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
  },
};

function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  delete out['$schema'];
  return out;
}

/** OpenAPI 3.1 of the admin routes, built from the same route table and schemas that serve them. */
export function buildOpenApi<C>(routes: readonly Route<C>[], config: Config) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const params = [...r.path.matchAll(/\{([a-z_]+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (r.doc.query) {
      const q = jsonSchema(r.doc.query) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(q.properties ?? {})) {
        params.push({ name, in: 'query', required: q.required?.includes(name) ?? false, schema } as never);
      }
    }
    const responses: Record<string, unknown> = {};
    for (const [status, description] of Object.entries(r.doc.responses)) {
      responses[status] = { description, content: { 'application/json': { schema: { type: 'object' } } } };
    }
    responses['default'] = { description: 'An error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    const op: Record<string, unknown> = {
      operationId: `${r.method.toLowerCase()}${r.path.replace(/\{([a-z_]+)\}/g, 'By_$1').replace(/[^A-Za-z0-9_]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      summary: r.doc.summary,
      responses,
    };
    if (params.length) op['parameters'] = params;
    if (r.doc.body) op['requestBody'] = { required: false, content: { 'application/json': { schema: jsonSchema(r.doc.body) } } };
    if (r.permission === 'public') op['security'] = [];
    (paths[r.path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Keygate admin API', version: '1', description: `Key prefix ${config.keys.prefix}; environments ${Object.keys(config.keys.environments).join(', ')}.` },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: errorBody },
    },
    paths,
  };
}
