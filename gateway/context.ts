import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ErrorCode, InvalidTokenReason } from '../core/errors.js';
import type { Address } from '../core/ip.js';
import { newRateState, type RateState } from '../core/limiter.js';
import type { CompiledKey } from './compiled-key.js';
import type { CompiledApi, CompiledRoute } from './routes.js';
import type { RequestTrace } from './request-trace.js';

/** Why a request was refused; stops the pipeline and renders one error. */
export interface Denial {
  readonly code: ErrorCode;
  readonly reason?: InvalidTokenReason;
  readonly message?: string;
  readonly extra?: Readonly<Record<string, unknown>>;
  /** A 401's WWW-Authenticate challenge, when not the one respond.ts picks by code. */
  readonly challenge?: string;
}

export interface Listener {
  readonly environment: string;
  /** Served over TLS: the upstream is told `X-Forwarded-Proto: https`. */
  readonly tls?: boolean;
  /** The `Strict-Transport-Security` value every response carries (listeners[].tls.hsts), or null. */
  readonly hsts?: string | null;
  /** Where the verified client certificate's subject goes upstream (listeners[].tls.client_subject_header), or null. */
  readonly subjectHeader?: string | null;
  /** `host:port` once bound (`[::1]:8080` for IPv6), as the access log names the listener. */
  address?: string;
}

const NO_SCOPES: readonly string[] = Object.freeze([]);

/** Where an HTTP/2 request carries its stream's TLS connection (gateway/http2.ts). */
export const CONNECTION: unique symbol = Symbol('keygate.connection');

/** Per-request state, one object with a fixed shape, filled stage by stage. */
export class RequestContext {
  readonly req: IncomingMessage;
  /** Null for a WebSocket upgrade, which answers on `socket`. */
  readonly res: ServerResponse | null;
  readonly socket: Duplex | null;
  readonly head: Buffer | null;
  readonly listener: Listener;
  readonly startedAt: number;
  /** Clock reading taken once for every time check of this request. */
  now = 0;
  requestId = '';
  peer = '';
  peerTrusted = false;
  clientIp = '';
  /** Parsed lazily by the allowlist stage: undefined not yet, null malformed. */
  clientAddr: Address | null | undefined = undefined;
  /** The method the checks judge: the request's, or the one `/auth` or a verification names (gateway/verify.ts). */
  method: string;
  path = '';
  query = '';
  api: CompiledApi | null = null;
  /** A CORS preflight to an API with `cors` (route stage); its route is the announced method's. */
  preflight = false;
  route: CompiledRoute | null = null;
  /**
   * The scopes this request needs: its route's, or the API's `unlisted` ones (route stage); a
   * verification adds those its caller names.
   */
  required: readonly string[] = NO_SCOPES;
  /** Units a request spends from a quota: the `cost` a verification names; null: its route's `cost` (1 by default). */
  cost: number | null = null;
  token: string | null = null;
  key: CompiledKey | null = null;
  readonly rate: RateState = newRateState();
  readonly routeRate: RateState = newRateState();
  /** The application's shared bucket, made only for a key whose application has a limit. */
  appRate: RateState | null = null;
  rateChecked = false;
  /** Quota units left after this request's spend; -1 while the quota stage has not answered (or no quota). */
  quotaRemaining = -1;
  /** When the key's quota next refills (epoch ms); 0 when it never does or is not known. */
  quotaResetAt = 0;
  /** Units this request spent from the key's quota, given back on an upstream 5xx where configured. */
  quotaSpent = 0;
  /** The same three for the quota the key's application shares (docs/quotas.md), for a key whose application has one. */
  appQuotaRemaining = -1;
  appQuotaResetAt = 0;
  appQuotaSpent = 0;
  /** The refusal a limit in `mode: shadow` would have answered; null when none would have. */
  wouldDeny: 'rate_limit_exceeded' | 'quota_exceeded' | null = null;
  status = 0;
  /** `ok`, the error code answered, or `client_closed_request` when the client left first. */
  outcome: ErrorCode | 'ok' | 'client_closed_request' = 'ok';
  reason: string | null = null;
  upstreamStartedAt = 0;
  upstreamMs = -1;
  /** Cancels the upstream request while it runs (undici's, handed over at connect: stages/forward.ts); null before and after. */
  abortUpstream: ((err?: Error) => void) | null = null;
  /** The request's part in a distributed trace; null while tracing is off (gateway/trace.ts). */
  trace: RequestTrace | null = null;
  /** The client's response closed (or its connection, while the request waited its turn). */
  closed = false;
  /** Holds one of the key's concurrent-request slots for `api` (stages/concurrency.ts). */
  slot = false;
  /** Links of the in-flight list (gateway/in-flight.ts), while the request is forwarded. */
  prev: RequestContext | null = null;
  next: RequestContext | null = null;
  linked = false;
  /** `performance.now()` past which an unanswered upstream request is answered 504. */
  deadline = 0;
  /** The connection's bytesRead when the request body was last seen to move, and when. */
  bodyBytes = 0;
  bodyMovedAt = 0;
  /** The connection's bytesWritten when the response was last seen to move while backed up, and when (0: not backed up). */
  sentBytes = 0;
  sentMovedAt = 0;
  /** Set once the in-flight watch answered for the upstream: its late outcome is ignored. */
  expired: '' | 'timeout' | 'body_idle' | 'response_idle' | 'body_too_large' = '';
  /**
   * The connection, kept: `req.socket` is null once the response is over. For an HTTP/2 stream,
   * the TLS connection it came on (`req[CONNECTION]`, gateway/http2.ts): its `req.socket` is a
   * proxy that reads nothing once the stream has closed, and usage's byte counts are read then.
   */
  readonly conn: Socket;
  /** The connection's byte counters when this request began (for usage's bytes in and out). */
  readonly bytesRead0: number;
  readonly bytesWritten0: number;

  constructor(
    req: IncomingMessage,
    res: ServerResponse | null,
    socket: Duplex | null,
    head: Buffer | null,
    listener: Listener,
    startedAt: number,
  ) {
    this.req = req;
    this.res = res;
    this.socket = socket;
    this.head = head;
    this.listener = listener;
    this.startedAt = startedAt;
    this.method = req.method ?? 'GET';
    const conn = (req as { [CONNECTION]?: Socket })[CONNECTION] ?? req.socket;
    this.conn = conn;
    this.bytesRead0 = conn.bytesRead;
    this.bytesWritten0 = conn.bytesWritten;
  }
}

/** A stage continues with undefined, stops with a denial; only a cache miss returns a promise. */
export type StageResult = Denial | undefined;
export type Stage = (ctx: RequestContext) => StageResult | Promise<StageResult>;

/** What the preflight stage returns once it has answered the request itself: nothing more is done. */
export const ANSWERED: unique symbol = Symbol('answered');
/** A synchronous stage that may answer the request itself (stages/preflight.ts). */
export type AnsweringStage = (ctx: RequestContext) => StageResult | typeof ANSWERED;
