import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ROOT, runCli } from './lib/cli.js';

// `keygate --version` and `-v`: the version of package.json, printed without reading any
// configuration. The compiled CLI's answer is checked in test/production-install.test.ts.

const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

for (const flag of ['--version', '-v']) {
  t.test(`${flag} prints package.json's version and exits 0`, async (t) => {
    const r = await runCli([flag]);
    t.equal(r.code, 0);
    t.equal(r.stdout, `keygate ${version}\n`);
    t.equal(r.stderr, '');
  });
}

t.test('--version reads no configuration: a missing config file does not matter', async (t) => {
  const r = await runCli(['--config', join(ROOT, 'no-such-gateway.yaml'), '--version']);
  t.equal(r.code, 0);
  t.equal(r.stdout, `keygate ${version}\n`);
});

t.test('--help lists --version', async (t) => {
  const r = await runCli(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /-v, --version\s+print the version and exit/);
});
