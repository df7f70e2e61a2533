import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A throw-away PKI for TLS tests, made with the `openssl` CLI in a temporary directory at the
 * start of a test (no private key is committed): a CA, leaf certificates it signs (servers
 * with DNS and IP names, clients with a subject), and certificates out of date.
 */
export interface TestPki {
  dir: string;
  /** Paths of a CA's certificate and key. */
  ca: { cert: string; key: string };
  /** A certificate signed by `ca` (or by `signer`); returns its cert and key paths. */
  leaf(name: string, options?: { subject?: string; dns?: string[]; ips?: string[]; client?: boolean; signer?: { cert: string; key: string } }): { cert: string; key: string };
  /** A certificate signed by `ca` valid only between the two dates (`YYYYMMDDHHMMSSZ`). */
  dated(name: string, start: string, end: string): { cert: string; key: string };
  /** Another CA, which the listeners do not trust. */
  otherCa(name: string): { cert: string; key: string };
  read(path: string): Buffer;
  close(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(dir: string, name: string): string {
  const key = join(dir, `${name}.key`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], dir);
  return key;
}

function selfSigned(dir: string, name: string, subject: string): { cert: string; key: string } {
  const key = newKey(dir, name);
  const cert = join(dir, `${name}.crt`);
  openssl(['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '30', '-subj', subject, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { cert, key };
}

export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-pki-'));
  const ca = selfSigned(dir, 'ca', '/O=Keygate Test/CN=Keygate Test CA');
  let serial = 1;
  const leaf: TestPki['leaf'] = (name, options = {}) => {
    const signer = options.signer ?? ca;
    const key = newKey(dir, name);
    const csr = join(dir, `${name}.csr`);
    const cert = join(dir, `${name}.crt`);
    const ext = join(dir, `${name}.ext`);
    const alt = [...(options.dns ?? []).map((d) => `DNS:${d}`), ...(options.ips ?? []).map((i) => `IP:${i}`)];
    writeFileSync(
      ext,
      [
        'basicConstraints=CA:FALSE',
        `extendedKeyUsage=${options.client ? 'clientAuth' : 'serverAuth'}`,
        ...(alt.length > 0 ? [`subjectAltName=${alt.join(',')}`] : []),
      ].join('\n'),
    );
    openssl(['req', '-new', '-key', key, '-out', csr, '-subj', options.subject ?? `/CN=${name}`], dir);
    openssl(['x509', '-req', '-in', csr, '-CA', signer.cert, '-CAkey', signer.key, '-set_serial', String(serial++), '-days', '30', '-extfile', ext, '-out', cert], dir);
    return { cert, key };
  };
  const dated: TestPki['dated'] = (name, start, end) => {
    // `openssl ca` is the one command of OpenSSL 3.0 that takes explicit dates.
    const db = join(dir, `${name}.index`);
    writeFileSync(db, '');
    const conf = join(dir, `${name}.cnf`);
    writeFileSync(
      conf,
      [
        '[ca]',
        'default_ca = test',
        '[test]',
        `database = ${db}`,
        `new_certs_dir = ${dir}`,
        `certificate = ${ca.cert}`,
        `private_key = ${ca.key}`,
        'default_md = sha256',
        'policy = any',
        'email_in_dn = no',
        'unique_subject = no',
        `serial = ${join(dir, `${name}.serial`)}`,
        '[any]',
        'commonName = supplied',
        '[ext]',
        'basicConstraints = CA:FALSE',
        'subjectAltName = DNS:localhost,IP:127.0.0.1',
      ].join('\n'),
    );
    writeFileSync(join(dir, `${name}.serial`), `${(1000 + serial++).toString(16).padStart(4, '0')}\n`);
    const key = newKey(dir, name);
    const csr = join(dir, `${name}.csr`);
    const cert = join(dir, `${name}.crt`);
    openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${name}`], dir);
    openssl(['ca', '-batch', '-config', conf, '-extensions', 'ext', '-startdate', start, '-enddate', end, '-in', csr, '-out', cert, '-notext'], dir);
    return { cert, key };
  };
  return {
    dir,
    ca,
    leaf,
    dated,
    otherCa: (name) => selfSigned(dir, name, `/CN=${name}`),
    read: (path) => readFileSync(path),
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}
