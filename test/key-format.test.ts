import { crc32 } from 'node:zlib';
import t from 'tap';
import { BASE62, base62Checksum, generateKey, keyDisplayParts, maskKey, parseKey, randomBase62 } from '../core/key-format.js';

t.test('a generated key has the documented shape and parses back to its tag', async (t) => {
  const key = generateKey('gw', 'live');
  t.match(key, /^gw_live_[0-9A-Za-z]{43}[0-9A-Za-z]{6}$/);
  t.equal(parseKey(key, 'gw'), 'live');
  t.equal(parseKey(generateKey('acme', 'test'), 'acme'), 'test');
});

t.test('the checksum is CRC32 of the body in base62, padded to 6', async (t) => {
  const key = generateKey('gw', 'live');
  const body = key.slice(0, -6);
  let n = crc32(body);
  let expected = '';
  while (n > 0) {
    expected = BASE62[n % 62] + expected;
    n = Math.floor(n / 62);
  }
  t.equal(key.slice(-6), expected.padStart(6, '0'));
  t.equal(base62Checksum(''), '000000', 'CRC32 of nothing is 0');
});

t.test('wrong shape or checksum is refused', async (t) => {
  const key = generateKey('gw', 'live');
  const swap = (i: number) => key.slice(0, i) + (key[i] === 'a' ? 'b' : 'a') + key.slice(i + 1);
  t.equal(parseKey(swap(20), 'gw'), null, 'a changed secret character');
  t.equal(parseKey(swap(key.length - 1), 'gw'), null, 'a changed checksum character');
  t.equal(parseKey(key.slice(0, -1), 'gw'), null, 'one character short');
  t.equal(parseKey(`${key}0`, 'gw'), null, 'one character long');
  t.equal(parseKey(key, 'gx'), null, 'another prefix');
  t.equal(parseKey(key.replace('_live_', '_LIVE_'), 'gw'), null, 'upper-case tag');
  t.equal(parseKey(key.replace('_live_', '__'), 'gw'), null, 'empty tag');
  t.equal(parseKey(`${key.slice(0, 20)}-${key.slice(21)}`, 'gw'), null, 'non-base62 character');
  t.equal(parseKey(`${key.slice(0, 20)}é${key.slice(21)}`, 'gw'), null, 'non-ASCII character');
  t.equal(parseKey('', 'gw'), null);
});

t.test('secrets are drawn from the whole alphabet, roughly uniformly', async (t) => {
  const counts = new Map<string, number>();
  const sample = randomBase62(62 * 2000);
  for (const c of sample) counts.set(c, (counts.get(c) ?? 0) + 1);
  t.equal(counts.size, 62, 'every character appears');
  for (const [c, n] of counts) t.ok(n > 1600 && n < 2400, `${c}: ${n} of an expected 2000`);
});

t.test('display parts and mask never reveal more than 6 secret characters', async (t) => {
  const key = generateKey('gw', 'live');
  const { start, end } = keyDisplayParts(key);
  t.equal(start, key.slice(0, 'gw_live_'.length + 3));
  t.equal(end, key.slice(-3));
  t.equal(maskKey(start, end), `${start}...${end}`);
});
