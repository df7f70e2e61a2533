import { createHash, hash } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha256';
import { bytesToHex } from '@noble/hashes/utils';
import { generateKey } from '../../core/key-format.js';

/**
 * Nanoseconds per key of the lookup-id candidates: why the hot path uses node:crypto's
 * one-shot `hash`.
 *   node --import=tsx bench/micro/hash.ts
 */
const keys = Array.from({ length: 1024 }, () => generateKey('gw', 'live'));
const N = 500_000;
const candidates: [string, (k: string) => string][] = [
  ["crypto.hash('sha256', key, 'hex')", (k) => hash('sha256', k, 'hex')],
  ['createHash().update().digest()', (k) => createHash('sha256').update(k).digest('hex')],
  ['@noble/hashes sha256', (k) => bytesToHex(sha256(k))],
];
let sink = 0;
for (let round = 0; round < 3; round++) {
  for (const [name, fn] of candidates) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += fn(keys[i & 1023]!).length;
    console.log(`${name}: ${(Number(process.hrtime.bigint() - t0) / N).toFixed(0)} ns`);
  }
}
if (sink === 0) console.log('unreachable');
