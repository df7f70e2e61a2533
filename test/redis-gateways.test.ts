import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { startKeygate, type RunningKeygate } from './lib/cli.js';
import { freePort, RedisServer } from './lib/redis.js';
import { startUpstream } from './lib/upstream.js';

// Production's shape, as separate OS processes: one admin plane and several gateways (one of
// them with two node:cluster workers) sharing a real redis-server.

const TOKEN = 'gateways-test-admin-token-0123456789';
const redis = await RedisServer.start();
t.teardown(() => redis.stop());
const upstream = await startUpstream();
t.teardown(() => upstream.close());
const dir = mkdtempSync(join(tmpdir(), 'keygate-gateways-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function configFile(name: string, role: 'admin' | 'gateway', workers = 1): Promise<{ path: string; url: string }> {
  const port = await freePort();
  const path = join(dir, `${name}.yaml`);
  writeFileSync(
    path,
    `role: ${role}
workers: ${workers}
listeners:
  - { port: ${role === 'gateway' ? port : 0}, host: 127.0.0.1, environment: production }
trusted_proxies: []
scopes: { catalog: [read] }
plans:
  default: { limit: 100000, window_seconds: 60 }
apis:
  - { name: emails, path_prefix: /v1/emails, upstream: "${upstream.url}", timeout_ms: 5000, unlisted: allow }
admin:
  port: ${role === 'admin' ? port : 0}
  host: 127.0.0.1
  tokens:
    - { name: ops, token: "${TOKEN}", role: admin }
store: { type: redis, url: "${redis.url}", prefix: gwtest }
scheduler: { enabled: false }
demo_upstream: null
log: { level: info }
`,
  );
  return { path, url: `http://127.0.0.1:${port}` };
}

async function start(name: string, role: 'admin' | 'gateway', workers = 1): Promise<{ kg: RunningKeygate; url: string }> {
  const { path, url } = await configFile(name, role, workers);
  const kg = await startKeygate(path);
  t.teardown(() => kg.stop());
  return { kg, url };
}

const admin = await start('admin', 'admin');
// Two gateway processes: the first runs two workers behind one port.
const gateways = [await start('gw1', 'gateway', 2), await start('gw2', 'gateway')];

async function createKey(body: Record<string, unknown> = {}): Promise<{ key: string; id: string }> {
  const res = await request(`${admin.url}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'gateways test', scopes: ['read'], ...body }),
  });
  const out = (await res.body.json()) as { key: string; id: string };
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${JSON.stringify(out)}`);
  return out;
}

/** One request on a new connection, so that node:cluster may hand it to either worker. */
async function fresh(url: string, key: string): Promise<number> {
  const res = await request(`${url}/v1/emails/x`, { headers: { authorization: `Bearer ${key}`, connection: 'close' }, reset: true });
  await res.body.dump();
  return res.statusCode;
}

t.test('a revocation at the admin plane is seen by every gateway process and worker on its next request', async (t) => {
  for (let round = 0; round < 5; round++) {
    const { key, id } = await createKey();
    // Warm every cache: enough new connections that both workers of the first gateway see it.
    for (const g of gateways) for (let i = 0; i < 8; i++) t.equal(await fresh(g.url, key), 200, 'warm');
    const revoke = await request(`${admin.url}/v1/keys/${id}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    await revoke.body.dump();
    t.equal(revoke.statusCode, 200);
    for (const g of gateways) {
      const after = [];
      for (let i = 0; i < 8; i++) after.push(await fresh(g.url, key));
      t.same(after, Array(8).fill(401), `round ${round}: ${g.url} refuses the key from the next request on`);
    }
  }
});

t.test('gateway processes hammering one key together never admit more than burst + rate × elapsed', async (t) => {
  // 40 tokens a second, burst 40: each gateway leases 1 at a time (2% of 40 rounds down).
  // And a larger bucket, 10/s with burst 200, where each gateway leases 4 tokens at once; its rate
  // is low so that even a machine too busy to send many requests loads it well past the limit.
  for (const rate_limit of [
    { limit: 40, window_seconds: 1, burst: 40 },
    { limit: 100, window_seconds: 10, burst: 200 },
  ]) {
    const { key } = await createKey({ rate_limit });
    const perSecond = rate_limit.limit / rate_limit.window_seconds;
    const counts = new Map<number, number>();
    const agents = gateways.map(() => new Agent({ connections: 8 }));
    t.teardown(() => Promise.all(agents.map((a) => a.close())));
    // At least 1.5 s, and on until the refusals outnumber the admissions (the load is well
    // above the limit), however slowly a busy machine sends: at most 15 s.
    const began = performance.now();
    const until = began + 15_000;
    const enough = () => {
      const now = performance.now();
      return now >= until || (now >= began + 1500 && (counts.get(429) ?? 0) > (counts.get(200) ?? 0));
    };
    const loop = async (g: number) => {
      for (let i = 0; i < 5000 && !enough(); i++) {
        const res = await request(`${gateways[g]!.url}/v1/emails/x`, { headers: { authorization: `Bearer ${key}` }, dispatcher: agents[g] });
        await res.body.dump();
        counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
      }
    };
    await Promise.all(gateways.flatMap((_, g) => Array.from({ length: 6 }, () => loop(g))));
    const elapsed = (performance.now() - began) / 1000;
    const admitted = counts.get(200) ?? 0;
    const bound = rate_limit.burst + perSecond * elapsed;
    t.same([...counts.keys()].sort(), [200, 429], `only 200 and 429 (${JSON.stringify(Object.fromEntries(counts))})`);
    t.ok((counts.get(429) ?? 0) > admitted, 'the load was well above the limit');
    t.ok(admitted <= bound, `${admitted} admitted ≤ ${bound.toFixed(0)} = burst ${rate_limit.burst} + ${perSecond}/s × ${elapsed.toFixed(2)} s`);
    // Tokens leased to one gateway (2% of the capacity, 3 limiters here) wait there for its
    // next requests: under load the undershoot is at most those, and the allowance is used.
    const leased = 3 * Math.max(1, Math.floor(rate_limit.burst * 0.02));
    const floor = 0.85 * bound - leased;
    t.ok(admitted >= floor, `${admitted} admitted ≥ ${floor.toFixed(0)} (85% of the bound, less ${leased} leased tokens)`);
  }
});

t.test('gateway processes and workers spending one quota together admit exactly the quota', async (t) => {
  const { key, id } = await createKey({ quota: { limit: 60, period: 'day' } });
  const counts = new Map<number, number>();
  const agents = gateways.map(() => new Agent({ connections: 8 }));
  t.teardown(() => Promise.all(agents.map((a) => a.close())));
  // 3 × 60 requests, all at once across both processes and both workers of the first.
  await Promise.all(
    gateways.flatMap((g, i) =>
      Array.from({ length: 90 }, async () => {
        const res = await request(`${g.url}/v1/emails/x`, { headers: { authorization: `Bearer ${key}` }, dispatcher: agents[i] });
        await res.body.dump();
        counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
      }),
    ),
  );
  t.same(Object.fromEntries(counts), { 200: 60, 429: 120 }, 'exactly 60 of 180 admitted');
  const rec = await request(`${admin.url}/v1/keys/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  t.match(await rec.body.json(), { balance: { remaining: 0 } }, 'the admin plane reads the same balance');
});
