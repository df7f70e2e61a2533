import t from 'tap';
import { compilePolicy, LocalLimiter, newRateState } from '../core/limiter.js';

t.test('a bucket starts full at burst, refills at limit per window, never above burst', async (t) => {
  let now = 1_000_000;
  const limiter = new LocalLimiter(() => now);
  t.teardown(() => limiter.close());
  const p = compilePolicy('default', { limit: 60, window_seconds: 60, burst: 5 });
  const s = newRateState();
  for (let i = 0; i < 5; i++) t.ok(limiter.take('k', p, now, s), `token ${i + 1} of the burst`);
  t.equal(s.remaining, 0);
  t.notOk(limiter.take('k', p, now, s), 'empty');
  t.equal(s.retryAfter, 1, 'one token a second');
  t.equal(s.resetSeconds, 5);
  now += 1000;
  t.ok(limiter.take('k', p, now, s), 'refilled one after a second');
  now += 3_600_000;
  limiter.peek('k', p, now, s);
  t.equal(s.remaining, 5, 'capped at burst');
  t.equal(s.resetSeconds, 0);
});

t.test('peek does not spend', async (t) => {
  const now = 0;
  const limiter = new LocalLimiter(() => now);
  t.teardown(() => limiter.close());
  const p = compilePolicy('x', { limit: 1, window_seconds: 60, burst: null });
  const s = newRateState();
  for (let i = 0; i < 3; i++) t.ok(limiter.peek('k', p, now, s));
  t.ok(limiter.take('k', p, now, s));
  t.notOk(limiter.take('k', p, now, s));
  t.equal(s.retryAfter, 60);
});

t.test('over any interval admitted requests never exceed burst + rate x elapsed', async (t) => {
  let now = 0;
  const limiter = new LocalLimiter(() => now);
  t.teardown(() => limiter.close());
  const p = compilePolicy('x', { limit: 10, window_seconds: 1, burst: 20 });
  const s = newRateState();
  let admitted = 0;
  for (let i = 0; i < 10_000; i++) {
    now += 7;
    if (limiter.take('k', p, now, s)) admitted++;
  }
  t.ok(admitted <= 20 + (10 * now) / 1000, `${admitted} admitted in ${now} ms`);
  t.ok(admitted >= (10 * now) / 1000 - 1, 'and the refill rate is honoured');
});

t.test('the sweep forgets only buckets that have refilled', async (t) => {
  let now = 0;
  const limiter = new LocalLimiter(() => now);
  t.teardown(() => limiter.close());
  const p = compilePolicy('x', { limit: 1, window_seconds: 10, burst: null });
  const s = newRateState();
  limiter.take('a', p, now, s);
  now += 5_000;
  limiter.take('b', p, now, s);
  now += 5_000;
  limiter.sweep();
  t.equal(limiter.size, 1, 'a refilled and was dropped; b has not');
  t.notOk(limiter.take('b', p, now, s), 'b still empty after the sweep');
});

t.test('policy header items follow the IETF draft', async (t) => {
  t.equal(compilePolicy('default', { limit: 300, window_seconds: 60, burst: 500 }).header, '"default";q=300;w=60');
});
