import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { UsageRecorder } from '../admin/usage.js';
import type { AggregatedEvent } from '../core/usage-agg.js';
import { generateKey } from '../core/key-format.js';
import { KeyHasher } from '../core/key-hash.js';
import { Logger } from '../core/log.js';
import { FileStore } from '../core/store/file-store.js';
import { switchable } from './lib/flaky-store.js';
import { keyRecord } from './lib/records.js';

// The admin plane's usage recorder: batches per key, keeps a batch the store refused for the
// next flush, and bounds how many keys wait.

const T0 = Date.UTC(2026, 5, 1, 12);
const hasher = new KeyHasher(null);
let seq = 0;

/** A usage event as the gateway's record stage makes it. */
function ev(key_id: string | null, time: number, status: number, more: Partial<AggregatedEvent> = {}): AggregatedEvent {
  return {
    time, request_id: `req-${seq++}`, key_id, tenant: null, api: 'emails', method: 'GET', route: '/v1/emails/*', status,
    outcome: status < 400 ? 'ok' : status === 429 ? 'rate_limit_exceeded' : 'bad_gateway', reason: null,
    latency_ms: 2, upstream_ms: status < 400 ? 1 : null, bytes_in: 100, bytes_out: 200, country: null, ...more,
  };
}

async function setup(t: Test, maxPendingKeys = 1000) {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-usage-'));
  const inner = await FileStore.open({ dir });
  t.teardown(async () => {
    await inner.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const store = switchable(inner);
  const logs: string[] = [];
  const recorder = new UsageRecorder(store, new Logger({ level: 'debug', write: (l) => logs.push(l), keyPrefix: 'gw' }), {
    flushIntervalMs: 60_000,
    maxPendingKeys,
    minuteTtlMs: 86_400_000,
    dayTtlMs: 30 * 86_400_000,
    errorsKept: 100,
  });
  const a = await store.putKey(keyRecord(generateKey('gw', 'live'), hasher, T0), 0);
  const b = await store.putKey(keyRecord(generateKey('gw', 'live'), hasher, T0), 0);
  return { store, recorder, logs, a, b };
}

t.test('a batch the store refuses is kept and stored whole by the next flush', async (t) => {
  const { store, recorder, logs, a, b } = await setup(t);
  recorder.add(ev(a.id, T0 + 1, 200));
  recorder.add(ev(a.id, T0 + 2, 503));
  recorder.add(ev(null, T0 + 3, 401));
  store.down = true;
  await recorder.flush();
  t.ok(logs.some((l) => l.includes('usage not stored yet')), 'the failure is logged');
  recorder.add(ev(a.id, T0 + 4, 404));
  recorder.add(ev(b.id, T0 + 5, 200));
  store.down = false;
  await recorder.flush();
  const gotA = (await store.getKey(a.id))!;
  t.same(gotA.usage, { total_requests: 3, error_count: 2 }, 'the refused batch and the later traffic, each request once');
  t.equal(gotA.last_used_at, T0 + 4);
  t.same((await store.getKey(b.id))!.usage, { total_requests: 1, error_count: 0 });
  const first = (await store.listKeyEvents(a.id)).filter((e) => e.type === 'first_used');
  t.same(first.map((e) => e.at), [T0 + 1], 'first use is the first request, not the first successful flush');
  await recorder.flush();
  t.same((await store.getKey(a.id))!.usage, { total_requests: 3, error_count: 2 }, 'a flush with nothing pending writes nothing');
  t.equal(recorder.dropped, 0);
});

t.test('traffic of more keys than max_pending_keys is dropped and counted', async (t) => {
  const { store, recorder, a, b } = await setup(t, 1);
  recorder.add(ev(a.id, T0, 200));
  recorder.add(ev(b.id, T0, 200));
  recorder.add(ev(a.id, T0, 200));
  t.equal(recorder.dropped, 1, 'the second key’s request is dropped');
  await recorder.close();
  t.equal((await store.getKey(a.id))!.usage.total_requests, 2, 'close flushes what is pending');
  t.equal((await store.getKey(b.id))!.usage.total_requests, 0);
});
