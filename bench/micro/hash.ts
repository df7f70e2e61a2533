import { createHash, createHmac, hash } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha256';
import { bytesToHex } from '@noble/hashes/utils';
import { generateKey } from '../../core/key-format.js';
import { KeyHasher } from '../../core/key-hash.js';
import { measure, report } from './lib.js';

/**
 * Nanoseconds per key of the lookup id (docs/architecture.md, Key lookup), as the resolve-key
 * stage computes it (core/key-hash.ts KeyHasher), and the candidates that explain why the hot
 * path uses node:crypto's one-shot `hash`.
 *   node --import=tsx bench/micro/hash.ts
 */
const MASK = 1023;
const keys = Array.from({ length: MASK + 1 }, () => Buffer.from(`Bearer ${generateKey('gw', 'live')}`).toString().slice(7));
const plain = new KeyHasher(null);

/**
 * A candidate for the peppered hash, measured so the proposal has numbers: HMAC-SHA-256 by its
 * definition, H((K ^ opad) || H((K ^ ipad) || m)), with the padded pepper blocks prepared once
 * and two one-shot `crypto.hash` calls per key instead of a `createHmac` object. Same output
 * (checked below). Not Keygate code.
 */
const PEPPER = 'a-pepper-of-32-characters-long!!';
const block = Buffer.alloc(64);
Buffer.from(PEPPER).copy(block);
const inner = Buffer.alloc(64 + 128);
const outer = Buffer.alloc(64 + 32);
for (let i = 0; i < 64; i++) {
  inner[i] = block[i]! ^ 0x36;
  outer[i] = block[i]! ^ 0x5c;
}
function hmacTwoHashes(key: string): string {
  const len = inner.write(key, 64, 'latin1');
  // A hex digest written back as bytes: asking crypto.hash for a Buffer costs more than both.
  outer.write(hash('sha256', inner.subarray(0, 64 + len), 'hex'), 64, 'hex');
  return hash('sha256', outer, 'hex');
}
for (const k of keys) {
  if (hmacTwoHashes(k) !== createHmac('sha256', PEPPER).update(k).digest('hex')) throw new Error('the candidate HMAC disagrees with createHmac');
}

const peppered = new KeyHasher({ id: 'p1', secret: PEPPER });

const cases = [
  measure('KeyHasher.hash, no pepper (SHA-256)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += plain.hash(keys[i & MASK]!).charCodeAt(7);
    return s;
  }),
  measure('KeyHasher.hash, with a pepper (HMAC-SHA-256)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += peppered.hash(keys[i & MASK]!).charCodeAt(7);
    return s;
  }),
  measure('KeyHasher.cacheId, no pepper (the hot path: SHA-256, latin1 digest)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += plain.cacheId(keys[i & MASK]!).charCodeAt(7);
    return s;
  }),
  measure('KeyHasher.cacheId, with a pepper (HMAC-SHA-256, latin1 digest)', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += peppered.cacheId(keys[i & MASK]!).charCodeAt(7);
    return s;
  }),
  measure('candidate HMAC: two one-shot crypto.hash calls, pads prepared once', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += hmacTwoHashes(keys[i & MASK]!).charCodeAt(7);
    return s;
  }),
  measure("crypto.hash('sha256', key, 'hex')", (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += hash('sha256', keys[i & MASK]!, 'hex').charCodeAt(7);
    return s;
  }),
  measure('createHash().update().digest()', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += createHash('sha256').update(keys[i & MASK]!).digest('hex').charCodeAt(7);
    return s;
  }),
  measure('@noble/hashes sha256', (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += bytesToHex(sha256(keys[i & MASK]!)).charCodeAt(7);
    return s;
  }),
];
report('hash: core/key-hash.ts KeyHasher and the candidates (59-character keys, hex out)', cases, [
  'The candidate HMAC row is not Keygate code: a proposal for core/key-hash.ts (keys are ASCII, so latin1 is their UTF-8), checked here to give the same hex as createHmac on every key.',
]);
