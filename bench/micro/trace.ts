import { parseConfig } from '../../config/load.js';
import { systemClock } from '../../core/clock.js';
import { Logger } from '../../core/log.js';
import type { Store } from '../../core/store/store.js';
import { compileKey } from '../../gateway/compiled-key.js';
import { RequestContext } from '../../gateway/context.js';
import { buildRuntime } from '../../gateway/runtime.js';
import { hasherFor } from '../../gateway/server.js';
import { encodeResource, encodeSpans, type FinishedSpan } from '../../gateway/otlp-exporter.js';
import { createRecordStage } from '../../gateway/stages/record.js';
import { createTraceStage } from '../../gateway/trace.js';
import { dropSet, upstreamHeaders } from '../../gateway/upstream-request.js';
import { keyRecord } from '../../test/lib/records.js';
import { measure, report, type CaseResult } from './lib.js';

/**
 * What tracing (gateway/trace.ts) costs the parts of a request it touches: building the
 * context, the upstream's headers and the record stage, with tracing off (the default: the
 * same work as before tracing existed) and on (a client's traceparent read, a span started,
 * its headers sent upstream, the span queued for export), on a hand-built forwarded request.
 *   node --import=tsx bench/micro/trace.ts
 */
const CLIENT_PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

function runtime(tracing: Record<string, unknown> | undefined) {
  const config = parseConfig({
    listeners: [{ port: 0, host: '127.0.0.1', environment: 'production' }],
    plans: { default: { limit: 1_000_000_000, window_seconds: 1 } },
    scopes: { catalog: ['read'] },
    apis: [{ name: 'bench', path_prefix: '/', upstream: 'http://127.0.0.1:1', routes: [{ method: 'GET', path: '/*', scopes: ['read'] }] }],
    admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
    metrics: { enabled: false },
    ...(tracing === undefined ? {} : { tracing }),
  });
  const hasher = hasherFor(config);
  return buildRuntime(config, { clock: systemClock, log: new Logger({ level: 'error' }), store: { onKeyChange: () => () => {} } as unknown as Store, hasher });
}

function request(traceparent: boolean) {
  const headers: Record<string, string> = { host: 'bench.example', 'user-agent': 'bench/1', accept: '*/*', authorization: 'Bearer x' };
  if (traceparent) Object.assign(headers, { traceparent: CLIENT_PARENT, tracestate: 'vendor=abc' });
  return {
    url: '/bench',
    method: 'GET',
    headers,
    rawHeaders: Object.entries(headers).flat(),
    socket: { remoteAddress: '127.0.0.1', bytesRead: 0, bytesWritten: 0 },
  } as never;
}

const listener = { environment: 'production' };
const cases: CaseResult[] = [];

const EXPORT = { endpoint: 'http://127.0.0.1:1', flush_interval_ms: 60_000 };
for (const [label, tracing, withParent] of [
  ['tracing off', undefined, false],
  ['tracing off, client traceparent', undefined, true],
  ['tracing on, no export, client traceparent', { enabled: true }, true],
  ['tracing on, exported, client traceparent', { enabled: true, otlp: EXPORT }, true],
  ['tracing on, exported, new trace', { enabled: true, otlp: EXPORT }, false],
  ['tracing on, ratio 0, new trace', { enabled: true, sample_ratio: 0, otlp: EXPORT }, false],
] as const) {
  const rt = runtime(tracing);
  const api = rt.apis[0]!;
  const drop = dropSet(rt, api);
  const record = createRecordStage(rt);
  const tracer = rt.tracer;
  const start = tracer === null ? null : createTraceStage(tracer);
  const exporter = tracer?.exporter ?? null;
  if (exporter !== null) {
    // Spans are queued as the exporter queues them (an array push), and the queue emptied, as
    // sending does, rather than left to fill up and drop; encoding is measured below.
    const queue: FinishedSpan[] = [];
    exporter.add = (span) => {
      queue.push(span);
      if (queue.length === 4096) queue.length = 0;
    };
  }
  const req = request(withParent);
  const key = compileKey(keyRecord('gw_live_x', rt.hasher, Date.now(), { scopes: ['read'], apis: ['bench'] }), rt.plans, 0);
  cases.push(
    measure(`context + upstream headers + record, ${label}`, (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const ctx = new RequestContext(req, null, null, null, listener, 0);
        ctx.requestId = 'req-1';
        ctx.peer = '127.0.0.1';
        if (start !== null) start(ctx);
        ctx.api = api;
        ctx.key = key;
        ctx.status = 200;
        const h = upstreamHeaders(rt, ctx, drop) as string[];
        record(ctx);
        s += h.length;
      }
      return s;
    }),
  );
}

const span: FinishedSpan = {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '53995c3f42cd8ad8', parentId: '00f067aa0ba902b7', traceState: 'vendor=abc',
  method: 'GET', route: '/*', path: '/bench', startedAt: 1000, endedAt: 1001.5, status: 200, outcome: 'ok', reason: null,
  requestId: 'req-1', keyId: 'key_4Jt0dB8QJbNq2bkS', application: null, api: 'bench', environment: 'production', clientIp: '127.0.0.1',
  resolveMs: 0.004, rateLimitMs: 0.002, upstreamStartedAt: 1000.1, upstreamMs: 1.2,
};
const batch = Array.from({ length: 512 }, () => span);
cases.push(
  measure('OTLP JSON of a batch of 512 spans, per span (off the request path)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i += 512) s += encodeSpans(batch, encodeResource('keygate')).length;
    return s;
  }),
);

report('trace: what tracing costs context, upstream headers and record', cases);
process.exit(0);
