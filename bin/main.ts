import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createAdmin, type Admin } from '../admin/server.js';
import { ConfigError, defaultConfigPath, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { Logger } from '../core/log.js';
import { FileStore } from '../core/store/file-store.js';
import type { Store } from '../core/store/store.js';
import { createGateway, type Gateway } from '../gateway/server.js';
import { createDemoUpstream } from './demo-upstream.js';

const USAGE = `usage: keygate [--config FILE] [--role gateway|admin|all] [--check]

  --config FILE   configuration (default: ./gateway.yaml, else ./gateway.yaml.example)
  --role ROLE     run the gateway, the admin plane, or both (overrides the config's role)
  --check         validate the configuration, print every error, and exit
`;

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        role: { type: 'string' },
        check: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.role !== undefined && !['gateway', 'admin', 'all'].includes(args.role)) {
    process.stderr.write(`--role must be gateway, admin or all\n${USAGE}`);
    return 2;
  }
  const path = resolve(defaultConfigPath(args.config));
  if (!existsSync(path)) {
    process.stderr.write(`${path}: no such file\n`);
    return 2;
  }
  let config: Config;
  try {
    config = loadConfig(path);
    if (args.role !== undefined) config = { ...config, role: args.role as Config['role'] };
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const d of err.details) process.stderr.write(`${d.path || '(root)'}: ${d.message}\n`);
      process.stderr.write(`${path}: ${err.details.length} error${err.details.length === 1 ? '' : 's'}\n`);
      return 1;
    }
    throw err;
  }
  if (args.check) {
    process.stdout.write(`${path}: configuration is valid\n`);
    return 0;
  }
  return run(config, path);
}

async function run(config: Config, path: string): Promise<number> {
  const log = new Logger({ level: config.log.level, keyPrefix: config.keys.prefix });
  let store: Store;
  try {
    store = await FileStore.open({ dir: resolve(config.store.path), warn: (msg, f) => log.warn(msg, f) });
  } catch (err) {
    log.error('cannot open the store', { err: (err as Error).message });
    return 1;
  }
  let demo: Server | null = null;
  let gateway: Gateway | null = null;
  let admin: Admin | null = null;
  try {
    if (config.demo_upstream) {
      demo = createDemoUpstream();
      const d = config.demo_upstream;
      await new Promise<void>((ok, fail) => demo!.once('error', fail).listen(d.port, d.host, ok));
      log.info('demo upstream listening', { address: d.host, port: d.port });
    }
    const gatewayUrls: Record<string, string> = {};
    if (config.role !== 'gateway') admin = createAdmin(config, { store, log, gatewayUrls });
    if (config.role !== 'admin') {
      // Both planes in one process: usage is handed over in memory.
      const usage = admin?.usage;
      gateway = createGateway(config, { store, log, sinks: usage ? [(e) => usage.add(e)] : [] });
      for (const l of await gateway.listen()) gatewayUrls[l.environment] ??= l.url;
    }
    await admin?.listen();
  } catch (err) {
    log.error('start-up failed', { err: (err as Error).message });
    await Promise.allSettled([gateway?.close(0), admin?.close(), store.close()]);
    demo?.close();
    return 1;
  }
  log.info('keygate started', { config: path, role: config.role, store: store.kind });

  return new Promise<number>((done) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('shutting down', { signal, drain_ms: config.shutdown.drain_timeout_ms });
      await Promise.allSettled([gateway?.close(), admin?.close()]);
      await store.close();
      demo?.closeAllConnections();
      demo?.close();
      log.info('stopped');
      done(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  });
}
