import t, { type Test } from 'tap';
import { generateKey } from '../../core/key-format.js';
import { clientOf } from '../../core/ip.js';
import { switchable, type Switchable } from '../lib/flaky-store.js';
import { bearer, call, startStack } from '../lib/stack.js';

// The invalid-key brake with the server's own defaults (20 invalid keys a minute per client
// address, an IPv6 client counted by its /64). Client addresses are given through
// X-Forwarded-For from a trusted proxy (loopback), as test/client-ip.test.ts does.
let cut: Switchable | null = null;
const stack = await startStack({
  overrides: () => ({ trusted_proxies: ['127.0.0.1/32'] }),
  wrapStore: (inner) => {
    const s = switchable(inner);
    cut = s;
    return s;
  },
});
t.teardown(() => stack.close());
const prod = stack.gw['production']!;
const { max, window_seconds: windowSeconds } = stack.config.keys.invalid_key_brake!;
const lookups = () => cut!.lookups;

function from(ip: string, key: string, requestId?: string) {
  const headers: Record<string, string> = { ...bearer(key), 'x-forwarded-for': ip };
  if (requestId !== undefined) headers['x-request-id'] = requestId;
  return call(`${prod}/v1/emails/list`, { headers });
}

/** Sends `n` invalid keys from `ip`: unknown ones, every fourth one with a broken checksum. */
async function invalid(t: Test, ip: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const key = generateKey('gw', 'live');
    const res = await from(ip, i % 4 === 3 ? key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A') : key);
    if (res.status !== 401) t.fail(`invalid key ${i + 1} from ${ip}: ${res.status}`);
  }
}

t.test('the server defaults are 20 invalid keys a minute', async (t) => {
  t.equal(max, 20);
  t.equal(windowSeconds, 60);
});

t.test('the 21st invalid key within a minute is refused with 429, without a store lookup', async (t) => {
  const ip = '198.51.100.7';
  const cached = await stack.createKey();
  t.equal((await from(ip, cached.key)).status, 200, 'a known key, cached by this request');
  const uncached = await stack.createKey();
  const other = '198.51.100.8';

  await invalid(t, ip, max);
  const before = lookups();
  const res = await from(ip, generateKey('gw', 'live'), 'braked-1');
  t.equal(res.status, 429);
  t.equal(res.body.error, 'too_many_invalid_keys');
  t.equal(res.headers['retry-after'], String(windowSeconds), 'Retry-After: the window started at the first invalid key, no time ago');
  t.equal(res.body.retry_after, windowSeconds);
  t.match(res.body.message, /Too many invalid API keys/);
  t.equal(lookups(), before, 'the store saw no lookup for it');

  const malformed = await from(ip, 'gw_live_short');
  t.equal(malformed.status, 429, 'a malformed key from the braked address is refused the same way');

  t.equal((await from(ip, cached.key)).status, 200, 'a cached known key from that address still works');
  t.equal(lookups(), before, 'and costs no lookup');
  const refused = await from(ip, uncached.key);
  t.equal(refused.status, 429, 'a key that would need a lookup does not get one');
  t.equal(lookups(), before);

  t.equal((await from(other, generateKey('gw', 'live'))).status, 401, 'another address is unaffected');
  t.equal(lookups(), before + 1, 'its unknown key is looked up');

  stack.clock.advance(30_000);
  const later = await from(ip, generateKey('gw', 'live'));
  t.equal(later.headers['retry-after'], '30', 'Retry-After counts down to the end of the window');
  stack.clock.advance(30_000);
  const after = lookups();
  const resumed = await from(ip, generateKey('gw', 'live'));
  t.equal(resumed.status, 401, 'after the window the key is looked up again');
  t.equal(resumed.body.reason, 'not_found');
  t.equal(lookups(), after + 1);
  t.equal((await from(ip, uncached.key)).status, 200, 'and a valid uncached key works');

  const event = stack.events.find((e) => e.request_id === 'braked-1');
  t.equal(event?.outcome, 'too_many_invalid_keys', 'recorded like any denial');
  t.equal(event?.status, 429);
  stack.clock.advance(windowSeconds * 1000);
});

t.test('revoked and suspended keys do not count towards the brake', async (t) => {
  const ip = '198.51.100.20';
  const revoked = await stack.createKey();
  const suspended = await stack.createKey();
  t.equal((await stack.adminCall('POST', `/v1/keys/${revoked.id}/revoke`)).status, 200);
  t.equal((await stack.adminCall('POST', `/v1/keys/${suspended.id}/suspend`, {})).status, 200);
  for (let i = 0; i < max + 5; i++) {
    const [key, reason] = i % 2 === 0 ? [revoked.key, 'revoked'] : [suspended.key, 'suspended'];
    const res = await from(ip, key);
    if (res.status !== 401 || res.body.reason !== reason) t.fail(`request ${i + 1}: ${res.status} ${res.body.reason}`);
  }
  t.equal((await from(ip, generateKey('gw', 'live'))).status, 401, 'an unknown key after them is still looked up');
  stack.clock.advance(windowSeconds * 1000);
});

t.test('IPv6 addresses of one /64 share a counter; another /64 has its own', async (t) => {
  for (let i = 0; i < max; i++) {
    const res = await from(`2001:db8:1:2::${(i + 1).toString(16)}`, generateKey('gw', 'live'));
    if (res.status !== 401) t.fail(`invalid key ${i + 1}: ${res.status}`);
  }
  const before = lookups();
  const res = await from('2001:db8:1:2:ffff:ffff:ffff:fffe', generateKey('gw', 'live'));
  t.equal(res.status, 429, 'a new address in the same /64 is braked');
  t.equal(res.body.error, 'too_many_invalid_keys');
  t.equal(lookups(), before);
  t.equal((await from('2001:db8:1:3::1', generateKey('gw', 'live'))).status, 401, 'the next /64 is not');
  stack.clock.advance(windowSeconds * 1000);
});

t.test('how a client address is counted', async (t) => {
  const cases: [string, string][] = [
    ['198.51.100.7', '198.51.100.7'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:ffff:ffff:ffff:fffe', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['2001:db8:0:0:1::', '2001:db8:0:0::/64'],
    ['2001:db8:1:2::1%eth0', '2001:db8:1:2::/64'],
    ['64:ff9b:1:2::192.0.2.1', '64:ff9b:1:2::/64'],
    ['::1', '::1'],
    ['::FFFF:198.51.100.7', '::FFFF:198.51.100.7'],
    ['2001:db8:::1', '2001:db8:::1'],
    ['2001:db8:1:2:3:4:5', '2001:db8:1:2:3:4:5'],
    ['20011:db8:1:2::1', '20011:db8:1:2::1'],
    ['not-an-ip', 'not-an-ip'],
  ];
  for (const [ip, client] of cases) t.equal(clientOf(ip), client, ip);
});
