import { UsageRecorder } from '../../admin/usage.js';
import { Logger } from '../../core/log.js';
import type { Store } from '../../core/store/store.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { buildRouteTable, type CompiledRoute } from '../../gateway/routes.js';
import type { Runtime, UsageEvent } from '../../gateway/runtime.js';
import { measure, report } from './lib.js';

/**
 * The two sinks every request of `keygate --role all` goes through once its response is over
 * (issue 5): the Prometheus metrics and the usage recorder's fold. Events as the record stage
 * makes them, four keys, one route, a few statuses and latencies; the recorder is flushed (to a
 * store that drops the batch) every 20,000 events, about a second of traffic.
 *
 *   node --import=tsx bench/micro/usage-sinks.ts
 */
const base: UsageEvent = {
  time: Date.now(), request_id: '6f1c1c2e-8d2c-4a53-9a43-7a0a2f4a3b11', key_id: 'key_4Jt0dB8QJbNq2bkS', application: null,
  environment: 'production', api: 'bench', method: 'GET', route: '/*', status: 200, outcome: 'ok', reason: null, latency_ms: 1.37,
  upstream_ms: 0.91, client_ip: '127.0.0.1', rate_limit_remaining: 999_999_999, quota_remaining: null, tenant: null, bytes_in: 0, bytes_out: 161, country: null,
};
const events: UsageEvent[] = [];
for (let i = 0; i < 64; i++) {
  const status = i % 16 === 0 ? 404 : 200;
  events.push({
    ...base,
    key_id: `key_4Jt0dB8QJbNq2bk${i % 4}`,
    latency_ms: 0.5 + (i % 7) * 0.4,
    status,
    outcome: status === 200 ? 'ok' : 'not_found',
    upstream_ms: status === 200 ? 0.3 + (i % 5) * 0.2 : null,
  });
}
// One API whose one rule is the route of every event, as buildRuntime compiles it.
const apis = [{ name: 'bench', unlistedTemplate: '/*', routes: buildRouteTable([{ template: '/*', method: '*' } as CompiledRoute], false) }];
const rt = { keys: { stats: { hits: 0, misses: 0 }, size: 0, negativeSize: 0 }, store: { available: true }, limiter: { degraded: false }, apis } as unknown as Runtime;
const store = { ingestUsage: async () => true } as unknown as Store;
const log = new Logger({ level: 'error' });

function recorder(): UsageRecorder {
  return new UsageRecorder(store, log, { flushIntervalMs: 1_000, maxPendingKeys: 100_000, minuteTtlMs: 3_600_000, dayTtlMs: 86_400_000, errorsKept: 100 });
}

const metrics = new GatewayMetrics(rt);
const rec = recorder();
let seen = 0;
const cases = [
  measure('metrics sink (GatewayMetrics.record)', (n) => {
    for (let i = 0; i < n; i++) metrics.record(events[i & 63]!);
    return n;
  }),
  measure('usage sink (UsageRecorder.add), flushed every 20,000', (n) => {
    for (let i = 0; i < n; i++) {
      rec.add(events[i & 63]!);
      if (++seen % 20_000 === 0) void rec.flush();
    }
    return rec.pending;
  }),
];
const text = await metrics.registry.metrics();
report('Usage sinks: per finished request', cases, [`metrics exposition after the run: ${text.length} bytes`]);
