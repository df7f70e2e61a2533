import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Denial, RequestContext } from '../context.js';
import { pushCorsHeaders } from '../cors.js';
import { dropNamed, HOP_BY_HOP, pushResponseHeaders } from '../headers.js';
import { InFlight, type Expiry } from '../in-flight.js';
import { pushKeyHeaders, sendDenial } from '../respond.js';
import { bodyLimit, type CompiledApi } from '../routes.js';
import type { Runtime } from '../runtime.js';
import { bodyTooLarge, dropSet, upstreamFailure, upstreamHeaders, upstreamTarget } from '../upstream-request.js';

const TIMEOUT: Denial = Object.freeze({ code: 'gateway_timeout' });
/** What a key in a rotation grace is told by the gateway (respond.ts pushKeyHeaders); the upstream's copies go. */
const GRACE_HEADERS: ReadonlySet<string> = new Set(['deprecation', 'sunset']);
const BODY_IDLE: Denial = Object.freeze({ code: 'request_timeout', message: 'The request body stopped arriving, so the connection is closed; send the request again.' });
/** How often the in-flight watch looks for requests past their deadline or with an idle body. */
const WATCH_TICK_MS = 250;

/** Whether the client waits for `100 Continue` before sending its body (RFC 9110 §10.1.1). */
function expectsContinue(req: IncomingMessage): boolean {
  const e = req.headers.expect;
  return e !== undefined && e.toLowerCase() === '100-continue';
}

/**
 * The body of a request without Content-Length (chunked), passed on chunk by chunk until it
 * grows past `limit`: then the client is answered 413 and the upstream request is cancelled.
 * The request itself is not destroyed on the way out (`destroyOnReturn: false`), so that the
 * 413 reaches the client before its connection closes.
 */
async function* capped(rt: Runtime, ctx: RequestContext, limit: number): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of ctx.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > limit) {
      ctx.expired = 'body_too_large';
      // The upstream answered before the body grew too large: its response is cut short, as
      // nothing else would end it; else the client is answered 413.
      if (ctx.res!.headersSent) ctx.res!.destroy();
      else sendDenial(rt, ctx, bodyTooLarge(limit));
      throw Object.assign(new Error('request body over max_body_bytes'), { code: 'KEYGATE_BODY_TOO_LARGE' });
    }
    yield chunk;
  }
}

export interface ForwardStage {
  /** Forwards a request that passed every check. */
  forward(ctx: RequestContext): void;
  /** Called once the client's response is over (the pipeline's close listener). */
  settle(ctx: RequestContext): void;
  close(): void;
}

/**
 * Proxies the request through the API's undici Pool. Bodies stream both ways with
 * backpressure (undici writes into the ServerResponse and pauses when it is full); nothing is
 * buffered whole.
 *
 * A client that leaves while the upstream still works cancels the upstream request: `settle`,
 * called when the response closes, aborts it through the function undici handed over at
 * connect (Upstream.onConnect). The in-flight watch (in-flight.ts) does the same when a
 * request outlives `timeout_ms` from its arrival or its body stops arriving, after answering
 * the client itself.
 */
export function createForwardStage(rt: Runtime): ForwardStage {
  const drops = new Map<CompiledApi, Set<string>>();
  for (const api of rt.apis) drops.set(api, dropSet(rt, api));
  const h = rt.config.headers;
  const limits = rt.config.limits;
  // Response headers the upstream does not pass on: the hop-by-hop ones, and those the gateway
  // sets on every forwarded response (its copy must be the only one), with HSTS on listeners
  // that set it. Deprecation and Sunset go only for a key in a rotation grace (the gateway's
  // then); otherwise an upstream's own (RFC 9745, for its endpoints) passes.
  const owned = [h.request_id, 'ratelimit', 'ratelimit-policy', ...(h.legacy_rate_limit ? ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'] : [])];
  const dropPlain: ReadonlySet<string> = new Set([...HOP_BY_HOP, ...owned.map((n) => n.toLowerCase())]);
  const dropHsts: ReadonlySet<string> = new Set([...dropPlain, 'strict-transport-security']);
  const inFlight = new InFlight({
    tickMs: WATCH_TICK_MS,
    bodyIdleMs: limits.body_idle_timeout_ms,
    responseIdleMs: limits.response_idle_timeout_ms,
    onExpired: expire,
  });

  function expire(ctx: RequestContext, why: Expiry): void {
    ctx.expired = why;
    const res = ctx.res!;
    if (why === 'timeout') rt.log.warn('upstream request timed out', { request_id: ctx.requestId, api: ctx.api?.name });
    if (!res.headersSent) sendDenial(rt, ctx, why === 'timeout' ? TIMEOUT : BODY_IDLE);
    else res.destroy();
    cancel(ctx);
  }

  /** Cancels the request's upstream request, queued or under way (a queued one is cancelled when it gets its connection: Upstream.onConnect). */
  function cancel(ctx: RequestContext): void {
    const abort = ctx.abortUpstream;
    if (abort === null) return;
    ctx.abortUpstream = null;
    abort();
  }

  /**
   * Answers 502 for an upstream answer that cannot be passed on (its head refused by Node), or
   * failing that cuts the response: whatever went wrong, the client is not left waiting.
   */
  function badGateway(ctx: RequestContext, err: Error): void {
    const res = ctx.res!;
    const code = (err as { code?: string }).code;
    rt.log.warn('upstream request failed', { request_id: ctx.requestId, api: ctx.api?.name, code: code ?? err.name, err: err.message });
    try {
      sendDenial(rt, ctx, upstreamFailure(err));
    } catch {
      res.destroy(err);
    }
  }

  /**
   * The upstream's answer, as undici's dispatcher reports it (its handler interface, which
   * `Pool.stream` is itself built on), written straight into the client's response: the head
   * from undici's raw header buffers as one flat list, each body chunk as it comes (undici
   * pauses reading while the client's buffers are full and resumes on `drain`), the end. One
   * object per request, no header object, no async-hooks scope, no listener on the request.
   */
  class Upstream implements Dispatcher.DispatchHandler {
    readonly ctx: RequestContext;
    resume: (() => void) | null = null;
    /** The gateway gave up on the upstream's answer itself (its head was refused): undici's echo is ignored. */
    dropped = false;
    constructor(ctx: RequestContext) {
      this.ctx = ctx;
    }
    onConnect(abort: (err?: Error) => void): void {
      const ctx = this.ctx;
      // The client left, or the watch answered, while the request waited for a connection.
      if (ctx.closed || ctx.expired !== '') abort();
      else ctx.abortUpstream = abort;
    }
    onHeaders(statusCode: number, raw: Buffer[], resume: () => void): boolean {
      if (statusCode < 200) return true;
      const ctx = this.ctx;
      const res = ctx.res!;
      // Answered already (the body cap's 413): the upstream's late answer goes nowhere.
      if (res.headersSent) return true;
      const cors = ctx.api!.cors;
      const headers: string[] = [];
      pushResponseHeaders(raw, ctx.listener.hsts ? dropHsts : dropPlain, cors !== null, headers);
      if (ctx.key?.life?.sunset != null) dropNamed(headers, 0, GRACE_HEADERS);
      headers.push(h.request_id, ctx.requestId);
      pushKeyHeaders(rt, ctx, headers);
      if (cors !== null) pushCorsHeaders(cors, ctx.req, headers);
      // The listener's HSTS policy is the operator's, whatever the upstream says.
      const hsts = ctx.listener.hsts;
      if (hsts) headers.push('strict-transport-security', hsts);
      try {
        res.writeHead(statusCode, headers as unknown as OutgoingHttpHeaders);
      } catch (err) {
        // A header Node will not send (HTTP/2 refuses some that HTTP/1.1 allows): nothing of
        // the head went out. What was set is cleared, the upstream request cancelled, 502 sent.
        for (const name of res.getHeaderNames()) res.removeHeader(name);
        res.statusMessage = '';
        this.dropped = true;
        cancel(ctx);
        badGateway(ctx, err as Error);
        return false;
      }
      // Set once the head is written: only then do body and end go to the client.
      this.resume = resume;
      ctx.status = statusCode;
      ctx.upstreamMs = performance.now() - ctx.upstreamStartedAt;
      return true;
    }
    onData(chunk: Buffer): boolean {
      const res = this.ctx.res!;
      if (this.resume === null || res.destroyed) return true;
      if (res.write(chunk)) return true;
      res.once('drain', this.resume);
      return false;
    }
    onComplete(): void {
      const ctx = this.ctx;
      ctx.abortUpstream = null;
      const res = ctx.res!;
      if (this.resume !== null && ctx.expired === '' && !res.destroyed) res.end();
    }
    onError(err: Error): void {
      const ctx = this.ctx;
      ctx.abortUpstream = null;
      // The watch or the body cap answered already, or the head was refused: this is the cancelled request's echo.
      if (ctx.expired !== '' || this.dropped) return;
      const res = ctx.res!;
      // The client left first; the record stage counts it as 499.
      if (res.destroyed) return;
      if (res.headersSent) {
        // The status is already on the wire: all that is left is to cut the response short,
        // never to end it as if complete. The record stage finds the error on res.errored.
        res.destroy(err);
        return;
      }
      badGateway(ctx, err);
    }
  }

  return {
    forward(ctx: RequestContext): void {
      const api = ctx.api!;
      const req = ctx.req;
      // The route stage refused other codings and a Content-Length over the limit already.
      const te = req.headers['transfer-encoding'];
      const cl = req.headers['content-length'];
      const headers = upstreamHeaders(rt, ctx, drops.get(api)!);
      if (!Array.isArray(headers)) return sendDenial(rt, ctx, headers);
      const hasBody = te !== undefined || (cl !== undefined && cl !== '0');
      const limit = bodyLimit(api, ctx.route);
      // Only now, with every check passed, is the client told to send its body.
      if (hasBody && expectsContinue(req)) ctx.res!.writeContinue();
      const now = performance.now();
      ctx.upstreamStartedAt = now;
      ctx.deadline = ctx.startedAt + api.config.timeout_ms;
      inFlight.add(ctx, now);
      api.pool.dispatch(
        {
          path: upstreamTarget(rt, ctx),
          method: req.method as Dispatcher.HttpMethod,
          headers,
          // undici takes an async iterable body as it takes a stream (its types list only streams).
          body: !hasBody ? null : te !== undefined && limit !== null ? (capped(rt, ctx, limit) as unknown as Readable) : req,
        },
        new Upstream(ctx),
      );
    },
    settle(ctx: RequestContext): void {
      inFlight.remove(ctx);
      // Closed before the response was complete: the client left, or the upstream failed
      // mid-body. Either way the upstream request, if one runs, is cancelled.
      cancel(ctx);
    },
    close(): void {
      inFlight.close();
    },
  };
}
