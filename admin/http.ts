import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERRORS, HttpError } from '../core/errors.js';
import type { Detail } from '../core/validation.js';

const REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

export function sendJson(res: ServerResponse, status: number, body: unknown, requestId: string): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
    'x-request-id': requestId,
  });
  res.end(json);
}

export function sendError(res: ServerResponse, err: HttpError, requestId: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, err.status, { error: err.code, message: err.message, request_id: requestId, ...err.extra }, requestId);
}

export function validationError(details: Detail[]): HttpError {
  return new HttpError('validation_failed', ERRORS.validation_failed.message, { details });
}

/**
 * Reads a JSON body of at most `limit` bytes. An empty body is `undefined`; anything else must
 * be declared as JSON and parse as JSON.
 */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw new HttpError('payload_too_large', `Request body is larger than ${limit} bytes.`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw new HttpError('payload_too_large', `Request body is larger than ${limit} bytes.`);
    }
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/([a-z.+-]*\+)?json\b/i.test(type)) throw new HttpError('unsupported_media_type');
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw validationError([{ path: '', message: 'body is not valid JSON' }]);
  }
}

export interface Route<C> {
  method: string;
  pattern: RegExp;
  handler: (c: C, params: string[]) => Promise<void>;
}

/** `/v1/keys/:id/revoke` → a RegExp capturing each `:param` segment. */
export function route<C>(method: string, path: string, handler: Route<C>['handler']): Route<C> {
  const src = path.replace(/:[a-z_]+/g, '([^/]+)');
  return { method, pattern: new RegExp(`^${src}$`), handler };
}
