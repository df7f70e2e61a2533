#!/usr/bin/env node
// Installs the bench package (the peer gateways the benchmarks run against) on first use, and
// again whenever bench/package-lock.json changes. Keygate's own install leaves them out; see
// bench/README.md. Run by every `npm run bench*` script before the benchmark itself.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const bench = dirname(fileURLToPath(import.meta.url));
const stamp = join(bench, 'node_modules', '.keygate-bench-lock');
const lock = createHash('sha256').update(readFileSync(join(bench, 'package-lock.json'))).digest('hex');

if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== lock) {
  console.error('bench: installing the peer gateways into bench/node_modules (first use, or the lockfile changed)');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['ci', '--no-audit', '--no-fund'], { cwd: bench, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('bench: `npm ci` in bench/ failed; the benchmarks need it');
    process.exit(r.status ?? 1);
  }
  writeFileSync(stamp, lock);
}
