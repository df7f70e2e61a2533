import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

/** One built file of the dashboard, held in memory with its gzip form. */
export interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
}

/** The dashboard's front-end bundle: content-hashed files, and the entry points the page loads. */
export interface Assets {
  files: ReadonlyMap<string, Asset>;
  js: string;
  css: string;
}

/** What scripts/dashboard-bundle.mjs produces and dist/dashboard/manifest.json records. */
interface Bundle {
  manifest: { js: string; css: string };
  files: { name: string; contents: Uint8Array }[];
}

const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', map: 'application/json' };

let loading: Promise<Assets> | undefined;

/** Run from the TypeScript sources (tsx), where the bundle is made on demand rather than read from dist/. */
export const FROM_SOURCES = import.meta.url.endsWith('.ts');

/**
 * The bundle, loaded once per process. Built, it is dist/dashboard/ (scripts/build.mjs). Run
XX
 */
export function loadAssets(): Promise<Assets> {
  loading ??= load();
  return loading;
}

async function load(): Promise<Assets> {
  const here = dirname(fileURLToPath(import.meta.url));
  let bundle: Bundle;
  if (FROM_SOURCES) {
    const script = pathToFileURL(join(here, '..', '..', 'scripts', 'dashboard-bundle.mjs')).href;
    const { bundleDashboard } = (await import(script)) as { bundleDashboard: () => Promise<Bundle> };
    bundle = await bundleDashboard();
  } else {
    const dir = join(here, '..', '..', 'dashboard');
    let manifest: Bundle['manifest'];
    try {
      manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Bundle['manifest'];
    } catch (err) {
      throw new Error(`the dashboard's assets are missing from ${dir} (${(err as Error).message}); build with \`npm run build\`, or set dashboard.enabled: false`);
    }
    bundle = { manifest, files: [manifest.js, manifest.css].map((name) => ({ name, contents: readFileSync(join(dir, name)) })) };
  }
  const files = new Map<string, Asset>();
  for (const f of bundle.files) {
    const ext = f.name.slice(f.name.lastIndexOf('.') + 1);
    const body = Buffer.from(f.contents);
    files.set(f.name, { type: TYPES[ext] ?? 'application/octet-stream', body, gzip: gzipSync(body, { level: 9 }) });
  }
  return { files, js: bundle.manifest.js, css: bundle.manifest.css };
}
