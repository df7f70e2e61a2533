import t from 'tap';
import { Redis } from 'ioredis';
import { compilePolicy, LocalLimiter, newRateState } from '../core/limiter.js';
import { SharedLimiter } from '../core/shared-limiter.js';
import { RedisBuckets } from '../core/store/redis/buckets.js';
import { RedisServer } from './lib/redis.js';

// The shared token bucket against a real redis-server: exact under concurrency, one round
// trip per bucket at a time, leases that never hand out more than Redis granted.

const server = await RedisServer.start();
t.teardown(() => server.stop());
const client = new Redis(server.url, { commandTimeout: 1000 });
t.teardown(() => client.quit());
let n = 0;

function limiter(options: Partial<{ leaseFraction: number; leaseMax: number; leaseTtlMs: number }> = {}): SharedLimiter {
  const l = new SharedLimiter(new RedisBuckets(client, `sl${n++}`), new LocalLimiter(() => Date.now()), {
    leaseFraction: 0.02,
    leaseMax: 50,
    leaseTtlMs: 1000,
    ...options,
  });
  t.teardown(() => l.close());
  return l;
}

async function scriptCalls(): Promise<number> {
  const info = await client.info('commandstats');
  let calls = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) calls += Number(m[1]);
  return calls;
}

// Effectively no refill during a test: one token a day.
const slow = (burst: number) => compilePolicy('p', { limit: 1, window_seconds: 86_400, burst });

t.test('concurrent takes admit exactly the capacity, however many wait at once', async (t) => {
  for (const burst of [1, 10, 1000]) {
    const l = limiter();
    const policy = slow(burst);
    const results = await Promise.all(Array.from({ length: burst + 200 }, () => l.take('k', policy, Date.now(), newRateState())));
    t.equal(results.filter(Boolean).length, burst, `burst ${burst}: exactly ${burst} admitted`);
  }
});

t.test('two gateways (two limiters) together admit exactly the capacity', async (t) => {
  const prefix = `sl${n++}`;
  const make = () => new SharedLimiter(new RedisBuckets(client, prefix), new LocalLimiter(() => Date.now()), { leaseFraction: 0.02, leaseMax: 50, leaseTtlMs: 1000 });
  const a = make();
  const b = make();
  t.teardown(() => (a.close(), b.close()));
  const policy = slow(500);
  const takes = [];
  for (let i = 0; i < 700; i++) takes.push((i % 2 ? a : b).take('k', policy, Date.now(), newRateState()));
  t.equal((await Promise.all(takes)).filter(Boolean).length, 500);
});

t.test('waiting requests share one round trip; a lease serves the next ones without any', async (t) => {
  const l = limiter();
  const policy = slow(1000); // leases of 20
  const before = await scriptCalls();
  const first = await Promise.all(Array.from({ length: 20 }, () => l.take('k', policy, Date.now(), newRateState())));
  t.same(first, Array(20).fill(true));
  const afterBurst = await scriptCalls();
  t.equal(afterBurst - before, 1, '20 concurrent requests, one TAKE of 20 tokens');
  const state = newRateState();
  const again = l.take('k', policy, Date.now(), state);
  t.type(again, Promise, 'the lease is spent: the next request asks Redis');
  t.equal(await again, true);
  t.equal(state.remaining, 1000 - 21, 'RateLimit remaining counts what Redis and this lease hold');
  t.equal(l.take('k', policy, Date.now(), newRateState()), true, 'then answers from its new lease at once');
  t.equal((await scriptCalls()) - afterBurst, 1);
});

t.test('a refused request reports the retry time from the shared bucket', async (t) => {
  const l = limiter();
  const policy = compilePolicy('p', { limit: 1, window_seconds: 10, burst: null });
  t.equal(await l.take('k', policy, Date.now(), newRateState()), true);
  const state = newRateState();
  t.equal(await l.take('k', policy, Date.now(), state), false);
  t.equal(state.allowed, false);
  t.equal(state.remaining, 0);
  t.ok(state.retryAfter >= 9 && state.retryAfter <= 10, `retry after ${state.retryAfter} s`);
});

t.test('a refunded token goes back to the lease and is spent locally', async (t) => {
  const l = limiter();
  const policy = slow(1); // leases of 1
  t.equal(await l.take('k', policy, Date.now(), newRateState()), true);
  l.refund('k', policy, Date.now());
  t.equal(l.take('k', policy, Date.now(), newRateState()), true, 'the refunded token, without a round trip');
  t.equal(await l.take('k', policy, Date.now(), newRateState()), false, 'and no more than that');
});
