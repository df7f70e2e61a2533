import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { ManualClock } from '../core/clock.js';
import { listenOn } from '../core/listen.js';
import { createOpsServer } from '../gateway/ops.js';
import { cacheKeyOf, createVerifier, VerifyError } from '../gateway/verify-client.js';
import { startStack } from './lib/stack.js';

// The verify API's client (keygate/verify, docs/verify.md) against a real Keygate: answers as
// the API gives them, valid answers cached briefly under a hash of the key (never the key),
// refusals never cached, the call's own failures thrown as VerifyError.

const TOKEN = 'client-verify-token-0123456789';
const stack = await startStack({ overrides: () => ({ status_listener: { port: 0, verify: { enabled: true, token: TOKEN } } }) });
t.teardown(() => stack.close());
const ops = createOpsServer(stack.gateway.runtime, () => false);
const url = (await listenOn(ops, 0, '127.0.0.1')).url;
t.teardown(() => {
  ops.closeAllConnections();
  ops.close();
});

t.test('package.json exports the client as keygate/verify, with its types', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  t.same(pkg.exports['./verify'], { types: './dist/gateway/verify-client.d.ts', default: './dist/gateway/verify-client.js' });
  t.match(readFileSync(new URL('../gateway/verify-client.ts', import.meta.url), 'utf8'), /^import [^\n]+ from '(node:crypto|lru-cache|undici)';$/m);
  t.notMatch(readFileSync(new URL('../gateway/verify-client.ts', import.meta.url), 'utf8'), /from '\.\.?\//, 'it imports nothing of Keygate');
});

t.test('answers as the verify API gives them, without a cache every call is a verification', async (t) => {
  const verifier = createVerifier({ url, token: TOKEN });
  t.teardown(() => verifier.close());
  const { key, id } = await stack.createKey({ scopes: ['read_campaigns'], rate_limit: { limit: 3, window_seconds: 60 } });
  const before = stack.events.length;
  const first = await verifier.verify({ key, path: '/v1/emails/list' });
  t.match(first, { valid: true, code: null, key_id: id, scopes: ['read_campaigns'], ratelimit: { limit: 3, remaining: 2 } });
  t.match(await verifier.verify({ key, path: '/v1/emails/list' }), { valid: true, ratelimit: { remaining: 1 } });
  t.match(await verifier.verify({ key, method: 'POST', path: '/v1/emails/send' }), { valid: false, code: 'insufficient_permissions', missing_scopes: ['send_email'] });
  t.equal(stack.events.length, before + 3, 'three verifications, three usage events');
});

t.test('with a cache: a valid answer is kept for ttlMs under the hash of the key; refusals are not', async (t) => {
  const clock = new ManualClock(1_000_000);
  const verifier = createVerifier({ url, token: TOKEN, cache: { ttlMs: 1_000, max: 100 }, clock });
  t.teardown(() => verifier.close());
  const { key } = await stack.createKey({ rate_limit: { limit: 100, window_seconds: 60 } });
  const before = stack.events.length;
  const a = await verifier.verify({ key, api: 'emails' });
  const b = await verifier.verify({ key, api: 'emails' });
  t.equal(b, a, 'the second answer is the cached one');
  t.equal(stack.events.length, before + 1, 'one call reached Keygate');
  await verifier.verify({ key, api: 'contacts' });
  t.equal(stack.events.length, before + 2, 'another request with the same key is its own entry');
  clock.advance(1_001);
  await verifier.verify({ key, api: 'emails' });
  t.equal(stack.events.length, before + 3, 'past ttlMs Keygate is asked again');

  const unknownApi = await verifier.verify({ key, api: 'orders-none' }).catch((e: unknown) => e);
  t.type(unknownApi, VerifyError, 'an unknown API is the call’s fault, thrown');

  const gone = await stack.createKey();
  await stack.adminCall('POST', `/v1/keys/${gone.id}/revoke`);
  const n = stack.events.length;
  t.match(await verifier.verify({ key: gone.key }), { valid: false, code: 'invalid_token', reason: 'revoked' });
  t.match(await verifier.verify({ key: gone.key }), { valid: false, reason: 'revoked' }, 'asked again');
  t.equal(stack.events.length, n + 2, 'a refusal is not cached');
});

t.test('the cache key is a SHA-256 of the key and the rest of the request; never the key', async (t) => {
  const key = 'gw_live_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG000000';
  const id = cacheKeyOf({ key, api: 'emails', method: 'get' });
  t.notOk(id.includes(key));
  t.ok(id.startsWith(createHash('sha256').update(key).digest('hex')));
  t.equal(cacheKeyOf({ key, api: 'emails', method: 'GET' }), id, 'method in any case');
  t.not(cacheKeyOf({ key, api: 'contacts' }), cacheKeyOf({ key, api: 'emails' }));
  t.not(cacheKeyOf({ key, ip: '10.0.0.1' }), cacheKeyOf({ key, ip: '10.0.0.2' }));
});

t.test('the call’s own failures are VerifyErrors: wrong token, invalid body, Keygate unreachable', async (t) => {
  const wrong = createVerifier({ url, token: 'not-the-token-0123456789' });
  t.teardown(() => wrong.close());
  const err = (await wrong.verify({ key: 'x' }).catch((e: unknown) => e)) as VerifyError;
  t.type(err, VerifyError);
  t.equal(err.status, 401);
  t.equal(err.code, 'unauthorized');

  const verifier = createVerifier({ url, token: TOKEN });
  t.teardown(() => verifier.close());
  const invalid = (await verifier.verify({ key: 'x', cost: -1 }).catch((e: unknown) => e)) as VerifyError;
  t.equal(invalid.code, 'validation_failed');
  t.match(invalid.body, { details: [{ path: 'cost' }] });

  const down = createVerifier({ url: 'http://127.0.0.1:1', token: TOKEN, timeoutMs: 1_000 });
  t.teardown(() => down.close());
  const unreachable = (await down.verify({ key: 'x' }).catch((e: unknown) => e)) as VerifyError;
  t.equal(unreachable.code, 'unreachable');
  t.equal(unreachable.status, 0);
});

t.test('cache.ttlMs must be a finite number of ms above 0 and at most 60 s; max a positive integer', async (t) => {
  // lru-cache reads ttl 0 as "never expire": a key revoked would stay valid for as long as the process runs.
  for (const ttlMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 60_001]) {
    t.throws(() => createVerifier({ url, cache: { ttlMs, max: 10 } }), { name: 'RangeError', message: /cache\.ttlMs .*60000/ }, `ttlMs ${ttlMs} refused`);
  }
  for (const max of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => createVerifier({ url, cache: { ttlMs: 1_000, max } }), { name: 'RangeError', message: /cache\.max/ }, `max ${max} refused`);
  }
  const longest = createVerifier({ url, cache: { ttlMs: 60_000, max: 1 } });
  t.teardown(() => longest.close());
  t.pass('60 s is allowed');
});

t.test('the cache serves a key no more answers than its rate limit had left, over all its entries', async (t) => {
  const clock = new ManualClock(1_000_000);
  const verifier = createVerifier({ url, token: TOKEN, cache: { ttlMs: 10_000, max: 100 }, clock });
  t.teardown(() => verifier.close());
  const { key } = await stack.createKey({ rate_limit: { limit: 5, window_seconds: 3600 } });
  const before = stack.events.length;
  t.match(await verifier.verify({ key }), { valid: true, ratelimit: { remaining: 4 } });
  t.match(await verifier.verify({ key, api: 'emails' }), { valid: true, ratelimit: { remaining: 3 } }, 'its own entry, asked');
  t.equal(stack.events.length, before + 2);
  // Keygate's last word: 3 tokens left. The cache may serve 3 answers for this key, whichever entry.
  await verifier.verify({ key });
  await verifier.verify({ key, api: 'emails' });
  await verifier.verify({ key });
  t.equal(stack.events.length, before + 2, 'three answers from the cache');
  t.match(await verifier.verify({ key }), { valid: true, ratelimit: { remaining: 2 } }, 'the budget spent: Keygate is asked');
  t.equal(stack.events.length, before + 3);
  t.match(await verifier.verify({ key }), { valid: true, ratelimit: { remaining: 1 } }, 'not cached again: the cache already served more than the 2 left');
  t.match(await verifier.verify({ key }), { valid: true, ratelimit: { remaining: 0 } });
  t.match(await verifier.verify({ key }), { valid: false, code: 'rate_limit_exceeded' });
  t.equal(stack.events.length, before + 6, 'every answer after the budget came from Keygate');

  const last = await stack.createKey({ rate_limit: { limit: 1, window_seconds: 3600 } });
  const n = stack.events.length;
  t.match(await verifier.verify({ key: last.key }), { valid: true, ratelimit: { remaining: 0 } });
  t.match(await verifier.verify({ key: last.key }), { valid: false, code: 'rate_limit_exceeded' }, 'an answer with 0 left is not cached');
  t.equal(stack.events.length, n + 2);
});

t.test('answers that carry a quota are never cached: every spend reaches Keygate', async (t) => {
  const clock = new ManualClock(1_000_000);
  const verifier = createVerifier({ url, token: TOKEN, cache: { ttlMs: 10_000, max: 100 }, clock });
  t.teardown(() => verifier.close());
  const { key } = await stack.createKey({ quota: { limit: 2, period: 'hour' }, rate_limit: { limit: 100, window_seconds: 60 } });
  const before = stack.events.length;
  t.match(await verifier.verify({ key }), { valid: true, quota: { limit: 2, remaining: 1 } });
  t.match(await verifier.verify({ key }), { valid: true, quota: { remaining: 0 } });
  t.match(await verifier.verify({ key }), { valid: false, code: 'quota_exceeded' });
  t.equal(stack.events.length, before + 3, 'three calls, three verifications');
});

t.test('a metered answer without quota figures (the quota store failing open) is not cached either', async (t) => {
  const clock = new ManualClock(1_000_000);
  const verifier = createVerifier({ url, token: TOKEN, cache: { ttlMs: 10_000, max: 100 }, clock });
  t.teardown(() => verifier.close());
  const { key } = await stack.createKey({ quota: { limit: 5, period: 'hour' }, rate_limit: { limit: 100, window_seconds: 60 } });
  t.match(await verifier.verify({ key }), { valid: true, quota: { remaining: 4 }, metered: true }, 'warm: the key is cached in the gateway');
  // The store's quota operation fails: the default plan lets the key through uncounted
  // (on_store_failure: local), so the answer carries no quota but is still metered.
  const store = stack.store as unknown as { quota: unknown };
  const real = store.quota;
  store.quota = () => Promise.reject(new Error('store down'));
  t.teardown(() => void (store.quota = real));
  const before = stack.events.length;
  t.match(await verifier.verify({ key }), { valid: true, quota: null, app_quota: null, metered: true });
  t.match(await verifier.verify({ key }), { valid: true, quota: null, metered: true });
  t.equal(stack.events.length, before + 2, 'two calls, two verifications: the first was not cached');
  store.quota = real;
  t.match(await verifier.verify({ key }), { valid: true, quota: { remaining: 3 } }, 'back: each call spends again, none served from the cache');
});

t.test('answers are frozen: one caller cannot change what the next one is given', async (t) => {
  const clock = new ManualClock(1_000_000);
  const verifier = createVerifier({ url, token: TOKEN, cache: { ttlMs: 10_000, max: 100 }, clock });
  t.teardown(() => verifier.close());
  const { key, id } = await stack.createKey({ scopes: ['read_campaigns'], rate_limit: { limit: 100, window_seconds: 60 } });
  const a = await verifier.verify({ key });
  t.throws(() => ((a as unknown as { scopes: string[] }).scopes.push('admin')), TypeError, 'its arrays');
  t.throws(() => ((a as unknown as { valid: boolean }).valid = false), TypeError, 'its fields');
  t.throws(() => ((a as unknown as { ratelimit: { remaining: number } }).ratelimit.remaining = 1e9), TypeError, 'its objects');
  t.match(await verifier.verify({ key }), { valid: true, key_id: id, scopes: ['read_campaigns'], ratelimit: { remaining: 99 } }, 'the next caller gets Keygate’s answer');
  const uncached = createVerifier({ url, token: TOKEN });
  t.teardown(() => uncached.close());
  t.ok(Object.isFrozen(await uncached.verify({ key })), 'without a cache too');
});

t.test('revocation lag: a key revoked is answered valid from the cache for at most ttlMs', async (t) => {
  const clock = new ManualClock(1_000_000);
  const verifier = createVerifier({ url, token: TOKEN, cache: { ttlMs: 2_000, max: 100 }, clock });
  t.teardown(() => verifier.close());
  const { key, id } = await stack.createKey({ rate_limit: { limit: 100, window_seconds: 60 } });
  t.match(await verifier.verify({ key }), { valid: true });
  t.equal((await stack.adminCall('POST', `/v1/keys/${id}/revoke`)).status, 200);
  clock.advance(1_999);
  t.match(await verifier.verify({ key }), { valid: true }, 'within ttlMs: the cached answer');
  clock.advance(1);
  t.match(await verifier.verify({ key }), { valid: false, reason: 'revoked' }, 'at ttlMs: Keygate’s');
});
