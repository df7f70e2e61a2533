import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { startKeygate, type RunningKeygate } from './lib/cli.js';
import { freePort, RedisServer, waitUntil } from './lib/redis.js';
import { startUpstream } from './lib/upstream.js';

// A gateway process ships its usage events over HTTP to a separate admin process; the admin
// process is stopped and started again in the middle of the traffic. Every request is counted
// once: none lost while the admin plane was away, none twice when a batch was resent.

const ADMIN_TOKEN = 'shipping-test-admin-token-0123456789';
const GATEWAY_TOKEN = 'shipping-test-gateway-token-0123456789';
const redis = await RedisServer.start(['--appendonly', 'yes', '--appendfsync', 'always']);
t.teardown(() => redis.stop());
const upstream = await startUpstream();
t.teardown(() => upstream.close());
const dir = mkdtempSync(join(tmpdir(), 'keygate-shipping-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const adminPort = await freePort();
const gatewayPort = await freePort();
const adminUrl = `http://127.0.0.1:${adminPort}`;
const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;

function config(role: 'admin' | 'gateway'): string {
  const path = join(dir, `${role}.yaml`);
  writeFileSync(
    path,
    `role: ${role}
listeners:
  - { port: ${gatewayPort}, host: 127.0.0.1, environment: production }
scopes: { catalog: [read, manage] }
plans:
  default: { limit: 100000, window_seconds: 60 }
apis:
  - name: emails
    path_prefix: /v1/emails
    upstream: "${upstream.url}"
    timeout_ms: 5000
    unlisted: allow
    routes: [{ method: "*", path: /v1/emails/manage/*, scopes: [manage] }]
admin:
  port: ${adminPort}
  host: 127.0.0.1
  tokens:
    - { name: ops, token: "${ADMIN_TOKEN}", role: admin }
    - { name: gw1, token: "${GATEWAY_TOKEN}", role: gateway }
store: { type: redis, url: "${redis.url}", prefix: shiptest }
usage:
  flush_interval_ms: 100
  ship_to: { url: "${adminUrl}", token: "${GATEWAY_TOKEN}", timeout_ms: 2000 }
scheduler: { enabled: false }
demo_upstream: null
log: { level: info }
`,
  );
  return path;
}

async function start(role: 'admin' | 'gateway'): Promise<RunningKeygate> {
  const kg = await startKeygate(config(role));
  t.teardown(() => kg.stop());
  return kg;
}

const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

t.test('an admin restart under load loses no usage event and counts none twice', async (t) => {
  let admin = await start('admin');
  const gateway = await start('gateway');
  const created = await request(`${adminUrl}/v1/keys`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'shipping', scopes: ['read'] }),
  });
  const { key, id } = (await created.body.json()) as { key: string; id: string };
  t.equal(created.statusCode, 201);

  const agent = new Agent({ connections: 4 });
  t.teardown(() => agent.close());
  let sent = 0;
  let stop = false;
  const statuses = new Map<number, number>();
  const deadline = Date.now() + 20_000;
  const loop = async () => {
    while (!stop && sent < 20_000 && Date.now() < deadline) {
      sent++;
      // Every fourth request is refused (403: the key lacks the scope), so errors count too.
      const path = sent % 4 === 0 ? '/v1/emails/manage/x' : '/v1/emails/x';
      const res = await request(`${gatewayUrl}${path}`, { headers: { authorization: `Bearer ${key}` }, dispatcher: agent });
      await res.body.dump();
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    }
  };
  const load = Promise.all([loop(), loop(), loop(), loop()]);
  await new Promise((r) => setTimeout(r, 800));
  t.equal((await admin.stop('SIGTERM')).code, 0, 'the admin plane stops cleanly mid-load');
  const sentWhileDown = sent;
  await new Promise((r) => setTimeout(r, 1500));
  t.ok(sent > sentWhileDown, `traffic went on while the admin plane was down (${sent - sentWhileDown} requests)`);
  admin = await start('admin');
  await new Promise((r) => setTimeout(r, 800));
  stop = true;
  await load;
  t.same([...statuses.keys()].sort(), [200, 403], 'the gateway answered throughout');

  const expectedErrors = statuses.get(403)!;
  let usage: { totals: { requests: number; errors: number } } | undefined;
  t.teardown(() => {
    if (usage!.totals.requests !== sent) {
      t.comment(`sent ${sent}, stored ${usage!.totals.requests}; gateway said: ${JSON.stringify(gateway.proc.logs().filter((l) => l.level !== 'info').slice(0, 5))}; admin said: ${JSON.stringify(admin.proc.logs().filter((l) => l.level !== 'info').slice(0, 5))} ${admin.proc.stderr().slice(0, 2000)}`);
    }
  });
  await waitUntil(
    async () => {
      const res = await request(`${adminUrl}/v1/keys/${id}/usage?range=1h`, { headers: auth });
      usage = (await res.body.json()) as typeof usage;
      return usage!.totals.requests >= sent;
    },
    'every event to reach the admin plane',
    15_000,
  );
  // Settled: a late duplicate would show up now.
  await new Promise((r) => setTimeout(r, 500));
  const final = (await (await request(`${adminUrl}/v1/keys/${id}/usage?range=1h`, { headers: auth })).body.json()) as NonNullable<typeof usage>;
  t.equal(final.totals.requests, sent, `${sent} requests, ${final.totals.requests} in the aggregates`);
  t.equal(final.totals.errors, expectedErrors, 'errors too');
  const rec = (await (await request(`${adminUrl}/v1/keys/${id}`, { headers: auth })).body.json()) as { usage: { total_requests: number; error_count: number } };
  t.same(rec.usage, { total_requests: sent, error_count: expectedErrors }, 'and the key record');
});
