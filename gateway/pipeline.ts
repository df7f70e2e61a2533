import { randomUUID } from 'node:crypto';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { REQUEST_ID } from '../core/errors.js';
import { ANSWERED, RequestContext, type AnsweringStage, type Denial, type Listener, type Stage } from './context.js';
import { sendDenial } from './respond.js';
import type { Runtime } from './runtime.js';
import { createKeyChecks, createRunner } from './key-checks.js';
import { createClientIpStage } from './stages/client-ip.js';
import { releaseSlot } from './stages/concurrency.js';
import { createForwardStage } from './stages/forward.js';
import { createWebSocketForward } from './stages/forward-websocket.js';
import { createParseKeyStage } from './stages/parse-key.js';
import { createPreflightStage } from './stages/preflight.js';
import { refundQuota } from './stages/quota.js';
import { createRecordStage } from './stages/record.js';
import { createRouteStage } from './stages/route.js';
import { createTraceStage, timed } from './trace.js';

/**
 * The gateway servers' response class (createServer's `ServerResponse` option): it carries its
 * request's context, so that one `close` listener, shared by every request, finds it. A
 * listener of its own per request (a closure, and `once`'s wrapper) cost three allocations.
 */
export class GatewayResponse extends ServerResponse {
  ctx: RequestContext | null = null;
}

export interface Pipeline {
  /** Runs one request; the pipeline's `onDone` is called once its response is over and recorded. */
  handle(req: IncomingMessage, res: GatewayResponse, listener: Listener): void;
  /** Runs one WebSocket upgrade (the server hands over only those; see server.ts). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, listener: Listener): void;
  /** Stops the forward stage's in-flight watch. */
  close(): void;
}

/**
 * The one place that orders the stages (docs/architecture.md, Request pipeline): the request's
 * own (client address, route, CORS preflight, key from the request), then the key checks
 * (key-checks.ts), then forward and record. Checks run synchronously one after another; only a
 * stage that returns a promise (a key-cache miss) makes the rest wait.
 */
export function createPipeline(rt: Runtime, onDone: () => void): Pipeline {
  const tracer = rt.tracer;
  // With tracing on, the request's trace starts first and two stages report their time to its
  // span; with it off, none of this is in the list.
  const checks: readonly (Stage | AnsweringStage)[] = [
    ...(tracer === null ? [] : [createTraceStage(tracer)]),
    createClientIpStage(rt),
    createRouteStage(rt),
    // Answers CORS preflights before a key is asked for; left out when no API has `cors`.
    ...(rt.apis.some((a) => a.cors !== null) ? [createPreflightStage(rt)] : []),
    createParseKeyStage(rt),
    ...createKeyChecks(rt, { forwarded: true, timed: tracer === null ? null : timed }),
  ];
  const forward = createForwardStage(rt);
  const websocket = createWebSocketForward(rt);
  const recordOutcome = createRecordStage(rt);
  /** Records the request, then gives its quota units back if nothing went upstream or the upstream failed (stages/quota.ts). */
  const record = (ctx: RequestContext): void => {
    recordOutcome(ctx);
    refundQuota(rt, ctx);
  };
  const requestIdHeader = rt.config.headers.request_id;

  function finish(ctx: RequestContext, denial: Denial | typeof ANSWERED | undefined): void {
    if (denial === ANSWERED) return;
    if (ctx.res === null) return finishUpgrade(ctx, denial);
    if (denial !== undefined) sendDenial(rt, ctx, denial);
    else forward.forward(ctx);
  }

  /** A WebSocket tunnel holds its key's slot (stages/concurrency.ts) until it closes. */
  function finishUpgrade(ctx: RequestContext, denial: Denial | undefined): void {
    const socket = ctx.socket!;
    if (denial !== undefined || socket.destroyed) {
      if (denial !== undefined) sendDenial(rt, ctx, denial);
      releaseSlot(ctx);
      record(ctx);
      return;
    }
    websocket(ctx);
    socket.once('close', () => {
      releaseSlot(ctx);
      record(ctx);
    });
  }

  // A client that left while a stage waited was recorded when it left (onClose): nothing more
  // is done for it, no slot taken, nothing forwarded.
  const run = createRunner(rt, checks, finish);

  function start(ctx: RequestContext): void {
    const given = ctx.req.headers[requestIdHeader];
    ctx.requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    ctx.now = rt.clock.now();
    run(ctx);
  }

  function onClose(this: GatewayResponse): void {
    const ctx = this.ctx!;
    ctx.closed = true;
    // Closed before the response was complete: the client left, or the upstream failed
    // mid-body. Either way the upstream request, if one runs, is cancelled (forward.ts passes
    // the request to undici as its abort signal). An HTTP/2 stream the client reset reads as
    // finished (Node shuts its writable side on RST_STREAM, and the compatibility response
    // answers `writableFinished` from the stream), so whether the gateway ended the response
    // at all (`writableEnded`) is asked too.
    if (!this.writableFinished || !this.writableEnded) ctx.req.emit('abort');
    forward.settle(ctx);
    releaseSlot(ctx);
    record(ctx);
    onDone();
  }

  /**
   * A request pipelined behind another (its response is queued: Node gives it the socket once
   * the one ahead is written) runs only when its turn comes. Run at once, its upstream answer
   * would wait on a response with nowhere to go, holding a pool connection and a slot; and if
   * the client leaves meanwhile, Node never closes a queued response. So those left waiting
   * when the connection closes are recorded here, as clients that left (499).
   */
  const waiting = new WeakMap<Socket, Set<RequestContext>>();
  function waitTurn(ctx: RequestContext): void {
    const conn = ctx.conn;
    let queue = waiting.get(conn);
    if (queue === undefined) {
      const q = new Set<RequestContext>();
      queue = q;
      waiting.set(conn, q);
      conn.once('close', () => {
        waiting.delete(conn);
        for (const left of q) {
          left.closed = true;
          record(left);
          onDone();
        }
      });
    }
    const q = queue;
    q.add(ctx);
    ctx.res!.once('socket', () => {
      q.delete(ctx);
      start(ctx);
    });
  }

  return {
    handle(req, res, listener) {
      const ctx = new RequestContext(req, res, null, null, listener, performance.now());
      res.ctx = ctx;
      res.on('close', onClose);
      if (res.socket === null) waitTurn(ctx);
      else start(ctx);
    },
    upgrade(req, socket, head, listener) {
      socket.on('error', () => socket.destroy());
      start(new RequestContext(req, null, socket, head, listener, performance.now()));
    },
    close() {
      forward.close();
    },
  };
}
