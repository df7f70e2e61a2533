import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { checkTlsFiles, type TlsSettings } from '../core/tls.js';
import { runCli } from './lib/cli.js';
import { createTestPki } from './lib/tls-certs.js';

// `keygate --check` refuses TLS files that would not serve (docs/configuration.md, TLS):
// missing, not PEM, a key that is not the certificate's, out of date; each as `path: message`.

const TOKEN = 'tls-check-admin-token-0123456789';
const pki = createTestPki();
t.teardown(() => pki.close());
const good = pki.leaf('good', { dns: ['localhost'] });
const other = pki.leaf('other', { dns: ['localhost'] });
const expired = pki.dated('expired', '20200101000000Z', '20200102000000Z');
const future = pki.dated('future', '20990101000000Z', '20990102000000Z');
const notPem = join(pki.dir, 'not.pem');
writeFileSync(notPem, 'this is not a certificate\n');

function yaml(tls: string, extra = ''): string {
  const file = join(pki.dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    `listeners:
  - port: 0
    environment: production
    tls: ${tls}
admin: { port: 0, tokens: [{ name: ops, token: "${TOKEN}", role: admin }] }
${extra}`,
  );
  return file;
}

const env = { KEYGATE_ADMIN_TOKEN: undefined };

t.test('valid files pass, with SNI certificates and a client CA', async (t) => {
  const file = yaml(`{ cert: ${good.cert}, key: ${good.key}, ca: ${pki.ca.cert}, client_auth: required, sni: [{ servernames: [api.example.test], cert: ${other.cert}, key: ${other.key} }] }`);
  const res = await runCli(['--config', file, '--check'], { env });
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /configuration is valid/);
});

t.test('missing, unparsable, mismatched and out-of-date files are refused, each named', async (t) => {
  const file = yaml(
    `{ cert: ${expired.cert}, key: ${other.key}, ca: ${notPem}, sni: [{ servernames: [a.test], cert: ${join(pki.dir, 'nope.crt')}, key: ${notPem} }, { servernames: [b.test], cert: ${future.cert}, key: ${future.key} }] }`,
  );
  const res = await runCli(['--config', file, '--check'], { env });
  t.equal(res.code, 1);
  const lines = res.stderr.trim().split('\n').map((l) => l.replace(`${file}:`, '').replace(/^\d+:\d+: /, ''));
  t.ok(lines.includes(`listeners[0].tls.cert: ${expired.cert} expired on 2020-01-02T00:00:00.000Z`), 'expired');
  t.ok(lines.includes(`listeners[0].tls.key: ${other.key} is not the private key of the certificate in ${expired.cert}`), 'mismatched key');
  t.ok(lines.includes(`listeners[0].tls.ca: ${notPem} holds no PEM certificate that parses (-----BEGIN CERTIFICATE-----)`), 'CA not PEM');
  t.ok(lines.includes(`listeners[0].tls.sni[0].cert: cannot read the certificate ${join(pki.dir, 'nope.crt')}: no such file`), 'missing file');
  t.ok(lines.includes(`listeners[0].tls.sni[0].key: ${notPem} holds no PEM private key that parses (an encrypted key is not supported)`), 'key not PEM');
  t.ok(lines.includes(`listeners[0].tls.sni[1].cert: ${future.cert} is not valid before 2099-01-01T00:00:00.000Z`), 'not yet valid');
  t.equal(lines.at(-1)?.trim(), `6 errors`, res.stderr);
});

t.test('client_auth without a CA, a bad cipher list and a preload HSTS that preload lists refuse', async (t) => {
  const file = yaml(`{ cert: ${good.cert}, key: ${good.key}, client_auth: optional, ciphers: "NOT-A-CIPHER", hsts: { max_age: 300, preload: true } }`);
  const res = await runCli(['--config', file, '--check'], { env });
  t.equal(res.code, 1);
  t.match(res.stderr, /listeners\[0\]\.tls\.client_auth: needs tls\.ca/);
  t.match(res.stderr, /listeners\[0\]\.tls\.ciphers: OpenSSL accepts none of these ciphers: NOT-A-CIPHER/);
  t.match(res.stderr, /listeners\[0\]\.tls\.hsts\.preload: preload lists need include_subdomains: true and max_age of at least 31536000/);
});

t.test('the admin and status listeners’ files are checked too', async (t) => {
  const file = yaml(
    `{ cert: ${good.cert}, key: ${good.key} }`,
    `status_listener: { port: 0, tls: { cert: ${expired.cert}, key: ${expired.key} } }\n`,
  );
  writeFileSync(file, `${readAdmin(file)}`);
  const res = await runCli(['--config', file, '--check'], { env });
  t.equal(res.code, 1);
  t.match(res.stderr, new RegExp(`admin\\.tls\\.key: cannot read the private key ${pki.dir}/missing\\.key: no such file`));
  t.match(res.stderr, /status_listener\.tls\.cert: .* expired on 2020-01-02/);
});

function readAdmin(file: string): string {
  return readFileSync(file, 'utf8')
    .replace('admin: { port: 0,', `admin: { port: 0, tls: { cert: ${good.cert}, key: ${join(pki.dir, 'missing.key')} },`);
}

t.test('checkTlsFiles judges dates at the time it is given', async (t) => {
  const settings: TlsSettings = { cert: good.cert, key: good.key, ca: null, min_version: 'TLSv1.2', ciphers: null, sni: [], client_auth: 'none' };
  t.same(checkTlsFiles(settings), [], 'in date now');
  const later = checkTlsFiles(settings, Date.now() + 60 * 86_400_000);
  t.equal(later.length, 1);
  t.match(later[0]!.message, /expired on/);
  t.same(later[0]!.path, ['cert']);
});
