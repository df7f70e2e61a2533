// The dashboard's front-end (admin/dashboard/ui/) bundled by esbuild: one JavaScript and one
// CSS file, minified, named by a hash of their content so that they can be cached for good.
// scripts/build.mjs writes them to dist/dashboard/ with manifest.json; run from the sources,
// the admin plane calls this at start-up and holds the result in memory (admin/dashboard/assets.ts).
import { build } from 'esbuild';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** @returns {Promise<{ manifest: { js: string, css: string }, files: { name: string, contents: Uint8Array }[] }>} */
export async function bundleDashboard() {
  const result = await build({
    absWorkingDir: root,
    entryPoints: { app: 'admin/dashboard/ui/main.tsx' },
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: '[name]-[hash]',
    outdir: 'dashboard',
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const files = result.outputFiles.map((f) => ({ name: basename(f.path), contents: f.contents }));
  const js = files.find((f) => f.name.endsWith('.js'));
  const css = files.find((f) => f.name.endsWith('.css'));
  if (!js || !css) throw new Error('the dashboard bundle lacks its script or its stylesheet');
  return { manifest: { js: js.name, css: css.name }, files };
}
