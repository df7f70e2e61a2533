import { readFileSync } from 'node:fs';

/**
 * Keygate's version, read once from its package.json: `../package.json` from the sources
 * (core/version.ts), `../../package.json` from the build (dist/core/version.js). The first
 * package.json named keygate wins, so an unrelated one above the checkout is never taken.
 */
function readVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    let text: string;
    try {
      text = readFileSync(new URL(rel, import.meta.url), 'utf8');
    } catch {
      continue;
    }
    const pkg = JSON.parse(text) as { name?: unknown; version?: unknown };
    if (pkg.name === 'keygate' && typeof pkg.version === 'string') return pkg.version;
  }
  throw new Error('keygate: its package.json was not found next to the code (expected ../package.json or ../../package.json)');
}

export const VERSION = readVersion();
