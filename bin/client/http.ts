import { Agent, request } from 'undici';
import { ApiError, UnreachableError } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:8081';

/** A query value left out when undefined; arrays are not needed by any admin route. */
export type Query = Record<string, string | number | undefined>;

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'the host name could not be resolved (DNS)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'timed out connecting',
  UND_ERR_HEADERS_TIMEOUT: 'timed out waiting for an answer',
  UND_ERR_BODY_TIMEOUT: 'timed out reading the answer',
  UND_ERR_SOCKET: 'the connection closed before the answer',
};

function reasonOf(err: unknown): string {
  const e = err as { code?: string; message?: string; errors?: { code?: string }[] };
  const code = e.code ?? e.errors?.find((x) => x.code !== undefined)?.code;
  return (code !== undefined ? REASONS[code] ?? code : undefined) ?? e.message ?? String(err);
}

/**
 * The admin API over HTTP: one bearer token, JSON in and out. Answers the parsed body of a 2xx;
 * throws ApiError for an error the API gave, UnreachableError when nothing (or something other
 * than the admin API) answered.
 */
export class AdminClient {
  readonly base: string;
  readonly #token: string;
  readonly #agent: Agent;

  constructor(base: string, token: string, timeoutMs = 10_000) {
    this.base = base.replace(/\/+$/, '');
    this.#token = token;
    this.#agent = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  }

  async call(method: 'GET' | 'POST' | 'PATCH', path: string, options: { query?: Query; body?: unknown } = {}): Promise<any> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) params.set(k, String(v));
    const url = `${this.base}${path}${params.size > 0 ? `?${params}` : ''}`;
    let status: number;
    let type: string;
    let text: string;
    let requestId: string | null;
    try {
      const res = await request(url, {
        method,
        dispatcher: this.#agent,
        headers: {
          authorization: `Bearer ${this.#token}`,
          accept: 'application/json',
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
      });
      status = res.statusCode;
      type = String(res.headers['content-type'] ?? '');
      requestId = typeof res.headers['x-request-id'] === 'string' ? res.headers['x-request-id'] : null;
      text = await res.body.text();
    } catch (err) {
      throw new UnreachableError(this.base, reasonOf(err));
    }
    let body: any;
    try {
      body = type.includes('json') ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (body === undefined || (status >= 400 && typeof body?.error !== 'string')) {
      // A proxy's error page, or another server on that port: not the admin API.
      throw new UnreachableError(this.base, `HTTP ${status} ${type || 'without a content type'}, not an answer of Keygate's admin API`);
    }
    if (status >= 400) {
      const details = Array.isArray(body.details) ? body.details : [];
      throw new ApiError(status, body.error, String(body.message ?? ''), body.request_id ?? requestId, details);
    }
    return body;
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
