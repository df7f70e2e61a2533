import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Route } from './http.js';

const errorBody = {
  type: 'object',
  required: ['error', 'message', 'doc_url', 'request_id'],
  properties: {
    error: { type: 'string' },
    reason: { type: 'string' },
    message: { type: 'string' },
    doc_url: { type: 'string', description: "The error code's section of docs/errors.md (errors.doc_base_url#<code>)." },
    request_id: { type: 'string' },
    details: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
  },
};

type Json = Record<string, unknown>;

interface Components {
  schemas: Json;
  /** Each hoisted definition, by its text as zod wrote it, so operations share one copy. */
  byText: Map<string, string>;
}

/**
 * JSON Schema of an input schema. zod puts recursive parts (the `meta` JSON values) in a local
 * `$defs` whose `#/$defs/…` references would resolve against the document root; they move to
 * `components.schemas`, shared between operations, and the references follow them.
 */
function jsonSchema(schema: z.ZodType, components: Components): Json {
  const out = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Json;
  delete out['$schema'];
  const defs = out['$defs'] as Json | undefined;
  if (!defs) return out;
  delete out['$defs'];
  const refs = new Map<string, string>();
  const fresh: [string, unknown][] = [];
  for (const [local, def] of Object.entries(defs)) {
    const text = JSON.stringify(defs) + local;
    let name = components.byText.get(text);
    if (name === undefined) {
      const base = local.replace(/^_+/, '') || 'Def';
      name = base;
      for (let n = 2; name in components.schemas; n++) name = `${base}_${n}`;
      components.byText.set(text, name);
      components.schemas[name] = def;
      fresh.push([name, def]);
    }
    refs.set(`#/$defs/${local}`, `#/components/schemas/${name}`);
  }
  const relink = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string' && refs.has(v)) (node as Json)[k] = refs.get(v);
      else relink(v);
    }
  };
  relink(out);
  for (const [, def] of fresh) relink(def);
  return out;
}

/** OpenAPI 3.1 of the admin routes, built from the same route table and schemas that serve them. */
export function buildOpenApi<C>(routes: readonly Route<C>[], config: Config) {
  const paths: Record<string, Record<string, unknown>> = {};
  const components: Components = { schemas: { Error: errorBody }, byText: new Map() };
  for (const r of routes) {
    const params = [...r.path.matchAll(/\{([a-z_]+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (r.doc.query) {
      const q = jsonSchema(r.doc.query, components) as { properties?: Record<string, unknown>; required?: string[] };
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
    if (r.doc.body) op['requestBody'] = { required: false, content: { 'application/json': { schema: jsonSchema(r.doc.body, components) } } };
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
      schemas: components.schemas,
    },
    paths,
  };
}
