import { createInterface } from 'node:readline';
import { compilePolicy, LocalLimiter, newRateState } from '../../core/limiter.js';
import { SharedLimiter } from '../../core/shared-limiter.js';
import { SqliteBuckets } from '../../core/store/sqlite/buckets.js';

/**
 * One gateway worker of test/sqlite-buckets.test.ts, as its own process: a SharedLimiter over
 * SqliteBuckets on the file FILE. Prints `ready`, waits for `go` on stdin, then makes TAKES
 * takes of one bucket (limit LIMIT per WINDOW seconds, burst BURST) from CALLERS concurrent
 * callers, and prints one JSON line: what was admitted, refused and unavailable, and when the
 * first take started and the last ended (Date.now()).
 *   node --import=tsx test/lib/sqlite-buckets-child.ts FILE TAKES CALLERS LIMIT WINDOW BURST
 */
const [file, takes, callers, limit, window, burst] = process.argv.slice(2);
// A long busy wait: this measures sharing, not the fallback; every take is answered by the file.
const limiter = new SharedLimiter(new SqliteBuckets(file!, { busyMs: 30_000 }), new LocalLimiter(() => Date.now()), {
  leaseFraction: 0.02,
  leaseMax: 50,
  leaseTtlMs: 60_000,
});
const policy = compilePolicy('p', { limit: Number(limit), window_seconds: Number(window), burst: Number(burst) }, 'closed');

const lines = createInterface({ input: process.stdin });
console.log('ready');
for await (const line of lines) if (line === 'go') break;

let left = Number(takes);
let admitted = 0;
let refused = 0;
let unavailable = 0;
const start = Date.now();
await Promise.all(
  Array.from({ length: Number(callers) }, async () => {
    const out = newRateState();
    while (left > 0) {
      left--;
      if (await limiter.take('shared-key', policy, Date.now(), out)) admitted++;
      else if (out.unavailable) unavailable++;
      else refused++;
    }
  }),
);
const end = Date.now();
limiter.close();
console.log(JSON.stringify({ admitted, refused, unavailable, start, end }));
lines.close();
