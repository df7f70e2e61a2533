import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { WebSocket } from 'ws';
import { configWarnings, parseConfig } from '../config/load.js';
import { boundTraceState, parseTraceparent, ratioSampled, TRACESTATE_MAX_CHARS } from '../gateway/trace.js';
import { bearer, call, startStack, type Stack } from './lib/stack.js';
import { waitFor } from './lib/within.js';

// Tracing (docs/operations.md, Tracing): the W3C trace context a real upstream receives, and the
// spans a real OTLP/HTTP receiver (a node:http server parsing the JSON) is sent.

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string; doubleValue?: number };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpAttribute[];
  events: { name: string; timeUnixNano: string }[];
  status: { code: number; message?: string };
}

/** A real OTLP/HTTP receiver on loopback: every export's raw body, and its spans. */
async function startReceiver() {
  const bodies: string[] = [];
  const paths: string[] = [];
  const headers: Record<string, string | string[] | undefined>[] = [];
  const spans: OtlpSpan[] = [];
  let resource: OtlpAttribute[] = [];
  const server: Server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      bodies.push(text);
      paths.push(req.url!);
      headers.push(req.headers);
      const body = JSON.parse(text) as { resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of body.resourceSpans) {
        resource = rs.resource.attributes;
        for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    bodies,
    paths,
    headers,
    spans,
    resource: () => resource,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

function attrs(span: OtlpSpan): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const a of span.attributes) out[a.key] = a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : a.value.doubleValue!);
  return out;
}

/** The traceparent the upstream received with the request of id `requestId`, split. */
function upstreamTrace(stack: Stack, requestId: string) {
  const seen = stack.upstream.seen.find((s) => s.headers['x-request-id'] === requestId);
  if (seen === undefined) throw new Error(`the upstream did not see ${requestId}`);
  const m = TRACEPARENT.exec(String(seen.headers.traceparent));
  if (m === null) throw new Error(`upstream traceparent ${String(seen.headers.traceparent)}`);
  return { traceId: m[1]!, spanId: m[2]!, flags: m[3]!, tracestate: seen.headers.tracestate, raw: seen.rawHeaders };
}

async function metric(stack: Stack, name: string): Promise<number> {
  const text = await stack.gateway.runtime.metrics!.registry.metrics();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m === null ? NaN : Number(m[1]);
}

const receiver = await startReceiver();
t.teardown(() => receiver.close());
const tracing = (extra: Record<string, unknown> = {}) => ({
  tracing: {
    enabled: true,
    service_name: 'edge-gateway',
    otlp: { endpoint: receiver.url, headers: { 'X-Collector-Token': 'collector-secret' }, timeout_ms: 1_000, flush_interval_ms: 10 },
    ...extra,
  },
});

t.test('traceparent parsing follows W3C Trace Context strictly', async (t) => {
  const ok = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;
  t.same(parseTraceparent(ok), { traceId: CLIENT_TRACE, parentId: CLIENT_SPAN, sampled: true });
  t.same(parseTraceparent(`00-${CLIENT_TRACE}-${CLIENT_SPAN}-00`)?.sampled, false);
  t.same(parseTraceparent(`00-${CLIENT_TRACE}-${CLIENT_SPAN}-03`)?.sampled, true, 'other flag bits ignored');
  t.same(parseTraceparent(`00-${CLIENT_TRACE}-${CLIENT_SPAN}-0b`)?.sampled, true, 'flags 0b: sampled');
  t.same(parseTraceparent(`00-${CLIENT_TRACE}-${CLIENT_SPAN}-fa`)?.sampled, false, 'flags fa: not sampled');
  for (const [bad, why] of [
    [ok.toUpperCase(), 'upper-case hex'],
    [`00-${CLIENT_TRACE.replace('4b', '4B')}-${CLIENT_SPAN}-01`, 'one upper-case digit'],
    [`00-${'0'.repeat(32)}-${CLIENT_SPAN}-01`, 'all-zero trace id'],
    [`00-${CLIENT_TRACE}-${'0'.repeat(16)}-01`, 'all-zero parent id'],
    [`ff-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, 'version ff'],
    [`00-${CLIENT_TRACE}-${CLIENT_SPAN}-01-extra`, 'version 00 with more fields'],
    [`00-${CLIENT_TRACE}-${CLIENT_SPAN}-1`, 'short flags'],
    [`00-${CLIENT_TRACE.slice(1)}-${CLIENT_SPAN}-01`, 'short trace id'],
    [`00_${CLIENT_TRACE}_${CLIENT_SPAN}_01`, 'wrong separators'],
    [`00-${CLIENT_TRACE}-${CLIENT_SPAN}-0g`, 'non-hex flags'],
    [` ${ok}`, 'leading space'],
    [`${ok}, ${ok}`, 'two traceparent headers (Node joins them)'],
    ['', 'empty'],
  ] as const) {
    t.equal(parseTraceparent(bad), null, why);
  }
  t.equal(parseTraceparent([ok, ok]), null, 'an array');
  // A later version is read by its version-00 prefix (W3C §3.2.4), then the end or a dash.
  t.same(parseTraceparent(`01-${CLIENT_TRACE}-${CLIENT_SPAN}-01-what-the-future-holds`)?.traceId, CLIENT_TRACE);
  t.same(parseTraceparent(`01-${CLIENT_TRACE}-${CLIENT_SPAN}-01`)?.parentId, CLIENT_SPAN);
  t.equal(parseTraceparent(`01-${CLIENT_TRACE}-${CLIENT_SPAN}-01x`), null, 'a later version not followed by a dash');
});

t.test('tracestate is validated and bounded as W3C Trace Context asks', async (t) => {
  t.equal(boundTraceState('congo=t61rcWkgMzE, rojo=00f067aa0ba902b7'), 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', 'optional spaces dropped');
  t.equal(boundTraceState(['a=1', 'b=2']), 'a=1,b=2', 'several headers joined');
  t.equal(boundTraceState('tenant@vendor=x,,b=2'), 'tenant@vendor=x,b=2', 'multi-tenant key; empty members skipped');
  t.equal(boundTraceState('Upper=1'), null, 'upper-case key');
  t.equal(boundTraceState('a=1,b=has=equals'), null, 'a value with "="');
  t.equal(boundTraceState('a=caf\u00e9'), null, 'a value beyond printable ASCII');
  t.equal(boundTraceState('a='), null, 'an empty value');
  t.equal(boundTraceState(Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')), null, 'more than 32 members');
  t.equal(boundTraceState(undefined), null);
  t.equal(boundTraceState('a=1,b=2'), 'a=1,b=2', 'a plain list as sent');
  t.equal(boundTraceState(Array.from({ length: 32 }, (_, i) => `k${i}=v`).join(',')), Array.from({ length: 32 }, (_, i) => `k${i}=v`).join(','), '32 members');
  const long = `big=${'x'.repeat(200)}`;
  const members = Array.from({ length: 30 }, (_, i) => `k${String(i).padStart(2, '0')}=${'v'.repeat(20)}`);
  const cut = boundTraceState([long, ...members].join(','))!;
  t.ok(cut.length <= TRACESTATE_MAX_CHARS, `cut to ${cut.length} characters`);
  t.notOk(cut.includes('big='), 'a member over 128 characters goes first');
  t.ok(cut.startsWith('k00='), 'then members from the end: the first ones stay');
  t.notOk(cut.includes('k29='), 'the last member went');
});

t.test('ratio sampling decides by the trace id, the same way every time', async (t) => {
  t.equal(ratioSampled(CLIENT_TRACE, 1), true);
  t.equal(ratioSampled(CLIENT_TRACE, 0), false);
  t.equal(ratioSampled('0'.repeat(24) + '00000001', 0.5), true);
  t.equal(ratioSampled('0'.repeat(24) + 'ffffffff', 0.5), false);
  let sampled = 0;
  for (let i = 0; i < 4000; i++) if (ratioSampled('7'.repeat(24) + ((i * 2654435761) >>> 0).toString(16).padStart(8, '0'), 0.25)) sampled++;
  t.ok(sampled > 800 && sampled < 1200, `about a quarter sampled (${sampled} of 4000)`);
});

t.test('tracing config: defaults, and refusals', async (t) => {
  const base = { listeners: [{ port: 0, environment: 'production' }], admin: { port: 0, tokens: [{ name: 'ops', token: 'x'.repeat(20), role: 'admin' }] } };
  const off = parseConfig(base, 'x', {});
  t.same(off.tracing, { enabled: false, sample_ratio: 1, parent_based: true, service_name: 'keygate', otlp: null });
  const on = parseConfig({ ...base, tracing: { enabled: true, otlp: { endpoint: 'http://collector:4318', headers: { 'X-Api-Key': 'k' } } } }, 'x', {});
  t.same(on.tracing.otlp, { endpoint: 'http://collector:4318', headers: { 'x-api-key': 'k' }, timeout_ms: 10_000, max_queue_spans: 2048, max_batch_spans: 512, flush_interval_ms: 2000 });
  t.same(configWarnings(on), [], 'no warning with an exporter');
  const noExport = parseConfig({ ...base, tracing: { enabled: true } }, 'x', {});
  t.match(configWarnings(noExport), [{ path: 'tracing.otlp', message: /no backend will have them/ }], 'tracing on without an exporter is warned about');
  t.throws(() => parseConfig({ ...base, tracing: { sample_ratio: 1.5 } }, 'x', {}), /tracing\.sample_ratio/);
  t.throws(() => parseConfig({ ...base, tracing: { otlp: { endpoint: 'grpc://collector:4317' } } }, 'x', {}), /tracing\.otlp\.endpoint/);
  t.throws(() => parseConfig({ ...base, tracing: { otlp: { endpoint: 'https://user:pw@collector/v1/traces' } } }, 'x', {}), /tracing\.otlp\.endpoint: must not hold credentials/);
  t.throws(() => parseConfig({ ...base, tracing: { sampler: 'always' } }, 'x', {}), /tracing/);
});

t.test('with tracing on', async (t) => {
  const stack = await startStack({ overrides: () => ({ ...tracing(), log: { level: 'error', access: true } }) });
  t.teardown(() => stack.close());
  const prod = stack.gw.production!;
  const { key, id } = await stack.createKey({ scopes: ['send_email'], apis: ['emails'] });
  const spanOf = async (requestId: string) => {
    let span: OtlpSpan | undefined;
    await waitFor(() => (span = receiver.spans.find((s) => attrs(s)['keygate.request_id'] === requestId)) !== undefined, 5_000, `span of ${requestId}`);
    return span!;
  };

  t.test("the upstream sees the client's trace with Keygate's span as parent, and the span is exported", async (t) => {
    const res = await call(`${prod}/v1/emails/send`, {
      method: 'POST',
      headers: { ...bearer(key), 'x-request-id': 'trace-ok', traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'congo=t61rcWkgMzE, rojo=00f067aa0ba902b7' },
      body: '{}',
    });
    t.equal(res.status, 200);
    const up = upstreamTrace(stack, 'trace-ok');
    t.equal(up.traceId, CLIENT_TRACE, "the client's trace id");
    t.not(up.spanId, CLIENT_SPAN, "a new span id: Keygate's");
    t.equal(up.flags, '01', "sampled, as the client's parent was");
    t.equal(up.tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', 'tracestate passed on');
    t.equal(up.raw.filter((h) => h.toLowerCase() === 'traceparent').length, 1, 'one traceparent upstream');

    const span = await spanOf('trace-ok');
    t.equal(span.traceId, CLIENT_TRACE);
    t.equal(span.spanId, up.spanId, "the upstream's parent is the exported span");
    t.equal(span.parentSpanId, CLIENT_SPAN, "the exported span's parent is the client's");
    t.equal(span.traceState, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    t.equal(span.name, 'POST /v1/emails/send');
    t.equal(span.kind, 2, 'SPAN_KIND_SERVER');
    t.same(span.status, { code: 0 });
    const a = attrs(span);
    t.match(a, {
      'http.request.method': 'POST',
      'http.route': '/v1/emails/send',
      'http.response.status_code': 200,
      'url.path': '/v1/emails/send',
      'keygate.outcome': 'ok',
      'keygate.key_id': id,
      'keygate.api': 'emails',
      'keygate.environment': 'production',
      'client.address': '127.0.0.1',
    });
    for (const timing of ['keygate.resolve_ms', 'keygate.rate_limit_ms', 'keygate.upstream_ms']) {
      t.type(a[timing], 'number', timing);
      t.ok((a[timing] as number) >= 0, `${timing} ${a[timing]}`);
    }
    const start = BigInt(span.startTimeUnixNano);
    const end = BigInt(span.endTimeUnixNano);
    t.ok(end >= start, 'ends after it starts');
    t.ok(Math.abs(Number(start / 1_000_000n) - Date.now()) < 60_000, 'start is wall-clock Unix time');
    t.same(span.events.map((e) => e.name), ['upstream.request', 'upstream.response']);
    const line = stack.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request' && l.request_id === 'trace-ok');
    t.match(line, { trace_id: CLIENT_TRACE, span_id: up.spanId }, 'the access log names the trace and the span');
    t.same(
      receiver.resource().find((r) => r.key === 'service.name'),
      { key: 'service.name', value: { stringValue: 'edge-gateway' } },
    );
    t.ok(receiver.paths.every((p) => p === '/v1/traces'), 'sent to the base URL plus /v1/traces');
    t.ok(receiver.headers.every((h) => h['x-collector-token'] === 'collector-secret' && h['content-type'] === 'application/json'), "the configured headers go with every export");
  });

  t.test('a denial is exported with its error code and never the key', async (t) => {
    const res = await call(`${prod}/v1/contacts/1`, { headers: { ...bearer(key), 'x-request-id': 'trace-denied' } });
    t.equal(res.status, 403);
    const a = attrs(await spanOf('trace-denied'));
    t.match(a, { 'keygate.outcome': 'api_not_allowed', 'keygate.key_id': id, 'keygate.api': 'contacts', 'http.response.status_code': 403 });
    t.type(a['keygate.resolve_ms'], 'number', 'the key was resolved');
    t.notOk('keygate.rate_limit_ms' in a, 'refused before the rate limit');
    t.notOk('keygate.upstream_ms' in a, 'nothing went upstream');

    const bad = await call(`${prod}/v1/emails/x`, { headers: { ...bearer(key.slice(0, -1) + (key.endsWith('a') ? 'b' : 'a')), 'x-request-id': 'trace-bad-key' } });
    t.equal(bad.status, 401);
    const b = attrs(await spanOf('trace-bad-key'));
    t.match(b, { 'keygate.outcome': 'invalid_token', 'keygate.reason': 'malformed' });
    t.notOk('keygate.key_id' in b);
    const all = receiver.bodies.join('\n');
    t.notOk(all.includes(key), 'the key is in no export');
    t.notOk(all.includes(key.slice(8, 30)), 'nor any run of its secret');
  });

  t.test('an upstream failure is an error span', async (t) => {
    const { key: any } = await stack.createKey();
    const res = await call(`${prod}/v1/dead/x`, { headers: { ...bearer(any), 'x-request-id': 'trace-502' } });
    t.equal(res.status, 502);
    const span = await spanOf('trace-502');
    t.same(span.status, { code: 2, message: 'bad_gateway' });
    t.match(attrs(span), { 'error.type': 'bad_gateway', 'http.response.status_code': 502 });
  });

  t.test('an invalid traceparent is replaced by a new trace, and its tracestate dropped', async (t) => {
    const upper = `00-${CLIENT_TRACE.toUpperCase()}-${CLIENT_SPAN}-01`;
    await call(`${prod}/v1/emails/x`, { headers: { ...bearer(key), 'x-request-id': 'trace-invalid', traceparent: upper, tracestate: 'congo=t61rcWkgMzE' } });
    const up = upstreamTrace(stack, 'trace-invalid');
    t.not(up.traceId, CLIENT_TRACE.toLowerCase(), 'a new trace id');
    t.not(up.traceId, '0'.repeat(32));
    t.equal(up.flags, '01', 'sampled by the ratio (1)');
    t.equal(up.tracestate, undefined, "the old trace's tracestate is not passed on");
    t.notOk(up.raw.includes(upper), "the client's traceparent is not forwarded");
    const span = await spanOf('trace-invalid');
    t.equal(span.traceId, up.traceId);
    t.equal(span.spanId, up.spanId);
    t.equal(span.parentSpanId, undefined, 'a root span');

    await call(`${prod}/v1/emails/x`, { headers: { ...bearer(key), 'x-request-id': 'trace-none' } });
    const none = upstreamTrace(stack, 'trace-none');
    t.not(none.traceId, up.traceId, 'each new trace its own id');
    t.equal((await spanOf('trace-none')).traceId, none.traceId, 'a trace started for a client that sent none');
  });

  t.test("a client's tracestate is bounded", async (t) => {
    const members = Array.from({ length: 32 }, (_, i) => `vendor${i}=${'v'.repeat(40)}`).join(',');
    await call(`${prod}/v1/emails/x`, { headers: { ...bearer(key), 'x-request-id': 'trace-long-state', traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: members } });
    const up = upstreamTrace(stack, 'trace-long-state');
    const sent = String(up.tracestate);
    t.ok(sent.length <= 512, `${sent.length} characters sent`);
    t.ok(sent.startsWith('vendor0='), 'the first members kept');
    t.equal(up.traceId, CLIENT_TRACE);
  });

  t.test('a parent that is not sampled is followed: propagated, not exported', async (t) => {
    await call(`${prod}/v1/emails/x`, { headers: { ...bearer(key), 'x-request-id': 'trace-unsampled', traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-00` } });
    const up = upstreamTrace(stack, 'trace-unsampled');
    t.equal(up.flags, '00');
    t.equal(up.traceId, CLIENT_TRACE);
    // A later sampled request's span arriving shows the exporter has moved past this one.
    await call(`${prod}/v1/emails/x`, { headers: { ...bearer(key), 'x-request-id': 'trace-after-unsampled' } });
    await spanOf('trace-after-unsampled');
    t.notOk(receiver.spans.some((s) => attrs(s)['keygate.request_id'] === 'trace-unsampled'), 'no span exported');
  });

  t.test('a WebSocket upgrade carries the trace upstream, and its span ends when the tunnel closes', async (t) => {
    const ws = new WebSocket(`${prod.replace('http:', 'ws:')}/v1/emails/ws`, {
      headers: { ...bearer(key), 'x-request-id': 'trace-ws', traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` },
    });
    const echo = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send('hello'));
      ws.once('message', (data) => resolve(String(data)));
      ws.once('error', reject);
    });
    t.equal(echo, 'hello');
    const up = upstreamTrace(stack, 'trace-ws');
    t.equal(up.traceId, CLIENT_TRACE);
    t.not(up.spanId, CLIENT_SPAN);
    ws.close();
    const span = await spanOf('trace-ws');
    t.equal(span.spanId, up.spanId);
    t.match(attrs(span), { 'http.response.status_code': 101, 'keygate.outcome': 'ok' });
  });

  t.test('export receiver down: requests unaffected, spans dropped and counted', async (t) => {
    t.equal(await metric(stack, 'keygate_trace_spans_dropped_total'), 0);
    t.ok((await metric(stack, 'keygate_trace_spans_exported_total')) >= 5, 'spans counted as exported');
    await receiver.close();
    const exporter = stack.gateway.runtime.tracer!.exporter!;
    for (let i = 0; i < 20; i++) {
      const res = await call(`${prod}/v1/emails/x`, { headers: { ...bearer(key), 'x-request-id': `trace-down-${i}` } });
      t.equal(res.status, 200, `request ${i} answered`);
    }
    await waitFor(() => exporter.dropped >= 20, 5_000, 'spans dropped');
    t.equal(await metric(stack, 'keygate_trace_spans_dropped_total'), exporter.dropped, 'the metric counts them');
    t.ok(stack.logs.some((l) => l.includes('trace export failed')), 'the failure is logged');
    t.equal(stack.logs.filter((l) => l.includes('trace export failed')).length, 1, 'once, not once a batch');
  });
});

t.test('with tracing off, the client trace headers reach the upstream untouched', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  t.equal(stack.gateway.runtime.tracer, null);
  const { key } = await stack.createKey();
  const invalid = `00-${CLIENT_TRACE.toUpperCase()}-${CLIENT_SPAN}-01`;
  await call(`${stack.gw.production}/v1/emails/x`, { headers: { ...bearer(key), 'x-request-id': 'off', traceparent: invalid, tracestate: 'Not Valid' } });
  const seen = stack.upstream.seen.find((s) => s.headers['x-request-id'] === 'off')!;
  t.equal(seen.headers.traceparent, invalid, 'passed as sent, even invalid');
  t.equal(seen.headers.tracestate, 'Not Valid');
  t.equal(stack.events.find((e) => e.request_id === 'off')?.status, 200);
});

t.test('sample_ratio 0 without parent_based: nothing exported, the trace still propagated', async (t) => {
  const receiver0 = await startReceiver();
  t.teardown(() => receiver0.close());
  const stack = await startStack({
    overrides: () => ({ tracing: { enabled: true, sample_ratio: 0, parent_based: false, otlp: { endpoint: `${receiver0.url}/custom/traces`, flush_interval_ms: 10 } } }),
  });
  const { key } = await stack.createKey();
  const prod = stack.gw.production!;
  for (const [id, headers] of [
    ['zero-sampled-parent', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'a=1' }],
    ['zero-no-parent', {}],
  ] as const) {
    const res = await call(`${prod}/v1/emails/x`, { headers: { ...bearer(key), 'x-request-id': id, ...headers } });
    t.equal(res.status, 200);
  }
  const withParent = upstreamTrace(stack, 'zero-sampled-parent');
  t.equal(withParent.traceId, CLIENT_TRACE, "the client's trace propagated");
  t.not(withParent.spanId, CLIENT_SPAN);
  t.equal(withParent.flags, '00', 'not sampled: the ratio decides, not the parent');
  t.equal(withParent.tracestate, 'a=1');
  const started = upstreamTrace(stack, 'zero-no-parent');
  t.match(started.traceId, /^[0-9a-f]{32}$/);
  t.equal(started.flags, '00');
  // Closing the gateway flushes the exporter: whatever it held would be sent now.
  await stack.close();
  t.equal(receiver0.bodies.length, 0, 'nothing exported');
  t.equal(stack.gateway.runtime.tracer!.exporter!.exported, 0);
});

t.test('a collector that never answers: the queue stays bounded, batches time out, requests are not held up', async (t) => {
  const held: ServerResponse[] = [];
  const hung = createServer((_req, res) => void held.push(res));
  await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => (hung.closeAllConnections(), hung.close(() => r()))));
  const endpoint = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
  const stack = await startStack({
    overrides: () => ({ tracing: { enabled: true, otlp: { endpoint, timeout_ms: 200, max_queue_spans: 3, max_batch_spans: 2, flush_interval_ms: 10 } } }),
  });
  t.teardown(() => stack.close());
  const { key } = await stack.createKey();
  const exporter = stack.gateway.runtime.tracer!.exporter!;
  const answered = await Promise.all(
    Array.from({ length: 12 }, (_, i) => call(`${stack.gw.production}/v1/emails/x`, { headers: { ...bearer(key), 'x-request-id': `hung-${i}` } })),
  );
  t.same(answered.map((r) => r.status), Array(12).fill(200), 'every request answered while the collector hangs');
  t.ok(exporter.queued <= 3, `at most max_queue_spans wait (${exporter.queued})`);
  await waitFor(() => exporter.dropped + exporter.queued === 12 && exporter.queued === 0, 5_000, 'every span dropped once its batch timed out');
  t.ok(held.length >= 1, 'the collector was asked');
  t.equal(exporter.exported, 0);
  t.equal(await metric(stack, 'keygate_trace_spans_dropped_total'), 12, 'each counted once');
});
