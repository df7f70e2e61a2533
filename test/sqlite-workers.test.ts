import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { startKeygate } from './lib/cli.js';
import { freePort } from './lib/redis.js';
import { startUpstream } from './lib/upstream.js';
import { waitFor } from './lib/within.js';

// Every core of one machine on the embedded store: one keygate process (the admin plane in the
// primary, two node:cluster gateway workers behind one port) on one SQLite database, with no
// Redis. A revocation answered by the admin plane is refused by every worker from its next
// request, and the workers share rate limits exactly (docs/architecture.md, "Stores").

const TOKEN = 'sqlite-workers-admin-token-0123456789';
const upstream = await startUpstream();
t.teardown(() => upstream.close());
const dir = mkdtempSync(join(tmpdir(), 'keygate-sqlite-workers-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const config = join(dir, 'gateway.yaml');
const [gwPort, adminPort] = [await freePort(), await freePort()];
writeFileSync(
  config,
  `role: all
workers: 2
listeners:
  - { port: ${gwPort}, host: 127.0.0.1, environment: production }
scopes: { catalog: [read] }
plans:
  default: { limit: 100000, window_seconds: 60 }
apis:
  - { name: emails, path_prefix: /v1/emails, upstream: "${upstream.url}", timeout_ms: 5000, unlisted: allow }
admin:
  port: ${adminPort}
  host: 127.0.0.1
  tokens:
    - { name: ops, token: "${TOKEN}", role: admin }
store: { type: sqlite, path: ${JSON.stringify(join(dir, 'data', 'keygate.db'))} }
scheduler: { enabled: false }
demo_upstream: null
log: { level: info }
`,
);
const kg = await startKeygate(config);
t.teardown(() => kg.stop());
// The first "keygate started" is a worker's; the primary says it once every worker is ready.
await kg.proc.waitForLog((l) => l.msg === 'keygate started' && l.worker === null, 60_000);
const gw = `http://127.0.0.1:${gwPort}`;
const adminUrl = `http://127.0.0.1:${adminPort}`;

async function createKey(body: Record<string, unknown> = {}): Promise<{ key: string; id: string }> {
  const res = await request(`${adminUrl}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'workers test', scopes: ['read'], ...body }),
  });
  const out = (await res.body.json()) as { key: string; id: string };
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${JSON.stringify(out)}`);
  return out;
}

/** One request on a new connection, so that node:cluster may hand it to either worker. */
async function fresh(key: string): Promise<number> {
  const res = await request(`${gw}/v1/emails/x`, { headers: { authorization: `Bearer ${key}`, connection: 'close' }, reset: true });
  await res.body.dump();
  return res.statusCode;
}

t.test('both workers started on the sqlite store', async (t) => {
  // A worker tells the primary it is ready before its own line reaches the shared stdout.
  const startedLines = () => kg.proc.logs().filter((l) => l.msg === 'keygate started');
  await waitFor(() => startedLines().length >= 3, 60_000, 'the primary and both workers log that they started');
  const started = startedLines();
  t.same(started.map((l) => l.store), ['sqlite', 'sqlite', 'sqlite'], 'two workers and the primary');
  t.same(started.map((l) => l.worker).filter((w) => w !== null).sort(), [1, 2]);
});

t.test('a revocation answered by the admin plane is refused by every worker from its next request', async (t) => {
  const kept = new Agent({ connections: 8, pipelining: 0 });
  t.teardown(() => kept.close());
  for (let round = 0; round < 5; round++) {
    const { key, id } = await createKey();
    // Warm both workers' caches: new connections alternate between the workers, and the
    // kept-alive ones stay on theirs.
    for (let i = 0; i < 8; i++) t.equal(await fresh(key), 200, 'warm');
    const warmKept = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await request(`${gw}/v1/emails/x`, { headers: { authorization: `Bearer ${key}` }, dispatcher: kept });
        await res.body.dump();
        return res.statusCode;
      }),
    );
    t.same(warmKept, Array(8).fill(200));
    const revoke = await request(`${adminUrl}/v1/keys/${id}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    await revoke.body.dump();
    t.equal(revoke.statusCode, 200);
    const afterKept = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await request(`${gw}/v1/emails/x`, { headers: { authorization: `Bearer ${key}` }, dispatcher: kept });
        await res.body.dump();
        return res.statusCode;
      }),
    );
    const afterFresh = [];
    for (let i = 0; i < 8; i++) afterFresh.push(await fresh(key));
    t.same([...afterKept, ...afterFresh], Array(16).fill(401), `round ${round}: refused on every connection from the first request after the answer`);
  }
});

t.test('two workers hammering one key never admit more than burst + rate × elapsed', async (t) => {
  for (const rate_limit of [
    { limit: 40, window_seconds: 1, burst: 40 },
    { limit: 100, window_seconds: 10, burst: 200 },
  ]) {
    const { key } = await createKey({ rate_limit });
    const perSecond = rate_limit.limit / rate_limit.window_seconds;
    const counts = new Map<number, number>();
    // Connections spread over both workers; each loop keeps its own.
    const agents = Array.from({ length: 8 }, () => new Agent({ connections: 1 }));
    t.teardown(() => Promise.all(agents.map((a) => a.close())));
    const began = performance.now();
    const until = began + 15_000;
    const enough = () => {
      const now = performance.now();
      return now >= until || (now >= began + 1500 && (counts.get(429) ?? 0) > (counts.get(200) ?? 0));
    };
    const loop = async (agent: Agent) => {
      for (let i = 0; i < 5000 && !enough(); i++) {
        const res = await request(`${gw}/v1/emails/x`, { headers: { authorization: `Bearer ${key}` }, dispatcher: agent });
        await res.body.dump();
        counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
      }
    };
    await Promise.all(agents.map(loop));
    const elapsed = (performance.now() - began) / 1000;
    const admitted = counts.get(200) ?? 0;
    const bound = rate_limit.burst + perSecond * elapsed;
    t.same([...counts.keys()].sort(), [200, 429], `only 200 and 429 (${JSON.stringify(Object.fromEntries(counts))})`);
    t.ok((counts.get(429) ?? 0) > admitted, 'the load was well above the limit');
    t.ok(admitted <= bound, `${admitted} admitted ≤ ${bound.toFixed(0)} = burst ${rate_limit.burst} + ${perSecond}/s × ${elapsed.toFixed(2)} s`);
    // Tokens leased to one worker wait there for its next requests: the undershoot is at most those.
    const leased = 2 * Math.max(1, Math.floor(rate_limit.burst * 0.02));
    const floor = 0.85 * bound - leased;
    t.ok(admitted >= floor, `${admitted} admitted ≥ ${floor.toFixed(0)} (85% of the bound, less ${leased} leased tokens)`);
  }
});

t.test('two workers spending one quota together admit exactly the quota', async (t) => {
  const { key, id } = await createKey({ quota: { limit: 60, period: 'day' } });
  const counts = new Map<number, number>();
  // Connections spread over both workers.
  const agents = Array.from({ length: 8 }, () => new Agent({ connections: 1 }));
  t.teardown(() => Promise.all(agents.map((a) => a.close())));
  await Promise.all(
    agents.flatMap((agent) =>
      Array.from({ length: 20 }, async () => {
        const res = await request(`${gw}/v1/emails/x`, { headers: { authorization: `Bearer ${key}` }, dispatcher: agent });
        await res.body.dump();
        counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
      }),
    ),
  );
  t.same(Object.fromEntries(counts), { 200: 60, 429: 100 }, 'exactly 60 of 160 admitted');
  const rec = await request(`${adminUrl}/v1/keys/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  t.match(await rec.body.json(), { balance: { remaining: 0 } }, 'the admin plane reads the same balance');
});
