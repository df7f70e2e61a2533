import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSecureServer, Http2ServerResponse, Http2ServerRequest, type Http2SecureServer, type Http2Session, type SecureServerOptions, type ServerHttp2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../config/schema.js';
import { CONNECTION, type RequestContext } from './context.js';

/*
 * HTTP/2 to clients on TLS listeners (docs/operations.md, HTTP/2): Node's compatibility API
 * gives each stream a request and response shaped like HTTP/1.1's, so every stream runs the
 * one pipeline, is checked and recorded on its own, and is forwarded to the upstream over
 * HTTP/1.1. What differs is made alike here, once per stream, before the pipeline sees it.
 */

/**
 * The response class of HTTP/2 streams: carries its context as GatewayResponse does, and
 * answers what the pipeline asks of an HTTP/1.1 response and the compatibility API leaves out
 * (`destroyed`, `errored`, `writableNeedDrain`).
 */
export class GatewayH2Response extends Http2ServerResponse {
  ctx: RequestContext | null = null;
  #errored: Error | null = null;

  /** The error this response was destroyed with (read as `errored`, as on http's ServerResponse). */
  erroredWith(): Error | null {
    return this.#errored;
  }

  override destroy(err?: Error): this {
    // As on http's ServerResponse, an error given once the stream is gone (the client reset it,
    // and the cancelled upstream request may echo that back) is not this response's.
    if (err !== undefined && !this.stream.destroyed) this.#errored ??= err;
    return super.destroy(err);
  }
}
// Declared by @types/node but missing at run time on Node 20's compatibility response.
Object.defineProperties(GatewayH2Response.prototype, {
  destroyed: {
    get(this: GatewayH2Response) {
      return this.stream.destroyed;
    },
  },
  errored: {
    get(this: GatewayH2Response) {
      return this.erroredWith();
    },
  },
  writableNeedDrain: {
    get(this: GatewayH2Response) {
      return this.stream.writableNeedDrain;
    },
  },
});

/**
 * Rewrites an HTTP/2 request's headers in the shape the pipeline reads (RFC 9113 §8.3, and
 * what an HTTP/1.1 upstream must receive):
 * - pseudo-headers leave the forwarded list; `:authority` becomes `Host` (replacing a `Host`
 *   the client may also have sent, so routing and the upstream read the same name);
 * - several `Cookie` fields are joined with "; " (§8.2.3), as an HTTP/1.1 upstream reads one;
 * - a body of no declared length (no END_STREAM on the headers, no `Content-Length`) is read
 *   as HTTP/1.1's chunked body is: the route stage's limit and the forward stage's cap apply
 *   to it alike. Its `Transfer-Encoding` is never forwarded (hop-by-hop).
 */
export function toHttp1Shape(req: Http2ServerRequest): void {
  const headers = req.headers;
  const raw = req.rawHeaders;
  const out: string[] = [];
  let cookie: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 58 /* : */ || name === 'host') continue;
    if (name === 'cookie') {
      cookie = cookie === null ? raw[i + 1]! : `${cookie}; ${raw[i + 1]!}`;
      continue;
    }
    out.push(name, raw[i + 1]!);
  }
  const host = headers[':authority'] ?? headers.host;
  if (typeof host === 'string') {
    headers.host = host;
    out.unshift('host', host);
  }
  if (cookie !== null) {
    headers.cookie = cookie;
    out.push('cookie', cookie);
  }
  if (!req.stream.endAfterHeaders && headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
  raw.length = 0;
  for (const v of out) raw.push(v);
}

/** How long an HTTP/2 connection may carry no frame before it is told to go (GOAWAY). */
const SESSION_IDLE_MS = 65_000;

/**
 * An HTTP/2 server on TLS that falls back to HTTP/1.1 (ALPN), with the HTTP/1.1 side set as
 * the plain listeners are, and HTTP/2's limits (limits.http2): concurrent streams and header
 * list size from the config; and Node's guards against abuse set explicitly: streams refused
 * over the concurrency limit (maxSessionRejectedStreams), invalid frames
 * (maxSessionInvalidFrames), SETTINGS entries per frame (maxSettings), header fields per block
 * (maxHeaderListPairs) and outstanding PINGs. Rapid reset (CVE-2023-44487) and CONTINUATION
 * floods (CVE-2024-27983) are cut by nghttp2 itself in Node 20.
 */
export function createH2Server(
  config: Config,
  tlsOptions: SecureServerOptions,
  http1Response: Function,
  onRequest: (req: IncomingMessage, res: never) => void,
  sessions: Set<ServerHttp2Session>,
): Http2SecureServer<typeof IncomingMessage, typeof ServerResponse, typeof Http2ServerRequest, typeof GatewayH2Response> {
  const limits = config.limits;
  const h2 = limits.http2;
  const server = createSecureServer({
    ...tlsOptions,
    allowHTTP1: true,
    Http1ServerResponse: http1Response as typeof ServerResponse,
    Http2ServerResponse: GatewayH2Response,
    settings: {
      maxConcurrentStreams: h2.max_concurrent_streams,
      maxHeaderListSize: h2.max_header_list_bytes,
      enablePush: false,
    },
    maxHeaderListPairs: h2.max_header_fields,
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 100,
    maxSettings: 32,
    maxOutstandingPings: 10,
    maxSessionMemory: 10,
  });
  // What http.createServer's options set for HTTP/1.1 connections (gateway/server.ts).
  const s = server as Http2SecureServer & Record<string, unknown>;
  s['keepAliveTimeout'] = 65_000;
  s['requestTimeout'] = 0;
  s['headersTimeout'] = limits.headers_timeout_ms;
  s['connectionsCheckingInterval'] = Math.min(1_000, limits.headers_timeout_ms);
  s['requireHostHeader'] = true;
  server.on('request', (req: IncomingMessage | Http2ServerRequest, res: unknown) => {
    // A stream the client reset (or whose connection went) closes its response unended: the
    // pipeline's close listener then cancels the upstream request (gateway/pipeline.ts).
    if (req.httpVersionMajor === 2) {
      const r = req as Http2ServerRequest & { [CONNECTION]?: TLSSocket };
      toHttp1Shape(r);
      r[CONNECTION] = connections.get(r.stream.session!);
    }
    onRequest(req as IncomingMessage, res as never);
  });
  // The TLS connection under each HTTP/2 session, which the session only shows through a proxy
  // that stops answering once a stream (or the session) has closed. Node's own listener makes
  // the session from the connection, emitting 'session', just before this one runs.
  const connections = new WeakMap<Http2Session, TLSSocket>();
  let opened: ServerHttp2Session | null = null;
  server.on('secureConnection', (socket: TLSSocket) => {
    if (opened === null) return;
    connections.set(opened, socket);
    opened = null;
  });
  server.on('session', (session: ServerHttp2Session) => {
    opened = session;
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.on('error', () => session.destroy());
    session.setTimeout(SESSION_IDLE_MS, () => session.close());
  });
  return server;
}
