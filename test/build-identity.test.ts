import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ROOT, runCli } from './lib/cli.js';

// `keygate --version` and `-v`: the version of package.json, printed without reading any
// configuration. The compiled CLI's answer is checked in test/production-install.test.ts. And
// the files that say what the build is: CHANGELOG.md and LICENSE.

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

t.test("CHANGELOG.md has an Unreleased section and one for package.json's version; LICENSE is the license package.json names", async (t) => {
  const changelog = readFileSync(join(ROOT, 'CHANGELOG.md'), 'utf8');
  t.match(changelog, /^## \[Unreleased\]$/m);
  t.match(changelog, new RegExp(`^## \\[${version.replaceAll('.', '\\.')}\\] - \\d{4}-\\d\\d-\\d\\d$`, 'm'));
  const { license } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { license: string };
  t.equal(license, 'Apache-2.0');
  const text = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
  t.match(text, /^\s+Apache License\n\s+Version 2\.0, January 2004\n/);
  t.match(text, /END OF TERMS AND CONDITIONS/);
});
