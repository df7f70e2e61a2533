import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SMTPServer } from 'smtp-server';
import { createAdmin, type Admin } from '../admin/server.js';
import { ManualClock } from '../core/clock.js';
import { Logger } from '../core/log.js';
import { hashPassword } from '../core/password.js';
import { SqliteStore } from '../core/store/sqlite-store.js';
import { ADMIN_TOKEN, startStack, testConfig } from './lib/stack.js';

// Alert delivery (docs/alerts.md): webhooks signed and retried with backoff until they succeed
// or give up, across a Keygate restart; Slack's format; email through a real SMTP server.

const SECRET = 'alert-webhook-secret-0123456789';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
}

/** A real HTTP receiver (on `port`, or any) that answers `statuses` in turn (then 200) and keeps what it got. */
async function receiver(t: Test, statuses: number[] = [], port = 0): Promise<{ url: string; got: Received[]; server: Server; port: number }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.writeHead(statuses.shift() ?? 200).end();
    });
  });
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  const bound = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${bound}/hook`, got, server, port: bound };
}

/** Checks a `Keygate-Signature` as a receiver does (docs/alerts.md). */
function signatureValid(header: string | string[] | undefined, body: string, secret: string): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(header));
  if (!m) return false;
  const expected = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex'));
}

t.test('a webhook that fails its first attempts gets the alert, signed, after backoff; every attempt is listed', async (t) => {
  const hook = await receiver(t, [503, 500]);
  const s = await startStack({
    overrides: () => ({ alerts: { webhooks: [{ name: 'ops', url: hook.url, secret: SECRET, events: ['key.revoked'] }] } }),
  });
  t.teardown(() => s.close());
  const k = await s.createKey({ name: 'gone' });
  const other = await s.createKey({ name: 'edited' });
  await s.adminCall('POST', `/v1/keys/${k.id}/revoke`, {});
  await s.adminCall('PATCH', `/v1/keys/${other.id}`, { name: 'renamed' });
  const [alert] = (await s.adminCall('GET', '/v1/alerts')).body.data;

  t.equal(await s.admin.alerts.deliverer.tick(), 1, 'one delivery due: the webhook takes key.revoked only');
  t.equal(await s.admin.alerts.deliverer.tick(), 0, 'the retry waits for its backoff');
  s.clock.advance(30_000);
  t.equal(await s.admin.alerts.deliverer.tick(), 1, 'second attempt after 30 s');
  s.clock.advance(59_000);
  t.equal(await s.admin.alerts.deliverer.tick(), 0, 'the third waits 60 s');
  s.clock.advance(1_000);
  t.equal(await s.admin.alerts.deliverer.tick(), 1);
  t.equal(await s.admin.alerts.deliverer.tick(), 0, 'delivered: nothing more is due');

  t.equal(hook.got.length, 3);
  for (const r of hook.got) {
    t.ok(signatureValid(r.headers['keygate-signature'], r.body, SECRET), 'signed with the webhook secret');
    t.equal(r.headers['keygate-event-id'], alert.id, 'the alert id, for the receiver to deduplicate');
    t.same(JSON.parse(r.body), alert, 'the body is the alert as GET /v1/alerts shows it');
  }
  t.notOk(signatureValid(hook.got[0]!.headers['keygate-signature'], hook.got[0]!.body, 'another-secret-0123456789'), 'another secret does not verify');

  const deliveries = (await s.adminCall('GET', `/v1/alerts/${alert.id}/deliveries`)).body.data;
  t.match(deliveries, [{ target: 'webhook:ops', state: 'delivered', next_attempt_at: null, attempts: [{ ok: false, status: 503 }, { ok: false, status: 500 }, { ok: true, status: 200 }] }]);
  t.ok(s.logs.some((l) => l.includes('alert delivery failed; retried later')), 'each failed attempt is logged');
});

t.test('a receiver down across a restart: nothing pending is lost; after a day, the delivery gives up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-alerts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A port that was just free: nothing listens on it until the receiver starts there.
  const probe = await receiver(t);
  const port = probe.port;
  await new Promise<void>((ok) => probe.server.close(() => ok()));
  const url = `http://127.0.0.1:${port}/hook`;
  const config = testConfig('http://127.0.0.1:1', {
    alerts: { webhooks: [{ name: 'down', url, secret: SECRET }, { name: 'never', url: 'http://127.0.0.1:1/hook', secret: SECRET }] },
  });
  const clock = new ManualClock(Date.UTC(2026, 5, 1, 12));
  const log = new Logger({ level: 'error', write: () => {}, keyPrefix: config.keys.prefix });
  const open = async (): Promise<{ admin: Admin; store: SqliteStore; url: string }> => {
    const store = await SqliteStore.open({ path: join(dir, 'keygate.db') });
    const admin = createAdmin(config, { store, clock, log, alertTimers: false });
    return { admin, store, url: (await admin.listen()).url };
  };
  const call = async (base: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };

  let run = await open();
  const created = await call(run.url, 'POST', '/v1/keys', { name: 'k' });
  await call(run.url, 'POST', `/v1/keys/${created.body.id}/revoke`, {});
  t.equal(await run.admin.alerts.deliverer.tick(), 2, 'both webhooks tried');
  clock.advance(30_000);
  await run.admin.alerts.deliverer.tick();
  await run.admin.close();
  await run.store.close();

  // The receiver comes up while Keygate is down; Keygate comes back.
  const { got } = await receiver(t, [], port);
  run = await open();
  t.teardown(async () => {
    await run.admin.close();
    await run.store.close();
  });
  clock.advance(60_000);
  await run.admin.alerts.deliverer.tick();
  t.equal(got.length, 1, 'the pending delivery was sent after the restart');
  const [alert] = (await call(run.url, 'GET', '/v1/alerts')).body.data;
  t.ok(signatureValid(got[0]!.headers['keygate-signature'], got[0]!.body, SECRET));
  t.equal(JSON.parse(got[0]!.body).id, alert.id);

  // The other webhook never answers: retried, capped at an hour apart, given up after a day.
  for (let i = 0; i < 40; i++) {
    clock.advance(3_600_000);
    await run.admin.alerts.deliverer.tick();
  }
  const deliveries = (await call(run.url, 'GET', `/v1/alerts/${alert.id}/deliveries`)).body.data;
  const never = deliveries.find((d: any) => d.target === 'webhook:never');
  t.equal(never.state, 'failed', 'given up');
  t.equal(never.next_attempt_at, null);
  const last = Date.parse(never.attempts.at(-1).at);
  t.ok(last <= Date.parse(alert.created_at) + 24 * 3_600_000, 'no attempt after the day');
  t.ok(never.attempts.length >= 20 && never.attempts.length <= 30, `${never.attempts.length} attempts: doubling from 30 s, then hourly`);
  t.ok(never.attempts.every((a: any) => a.ok === false && a.status === null && typeof a.error === 'string'));
  t.equal(deliveries.find((d: any) => d.target === 'webhook:down').state, 'delivered');
});

t.test('format slack: an incoming-webhook message that says what happened, with the masked key only', async (t) => {
  const hook = await receiver(t);
  const s = await startStack({ overrides: () => ({ alerts: { webhooks: [{ name: 'slack', url: hook.url, format: 'slack' }] } }) });
  t.teardown(() => s.close());
  const k = await s.createKey({ name: 'billing' });
  await s.adminCall('POST', `/v1/keys/${k.id}/revoke`, { reason: 'rotated out' });
  await s.admin.alerts.deliverer.tick();
  t.equal(hook.got.length, 1);
  const msg = JSON.parse(hook.got[0]!.body);
  t.match(msg.text, /API key “billing” \(gw_live_\w+\.\.\.\w+\) was revoked/);
  t.match(JSON.stringify(msg.blocks), /What to do/);
  t.notOk(hook.got[0]!.body.includes(k.key), 'never the key');
  t.equal(hook.got[0]!.headers['keygate-signature'], undefined, 'no secret, no signature');
});

t.test('email: through a real SMTP server, to the fixed list and the key’s creator', async (t) => {
  const mails: { from: string; to: string[]; raw: string }[] = [];
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, session, done) {
      let raw = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => (raw += c));
      stream.on('end', () => {
        mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), raw });
        done();
      });
    },
  });
  await new Promise<void>((ok) => smtp.listen(0, '127.0.0.1', ok));
  t.teardown(() => new Promise<void>((ok) => smtp.close(() => ok())));
  const port = (smtp.server.address() as AddressInfo).port;
  const password_hash = await hashPassword('correct horse battery staple');
  const s = await startStack({
    overrides: () => ({
      alerts: { email: { smtp: { host: '127.0.0.1', port }, from: 'keygate@example.com', to: ['oncall@example.com'], events: ['key.expiring'] } },
      dashboard: {
        users: [{ name: 'ops', email: 'Owner@Example.com', role: 'admin', password_hash }],
      },
    }),
  });
  t.teardown(() => s.close());
  const k = await s.createKey({ name: 'nightly', expires_at: new Date(s.clock.now() + 3 * 86_400_000).toISOString() });
  await s.adminCall('POST', `/v1/keys/${k.id}/suspend`, {});
  await s.admin.alerts.watch.tick();
  t.equal(await s.admin.alerts.deliverer.tick(), 1, 'the expiring alert, by email; suspension raises none');
  t.equal(mails.length, 1);
  const mail = mails[0]!;
  t.equal(mail.from, 'keygate@example.com');
  t.same(mail.to.sort(), ['oncall@example.com', 'owner@example.com'], 'the fixed list and the dashboard user who created the key');
  // Quoted-printable bodies and RFC 2047 headers, decoded as a mail client would.
  const bytes = (qp: string) => Buffer.from(qp.replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))), 'latin1').toString('utf8');
  const headersDecoded = mail.raw.replace(/\?=\r?\n[ \t]+=\?/g, '?==?').replace(/=\?UTF-8\?Q\?([^?]*)\?=/g, (_, q: string) => bytes(q.replace(/_/g, ' ')));
  const decoded = bytes(mail.raw.replace(/=\r\n/g, ''));
  t.match(headersDecoded, /Subject: \[Keygate\] API key “nightly” \(gw_live_\w+\.\.\.\w+\) expires in 3 day\(s\)/);
  t.match(decoded, /text\/plain/);
  t.match(decoded, /text\/html/);
  t.ok(decoded.includes(k.record.masked as string), 'names the key by its masked form');
  t.match(decoded, /What to do/);
  t.notOk(mail.raw.includes(k.key), 'never the key');
  const [alert] = (await s.adminCall('GET', '/v1/alerts')).body.data;
  t.match((await s.adminCall('GET', `/v1/alerts/${alert.id}/deliveries`)).body.data, [{ target: 'email', state: 'delivered', attempts: [{ ok: true, status: 250 }] }]);
});
