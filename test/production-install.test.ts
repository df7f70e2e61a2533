import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { SCHEMA_VERSION } from '../core/store/sqlite/schema.js';
import { distIsFresh, ROOT, runCli, startKeygate } from './lib/cli.js';
import { startUpstream } from './lib/upstream.js';

// A production install (docs/operations.md, "Production install"): a build stage compiles
// dist/, then `npm ci --omit=dev` installs only the runtime dependencies beside it, and the
// compiled CLI (bin/keygate.js) runs from that install with nothing else: no TypeScript, no
// tsx, no test or benchmark packages. npm installs from its cache when it can (the root
// install just filled it with these exact versions; the lockfile names no download addresses,
// so npm still asks the registry which versions exist). Install scripts are skipped and run here
// by hand: the root package's prepare, and for better-sqlite3 (whose install script compiles
// SQLite, two CPU-minutes that the root install just spent on the same version for the same
// Node) a copy of the addon the root install built.

// A build and an install: over two minutes on a busy 2-core machine, past the suite's default.
t.setTimeout(600_000);

/** What a checkout holds that a build needs: the sources, the manifests and the build script. */
const CHECKOUT = ['package.json', 'package-lock.json', 'tsconfig.json', 'gateway.yaml.example', 'scripts', 'bin', 'core', 'gateway', 'admin', 'config'];

function checkout(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-prod-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const entry of CHECKOUT) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
  return dir;
}

const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { dev?: boolean; optional?: boolean }>;
};
/** Every package path the lockfile installs for production (`node_modules/a`, `node_modules/a/node_modules/b`). */
const runtime = Object.entries(lock.packages)
  .filter(([path, p]) => path !== '' && p.dev !== true)
  .map(([path]) => path)
  .sort();

/** Every package directory under `dir`'s node_modules, as lockfile paths. */
function installed(dir: string, base = 'node_modules'): string[] {
  const out: string[] = [];
  const root = join(dir, base);
  if (!existsSync(root)) return out;
  for (const name of readdirSync(root)) {
    if (name.startsWith('.')) continue;
    const names = name.startsWith('@') ? readdirSync(join(root, name)).map((n) => `${name}/${n}`) : [name];
    for (const n of names) {
      out.push(`${base}/${n}`);
      out.push(...installed(dir, `${base}/${n}/node_modules`));
    }
  }
  return out.sort();
}

/** The files under `dir` that the code reads at run time rather than imports (Lua scripts, SQL migrations). */
function assets(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.lua') || f.endsWith('.sql'))
    .map((f) => join(dir, f));
}

t.test('without TypeScript and without a build, prepare says how to make one', async (t) => {
  const dir = checkout(t);
  const r = spawnSync(process.execPath, ['scripts/build.mjs', '--prepare'], { cwd: dir, encoding: 'utf8' });
  t.equal(r.status, 1, 'it stops');
  t.match(r.stderr, 'TypeScript is not installed and there is no dist/ yet');
  t.match(r.stderr, 'npm ci && npm run build && npm prune --omit=dev', 'and names the commands that work');
  t.notOk(existsSync(join(dir, 'dist')), 'nothing half-built is left');
});

t.test('npm ci --omit=dev beside a build: only the runtime packages, and the compiled CLI runs', async (t) => {
  const dir = checkout(t);

  // The build stage: the repository's own development packages, then none. The checkout's own
  // build is that build when it is fresh (npm ci made it, through the same script): a copy
  // saves the suite a compile.
  if (distIsFresh()) cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  else {
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: dir, stdio: 'pipe' });
    unlinkSync(join(dir, 'node_modules'));
  }
  t.ok(existsSync(join(dir, 'dist', 'bin', 'main.js')), 'the build made dist/');
  for (const asset of assets(join(dir, 'core'))) {
    const rel = asset.slice(dir.length + 1);
    t.ok(existsSync(join(dir, 'dist', rel)), `the build copied ${rel}`);
  }

  const ci = spawnSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--ignore-scripts'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...process.env, npm_config_loglevel: 'warn' },
  });
  if (ci.status !== 0) t.comment(ci.stdout, ci.stderr);
  t.equal(ci.status, 0, 'npm ci --omit=dev succeeds');
  const prepare = spawnSync('npm', ['run', 'prepare'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  t.equal(prepare.status, 0, 'prepare succeeds without TypeScript');
  t.match(prepare.stderr, 'using the build already in dist/', 'prepare kept the build');
  const addon = join('node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
  mkdirSync(join(dir, addon, '..'), { recursive: true });
  cpSync(join(ROOT, addon), join(dir, addon));
  t.ok(existsSync(join(dir, 'dist', 'bin', 'main.js')), 'and dist/ is still there');
  t.same(installed(dir), runtime, 'node_modules holds exactly the runtime packages of the lockfile');
  for (const dev of ['typescript', 'tsx', 'tap', 'ws', 'fast-check']) t.notOk(existsSync(join(dir, 'node_modules', dev)), `no ${dev}`);

  const cli = [process.execPath, join(dir, 'bin', 'keygate.js')] as const;
  const version = await runCli(['--version'], { cwd: dir, command: cli });
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string };
  t.equal(version.stdout, `keygate ${pkg.version}\n`, 'the compiled CLI reads its version from package.json beside dist/');
  const check = await runCli(['--check'], { cwd: dir, command: cli });
  t.equal(check.code, 0, `--check passes on the example configuration\n${check.stderr}`);
  t.match(check.stdout + check.stderr, 'configuration is valid');

  // A running gateway from that install: create a key, call an API through it.
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const token = 'prod-install-test-token-0123456789';
  mkdirSync(join(dir, 'data'));
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(
    configPath,
    `listeners:
  - { port: 0, host: 127.0.0.1, environment: production }
scopes: { catalog: [read_campaigns] }
apis:
  - { name: emails, path_prefix: /v1/emails, upstream: "${upstream.url}", timeout_ms: 5000, unlisted: allow }
admin:
  port: 0
  host: 127.0.0.1
  tokens:
    - { name: ops, token: "\${KG_PROD_TEST_TOKEN}", role: admin }
store: { type: sqlite, path: ${JSON.stringify(join(dir, 'data', 'keygate.db'))} }
demo_upstream: null
`,
  );
  const kg = await startKeygate(configPath, { cwd: dir, command: cli, env: { KG_PROD_TEST_TOKEN: token } });
  t.match(kg.proc.logs().find((l) => l.msg === 'sqlite schema migrated'), { from: 0, to: SCHEMA_VERSION }, 'every migration was found in dist/');
  t.teardown(() => kg.stop('SIGKILL'));
  const created = await request(`${kg.adminUrl}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'from a production install', scopes: ['read_campaigns'] }),
  });
  const key = (await created.body.json()) as { id: string; key: string };
  t.equal(created.statusCode, 201, 'the admin plane creates a key');
  const res = await request(`${kg.gw['production']}/v1/emails/list`, { headers: { authorization: `Bearer ${key.key}` } });
  await res.body.text();
  t.equal(res.statusCode, 200, 'the gateway forwards with it');
  t.equal(upstream.seen.at(-1)?.headers['x-key-id'], key.id, 'and the upstream saw the key id');
  const shown = await runCli(['keys', 'show', key.id, '--json'], { cwd: dir, command: cli, env: { KEYGATE_URL: kg.adminUrl, KEYGATE_TOKEN: token } });
  t.match({ code: shown.code, ...JSON.parse(shown.stdout || '{}') }, { code: 0, id: key.id, name: 'from a production install' }, `the compiled admin client (docs/cli.md) reads it\n${shown.stderr}`);
  // The dashboard's bundle was built into dist/dashboard/ and is served from there, esbuild and Preact gone.
  const page = await request(`${kg.adminUrl}/dashboard`);
  const html = await page.body.text();
  t.equal(page.statusCode, 200, 'the dashboard page is served');
  const script = /src="(\/dashboard\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
  const bundle = await request(`${kg.adminUrl}${script}`);
  await bundle.body.arrayBuffer();
  t.equal(bundle.statusCode, 200, 'with its script from dist/dashboard/');
  for (const dev of ['esbuild', 'preact']) t.notOk(existsSync(join(dir, 'node_modules', dev)), `no ${dev}`);
  const stopped = await kg.stop('SIGTERM');
  t.equal(stopped.code, 0, 'it stops cleanly on SIGTERM');
});
