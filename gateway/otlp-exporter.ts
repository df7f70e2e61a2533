import { Pool } from 'undici';
import type { Logger } from '../core/log.js';
import { VERSION } from '../core/version.js';

/** A request's span once its response is over: what the record stage knew, nothing rendered yet. */
export interface FinishedSpan {
  traceId: string;
  spanId: string;
  parentId: string | null;
  traceState: string | null;
  method: string;
  /** The matching rule's template; null when no rule matched. */
  route: string | null;
  path: string | null;
  /** performance.now() readings. */
  startedAt: number;
  endedAt: number;
  status: number;
  outcome: string;
  reason: string | null;
  requestId: string;
  keyId: string | null;
  application: string | null;
  api: string | null;
  environment: string;
  clientIp: string;
  /** Milliseconds; -1 when the stage did not run. */
  resolveMs: number;
  rateLimitMs: number;
  upstreamStartedAt: number;
  upstreamMs: number;
}

export interface OtlpExporterOptions {
  /** The collector: a base URL (`/v1/traces` is added) or the full traces URL. */
  endpoint: string;
  headers: Readonly<Record<string, string>>;
  timeoutMs: number;
  maxQueueSpans: number;
  maxBatchSpans: number;
  flushIntervalMs: number;
  serviceName: string;
}

/** OTLP span kind SERVER, status codes UNSET and ERROR (opentelemetry-proto, trace.proto). */
const SPAN_KIND_SERVER = 2;
const STATUS_UNSET = 0;
const STATUS_ERROR = 2;

/**
 * Sends finished spans to an OpenTelemetry collector as OTLP/HTTP JSON
 * (https://opentelemetry.io/docs/specs/otlp/#otlphttp), in batches, off the request path.
 * Spans wait in a bounded queue; past `maxQueueSpans` new ones are dropped and counted, and a
 * batch the collector does not take (refused, unreachable, over `timeoutMs`) is dropped and
 * counted too: a trace is worth less than the memory and the requests it would hold up. One
 * batch is in flight at a time.
 */
export class OtlpExporter {
  readonly #options: OtlpExporterOptions;
  readonly #log: Logger;
  readonly #pool: Pool;
  readonly #path: string;
  /** The endpoint as logged: without credentials a URL may carry. */
  readonly #shown: string;
  readonly #headers: Record<string, string>;
  readonly #resource: string;
  #queue: FinishedSpan[] = [];
  #sending: Promise<void> | null = null;
  #soon = false;
  #timer: NodeJS.Timeout;
  #failing = false;
  /** Spans the collector took; spans dropped (queue full, or their batch not taken). */
  exported = 0;
  dropped = 0;

  constructor(options: OtlpExporterOptions, log: Logger) {
    this.#options = options;
    this.#log = log;
    const url = new URL(options.endpoint);
    this.#path = (url.pathname === '/' ? '/v1/traces' : url.pathname) + url.search;
    this.#shown = url.origin + url.pathname;
    this.#headers = { ...options.headers, 'content-type': 'application/json', 'user-agent': `keygate/${VERSION}` };
    this.#pool = new Pool(url.origin, { connections: 1, connect: { timeout: options.timeoutMs }, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs });
    this.#resource = encodeResource(options.serviceName);
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs);
    this.#timer.unref();
  }

  /** One finished span. Synchronous and cheap: an array push, or a count when the queue is full. */
  add(span: FinishedSpan): void {
    if (this.#queue.length >= this.#options.maxQueueSpans) {
      this.dropped++;
      return;
    }
    this.#queue.push(span);
    // A full batch goes at once, but not from inside the request that filled it.
    if (this.#queue.length >= this.#options.maxBatchSpans && !this.#soon) {
      this.#soon = true;
      setImmediate(() => {
        this.#soon = false;
        void this.flush();
      });
    }
  }

  /** Spans waiting to be sent. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Sends what is queued, a batch at a time; resolves when the queue is empty or a send is under way. */
  flush(): Promise<void> {
    if (this.#sending === null && this.#queue.length > 0) this.#sending = this.#drain().finally(() => (this.#sending = null));
    return this.#sending ?? Promise.resolve();
  }

  /** Sends what is left (each batch one try, within `timeoutMs` in all), then closes the connection. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    const until = performance.now() + this.#options.timeoutMs;
    while ((this.#queue.length > 0 || this.#sending !== null) && performance.now() < until) await this.flush();
    if (this.#queue.length > 0) {
      this.dropped += this.#queue.length;
      this.#log.warn('trace spans not exported before shutdown', { spans: this.#queue.length });
      this.#queue = [];
    }
    await this.#pool.close();
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#options.maxBatchSpans);
      await this.#send(batch);
    }
  }

  async #send(batch: FinishedSpan[]): Promise<void> {
    let failure: string | null = null;
    try {
      const res = await this.#pool.request({
        method: 'POST',
        path: this.#path,
        headers: this.#headers,
        body: this.#body(batch),
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
      const text = await res.body.text();
      if (res.statusCode >= 200 && res.statusCode < 300) {
        this.exported += batch.length;
        if (this.#failing) this.#log.info('trace export recovered', { endpoint: this.#shown });
        this.#failing = false;
        return;
      }
      failure = `HTTP ${res.statusCode}: ${text.slice(0, 200)}`;
    } catch (err) {
      failure = (err as Error).message;
    }
    this.dropped += batch.length;
    // Logged when export starts failing, not once a batch while the collector stays away.
    if (!this.#failing) this.#log.warn('trace export failed; spans dropped until the collector takes them', { endpoint: this.#shown, err: failure });
    this.#failing = true;
  }

  #body(batch: FinishedSpan[]): string {
    return encodeSpans(batch, this.#resource);
  }
}

/**
 * The OTLP JSON request (ExportTraceServiceRequest) of one batch: ids in hex, 64-bit integers
 * as strings (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding). Written out as
 * text, every value that comes from a request through JSON.stringify: a third of the time of
 * building the objects and stringifying them whole, and this runs on the event loop.
 */
export function encodeSpans(batch: readonly FinishedSpan[], resource: string): string {
  let spans = '';
  for (let i = 0; i < batch.length; i++) spans += (i === 0 ? '' : ',') + encodeSpan(batch[i]!);
  return `{"resourceSpans":[{"resource":${resource},"scopeSpans":[{"scope":{"name":"keygate","version":${quote(VERSION)}},"spans":[${spans}]}]}]}`;
}

/** The resource of every span, as encodeSpans takes it. */
export function encodeResource(serviceName: string): string {
  const attrs = [str('service.name', serviceName), str('service.version', VERSION), str('telemetry.sdk.name', 'keygate'), str('telemetry.sdk.language', 'nodejs')];
  return `{"attributes":[${attrs.join(',')}]}`;
}

/**
 * A JSON string: most values (ids, names, paths) are printable ASCII with nothing to escape,
 * which a loop over their characters finds faster than JSON.stringify quotes them.
 */
function quote(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(v);
  }
  return `"${v}"`;
}

function str(key: string, v: string): string {
  return `{"key":"${key}","value":{"stringValue":${quote(v)}}}`;
}

function int(key: string, v: number): string {
  return `{"key":"${key}","value":{"intValue":"${Math.trunc(v)}"}}`;
}

function ms(key: string, v: number): string {
  return `{"key":"${key}","value":{"doubleValue":${Math.round(v * 1000) / 1000}}}`;
}

/** A performance.now() reading as Unix nanoseconds, in a string (beyond a double's integers). */
export function unixNano(perf: number): string {
  const t = performance.timeOrigin + perf;
  let whole = Math.floor(t);
  let nanos = Math.round((t - whole) * 1e6);
  if (nanos >= 1e6) {
    whole += 1;
    nanos -= 1e6;
  }
  return `${whole}${String(nanos).padStart(6, '0')}`;
}

/**
 * A span as OTLP JSON, named as the OpenTelemetry HTTP conventions name server spans
 * (`{method} {route}`), with their attributes and Keygate's own under `keygate.`: the outcome
 * (`ok` or the error code answered), the key's id (never the key), the API, and the time spent
 * resolving the key, in the rate limiter and waiting for the upstream's response head.
 */
function encodeSpan(s: FinishedSpan): string {
  let a =
    str('http.request.method', s.method) +
    ',' +
    int('http.response.status_code', s.status) +
    ',' +
    str('url.scheme', 'http') +
    ',' +
    str('client.address', s.clientIp) +
    ',' +
    str('keygate.outcome', s.outcome) +
    ',' +
    str('keygate.request_id', s.requestId) +
    ',' +
    str('keygate.environment', s.environment);
  if (s.route !== null) a += ',' + str('http.route', s.route);
  if (s.path !== null) a += ',' + str('url.path', s.path);
  if (s.api !== null) a += ',' + str('keygate.api', s.api);
  if (s.keyId !== null) a += ',' + str('keygate.key_id', s.keyId);
  if (s.application !== null) a += ',' + str('keygate.application_id', s.application);
  if (s.reason !== null) a += ',' + str('keygate.reason', s.reason);
  if (s.status >= 500) a += ',' + str('error.type', s.outcome);
  if (s.resolveMs >= 0) a += ',' + ms('keygate.resolve_ms', s.resolveMs);
  if (s.rateLimitMs >= 0) a += ',' + ms('keygate.rate_limit_ms', s.rateLimitMs);
  let events = '';
  if (s.upstreamMs >= 0) {
    a += ',' + ms('keygate.upstream_ms', s.upstreamMs);
    events =
      `{"timeUnixNano":"${unixNano(s.upstreamStartedAt)}","name":"upstream.request"},` +
      `{"timeUnixNano":"${unixNano(s.upstreamStartedAt + s.upstreamMs)}","name":"upstream.response"}`;
  }
  const name = quote(s.route === null ? s.method : `${s.method} ${s.route}`);
  const status = s.status >= 500 ? `{"code":${STATUS_ERROR},"message":${quote(s.outcome)}}` : `{"code":${STATUS_UNSET}}`;
  return (
    `{"traceId":"${s.traceId}","spanId":"${s.spanId}"` +
    (s.parentId === null ? '' : `,"parentSpanId":"${s.parentId}"`) +
    (s.traceState === null ? '' : `,"traceState":${quote(s.traceState)}`) +
    `,"name":${name},"kind":${SPAN_KIND_SERVER},"startTimeUnixNano":"${unixNano(s.startedAt)}","endTimeUnixNano":"${unixNano(s.endedAt)}"` +
    `,"attributes":[${a}],"events":[${events}],"status":${status}}`
  );
}
