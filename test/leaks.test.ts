import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { generateKey, randomBase62 } from '../core/key-format.js';
import type { Store } from '../core/store/store.js';
import { ADMIN_TOKEN, startStack, testConfig, TENANT_A_TOKEN, VIEWER_TOKEN, type Stack } from './lib/stack.js';

// Leaked keys (docs/secret-scanning/README.md): POST /v1/keys/leaked (an operator pastes a key)
// and POST /v1/leaks (GitHub secret scanning's signed partner alert). A live key is suspended
// (leaks.action), which the gateway then refuses; anything else is a false positive, and a
// string that fails the key's checksum never reaches the store.

const github = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const GITHUB_KEY_ID = 'bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c';

/** A store that counts lookups by hash, to show which tokens were looked up at all. */
function counting(store: Store, seen: string[]): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'getKeyByHash') return (hash: string) => (seen.push(hash), target.getKeyByHash(hash));
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function stack(t: Test, leaks: Record<string, unknown>, lookups: string[] = []): Promise<Stack> {
  const s = await startStack({ overrides: () => ({ leaks }), wrapStore: (store) => counting(store, lookups) });
  t.teardown(() => s.close());
  return s;
}

const pem = (k: typeof github) => k.publicKey.export({ type: 'spki', format: 'pem' }).toString();

/** POSTs `body` to /v1/leaks signed by `key` under `keyId`, as GitHub does. */
async function alert(s: Stack, body: string, key = github.privateKey, keyId = GITHUB_KEY_ID, headers: Record<string, string> = {}) {
  const signature = sign('sha256', Buffer.from(body), { key, dsaEncoding: 'der' }).toString('base64');
  const res = await request(`${s.adminUrl}/v1/leaks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'github-public-key-identifier': keyId, 'github-public-key-signature': signature, ...headers },
    body,
  });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

async function use(s: Stack, key: string): Promise<number> {
  const res = await request(`${s.gw['production']}/v1/emails/x`, { headers: { authorization: `Bearer ${key}` } });
  await res.body.dump();
  return res.statusCode;
}

t.test('a signed GitHub alert suspends the live key it holds; the rest are false positives', async (t) => {
  const lookups: string[] = [];
  const s = await stack(t, { github_public_keys: [{ id: GITHUB_KEY_ID, pem: pem(github) }] }, lookups);
  const live = await s.createKey({ name: 'leaky' });
  const revoked = await s.createKey({ name: 'old' });
  t.equal((await s.adminCall('POST', `/v1/keys/${revoked.id}/revoke`, {})).status, 200);
  t.equal(await use(s, live.key), 200);
  const notAKey = `gw_live_${randomBase62(49)}`; // the shape, not the checksum
  const unknown = generateKey('gw', 'live');
  const tokens = [live.key, notAKey, unknown, revoked.key, 'hello world'];
  const before = lookups.length;
  const res = await alert(s, JSON.stringify(tokens.map((token) => ({ token, type: 'keygate_api_key', url: 'https://github.com/o/r/blob/x/.env', source: 'content' }))));
  t.equal(res.status, 200);
  t.same(
    res.body,
    tokens.map((token, i) => ({ token_hash: createHash('sha256').update(token).digest('hex'), token_type: 'keygate_api_key', label: i === 0 ? 'true_positive' : 'false_positive' })),
  );
  t.equal(lookups.length - before, 3, 'only the three strings with a valid checksum were looked up');
  t.equal(await use(s, live.key), 401, 'the gateway refuses the leaked key from then on');
  const rec = (await s.adminCall('GET', `/v1/keys/${live.id}`)).body;
  t.equal(rec.status, 'suspended');
  t.equal(rec.suspended_reason, 'leaked (github: content)');
  const events = (await s.adminCall('GET', `/v1/keys/${live.id}/events`)).body.data as { type: string; detail: Record<string, unknown> }[];
  t.match(events.find((e) => e.type === 'leaked'), { detail: { source: 'github: content', url: 'https://github.com/o/r/blob/x/.env', action: 'suspend' } });
  t.ok(events.some((e) => e.type === 'suspended'));
  const audit = (await s.adminCall('GET', `/v1/audit?action=key.leaked`)).body.data as { actor: string; target_id: string }[];
  t.match(audit, [{ actor: 'github-secret-scanning', target_id: live.id }]);
  // The same alert again: the key is suspended already, the leak is recorded again.
  t.equal((await alert(s, JSON.stringify([{ token: live.key, type: 't', url: null, source: 'content' }]))).body[0].label, 'true_positive');
});

t.test('an alert that is not signed by a configured key is refused whole', async (t) => {
  const s = await stack(t, { github_public_keys: [{ id: GITHUB_KEY_ID, pem: pem(github) }] });
  const live = await s.createKey();
  const body = JSON.stringify([{ token: live.key, type: 't', url: null, source: 'content' }]);
  t.equal((await alert(s, body, other.privateKey)).status, 401, 'signed by another key');
  t.equal((await alert(s, body, github.privateKey, 'unknown-id')).status, 401, 'an unknown key id');
  t.equal((await alert(s, body, github.privateKey, GITHUB_KEY_ID, { 'github-public-key-signature': 'bm90IGEgc2lnbmF0dXJl' })).status, 401, 'garbage signature');
  const tampered = await request(`${s.adminUrl}/v1/leaks`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'github-public-key-identifier': GITHUB_KEY_ID,
      'github-public-key-signature': sign('sha256', Buffer.from(body), { key: github.privateKey, dsaEncoding: 'der' }).toString('base64'),
    },
    body: body.replace('content', 'c0ntent'),
  });
  await tampered.body.dump();
  t.equal(tampered.statusCode, 401, 'a body changed after signing');
  const unsigned = await request(`${s.adminUrl}/v1/leaks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  await unsigned.body.dump();
  t.equal(unsigned.statusCode, 401, 'no signature headers');
  t.equal(await use(s, live.key), 200, 'nothing was suspended');
  // Signed, but not the format: refused as invalid.
  t.equal((await alert(s, '{"token":"x"}')).status, 400);
  t.equal((await alert(s, JSON.stringify(Array.from({ length: 1001 }, () => ({ token: 'x', type: 't' }))))).status, 400, 'more than max_tokens');
});

t.test('POST /v1/leaks is off (404) while no GitHub key is configured', async (t) => {
  const s = await stack(t, {});
  t.equal((await alert(s, '[]')).status, 404);
});

t.test('POST /v1/keys/leaked: an operator reports a key; roles and tenants as everywhere', async (t) => {
  const s = await stack(t, { action: 'revoke' });
  const live = await s.createKey({ name: 'pasted' });
  const viewer = await s.adminCall('POST', '/v1/keys/leaked', { key: live.key }, VIEWER_TOKEN);
  t.equal(viewer.status, 403, 'a viewer may not');
  const otherTenant = await s.adminCall('POST', '/v1/keys/leaked', { key: live.key }, TENANT_A_TOKEN);
  t.same(otherTenant.body, { label: 'false_positive', action: null, key: null }, "another tenant's key is not this token's to report, and is not revealed");
  t.equal(await use(s, live.key), 200);
  const res = await s.adminCall('POST', '/v1/keys/leaked', { key: live.key, source: 'pastebin', url: 'https://pastebin.example/x' }, ADMIN_TOKEN);
  t.equal(res.status, 200);
  t.match(res.body, { label: 'true_positive', action: 'revoke', key: { id: live.id, status: 'revoked', revoked_reason: 'leaked (pastebin)' } });
  t.notOk(JSON.stringify(res.body).includes(live.key), 'the answer never holds the plaintext');
  t.equal(await use(s, live.key), 401);
  t.same((await s.adminCall('POST', '/v1/keys/leaked', { key: live.key })).body, { label: 'false_positive', action: null, key: null }, 'a revoked key is no longer a live leak');
  t.equal((await s.adminCall('POST', '/v1/keys/leaked', { key: 'x'.repeat(201) })).status, 400);
  t.equal((await s.adminCall('POST', '/v1/keys/leaked', {})).status, 400);
});

t.test('leaks.action notify records the leak and leaves the key working', async (t) => {
  const s = await stack(t, { action: 'notify' });
  const live = await s.createKey();
  t.match((await s.adminCall('POST', '/v1/keys/leaked', { key: live.key })).body, { label: 'true_positive', action: 'notify', key: { status: 'active' } });
  t.equal(await use(s, live.key), 200);
  const events = (await s.adminCall('GET', `/v1/keys/${live.id}/events`)).body.data as { type: string }[];
  t.ok(events.some((e) => e.type === 'leaked'));
});

t.test('a configured GitHub key must be an ECDSA public key', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  for (const bad of [rsa, 'nonsense']) {
    t.throws(() => testConfig('http://127.0.0.1:1', { leaks: { github_public_keys: [{ id: 'x', pem: bad }] } }), /must be a PEM ECDSA public key/);
  }
});

t.test('leaks.action rotate: a successor goes to the policy’s rotation webhook, the old key works for the grace; without a webhook, suspend', async (t) => {
  const received: { body: any; signature: string | undefined }[] = [];
  const hook = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      received.push({ body: JSON.parse(body), signature: req.headers['keygate-signature'] as string | undefined });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((ok) => hook.listen(0, '127.0.0.1', ok));
  t.teardown(() => new Promise<void>((ok) => hook.close(() => ok())));
  const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/rotated`;
  const s = await startStack({
    overrides: () => ({
      leaks: { action: 'rotate', rotate_grace_seconds: 600, github_public_keys: [{ id: GITHUB_KEY_ID, pem: pem(github) }] },
      policies: { rotating: { rotation: { every_days: 90, webhook: { url, secret: 'rotation-webhook-secret-0123' } } } },
    }),
  });
  t.teardown(() => s.close());
  const rotating = await s.createKey({ name: 'rotating', policy: 'rotating' });
  const plain = await s.createKey({ name: 'plain' });

  const res = await s.adminCall('POST', '/v1/keys/leaked', { key: rotating.key, source: 'pastebin' });
  t.match(res.body, { label: 'true_positive', action: 'rotate', key: { id: rotating.id, status: 'active' } });
  t.equal(received.length, 1, 'the successor was sent to the rotation webhook');
  const successor = received[0]!.body;
  t.match(successor, { type: 'key.rotated', replaces: rotating.id, name: 'rotating' });
  t.match(received[0]!.signature, /^t=\d+,v1=[0-9a-f]{64}$/);
  t.equal(await use(s, successor.key), 200, 'the new key works');
  t.equal(await use(s, rotating.key), 200, 'the leaked key works for the grace, so the owner can move over');
  s.clock.advance(600_000 + 1);
  t.equal(await use(s, rotating.key), 401, 'and not after it');
  const events = (await s.adminCall('GET', `/v1/keys/${rotating.id}/events`)).body.data.map((e: { type: string }) => e.type);
  t.ok(events.includes('leaked') && events.includes('rotated'), 'the timeline has the leak and the rotation');

  const report = JSON.stringify([{ token: plain.key, type: 'keygate_api_key', url: 'https://github.com/o/r', source: 'content' }]);
  t.equal((await alert(s, report)).status, 200);
  t.match((await s.adminCall('GET', `/v1/keys/${plain.id}`)).body, { status: 'suspended', suspended_reason: 'leaked (github: content)' }, 'no rotation webhook: suspended instead');
  t.equal(await use(s, plain.key), 401);
});
