import t from 'tap';
import { hashPassword, parsePasswordHash, verifyPassword } from '../core/password.js';

// Dashboard users' passwords (core/password.ts): scrypt in the PHC string format.

t.test('a hash verifies its password and nothing else, and is salted', async (t) => {
  const hash = await hashPassword('correct horse battery staple');
  t.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  t.equal(await verifyPassword('correct horse battery staple', hash), true);
  t.equal(await verifyPassword('correct horse battery stapl', hash), false);
  t.equal(await verifyPassword('', hash), false);
  t.not(await hashPassword('correct horse battery staple'), hash, 'a new salt each time');
});

t.test('the same password in another Unicode normal form verifies', async (t) => {
  const hash = await hashPassword('caf\u00e9', { ln: 10, r: 8, p: 1 });
  t.equal(await verifyPassword('cafe\u0301', hash), true);
});

t.test('a malformed or greedy hash string never matches and never runs away', async (t) => {
  const good = await hashPassword('pw', { ln: 10, r: 8, p: 1 });
  for (const bad of [
    '',
    'pw',
    good.replace('$scrypt$', '$argon2id$'),
    good.replace('ln=10', 'ln=30'), // 2^30 × r × 128 bytes: refused before any work
    good.replace('ln=10', 'ln=9'),
    good.replace('r=8', 'r=99'),
    good.slice(0, -1),
    `${good}=`,
    good.replace(/[^$]+$/, 'A'.repeat(42) + 'B'), // well formed, another key
  ]) {
    t.equal(await verifyPassword('pw', bad), false, `refused: ${bad.slice(0, 40)}`);
  }
  t.equal(parsePasswordHash(good.replace('ln=10', 'ln=30')), null);
});
