import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { compilePolicy, LocalLimiter, type RateState } from '../../core/limiter.js';
import { SharedLimiter } from '../../core/shared-limiter.js';
import { RedisBuckets } from '../../core/store/redis/buckets.js';

/**
 * The shared limiter (one gateway) under C concurrent callers of one key, each taking tokens as
 * fast as Redis answers:
 *   - a bucket of 2,500 per second (capacity 2,500, so leases of 50) for 3 s: it allows
 *     2,500 + 3 × 2,500 = 10,000; how many were admitted?
 *   - a bucket that never runs dry (1e9 per second, leases of 50) for 1 s: Redis scripts run per
 *     request, by design 1/50 = 0.020.
 * Starts its own redis-server on a free loopback port.
 *   node --import=tsx bench/micro/shared-limiter.ts [C ...]   (default: 1 10 50)
 */
const concurrencies = process.argv.slice(2).map(Number).filter((n) => n >= 1 && n <= 1000);
if (concurrencies.length === 0) concurrencies.push(1, 10, 50);

const port = await new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => resolve(p));
  });
});
const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
process.on('exit', () => server.kill('SIGKILL'));
const client = new Redis(`redis://127.0.0.1:${port}`, { retryStrategy: (n) => (n > 100 ? null : 50) });
client.on('error', () => {});
await client.ping();

async function scripts(): Promise<number> {
  let n = 0;
  for (const m of (await client.info('commandstats')).matchAll(/^cmdstat_(eval|evalsha):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

const policy = compilePolicy('p', { limit: 2_500, window_seconds: 1, burst: null });
const huge = compilePolicy('huge', { limit: 1_000_000_000, window_seconds: 1, burst: null });
const seconds = 3;
const allowed = policy.capacity + policy.limit * seconds;

/** C callers taking from one key's bucket for `ms`; what was admitted and refused, and the scripts Redis ran. */
async function drive(prefix: string, p: typeof policy, c: number, ms: number) {
  const limiter = new SharedLimiter(new RedisBuckets(client, prefix), new LocalLimiter(() => Date.now()), { leaseFraction: 0.02, leaseMax: 50, leaseTtlMs: 1_000 });
  const before = await scripts();
  let admitted = 0;
  let refused = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: c }, async () => {
      const out = {} as RateState;
      while (performance.now() < end) {
        if (await limiter.take('key', p, Date.now(), out)) admitted++;
        else refused++;
        // Let the other callers (and Redis replies) in between two local takes.
        await new Promise((r) => setImmediate(r));
      }
    }),
  );
  const used = (await scripts()) - before;
  limiter.close();
  return { admitted, refused, used };
}

console.log(`| callers | 2,500/s bucket: admitted in ${seconds} s | admitted / allowed (${allowed}) | never-dry bucket: Redis scripts per request |`);
console.log('| ---: | ---: | ---: | ---: |');
for (const [i, c] of concurrencies.entries()) {
  const limited = await drive(`lim${i}`, policy, c, seconds * 1000);
  const free = await drive(`free${i}`, huge, c, 1000);
  console.log(`| ${c} | ${limited.admitted} | ${(limited.admitted / allowed).toFixed(2)} | ${(free.used / (free.admitted + free.refused)).toFixed(3)} |`);
}
client.disconnect();
process.exit(0);
