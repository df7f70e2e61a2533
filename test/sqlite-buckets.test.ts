import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { parseConfig } from '../config/load.js';
import { ManualClock } from '../core/clock.js';
import { KeyHasher } from '../core/key-hash.js';
import { compilePolicy, LocalLimiter, newRateState, type StoreFailureMode } from '../core/limiter.js';
import { Logger } from '../core/log.js';
import { SharedLimiter } from '../core/shared-limiter.js';
import { FileStore } from '../core/store/file-store.js';
import { RedisBuckets } from '../core/store/redis/buckets.js';
import { SqliteBuckets, type SqliteBucketsOptions } from '../core/store/sqlite/buckets.js';
import { buildRuntime } from '../gateway/runtime.js';
import { RedisServer } from './lib/redis.js';
import { waitFor, within } from './lib/within.js';

// The shared rate limiter's buckets in a SQLite file, for the gateway workers of one machine:
// the arithmetic of the Redis script (checked against a real redis-server), one bucket shared
// by connections and by processes, and a locked file that rejects without stalling the event
// loop, so that the limiter falls back as each policy says.

const root = mkdtempSync(join(tmpdir(), 'keygate-buckets-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
const file = () => join(root, `limits-${files++}.db`);

function open(t: Test, path = file(), options: SqliteBucketsOptions = {}): SqliteBuckets {
  const b = new SqliteBuckets(path, options);
  t.teardown(() => b.close());
  return b;
}

/** Rows of the buckets table, read through a connection of the test's own. */
function rows(path: string): { id: string; tokens: number; last: number; expires: number }[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT id, tokens, last, expires FROM buckets ORDER BY id').all() as { id: string; tokens: number; last: number; expires: number }[];
  } finally {
    db.close();
  }
}

// One bucket of capacity 10 refilling 2^-20 tokens a ms (so times are exact in binary, and the
// milliseconds a real Redis takes between two steps add next to nothing). Each step moves the
// clock by `advance` ms, takes `want`, and must answer `granted` and `left`.
const CAP = 10;
const PER_MS = 2 ** -20;
const STEPS = [
  { what: 'a new bucket is full: it grants what is asked', advance: 0, want: 4, granted: 4, left: 6 },
  { what: 'asking more than is there grants every whole token', advance: 0, want: 10, granted: 6, left: 0 },
  { what: 'an empty bucket refuses', advance: 0, want: 1, granted: 0, left: 0 },
  { what: 'half a token refilled is still refused, and kept', advance: 2 ** 19, want: 1, granted: 0, left: 0.5 },
  { what: 'a token and a half: one granted, the half kept', advance: 2 ** 20, want: 3, granted: 1, left: 0.5 },
  { what: 'refill stops at the capacity', advance: 2 ** 40, want: 1, granted: 1, left: 9 },
  { what: 'a clock that goes back refills nothing', advance: -5_000, want: 2, granted: 2, left: 7 },
  { what: 'and refills from where it went back to', advance: 2 ** 20, want: 8, granted: 8, left: 0 },
];

t.test('the token-bucket arithmetic, on an injected clock', async (t) => {
  const clock = new ManualClock();
  const path = file();
  const b = open(t, path, { now: () => clock.now() });
  for (const step of STEPS) {
    clock.advance(step.advance);
    t.same(await b.take('k', CAP, PER_MS, step.want), [step.granted, step.left], step.what);
  }
  const [row] = rows(path);
  t.same(row, { id: 'k', tokens: 0, last: clock.now(), expires: clock.now() + CAP * 2 ** 20 + 1000 }, 'the bucket expires once it would be full again, plus a second');
});

t.test('the same steps against the Redis script answer the same', async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const client = new Redis(server.url, { commandTimeout: 5_000 });
  t.teardown(() => client.quit());
  const b = new RedisBuckets(client, 'arith');
  const key = 'arith:rl:{k}';
  for (const step of STEPS) {
    // Redis refills on its own clock: moving the bucket's last take back moves its time on.
    if (step.advance !== 0) await client.hset(key, 'l', Number(await client.hget(key, 'l')) - step.advance);
    const [granted, left] = await b.take('k', CAP, PER_MS, step.want);
    t.equal(granted, step.granted, step.what);
    // The real milliseconds between two steps refill a millionth of a token each.
    t.ok(Math.abs(left - step.left) < 0.01, `${step.what}: ${left} left, ${step.left} expected`);
  }
  const ttl = await client.pttl(key);
  t.ok(Math.abs(ttl - (CAP * 2 ** 20 + 1000)) < 10_000, `Redis expires it as SQLite does (${ttl} ms)`);
});

t.test('two connections to one file share one bucket; ids differ by every character', async (t) => {
  const path = file();
  const a = open(t, path);
  const b = open(t, path);
  t.same(await a.take('k', 5, 1e-9, 3), [3, 2]);
  const [granted, left] = await b.take('k', 5, 1e-9, 5);
  t.equal(granted, 2, 'the second connection finds what the first left');
  t.ok(left < 1e-3);
  // A route's bucket is the key's id, NUL, the route's name (gateway/stages/rate-limit.ts).
  t.same(await a.take('k\u0000a', 1, 1e-9, 1), [1, 0]);
  t.same(await a.take('k\u0000b', 1, 1e-9, 1), [1, 0], 'an id that differs after a NUL is another bucket');
  t.same((await b.take('k\u0000a', 1, 1e-9, 1))[0], 0);
});

t.test('buckets that are full again are pruned, the others kept', async (t) => {
  const clock = new ManualClock();
  const path = file();
  open(t, path, { now: () => clock.now(), pruneIntervalMs: 5 });
  const b = open(t, path, { now: () => clock.now() });
  await b.take('fast', 2, 1, 1); // full again 1 ms on: expires 1,001 ms on
  await b.take('slow', 1000, 0.001, 1); // 1,000 ms: expires 2,000 ms on
  clock.advance(1_500);
  await waitFor(() => rows(path).length === 1, 5_000, 'the full bucket pruned');
  t.same(
    rows(path).map((r) => r.id),
    ['slow'],
  );
  clock.advance(500);
  await waitFor(() => rows(path).length === 0, 5_000, 'every bucket pruned');
});

t.test('an unusable path is a clear error', async (t) => {
  t.throws(() => new SqliteBuckets(join(root, 'no-such-dir', 'keygate.db-limits')), {
    code: 'KEYGATE_STORE_UNAVAILABLE',
    message: `cannot open the rate-limit buckets database ${join(root, 'no-such-dir', 'keygate.db-limits')}: its directory ${join(root, 'no-such-dir')} does not exist`,
  });
  const garbage = join(root, 'garbage');
  writeFileSync(garbage, 'not a database '.repeat(400));
  t.throws(() => new SqliteBuckets(garbage), { code: 'KEYGATE_STORE_UNAVAILABLE', message: `cannot open the rate-limit buckets database ${garbage}: the file is not a SQLite database` });
  const dir = join(root, 'a-directory');
  mkdirSync(dir);
  t.throws(() => new SqliteBuckets(dir), { code: 'KEYGATE_STORE_UNAVAILABLE', message: /^cannot open the rate-limit buckets database .*a-directory: unable to open database file$/ });
});

/** Another connection holding the write lock, as a stuck process would; released by `release`. */
function lock(t: Test, path: string): { release(): void } {
  const db = new Database(path);
  db.exec('BEGIN EXCLUSIVE');
  t.teardown(() => db.close());
  return { release: () => db.exec('COMMIT') };
}

/**
 * Counts timer and setImmediate callbacks until stopped: a stalled event loop counts none. The
 * takes it watches wait the default 250 ms, long beside a loaded machine's scheduling delays.
 */
function loopTicks(): { readonly timers: number; readonly immediates: number; stop(): void } {
  const counts = { timers: 0, immediates: 0, stopped: false };
  const timer = setInterval(() => counts.timers++, 1);
  const spin = () => {
    counts.immediates++;
    if (!counts.stopped) setImmediate(spin);
  };
  setImmediate(spin);
  return {
    get timers() {
      return counts.timers;
    },
    get immediates() {
      return counts.immediates;
    },
    stop() {
      counts.stopped = true;
      clearInterval(timer);
    },
  };
}

t.test('a locked file: take retries without blocking the event loop, then rejects', async (t) => {
  const path = file();
  const b = open(t, path, { now: () => 0 });
  await b.take('k', 10, 1e-9, 1); // the table exists before the lock is taken
  const held = lock(t, path);
  const ticks = loopTicks();
  const started = performance.now();
  await t.rejects(within(b.take('k', 10, 1e-9, 1), 5_000, 'a take on a locked file'), {
    code: 'KEYGATE_STORE_UNAVAILABLE',
    message: `the rate-limit buckets database ${path} stayed locked for 250 ms`,
  });
  const took = performance.now() - started;
  ticks.stop();
  t.ok(took >= 249, `rejected after the busy wait (${took.toFixed(0)} ms)`);
  t.ok(ticks.timers > 0 && ticks.immediates > 1, `the event loop ran meanwhile (${ticks.timers} timers, ${ticks.immediates} immediates)`);
  held.release();
  t.same(await b.take('k', 10, 1e-9, 1), [1, 8], 'answers again once the lock is gone');
});

t.test('a lock released while a take retries: the take succeeds', async (t) => {
  const path = file();
  const b = open(t, path, { busyMs: 10_000, now: () => 0 });
  await b.take('k', 10, 1e-9, 1);
  const held = lock(t, path);
  const taken = b.take('k', 10, 1e-9, 2);
  setImmediate(() => held.release());
  t.same(await within(taken, 5_000, 'the take'), [2, 7]);
});

t.test('a locked file: the limiter falls back as each policy says, then recovers', async (t) => {
  for (const mode of ['open', 'closed', 'local'] as StoreFailureMode[]) {
    const path = file();
    const limiter = new SharedLimiter(open(t, path), new LocalLimiter(() => Date.now()), { leaseFraction: 0.02, leaseMax: 50, leaseTtlMs: 1_000 });
    t.teardown(() => limiter.close());
    const policy = compilePolicy('p', { limit: 2, window_seconds: 86_400, burst: null }, mode);
    t.equal(await limiter.take('k', policy, Date.now(), newRateState()), true, `${mode}: the shared bucket admits`);
    const held = lock(t, path);
    const ticks = loopTicks();
    const out = newRateState();
    const allowed = await within(Promise.resolve(limiter.take('k', policy, Date.now(), out)), 5_000, 'a take on a locked file');
    ticks.stop();
    t.ok(ticks.timers > 0 && ticks.immediates > 1, `${mode}: the event loop ran meanwhile (${ticks.timers} timers, ${ticks.immediates} immediates)`);
    t.equal(limiter.degraded, true, `${mode}: degraded`);
    if (mode === 'open') t.match(out, { allowed: true, unavailable: false }, 'open admits');
    if (mode === 'closed') t.match(out, { allowed: false, unavailable: true }, 'closed refuses (503)');
    if (mode === 'local') t.match(out, { allowed: true, unavailable: false, remaining: 1 }, 'local counts in this process');
    t.equal(allowed, mode !== 'closed');
    held.release();
    t.equal(await limiter.take('k', policy, Date.now(), newRateState()), true, `${mode}: the shared bucket again, its last token`);
    t.equal(limiter.degraded, false, `${mode}: no longer degraded`);
    t.equal(await limiter.take('k', policy, Date.now(), newRateState()), false, `${mode}: and it is empty`);
  }
});

/** Runs test/lib/sqlite-buckets-child.ts once per worker, starts them together, and collects their counts. */
async function hammer(t: Test, path: string, workers: number, args: { takes: number; callers: number; limit: number; window: number; burst: number }) {
  const children = Array.from({ length: workers }, () => {
    const child = spawn(
      process.execPath,
      ['--import=tsx', 'test/lib/sqlite-buckets-child.ts', path, ...[args.takes, args.callers, args.limit, args.window, args.burst].map(String)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    return { child, out: () => out, exited };
  });
  t.teardown(() => {
    for (const c of children) c.child.kill('SIGKILL');
  });
  await waitFor(() => children.every((c) => c.out().startsWith('ready\n')), 60_000, 'every worker ready');
  for (const c of children) c.child.stdin.write('go\n');
  const codes = await within(Promise.all(children.map((c) => c.exited)), 60_000, 'every worker done');
  if (codes.some((c) => c !== 0)) throw new Error(`a worker failed: ${codes.join(', ')}`);
  return children.map((c) => JSON.parse(c.out().split('\n')[1]!) as { admitted: number; refused: number; unavailable: number; start: number; end: number });
}

t.test('three processes on one file admit together at most the capacity plus the refill', async (t) => {
  const path = file();
  // 50 tokens, leased one at a time (exact per request), and 50 more a second: while the
  // processes take, half or more of what they may admit is refill, so an over-admission shows.
  const results = await hammer(t, path, 3, { takes: 10_000, callers: 8, limit: 50, window: 1, burst: 50 });
  const admitted = results.reduce((n, r) => n + r.admitted, 0);
  const elapsed = Math.max(...results.map((r) => r.end)) - Math.min(...results.map((r) => r.start));
  const bound = 50 + Math.floor((elapsed * 50) / 1000);
  t.same(
    results.map((r) => r.unavailable),
    [0, 0, 0],
    'every take answered by the file',
  );
  t.same(
    results.map((r) => r.admitted + r.refused),
    [10_000, 10_000, 10_000],
  );
  t.ok(Math.max(...results.map((r) => r.start)) < Math.min(...results.map((r) => r.end)), 'the processes took at the same time');
  t.ok(admitted >= 50, `not fewer than the capacity (${admitted})`);
  t.ok(admitted <= bound, `${results.map((r) => r.admitted).join(' + ')} = ${admitted} admitted in ${elapsed} ms, at most ${bound}`);
});

t.test('the gateway shares buckets in a -limits file beside a SQLite store when it has several workers', async (t) => {
  const dir = mkdtempSync(join(root, 'runtime-'));
  const store = await FileStore.open({ dir });
  t.teardown(() => store.close());
  const path = join(dir, 'keygate.db');
  const one = parseConfig({
    listeners: [{ port: 0, environment: 'production' }],
    admin: { tokens: [{ name: 'admin', token: 'admin-token-0123456789', role: 'admin' }] },
    store: { type: 'sqlite', path },
  });
  const deps = { clock: new ManualClock(), log: new Logger({ level: 'error' }), store, hasher: new KeyHasher(null) };
  const alone = buildRuntime(one, deps);
  t.teardown(() => alone.limiter.close());
  t.equal(alone.limiter.shared, false, 'one process keeps its buckets in memory');
  t.notOk(existsSync(`${path}-limits`));
  const workers = buildRuntime({ ...one, workers: 2 }, deps);
  t.teardown(() => workers.limiter.close());
  t.equal(workers.limiter.shared, true, 'several workers share them');
  t.ok(existsSync(`${path}-limits`), 'in keygate.db-limits');
  const policy = compilePolicy('p', { limit: 1, window_seconds: 60, burst: null });
  t.equal(await workers.limiter.take('k', policy, 0, newRateState()), true);
  t.equal(await workers.limiter.take('k', policy, 0, newRateState()), false);
  t.same(
    rows(`${path}-limits`).map((r) => r.id),
    ['k'],
  );
});
