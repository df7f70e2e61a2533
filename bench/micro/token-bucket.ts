import { generateKey } from '../../core/key-format.js';
import { compilePolicy, LocalLimiter, newRateState } from '../../core/limiter.js';
import { measure, report, shuffled } from './lib.js';

/**
 * Nanoseconds per decision of the in-process token bucket (core/limiter.ts LocalLimiter.take),
 * as the rate-limit stage calls it with the request's clock reading: one hot key, keys in
 * random order among 100,000 live buckets, a refusal, and a peek.
 * The clock moves on by 1 ms every 64 calls, so refills are computed as in traffic.
 *   node --import=tsx bench/micro/token-bucket.ts
 */
const start = Date.now();
const never = compilePolicy('default', { limit: 1_000_000_000, window_seconds: 1, burst: null });
const tight = compilePolicy('tight', { limit: 1, window_seconds: 3600, burst: null });
const limiter = new LocalLimiter(() => start, 3_600_000);
const out = newRateState();
const KEYS = 100_000;
// Flat strings, as ids read from the store are.
const ids = Array.from({ length: KEYS }, () => Buffer.from(`key_${generateKey('gw', 'live').slice(8, 28)}`).toString());
const order = shuffled(KEYS);
for (const id of ids) limiter.take(id, never, start, out);
limiter.take('empty', tight, start, out);
if (limiter.take('empty', tight, start, out)) throw new Error('the tight bucket should be empty');

let j = 0;
const cases = [
  measure('take, 1 key (hot), allowed', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (limiter.take(ids[0]!, never, start + (i >>> 6), out)) s++;
    return s + out.remaining;
  }),
  measure('take, 100,000 keys in random order, allowed', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      if (limiter.take(ids[order[j]!]!, never, start + (i >>> 6), out)) s++;
      if (++j === KEYS) j = 0;
    }
    return s + out.remaining;
  }),
  measure('take, empty bucket (refused, retry_after computed)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (!limiter.take('empty', tight, start + (i >>> 6), out)) s++;
    return s + out.retryAfter;
  }),
  measure('peek, 1 key (hot)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (limiter.peek(ids[0]!, never, start + (i >>> 6), out)) s++;
    return s + out.remaining;
  }),
];
limiter.close();
report('token-bucket: core/limiter.ts LocalLimiter', cases, [`${limiter.size} buckets live at the end.`]);
