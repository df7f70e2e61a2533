import { resolve } from 'node:path';
import type { Logger } from '../log.js';
import { FileStore } from './file-store.js';
import { RedisStore } from './redis-store.js';
import type { Store } from './store.js';

interface RedisNode {
  host: string;
  port: number;
}

/** Which store to open, as the configuration's `store` section gives it (docs/operations.md, Redis). */
export type StoreSpec =
  | { type: 'file'; path: string }
  | { type: 'sqlite'; path: string }
  | {
      type: 'redis';
      url?: string | undefined;
      sentinels?: RedisNode[] | undefined;
      name: string;
      cluster?: RedisNode[] | undefined;
      password: string | null;
      prefix: string;
      command_timeout_ms: number;
      connect_timeout_ms: number;
      invalidation_wait_ms: number;
    };

/** The store `spec` names. */
export function openStore(spec: StoreSpec, log: Logger): Promise<Store> {
  const s = spec;
  const warn = (msg: string, fields: Record<string, unknown>) => log.warn(msg, fields);
  if (s.type === 'file') return FileStore.open({ dir: resolve(s.path), warn });
  if (s.type === 'sqlite') return Promise.reject(new Error('store.type sqlite: the SQLite store is not part of this build'));
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
