import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * Peer doing Keygate's job in Node: express-gateway with its key-auth and rate-limit policies
 * in front of its proxy policy. Its database is the in-memory Redis emulation (`emulate: true`,
 * no redis-server), so the consumer and its key-auth credential are created at each start.
 * The rate limit is per consumer and never refuses (1e9 per second); `delayMs: 0`, since its
 * defaults delay every request after the first. Its key-auth reads
 * `Authorization: apiKey <keyId>:<keySecret>`: prints `ready apiKey <keyId>:<keySecret>`
 * (the Authorization value to send) once listening.
 *
 *   peers/express-gateway.ts PORT UPSTREAM
 */
const [portArg, upstream] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const dir = mkdtempSync(join(process.env.KEYGATE_BENCH_TMP ?? tmpdir(), 'keygate-bench-eg-'));
const models = join(dirname(require.resolve('express-gateway/package.json')), 'lib', 'config', 'models');
cpSync(models, join(dir, 'models'), { recursive: true });
writeFileSync(
  join(dir, 'system.config.yml'),
  `db:
  redis:
    emulate: true
    namespace: EG
crypto:
  cipherKey: bench-cipher-key
  algorithm: aes256
  saltRounds: 10
session:
  secret: bench
  resave: false
  saveUninitialized: false
accessTokens:
  timeToExpiry: 7200000
refreshTokens:
  timeToExpiry: 7200000
authorizationCodes:
  timeToExpiry: 300000
`,
);
writeFileSync(
  join(dir, 'gateway.config.yml'),
  `http:
  port: ${Number(portArg)}
  hostname: 127.0.0.1
apiEndpoints:
  api:
    host: '*'
    paths: '/*'
serviceEndpoints:
  backend:
    url: '${upstream}'
policies:
  - key-auth
  - rate-limit
  - proxy
pipelines:
  bench:
    apiEndpoints:
      - api
    policies:
      - key-auth:
      - rate-limit:
          - action:
              rateLimitBy: '\${req.user.id}'
              max: 1000000000
              windowMs: 1000
              delayMs: 0
      - proxy:
          - action:
              serviceEndpoint: backend
`,
);
process.env.EG_CONFIG_DIR = dir;
process.env.LOG_LEVEL ??= 'error';

const gateway = require('express-gateway') as () => { load(dir: string): { run(): Promise<unknown> } };
await gateway().load(dir).run();
const services = require('express-gateway/lib/services') as {
  user: { insert(u: Record<string, string>): Promise<{ id: string }> };
  credential: { insertCredential(id: string, type: string, details: Record<string, unknown>): Promise<{ keyId: string; keySecret: string }> };
};
const user = await services.user.insert({ username: 'bench', firstname: 'bench', lastname: 'bench' });
const cred = await services.credential.insertCredential(user.id, 'key-auth', {});
process.stdout.write(`ready apiKey ${cred.keyId}:${cred.keySecret}\n`);
process.on('SIGINT', () => process.exit(0));
