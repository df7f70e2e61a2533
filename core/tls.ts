import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';

/*
 * TLS for every listener (gateway, admin, status): the certificate files, checked the same way
 * by `--check` and at start-up, and the secure contexts a server picks from by SNI. The
 * contexts sit behind one map that `reload()` swaps whole, so a renewed certificate is used by
 * the next handshake without a restart (docs/operations.md, TLS).
 */

/** A listener's `tls` block as config/schema.ts gives it. */
export interface TlsSettings {
  readonly cert: string;
  readonly key: string;
  readonly ca: string | null;
  readonly min_version: 'TLSv1.2' | 'TLSv1.3';
  readonly ciphers: string | null;
  readonly sni: readonly { readonly servernames: readonly string[]; readonly cert: string; readonly key: string }[];
  readonly client_auth: 'none' | 'optional' | 'required';
  /** Gateway listeners only: offer HTTP/2 by ALPN. */
  readonly http2?: boolean;
}

/** A problem with one of the files, at a path inside the `tls` block (`['sni', 0, 'key']`). */
export interface TlsProblem {
  path: PropertyKey[];
  message: string;
}

interface Pair {
  cert: Buffer;
  key: Buffer;
}

interface Loaded {
  main: Pair;
  ca: Buffer | null;
  sni: Pair[];
}

function read(path: string, at: PropertyKey[], what: string, problems: TlsProblem[]): Buffer | null {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    problems.push({ path: at, message: `cannot read the ${what} ${path}: ${why}` });
    return null;
  }
}

/** The certificates of a PEM file (a chain: leaf first), or null when it holds none that parse. */
function certificates(pem: Buffer): X509Certificate[] | null {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (blocks === null) return null;
  try {
    return blocks.map((b) => new X509Certificate(b));
  } catch {
    return null;
  }
}

function checkPair(cert: string, key: string, at: PropertyKey[], now: number, problems: TlsProblem[]): Pair | null {
  const certPem = read(cert, [...at, 'cert'], 'certificate', problems);
  const keyPem = read(key, [...at, 'key'], 'private key', problems);
  let chain: X509Certificate[] | null = null;
  if (certPem !== null) {
    chain = certificates(certPem);
    if (chain === null) problems.push({ path: [...at, 'cert'], message: `${cert} holds no PEM certificate that parses (-----BEGIN CERTIFICATE-----)` });
  }
  let privateKey: KeyObject | null = null;
  if (keyPem !== null) {
    try {
      privateKey = createPrivateKey(keyPem);
    } catch {
      problems.push({ path: [...at, 'key'], message: `${key} holds no PEM private key that parses (an encrypted key is not supported)` });
    }
  }
  const leaf = chain?.[0];
  if (leaf !== undefined) {
    const notAfter = Date.parse(leaf.validTo);
    const notBefore = Date.parse(leaf.validFrom);
    if (notAfter <= now) problems.push({ path: [...at, 'cert'], message: `${cert} expired on ${new Date(notAfter).toISOString()}` });
    else if (notBefore > now) problems.push({ path: [...at, 'cert'], message: `${cert} is not valid before ${new Date(notBefore).toISOString()}` });
    if (privateKey !== null && !leaf.checkPrivateKey(privateKey)) {
      problems.push({ path: [...at, 'key'], message: `${key} is not the private key of the certificate in ${cert}` });
    }
  }
  return certPem !== null && keyPem !== null ? { cert: certPem, key: keyPem } : null;
}

/** Reads and checks every file of a `tls` block; the problems name the path inside the block. */
function load(tls: TlsSettings, now: number): { loaded: Loaded | null; problems: TlsProblem[] } {
  const problems: TlsProblem[] = [];
  const main = checkPair(tls.cert, tls.key, [], now, problems);
  let ca: Buffer | null = null;
  if (tls.ca !== null) {
    ca = read(tls.ca, ['ca'], 'CA bundle', problems);
    if (ca !== null && certificates(ca) === null) problems.push({ path: ['ca'], message: `${tls.ca} holds no PEM certificate that parses (-----BEGIN CERTIFICATE-----)` });
  }
  const sni = tls.sni.map((s, i) => checkPair(s.cert, s.key, ['sni', i], now, problems));
  if (problems.length === 0) {
    // What only OpenSSL can judge: the cipher list, and the files as a context takes them.
    for (const [i, pair] of [main, ...sni].entries()) {
      try {
        createSecureContext(contextOptions(tls, pair!, ca));
      } catch (err) {
        const message = (err as Error).message;
        if (tls.ciphers !== null && /cipher/i.test(message)) {
          problems.push({ path: ['ciphers'], message: `OpenSSL accepts none of these ciphers: ${tls.ciphers}` });
          break;
        }
        problems.push({ path: i === 0 ? ['cert'] : ['sni', i - 1, 'cert'], message: `OpenSSL refuses this certificate and key: ${message}` });
      }
    }
  }
  if (problems.length > 0) return { loaded: null, problems };
  return { loaded: { main: main!, ca, sni: sni as Pair[] }, problems };
}

/** Every problem with the files of a `tls` block, judged at `now` (ms): what `--check` reports. */
export function checkTlsFiles(tls: TlsSettings, now = Date.now()): TlsProblem[] {
  return load(tls, now).problems;
}

function contextOptions(tls: TlsSettings, pair: Pair, ca: Buffer | null): SecureContextOptions {
  return {
    cert: pair.cert,
    key: pair.key,
    ...(ca === null ? {} : { ca }),
    minVersion: tls.min_version,
    ...(tls.ciphers === null ? {} : { ciphers: tls.ciphers }),
  };
}

/** The files of a `tls` block could not be loaded; `problems` says why, each at its path. */
export class TlsFilesError extends Error {
  override readonly name = 'TlsFilesError';
  readonly code = 'KEYGATE_TLS_FILES';
  readonly problems: readonly TlsProblem[];

  constructor(problems: TlsProblem[]) {
    super(`TLS files refused: ${problems.map((p) => `${p.path.map(String).join('.') || 'tls'}: ${p.message}`).join('; ')}`);
    this.problems = problems;
  }
}

/** Servers that take a new default context on reload (tls.Server and its subclasses). */
interface ContextHolder {
  setSecureContext(options: SecureContextOptions): void;
}

/**
 * The secure contexts of one `tls` block: the default one (a client that names no server, or
 * one no SNI entry names) and one per SNI entry, exact names first, then `*.` wildcards of one
 * label. `reload()` reads the files again and swaps every context at once, or, when any file is
 * refused, changes nothing and throws.
 */
export class TlsContexts {
  readonly settings: TlsSettings;
  #main!: SecureContextOptions;
  #exact = new Map<string, SecureContext>();
  #wildcard = new Map<string, SecureContext>();
  readonly #servers: ContextHolder[] = [];
  readonly #now: () => number;

  constructor(settings: TlsSettings, now: () => number = Date.now) {
    this.settings = settings;
    this.#now = now;
    this.#swap();
  }

  /** Options for `tls.createServer` and the servers built on it (https, http2). */
  serverOptions(handshakeTimeoutMs: number): SecureContextOptions & {
    SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
    requestCert: boolean;
    rejectUnauthorized: boolean;
    handshakeTimeout: number;
  } {
    const auth = this.settings.client_auth;
    return {
      ...this.#main,
      SNICallback: (servername, cb) => cb(null, this.#pick(servername)),
      requestCert: auth !== 'none',
      // `required`: a client without a certificate the CA signed fails the handshake.
      rejectUnauthorized: auth === 'required',
      handshakeTimeout: handshakeTimeoutMs,
    };
  }

  /** Makes `server` take the default context of each reload. */
  attach(server: ContextHolder): void {
    this.#servers.push(server);
  }

  /** Reads every file again; throws TlsFilesError, changing nothing, when any is refused. */
  reload(): void {
    this.prepareReload().apply();
  }

  /**
   * Reads and checks every file and builds the contexts, changing nothing (throws
   * TlsFilesError when any file is refused); `apply` puts them in use for new handshakes.
   */
  prepareReload(): { apply(): void } {
    const next = this.#build();
    return {
      apply: () => {
        this.#main = next.main;
        this.#exact = next.exact;
        this.#wildcard = next.wildcard;
        for (const s of this.#servers) s.setSecureContext(this.#main);
      },
    };
  }

  #pick(servername: string): SecureContext | undefined {
    const name = servername.toLowerCase();
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    // undefined: the server's default context.
    return dot === -1 ? undefined : this.#wildcard.get(name.slice(dot + 1));
  }

  #swap(): void {
    const next = this.#build();
    this.#main = next.main;
    this.#exact = next.exact;
    this.#wildcard = next.wildcard;
  }

  #build(): { main: SecureContextOptions; exact: Map<string, SecureContext>; wildcard: Map<string, SecureContext> } {
    const { loaded, problems } = load(this.settings, this.#now());
    if (loaded === null) throw new TlsFilesError(problems);
    const exact = new Map<string, SecureContext>();
    const wildcard = new Map<string, SecureContext>();
    this.settings.sni.forEach((entry, i) => {
      const ctx = createSecureContext(contextOptions(this.settings, loaded.sni[i]!, loaded.ca));
      for (const raw of entry.servernames) {
        const n = raw.toLowerCase();
        if (n.startsWith('*.')) wildcard.set(n.slice(2), ctx);
        else exact.set(n, ctx);
      }
    });
    return { main: contextOptions(this.settings, loaded.main, loaded.ca), exact, wildcard };
  }
}

const kSubject = Symbol('keygate.clientSubject');

/**
 * The subject of the client certificate a connection presented, when the listener's CA
 * verified it, as an RFC 4514 string (`CN=client,O=Acme`); null when there is none or it was
 * not verified. Read once per connection. Through an HTTP/2 request's socket (a proxy of the
 * session's socket) it reaches the same connection.
 */
export function verifiedSubject(socket: TLSSocket): string | null {
  const s = socket as TLSSocket & { [kSubject]?: string | null };
  let subject = s[kSubject];
  if (subject === undefined) {
    subject = null;
    if (s.authorized) {
      const cert = s.getPeerX509Certificate();
      if (cert !== undefined) subject = rfc4514(cert.subject);
    }
    s[kSubject] = subject;
  }
  return subject;
}

/**
 * Node prints a subject one attribute a line, most significant first, with RFC 2253's
 * specials and control characters already escaped; RFC 4514 lists them the other way round,
 * comma-separated. Bytes outside printable ASCII are escaped as `\XX` so the string is a valid
 * header value.
 */
function rfc4514(multiline: string): string {
  return multiline
    .split('\n')
    .filter((l) => l !== '')
    .reverse()
    .join(',')
    .replace(/[^\x20-\x7e]/gu, (ch) =>
      [...Buffer.from(ch, 'utf8')].map((b) => `\\${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
    );
}

/** The `Strict-Transport-Security` value of an `hsts` block. */
export function hstsValue(hsts: { max_age: number; include_subdomains: boolean; preload: boolean }): string {
  return `max-age=${hsts.max_age}${hsts.include_subdomains ? '; includeSubDomains' : ''}${hsts.preload ? '; preload' : ''}`;
}
