#!/usr/bin/env node
// Builds Keygate into dist/: the TypeScript sources compiled by tsc, plus the non-TypeScript
// files the code loads at run time (the Redis store's Lua scripts, the SQLite store's migrations), at the same relative paths,
// and the dashboard's front-end bundled into dist/dashboard/ (scripts/dashboard-bundle.mjs).
//
//   node scripts/build.mjs              build (npm run build)
//   node scripts/build.mjs --prepare    npm's prepare hook: build when TypeScript is installed;
//                                       in a production install (npm ci --omit=dev) keep the
//                                       dist/ already there, or say how to make one
//
// A production install is described in docs/operations.md, "Production install".
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const ASSETS = /\.(lua|sql)$/;
const SOURCES = ['core', 'gateway', 'admin', 'config', 'bin'];

let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  tsc = null;
}

if (tsc === null) {
  if (process.argv.includes('--prepare') && existsSync(join(dist, 'bin', 'main.js'))) {
    console.error('keygate: TypeScript is not installed (a production install); using the build already in dist/');
    process.exit(0);
  }
  console.error(
    'keygate: cannot build: TypeScript is not installed and there is no dist/ yet.\n' +
      'Build first, then drop the development packages:\n' +
      '  npm ci && npm run build && npm prune --omit=dev\n' +
      '(see docs/operations.md, "Production install")',
  );
  process.exit(1);
}

rmSync(dist, { recursive: true, force: true });
const built = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);

// The verify API's client is imported by other programs (package.json "exports": keygate/verify):
// its type declarations go beside it. It imports nothing of Keygate, so it is declared on its own.
const declared = spawnSync(
  process.execPath,
  [
    tsc,
    join(root, 'gateway', 'verify-client.ts'),
    ...['--declaration', '--emitDeclarationOnly', '--strict', '--skipLibCheck'],
    ...['--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2023', '--types', 'node'],
    ...['--outDir', join(dist, 'gateway')],
  ],
  { stdio: 'inherit' },
);
if (declared.status !== 0) process.exit(declared.status ?? 1);

/** Every asset under `dir`, copied to the same place under dist/. */
function copyAssets(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) copyAssets(path);
    else if (ASSETS.test(entry.name)) cpSync(path, join(dist, relative(root, path)));
  }
}
for (const dir of SOURCES) if (existsSync(join(root, dir))) copyAssets(join(root, dir));

const { bundleDashboard } = await import('./dashboard-bundle.mjs');
const dashboard = await bundleDashboard();
mkdirSync(join(dist, 'dashboard'), { recursive: true });
for (const f of dashboard.files) writeFileSync(join(dist, 'dashboard', f.name), f.contents);
writeFileSync(join(dist, 'dashboard', 'manifest.json'), JSON.stringify(dashboard.manifest) + '\n');
// The build's mark: test/lib/cli.ts runs the compiled CLI only when no source is newer than this.
writeFileSync(join(dist, '.built'), new Date().toISOString() + '\n');
