import { resolve } from 'node:path';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../log.js';
import { FileStore } from './file-store.js';
import { RedisStore } from './redis-store.js';
import type { Store } from './store.js';

/** The store the config names. */
export function openStore(config: Config, log: Logger): Promise<Store> {
  const s = config.store;
  const warn = (msg: string, fields: Record<string, unknown>) => log.warn(msg, fields);
  if (s.type === 'file') return FileStore.open({ dir: resolve(s.path), warn });
  return RedisStore.open({
    url: s.url,
    sentinels: s.sentinels,
    name: s.name,
    cluster: s.cluster,
    password: s.password,
    prefix: s.prefix,
    commandTimeoutMs: s.command_timeout_ms,
    connectTimeoutMs: s.connect_timeout_ms,
    invalidationWaitMs: s.invalidation_wait_ms,
    warn,
  });
}
