import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { configWarnings, loadConfig, parseConfig, parseConfigText } from '../config/load.js';
import { ConfigError } from '../core/internal-errors.js';
import type { Config } from '../config/schema.js';
import { randomBase62 } from '../core/key-format.js';
import { closest, didYouMean, formatDetail, type ConfigDetail } from '../core/validation.js';
import { ROOT, runCli, startKeygate } from './lib/cli.js';

// Several CLI runs, each a child starting through tsx: 90 s on a loaded two-core machine, near
// tap's 120 s default per file.
t.setTimeout(300_000);

const storePath = (c: Config) => (c.store.type === 'file' ? c.store.path : null);

// config/: the example validates, ${VAR} substitution, every error at once with its path,
// the frozen result and its defaults, cross-field rules; and the CLI: --check, and SIGTERM
// draining an in-flight request.

const EXAMPLE = join(ROOT, 'gateway.yaml.example');
const TOKEN = '0123456789abcdef-token';

/** The smallest config that passes: one listener, one admin token. */
function minimal(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listeners: [{ port: 0, environment: 'production' }],
    admin: { port: 0, tokens: [{ name: 'ops', token: TOKEN, role: 'admin' }] },
    ...extra,
  };
}

/** The details of the ConfigError that `f` throws (fails the test when it does not throw one). */
function configErrors(t: Test, f: () => unknown): string[] {
  try {
    f();
  } catch (err) {
    t.type(err, ConfigError, 'a ConfigError');
    return (err as ConfigError).details.map((d) => `${d.path}: ${d.message}`);
  }
  t.fail('expected a ConfigError');
  return [];
}

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('gateway.yaml.example validates', async (t) => {
  // With nothing set in the environment: the example's ${VAR:-fallback}s must carry it.
  const config = loadConfig(EXAMPLE, {});
  t.equal(config.role, 'all');
  t.same(
    config.listeners.map((l) => [l.environment, l.port]),
    [
      ['production', 8080],
      ['test', 8082],
    ],
  );
  t.equal(config.admin.tokens[0]?.token, 'dev-admin-token-change-me', 'the fallback of ${KEYGATE_ADMIN_TOKEN:-…}');
  t.same(Object.keys(config.plans).sort(), ['default', 'free']);
  t.equal(config.apis.length, 2);
  t.same(config.trusted_proxies, [], 'no proxy is trusted by default, loopback included');
  t.equal(config.headers.request_id, 'x-request-id', 'header names are lower-cased');
  const withToken = loadConfig(EXAMPLE, { KEYGATE_ADMIN_TOKEN: 'from-the-environment-1234' });
  t.equal(withToken.admin.tokens[0]?.token, 'from-the-environment-1234', 'the variable wins when set');
});

t.test('${VAR} and ${VAR:-default} substitution', async (t) => {
  const yaml = `
listeners:
  - { port: 0, host: "\${BIND_HOST:-127.0.0.1}", environment: production }
apis:
  - { name: emails, path_prefix: /v1/emails, upstream: "http://\${UP_HOST}:\${UP_PORT:-9000}/base" }
admin:
  port: 0
  tokens: [{ name: ops, token: "tok-\${ADMIN_SECRET}-\${ADMIN_SUFFIX:-end}", role: admin }]
store: { type: file, path: "\${DATA_DIR:-./data}/keys" }
`;
  const c = parseConfigText(yaml, 'sub', { UP_HOST: 'api.internal', ADMIN_SECRET: 'abcdefghijklmnop', DATA_DIR: '' });
  t.equal(c.listeners[0]?.host, '127.0.0.1', 'unset: the default');
  t.equal(c.apis[0]?.upstream, 'http://api.internal:9000/base', 'several variables in one value');
  t.equal(c.admin.tokens[0]?.token, 'tok-abcdefghijklmnop-end', 'set variables and defaults mixed');
  t.equal(storePath(c), './data/keys', 'set but empty: the default');

  const c2 = parseConfigText(yaml, 'sub', {
    UP_HOST: 'h',
    UP_PORT: '1234',
    ADMIN_SECRET: 'abcdefghijklmnop',
    ADMIN_SUFFIX: 'x',
    BIND_HOST: '127.0.0.2',
    DATA_DIR: '/var/lib/keygate',
  });
  t.equal(c2.listeners[0]?.host, '127.0.0.2', 'set: the variable, not the default');
  t.equal(c2.apis[0]?.upstream, 'http://h:1234/base');
  t.equal(storePath(c2), '/var/lib/keygate/keys');

  const errors = configErrors(t, () => parseConfigText(yaml, 'sub', { ADMIN_SECRET: 'abcdefghijklmnop' }));
  t.ok(errors.includes('apis[0].upstream: environment variable UP_HOST is not set'), 'an unset variable without default names its path');

  // An unset variable is reported even where the empty result would pass the schema.
  const errors2 = configErrors(t, () => parseConfig(minimal({ store: { type: 'file', path: '/srv/${MISSING_DIR}' } }), 'sub', {}));
  t.same(errors2, ['store.path: environment variable MISSING_DIR is not set']);

  // Keys are not substituted, only values; a value from the environment is not re-expanded.
  const c3 = parseConfig(minimal({ store: { type: 'file', path: '${A}' } }), 'sub', { A: '${B}', B: 'nope' });
  t.equal(storePath(c3), '${B}', 'substitution is one pass');
});

t.test('${VAR} in a numeric or boolean value', async (t) => {
  // docs/architecture.md, Configuration: "${VAR} anywhere in a value is replaced from the
  // environment", and a value that is a single reference becomes a number when its text is
  // one. A port from the environment is the common case.
  // (Block style: inside a flow mapping an unquoted `${…}` is a YAML syntax error.)
  const yaml = `
listeners: [{ port: 0, environment: production }]
admin:
  port: \${ADMIN_PORT}
  tokens: [{ name: ops, token: "${TOKEN}", role: admin }]
`;
  let port: number | null = null;
  let error = '';
  try {
    port = parseConfigText(yaml, 'num', { ADMIN_PORT: '9191' }).admin.port;
  } catch (err) {
    error = (err as Error).message;
  }
  t.equal(port, 9191, `admin.port: \${ADMIN_PORT} with ADMIN_PORT=9191 ${error ? `(got: ${error.split('\n').slice(1).join('; ')})` : ''}`);
});

t.test('unknown keys are rejected with their full path and the key meant; every error at once', async (t) => {
  const errors = configErrors(t, () =>
    parseConfig(
      {
        listeners: [{ port: 0, environment: 'production', hots: '127.0.0.1' }],
        keys: { prefx: 'gw' },
        apis: [
          { name: 'ok', upstream: 'http://127.0.0.1:1' },
          { name: 'emails', upstrem: 'http://127.0.0.1:9000', routes: [{ path: '/x', scope: ['a'] }] },
        ],
        admin: { port: 70000, tokens: [{ name: 'ops', token: 'short', role: 'root' }] },
        bogus: true,
      },
      'unknown',
      {},
    ),
  );
  for (const expected of [
    'listeners[0].hots: unknown key; did you mean "host"?',
    'keys.prefx: unknown key; did you mean "prefix"?',
    'apis[1].upstrem: unknown key; did you mean "upstream"?',
    'apis[1].routes[0].scope: unknown key; did you mean "scopes"?',
    'bogus: unknown key',
    'admin.tokens[0].token: must be at least 16 characters',
  ]) {
    t.ok(errors.includes(expected), expected);
  }
  t.ok(errors.some((e) => e.startsWith('admin.port: ')), 'admin.port out of range');
  t.ok(errors.some((e) => e.startsWith('admin.tokens[0].role: ')), 'admin.tokens[0].role not a role');
  // A misspelt key is read under the name meant (when that is not given too), so its value
  // is judged in the same run, and the meant key is not reported missing.
  t.notOk(errors.includes('apis[1].upstream: is required'), 'no "is required" for the key misspelt');
  t.ok(errors.includes('apis[1].routes[0].scope[0]: "a" is not in scopes.catalog'), 'the misspelt scope list is checked against the catalog');
  t.equal(errors.length, 9, `nothing else: ${errors.join(' | ')}`);

  // The message of the thrown error lists them too, one per line, the cross-field rules the
  // rest of the file breaks included.
  try {
    parseConfig({ bogus: 1, also: 2 }, 'file.yaml', {});
  } catch (err) {
    t.match(
      (err as Error).message,
      /^file\.yaml: invalid configuration\nfile\.yaml: bogus: unknown key\nfile\.yaml: also: unknown key\nfile\.yaml: listeners: the gateway needs at least one listener\nfile\.yaml: admin\.tokens: the admin plane needs at least one token$/,
    );
  }
});

t.test('a value of the wrong type is not reported as missing', async (t) => {
  const errors = configErrors(t, () => parseConfig(minimal({ admin: { port: 'eighty', tokens: [{ name: 'ops', token: TOKEN, role: 'admin' }] }, trusted_proxies: 'all' }), 'types', {}));
  t.equal(errors.length, 2, errors.join(' | '));
  // core/validation.ts issuesToDetails() turns invalid_type into "is required" when
  // issue.input is undefined; zod 4 leaves `input` out of issues unless asked (reportInput),
  // so every type error reads "is required", in config errors and in admin validation_failed.
  t.notOk(errors.includes('admin.port: is required'), `admin.port: "eighty" is present, not missing (${errors[0]})`);
  t.notOk(errors.includes('trusted_proxies: is required'), `trusted_proxies: "all" is present, not missing`);
});

t.test('keys.cache.max: above what the key table can hold is a config error, not a crash at start', async (t) => {
  // 2^26 keys of 64 bytes fill a 4 GiB buffer, the most Node makes; one more failed at start-up
  // with a RangeError from gateway/key-table.ts before this bound.
  const errors = configErrors(t, () => parseConfig(minimal({ keys: { cache: { max: 2 ** 26 + 1 } } }), 'cache', {}));
  t.same(errors, [`keys.cache.max: must be at most 67,108,864: the key cache keeps 64 bytes a key in one buffer, and Node's buffers stop at 4 GiB`]);
  t.equal(parseConfig(minimal({ keys: { cache: { max: 2 ** 26 } } }), 'cache', {}).keys.cache.max, 2 ** 26, 'the bound itself is accepted');
});

t.test('the result is deeply frozen', async (t) => {
  const c = loadConfig(EXAMPLE, {});
  const unfrozen: string[] = [];
  const walk = (v: unknown, path: string) => {
    if (v === null || typeof v !== 'object') return;
    if (!Object.isFrozen(v)) unfrozen.push(path || '(root)');
    for (const [k, child] of Object.entries(v)) walk(child, Array.isArray(v) ? `${path}[${k}]` : path ? `${path}.${k}` : k);
  };
  walk(c, '');
  t.same(unfrozen, [], 'every object and array is frozen');
  t.throws(() => {
    (c.apis[0]!.routes[0]!.scopes as string[]).push('write_contacts');
  }, TypeError);
  t.throws(() => {
    (c.keys as { prefix: string }).prefix = 'xx';
  }, TypeError);
  t.equal(c.keys.prefix, 'gw');
});

t.test('defaults are applied', async (t) => {
  const c: Config = parseConfig(minimal(), 'defaults', {});
  t.equal(c.role, 'all');
  t.equal(c.listeners[0]?.host, '127.0.0.1');
  t.same(c.trusted_proxies, []);
  t.same(c.keys, {
    prefix: 'gw',
    environments: { production: 'live', test: 'test' },
    header: 'authorization',
    query_param: null,
    cache: { max: 100_000, ttl_seconds: 60, negative_ttl_seconds: 5, negative_max: 10_000 },
    pepper: null,
    previous_peppers: [],
    invalid_key_brake: { max: 20, window_seconds: 60, max_addresses: 100_000 },
  });
  t.same(c.plans, { default: { limit: 300, window_seconds: 60, burst: null, on_store_failure: 'local', max_concurrent: null, mode: 'enforce', quota: null, credits: null } });
  t.same(c.headers, {
    request_id: 'x-request-id',
    key_id: 'x-key-id',
    key_environment: 'x-key-environment',
    key_scopes: 'x-key-scopes',
    application_id: 'x-application-id',
    legacy_rate_limit: false,
    underscores: 'forward',
  });
  t.same(c.scopes, { catalog: [], presets: {} });
  t.same(c.apis, []);
  t.same(c.admin, {
    port: 0,
    host: '127.0.0.1',
    tls: null,
    tokens: [{ name: 'ops', token: TOKEN, role: 'admin', tenant: null }],
    max_body_bytes: 65_536,
    max_usage_batch_bytes: 32 * 1024 * 1024,
  });
    t.same(c.store, { type: 'sqlite', path: './data/keygate.db', lock_wait_ms: 5000, poll_interval_ms: 2, invalidation_wait_ms: 500 });
  t.equal(c.demo_upstream, null);
  t.same(c.log, { level: 'info', access: false });
  t.same(c.shutdown, { drain_timeout_ms: 10_000 });
  t.same(c.limits, {
    headers_timeout_ms: 30_000,
    body_idle_timeout_ms: 30_000,
    response_idle_timeout_ms: 60_000,
    max_connections: 10_000,
    max_connections_per_ip: 1_000,
    tls_handshake_timeout_ms: 10_000,
    http2: { max_concurrent_streams: 100, max_header_list_bytes: 16_384, max_header_fields: 128 },
  });

  const api = parseConfig(minimal({ apis: [{ name: 'a', upstream: 'http://127.0.0.1:9000', routes: [{ path: '/a' }] }] }), 'd', {}).apis[0]!;
  t.same(api, {
    name: 'a',
    host: null,
    path_prefix: '/',
    upstream: 'http://127.0.0.1:9000',
    strip_prefix: false,
    timeout_ms: 30_000,
    connect_timeout_ms: 5_000,
    max_connections: 256,
    max_concurrent_per_key: null,
    max_body_bytes: 10 * 1024 * 1024,
    forward_credential: false,
    preserve_host: false,
    routes: [{ method: '*', path: '/a', scopes: [], rate_limit: null, plan: null, cost: 1 }],
    unlisted: 'deny',
    case_sensitive: false,
    cors: null,
  });
  const plan = parseConfig(minimal({ plans: { default: { limit: 5, window_seconds: 1 } } }), 'd', {}).plans['default'];
  t.same(plan, { limit: 5, window_seconds: 1, burst: null, on_store_failure: 'local', max_concurrent: null, mode: 'enforce', quota: null, credits: null });
});

t.test('cross-field checks', async (t) => {
  t.same(
    configErrors(t, () => parseConfig(minimal({ listeners: [{ port: 0, environment: 'staging' }] }), 'x', {})),
    ['listeners[0].environment: must be one of: production, test'],
    'a listener environment not in keys.environments',
  );
  t.same(
    configErrors(t, () =>
      parseConfig(
        minimal({
          scopes: { catalog: ['read_campaigns'] },
          apis: [{ name: 'e', upstream: 'http://127.0.0.1:9000', routes: [{ path: '/e', scopes: ['read_campaigns', 'send_email'] }] }],
        }),
        'x',
        {},
      ),
    ),
    ['apis[0].routes[0].scopes[1]: "send_email" is not in scopes.catalog'],
    'a route scope not in the catalog',
  );
  t.same(
    configErrors(t, () => parseConfig(minimal({ plans: { free: { limit: 1, window_seconds: 1 } } }), 'x', {})),
    ['plans: must define a "default" plan'],
    'no default plan',
  );
  const all = configErrors(t, () =>
    parseConfig(
      minimal({
        listeners: [
          { port: 0, environment: 'staging' },
          { port: 8080, environment: 'production' },
          { port: 8080, environment: 'test' },
        ],
        plans: { free: { limit: 1, window_seconds: 1 } },
        scopes: { catalog: ['a'], presets: { p: ['b'] } },
        apis: [{ name: 'e', upstream: 'http://127.0.0.1:9000', routes: [{ path: '/e', scopes: ['z'], plan: 'gold' }] }],
      }),
      'x',
      {},
    ),
  );
  for (const expected of [
    'listeners[0].environment: must be one of: production, test',
    'listeners[2].port: 127.0.0.1:8080 is bound twice',
    'plans: must define a "default" plan',
    'scopes.presets.p[0]: "b" is not in scopes.catalog',
    'apis[0].routes[0].scopes[0]: "z" is not in scopes.catalog',
    'apis[0].routes[0].plan: "gold" is not a plan',
  ]) {
    t.ok(all.includes(expected), expected);
  }
  t.equal(all.length, 6, 'all reported at once');
});

t.test('schema and cross-field errors are reported together', async (t) => {
  const both = configErrors(t, () =>
    parseConfig(
      minimal({
        listeners: [{ port: 0, environment: 'staging' }],
        admin: { port: 70000, tokens: [{ name: 'ops', token: TOKEN, role: 'admin' }] },
        scopes: { catalog: ['read_campaigns'] },
        apis: [{ name: 'e', upstream: 'http://127.0.0.1:9000', routes: [{ path: '/e', scopes: ['send_email'] }] }],
      }),
      'x',
      {},
    ),
  );
  t.ok(both.some((e) => e.startsWith('admin.port: ')), 'the schema error');
  t.ok(both.includes('listeners[0].environment: must be one of: production, test'), 'a cross-field error beside it');
  t.ok(both.includes('apis[0].routes[0].scopes[0]: "send_email" is not in scopes.catalog'), 'and another');
  t.equal(both.length, 3, both.join(' | '));

});

t.test('cross-field rules run on every part that parsed, never on what stands in for a refused part', async (t) => {
  const upstream = 'http://127.0.0.1:9000';
  const errors = configErrors(t, () =>
    parseConfig(
      minimal({
        listeners: [
          'not a listener',
          { port: 8081, environment: 'production' },
          { port: 8090, environment: 'production' },
          { port: 8090, environment: 'test' },
        ],
        admin: { port: 'eighty', tokens: [] },
        plans: { default: { limit: 1, window_seconds: 1 }, gold: { limit: 'lots', window_seconds: 1 } },
        scopes: { catalog: ['read', 'Send_Email'] },
        apis: [
          { name: 'a', upstream, timeout_ms: 'fast', routes: [{ path: '/a', scopes: ['Send_Email'], plan: 'gold' }, { path: '/b', scopes: ['red'], plan: 'silver' }] },
          { name: 'a', path_prefix: '/v2', routes: [{ path: '/c', scopes: ['write'] }] },
        ],
      }),
      'x',
      {},
    ),
  );
  t.same(
    errors,
    [
      // The schema's problems first (without YAML text, in the schema's order), then the rest.
      'listeners[0]: Invalid input: expected object, received string',
      'plans.gold.limit: Invalid input: expected number, received string',
      'scopes.catalog[1]: must be a lower-case scope name',
      'apis[0].timeout_ms: Invalid input: expected number, received string',
      'apis[1].upstream: is required',
      'admin.port: Invalid input: expected number, received string',
      'listeners[3].port: 127.0.0.1:8090 is bound twice',
      'apis[0].routes[1].scopes[0]: "red" is not in scopes.catalog; did you mean "read"?',
      'apis[0].routes[1].plan: "silver" is not a plan',
      'apis[1].name: "a" is used twice',
      'apis[1].routes[0].scopes[0]: "write" is not in scopes.catalog',
      'admin.tokens: the admin plane needs at least one token',
    ],
    'the refused listener leaves the others with their own indices; the refused admin port (its default, 8081, standing in) is bound by no rule; ' +
      'names declared but refused (plan gold, scope Send_Email) are no second problem where they are used; ' +
      'an API with a refused or missing field still has its name and routes checked',
  );
});

t.test('route rules: unlisted scopes come from the catalog, rules and prefixes differing only by case are refused, unlisted: allow is a warning', async (t) => {
  const upstream = 'http://127.0.0.1:9000';
  const scopes = { catalog: ['read', 'send'] };
  t.same(
    configErrors(t, () =>
      parseConfig(
        minimal({
          scopes,
          apis: [
            {
              name: 'e',
              path_prefix: '/v1/e',
              upstream,
              unlisted: { scopes: ['read', 'nope'] },
              routes: [
                { method: 'POST', path: '/v1/e/send' },
                { method: 'GET', path: '/v1/e/Send' },
                { method: 'POST', path: '/v1/e/SEND' },
              ],
            },
            { name: 'f', path_prefix: '/V1/E', upstream },
          ],
        }),
        'x',
        {},
      ),
    ),
    [
      'apis[0].unlisted.scopes[1]: "nope" is not in scopes.catalog',
      'apis[0].routes[2].path: differs from routes[0] only by case; rules match without case unless the API sets case_sensitive: true',
      'apis[1].path_prefix: differs from apis[0].path_prefix only by case',
    ],
  );
  const sensitive = parseConfig(
    minimal({ apis: [{ name: 'e', upstream, case_sensitive: true, routes: [{ method: 'POST', path: '/send' }, { method: 'POST', path: '/SEND' }] }] }),
    'x',
    {},
  );
  t.same(configWarnings(sensitive), [], 'a case-sensitive API may list both; deny warns of nothing');
  const allow = parseConfig(minimal({ apis: [{ name: 'e', upstream }, { name: 'f', path_prefix: '/f', upstream, unlisted: 'allow' }] }), 'x', {});
  t.same(configWarnings(allow), [{ path: 'apis[1].unlisted', message: 'allow: requests that match no route rule are forwarded and need no scope' }]);
  t.equal(allow.apis[0]!.unlisted, 'deny', 'deny is the default');
  t.same(
    configErrors(t, () => parseConfig(minimal({ apis: [{ name: 'e', upstream, unlisted: { scopes: [] } }] }), 'x', {})),
    ['apis[0].unlisted.scopes: must name at least one scope (for none, say unlisted: allow)'],
    'an empty unlisted scope list is not a quiet allow',
  );
});

t.test("the example's admin token on an admin listener beyond loopback is warned about", async (t) => {
  const example = 'dev-admin-token-change-me';
  const exposed = parseConfig(minimal({ admin: { port: 0, host: '0.0.0.0', tokens: [{ name: 'ops', token: example, role: 'admin' }] } }), 'x', {});
  const warnings = configWarnings(exposed);
  t.equal(warnings.length, 1);
  t.equal(warnings[0]?.path, 'admin.tokens[0].token');
  t.match(warnings[0]?.message, /example's token.*0\.0\.0\.0.*KEYGATE_ADMIN_TOKEN/);
  for (const host of ['127.0.0.1', '::1', 'localhost', '127.0.0.2']) {
    const local = parseConfig(minimal({ admin: { port: 0, host, tokens: [{ name: 'ops', token: example, role: 'admin' }] } }), 'x', {});
    t.same(configWarnings(local), [], `not on ${host}`);
  }
  const own = parseConfig(minimal({ admin: { port: 0, host: '0.0.0.0', tokens: [{ name: 'ops', token: TOKEN, role: 'admin' }] } }), 'x', {});
  t.same(configWarnings(own), [], 'a token of its own is not');
});

t.test('CLI --check', async (t) => {
  const env = { KEYGATE_ADMIN_TOKEN: undefined };
  const ok = await runCli(['--config', EXAMPLE, '--check'], { env });
  t.equal(ok.code, 0, `the example passes: ${ok.stderr}`);
  t.match(ok.stdout, /gateway\.yaml\.example: configuration is valid/);
  t.notMatch(ok.stdout, /warning/, 'the example lets no unlisted request through');
  t.equal(ok.stderr, '');

  const dir = tempDir(t);
  const allow = join(dir, 'allow.yaml');
  writeFileSync(
    allow,
    `listeners: [{ port: 0, environment: production }]
apis:
  - { name: e, upstream: "http://127.0.0.1:9000", unlisted: allow }
admin: { port: 0, tokens: [{ name: ops, token: "${TOKEN}", role: admin }] }
`,
  );
  const warned = await runCli(['--config', allow, '--check'], { env });
  t.equal(warned.code, 0, 'a warning is no error');
  t.same(warned.stdout.trim().split('\n'), [
    `${allow}:3:61: warning: apis[0].unlisted: allow: requests that match no route rule are forwarded and need no scope`,
    `${allow}: configuration is valid`,
  ]);

  const cross = join(dir, 'cross.yaml');
  writeFileSync(
    cross,
    `listeners: [{ port: 0, environment: staging }]
plans: { free: { limit: 1, window_seconds: 1 } }
scopes: { catalog: [read] }
apis: [{ name: e, upstream: "http://127.0.0.1:9000", routes: [{ path: /e, scopes: [write] }] }]
admin: { tokens: [{ name: ops, token: "${TOKEN}", role: admin }] }
`,
  );
  const res2 = await runCli(['--config', cross, '--check'], { env });
  t.equal(res2.code, 1);
  t.same(res2.stderr.trim().split('\n'), [
    `${cross}:1:37: listeners[0].environment: must be one of: production, test`,
    `${cross}:2:1: plans: must define a "default" plan`,
    `${cross}:4:84: apis[0].routes[0].scopes[0]: "write" is not in scopes.catalog`,
    `${cross}: 3 errors`,
  ]);

  const mixed = join(dir, 'mixed.yaml');
  writeFileSync(
    mixed,
    `listeners: [{ port: 0, environment: staging }]
admin: { port: 70000, tokens: [{ name: ops, token: "${TOKEN}", role: admin }] }
`,
  );
  const res4 = await runCli(['--config', mixed, '--check'], { env });
  t.equal(res4.code, 1);
  const mixedLines = res4.stderr.trim().split('\n');
  t.ok(mixedLines.some((l) => l.startsWith(`${mixed}:2:16: admin.port: `)), 'a schema error');
  t.ok(mixedLines.includes(`${mixed}:1:37: listeners[0].environment: must be one of: production, test`), 'and a cross-field error, in one run');
  t.equal(mixedLines.at(-1), `${mixed}: 2 errors`);

  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'listeners: [\nrole: all\n');
  const res3 = await runCli(['--config', broken, '--check'], { env });
  t.equal(res3.code, 1, 'a YAML syntax error is an error too');
  t.match(res3.stderr.replaceAll(broken, 'FILE'), /^FILE:\d+:\d+: \S/m, 'with its line and column');

  const missing = await runCli(['--config', join(dir, 'nope.yaml'), '--check'], { env });
  t.not(missing.code, 0, 'a missing file is an error');
  t.match(missing.stderr, /nope\.yaml: no such file/);
});

t.test('CLI --check lists ten mistakes of one file in one run, each at its line', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'ten.yaml');
  writeFileSync(
    file,
    `listners:
  - { port: 8080, environment: production }
  - { port: 8080, environment: test }
plans:
  default: { limit: 100, window_seconds: 60 }
  gold: { limit: 1000, window_seconds: "a minute" }
scopes:
  catalog: [read_campaigns, send_email]
apis:
  - name: emails
    path_prefix: /v1/emails
    upstream: "http://\${KG_TEN_UPSTREAM_HOST}:9000"
    timeout_ms: -5
    routes:
      - { method: POST, path: /send, scopes: [send_emial] }
      - { method: GET, path: /list, scopes: [read_campaigns], plan: glod }
      - { method: GET, path: /stats, rate_limt: { limit: 5, window_seconds: 1 } }
  - name: emails
    path_prefix: /v2/emails
    upstream: http://127.0.0.1:9001
admin:
  port: 8081
  tokens: [{ name: ops, token: "${TOKEN}", role: root }]
`,
  );
  const res = await runCli(['--config', file, '--check'], { env: { KG_TEN_UPSTREAM_HOST: undefined, KEYGATE_ADMIN_TOKEN: undefined } });
  t.equal(res.code, 1, 'exit code 1');
  t.equal(res.stdout, '', 'nothing claims it is valid');
  t.same(
    res.stderr.trim().split('\n'),
    [
      // a misspelt key, read as the key meant: the listeners in it are checked too
      `${file}:1:1: listners: unknown key; did you mean "listeners"?`,
      `${file}:3:13: listners[1].port: 127.0.0.1:8080 is bound twice`,
      `${file}:6:40: plans.gold.window_seconds: Invalid input: expected number, received string`,
      // one message for the field, naming the variable (not a second one for the URL left)
      `${file}:12:15: apis[0].upstream: environment variable KG_TEN_UPSTREAM_HOST is not set`,
      `${file}:13:17: apis[0].timeout_ms: Too small: expected number to be >0`,
      // the routes of an API with refused fields are still checked
      `${file}:15:47: apis[0].routes[0].scopes[0]: "send_emial" is not in scopes.catalog; did you mean "send_email"?`,
      `${file}:16:69: apis[0].routes[1].plan: "glod" is not a plan; did you mean "gold"?`,
      `${file}:17:38: apis[0].routes[2].rate_limt: unknown key; did you mean "rate_limit"?`,
      `${file}:18:11: apis[1].name: "emails" is used twice`,
      `${file}:23:64: admin.tokens[0].role: Invalid option: expected one of "admin"|"developer"|"viewer"|"gateway"`,
      `${file}: 10 errors`,
    ],
    'all ten, in the order they are written',
  );
});

t.test('"did you mean": the closest candidate by edit distance, only when close', async (t) => {
  const root = ['role', 'workers', 'listeners', 'trusted_proxies', 'keys', 'plans', 'scopes', 'apis', 'admin', 'store', 'log'];
  t.equal(closest('listners', root), 'listeners', 'a letter left out');
  t.equal(closest('lsiteners', root), 'listeners', 'two letters swapped');
  t.equal(closest('rate_limt', ['rate_limit', 'plan', 'scopes']), 'rate_limit');
  t.equal(closest('hots', ['port', 'host', 'environment']), 'host', 'a swap in a short word');
  t.equal(closest('Upstream', ['name', 'upstream']), 'upstream', 'case alone');
  t.equal(closest('bogus', root), undefined, 'nothing close');
  t.equal(closest('b', ['a', 'c']), undefined, 'a word of one or two letters only by case');
  t.equal(closest('enviroment', ['environment', 'environments']), 'environment', 'the nearer of two');
  t.equal(closest('pland', ['plans', 'plant']), 'plans', 'a tie goes to the one listed first');
  t.equal(closest('xxxxxxxxx', ['rate_limit']), undefined, 'too far');
  t.equal(didYouMean('glod', ['default', 'gold']), '; did you mean "gold"?');
  t.equal(didYouMean('staging', ['production', 'test']), '');

  // The candidates are the keys allowed where the unknown one is: a store's, by its type.
  const store = (s: Record<string, unknown>) => configErrors(t, () => parseConfig(minimal({ store: s }), 'x', {}));
  t.same(store({ type: 'redis', urll: 'redis://127.0.0.1:6379' }), ['store.urll: unknown key; did you mean "url"?']);
  t.same(store({ type: 'file', urll: 'x' }), ['store.urll: unknown key'], 'a file store has no url');
  t.same(store({ type: 'file', pth: './data' }), ['store.pth: unknown key; did you mean "path"?']);
  // Inside a union (unlisted: deny | allow | { scopes }), from the branch the value's type fits.
  t.same(
    configErrors(t, () => parseConfig(minimal({ scopes: { catalog: ['read'] }, apis: [{ name: 'e', upstream: 'http://127.0.0.1:1', unlisted: { scope: ['read'] } }] }), 'x', {})),
    ['apis[0].unlisted.scope: unknown key; did you mean "scopes"?'],
  );
  // When the key meant is given too, the misspelt one is only reported.
  t.same(
    configErrors(t, () => parseConfig(minimal({ apis: [{ name: 'e', upstream: 'http://127.0.0.1:1', upstrem: 5 }] }), 'x', {})),
    ['apis[0].upstrem: unknown key; did you mean "upstream"?'],
  );
});

t.test('problems carry the line and column where the YAML writes them', async (t) => {
  const yaml = `listeners:
  - port: 0
    environment: production
    hots: 127.0.0.1
apis:
  - name: e
    routes: [{ path: /a, scopes: [read, nope] }]
admin:
  port: \${KG_LINE_PORT}
  tokens: [{ name: ops, token: "${TOKEN}", role: admin }]
scopes: { catalog: [read] }
plans: { free: { limit: 1, window_seconds: 1 } }
scopes: { catalog: [read, write] }
`;
  let details: ConfigDetail[] = [];
  try {
    parseConfigText(yaml, 'lines.yaml', {});
  } catch (err) {
    details = (err as ConfigError).details;
  }
  const at = (d: ConfigDetail) => `${d.line ?? '-'}:${d.column ?? '-'} ${d.path}: ${d.message}`;
  t.same(details.map(at), [
    '4:5 listeners[0].hots: unknown key; did you mean "host"?',
    '6:5 apis[0].upstream: is required',
    '7:41 apis[0].routes[0].scopes[1]: "nope" is not in scopes.catalog',
    '9:9 admin.port: environment variable KG_LINE_PORT is not set',
    '12:1 plans: must define a "default" plan',
    '13:1 scopes: duplicate key; the first is on line 11, this later one is read',
  ], 'an unknown key at the key; a missing one at the map that lacks it; a value at the value; a section at its key; a duplicate at the later key');

  t.same(
    configErrors(t, () => parseConfigText('listeners: [{ port: 0, environment: production }]\n', 'x', {})),
    ['admin.tokens: the admin plane needs at least one token'],
  );
  try {
    parseConfigText('listeners: [{ port: 0, environment: production }]\n', 'x', {});
  } catch (err) {
    const d = (err as ConfigError).details[0]!;
    t.equal(d.line, undefined, 'a problem with nothing written for it has no line');
    t.equal(formatDetail('x.yaml', d), 'x.yaml: admin.tokens: the admin plane needs at least one token');
  }

  try {
    parseConfigText('listeners:\n  - { port: 0\nrole: all\n', 'x', {});
    t.fail('a syntax error throws');
  } catch (err) {
    const d = (err as ConfigError).details[0]!;
    t.equal(d.path, '', 'a syntax error has no path');
    t.ok(d.line !== undefined && d.line >= 2, `but a line (${d.line})`);
    t.match(formatDetail('x.yaml', d), /^x\.yaml:\d+:\d+: \S/);
  }
});

/** An upstream that answers every request after `delayMs`, and tells when one arrives. */
async function slowUpstream(delayMs: number): Promise<{ url: string; arrived: Promise<void>; close(): Promise<void> }> {
  let arrivedResolve!: () => void;
  const arrived = new Promise<void>((resolve) => (arrivedResolve = resolve));
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((req, res) => {
    req.resume();
    arrivedResolve();
    const timer = setTimeout(() => {
      timers.delete(timer);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ slow: true, url: req.url, key_id: req.headers['x-key-id'] }));
    }, delayMs);
    timers.add(timer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrived,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer!: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))),
  ]);
}

t.test('SIGTERM drains an in-flight request, exits 0; logs never hold the key', async (t) => {
  const dir = tempDir(t);
  const upstream = await slowUpstream(300);
  t.teardown(() => upstream.close());
  const adminToken = `cfg-test-admin-${randomBase62(24)}`;
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
  tokens: [{ name: ops, token: "\${KG_CFG_TEST_TOKEN}", role: admin }]
store: { type: file, path: ${JSON.stringify(join(dir, 'data'))} }
log: { level: debug, access: true }
shutdown: { drain_timeout_ms: 5000 }
`,
  );
  const kg = await startKeygate(configPath, { env: { KG_CFG_TEST_TOKEN: adminToken } });
  t.teardown(() => kg.stop('SIGKILL'));

  const created = await request(`${kg.adminUrl}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'drain', scopes: ['read_campaigns'] }),
  });
  const { key, id } = (await created.body.json()) as { key: string; id: string };
  t.equal(created.statusCode, 201);

  const started = performance.now();
  const inFlight = request(`${kg.gw['production']}/v1/emails/list`, { headers: { authorization: `Bearer ${key}` } }).then(
    async (res) => ({ status: res.statusCode, headers: res.headers, body: (await res.body.json()) as Record<string, unknown> }),
  );
  await within(upstream.arrived, 5_000, 'the request reaching the upstream');
  kg.proc.child.kill('SIGTERM');
  await within(
    kg.proc.waitForLog((l) => l.msg === 'shutting down'),
    5_000,
    'the shutting down log line',
  );

  const res = await within(inFlight, 5_000, 'the in-flight response');
  t.equal(res.status, 200, 'the in-flight request completes');
  t.same(res.body, { slow: true, url: '/v1/emails/list', key_id: id }, 'with the upstream answer');
  t.ok(performance.now() - started >= 250, 'after the upstream delay');
  // One SIGTERM is enough: keygate drains and exits on its own (a repeated signal is ignored while it stops).
  const exit = await within(kg.proc.exited, 10_000, 'the exit after SIGTERM');
  t.same(exit, { code: 0, signal: null }, 'the process exits 0');

  const out = kg.proc.stdout() + kg.proc.stderr();
  const secret = key.slice('gw_live_'.length);
  t.notOk(out.includes(key), 'the plaintext key is in no log line');
  t.notOk(out.includes(secret), 'nor its secret part');
  t.notOk(out.includes(adminToken), 'nor the admin token');
  const logs = kg.proc.logs();
  t.ok(logs.some((l) => l.msg === 'stopped'), 'it logged that it stopped');
  t.ok(
    logs.some((l) => l.request_id === res.headers['x-request-id']),
    'log.access: true writes a JSON line for the proxied request',
  );
});

t.test('alerts.webhooks: a name is optional (webhook-N by position) and unique', async (t) => {
  const c = parseConfig(minimal({ alerts: { webhooks: [{ url: 'https://a.example/h', secret: 'x'.repeat(16) }, { name: 'ops', url: 'https://b.example/h', format: 'slack' }] } }), 'alerts', {});
  t.same(c.alerts.webhooks.map((w) => w.name), ['webhook-1', 'ops']);
  t.same(c.alerts.webhooks[0]!.events, ['*'], 'every type by default');
  const twice = configErrors(t, () => parseConfig(minimal({ alerts: { webhooks: [{ name: 'a', url: 'https://a.example/h' }, { name: 'a', url: 'https://b.example/h' }] } }), 'alerts', {}));
  t.ok(twice.includes('alerts.webhooks[1].name: "a" is used twice'), twice.join('; '));
  const bad = configErrors(t, () => parseConfig(minimal({ alerts: { webhooks: [{ url: 'ftp://a.example/h', secret: 'short', events: ['key.nope'] }] } }), 'alerts', {}));
  t.ok(bad.some((l) => l.startsWith('alerts.webhooks[0].url: must be an http:// or https:// URL')), bad.join('; '));
  t.ok(bad.some((l) => l.startsWith('alerts.webhooks[0].secret: must be at least 16 characters')), bad.join('; '));
  t.ok(bad.some((l) => l.startsWith('alerts.webhooks[0].events[0]')), bad.join('; '));
});

t.test('status_listener.verify: off by default; a token or a token file, not both; a known environment', async (t) => {
  t.same(parseConfig(minimal({ status_listener: { port: 0 } })).status_listener?.verify, {
    enabled: false,
    token: null,
    token_file: null,
    environment: null,
    environment_header: false,
    max_body_bytes: 16_384,
    timeout_ms: 10_000,
  });
  t.same(
    configErrors(t, () =>
      parseConfig(minimal({ status_listener: { port: 0, verify: { enabled: true, token: 'verify-token-0123456789', token_file: '/run/x', environment: 'prodution' } } })),
    ),
    ['status_listener.verify.token_file: give token or token_file, not both', 'status_listener.verify.environment: must be one of: production, test; did you mean "production"?'],
  );
  t.same(configErrors(t, () => parseConfig(minimal({ status_listener: { port: 0, verify: { token: 'short' } } }))), [
    'status_listener.verify.token: must be at least 16 characters',
  ]);
});
