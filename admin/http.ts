import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERRORS, HttpError, REQUEST_ID, type ErrorBody, type ErrorCode } from '../core/errors.js';
import type { Actor } from '../core/audit.js';
import type { Detail } from '../core/validation.js';
import type { z } from 'zod';


export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

export function sendJson(res: ServerResponse, status: number, body: unknown, requestId: string, headers?: Readonly<Record<string, string>>): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
    'x-request-id': requestId,
  });
  res.end(json);
}

/** Renders an error in the shape both planes share, `doc_url` from `docUrls` (errors.doc_base_url). */
export function sendError(res: ServerResponse, err: HttpError, requestId: string, docUrls: Readonly<Record<ErrorCode, string>>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body: ErrorBody = { error: err.code, message: err.message, doc_url: docUrls[err.code], request_id: requestId, ...err.extra };
  sendJson(res, err.status, body, requestId, err.headers);
}

export function validationError(details: Detail[]): HttpError {
  return new HttpError('validation_failed', ERRORS.validation_failed.message, { details });
}

/**
 * Reads a JSON body of at most `limit` bytes. An empty body is `undefined`; anything else must
 * be declared as JSON and parse as JSON. An oversized body is refused as soon as it is seen to
 * be too large, and the connection is closed after the answer rather than read to its end.
 */
export async function readJson(req: IncomingMessage, res: ServerResponse, limit: number): Promise<unknown> {
  const tooLarge = () => {
    res.shouldKeepAlive = false;
    return new HttpError('payload_too_large', `Request body is larger than ${limit} bytes.`);
  };
  if (Number(req.headers['content-length'] ?? 0) > limit) throw tooLarge();
  const body = await new Promise<Buffer | null>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      req.off('data', onData);
      req.pause();
      reject(tooLarge());
    };
    req.on('data', onData);
    req.once('end', () => resolve(size === 0 ? null : Buffer.concat(chunks)));
    req.once('error', reject);
  });
  if (body === null) return undefined;
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/([a-z.+-]*\+)?json\s*(;|$)/i.test(type)) throw new HttpError('unsupported_media_type');
  if (nesting(body) > MAX_JSON_DEPTH) throw validationError([{ path: '', message: `body nests deeper than ${MAX_JSON_DEPTH} levels` }]);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw validationError([{ path: '', message: 'body is not valid JSON' }]);
  }
}

/** No admin body needs more; a deeper one is refused before parsing, as walking it would overflow the stack. */
const MAX_JSON_DEPTH = 32;

/** The deepest nesting of `[` and `{` in JSON text, strings skipped; one pass, no parse. */
function nesting(json: Buffer): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i]!;
    if (inString) {
      if (c === 0x5c /* \\ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) max = depth;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return max;
}

export type Permission = 'read' | 'write_keys' | 'admin' | 'public' | 'ingest_usage';

/** The groups of the OpenAPI document; admin/openapi.ts describes each. */
export type Tag = 'Keys' | 'Applications' | 'Usage' | 'Audit' | 'Alerts' | 'Catalog' | 'Operations';

/** A successful answer as the OpenAPI document shows it. */
export interface ResponseDoc {
  description: string;
  /** The JSON body: a schema of admin/openapi-schemas.ts, by name. */
  schema?: string;
  /** Other bodies: media type → JSON Schema. */
  media?: Record<string, Record<string, unknown>>;
}

/** What the OpenAPI document says of a route. Its 4xx answers follow from the route (admin/openapi.ts). */
export interface RouteDoc {
  /** What SDK generators name the method: `createKey`, `listAuditEntries`. */
  operationId: string;
  tag: Tag;
  summary: string;
  description: string;
  /** The JSON body and the name of its component schema. */
  body?: { schema: z.ZodType; name: string };
  query?: z.ZodType;
  /** Status → the answers this route gives besides the errors. */
  responses: Record<number, ResponseDoc>;
  /** When the route answers 409: the state it conflicts with. */
  conflict?: string;
}

export interface Route<C> {
  method: string;
  /** The path as documented, `{id}` for a parameter. */
  path: string;
  pattern: RegExp;
  permission: Permission;
  doc: RouteDoc;
  handler: (c: C, params: string[]) => Promise<void>;
}

/** `/v1/keys/{id}/revoke` → a RegExp capturing each `{param}` segment. */
export function route<C>(method: string, path: string, permission: Permission, doc: RouteDoc, handler: Route<C>['handler']): Route<C> {
  const src = path.replace(/\{[a-z_]+\}/g, '([^/]+)');
  return { method, path, pattern: new RegExp(`^${src}$`), permission, doc, handler };
}

/** One admin call as handlers see it. */
export interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  url: URL;
  actor: Actor;
  /** Validates input against a schema; bad input is a 400 naming every field. */
  parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S>;
  /** The JSON body, up to `max` bytes (default `admin.max_body_bytes`). */
  body(max?: number): Promise<unknown>;
}
