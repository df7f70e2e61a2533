import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from '../log.js';
import { FileStore } from './file-store.js';
import { RedisStore } from './redis-store.js';
import { journalBeside, migrateFileStore } from './migrate.js';
import { SqliteStore } from './sqlite-store.js';
import type { Store } from './store.js';

interface RedisNode {
  host: string;
  port: number;
}

/** Which store to open, as the configuration's `store` section gives it (docs/operations.md, Redis). */
export type StoreSpec =
  | { type: 'sqlite'; path: string; lock_wait_ms: number; poll_interval_ms: number; invalidation_wait_ms: number }
  | { type: 'file'; path: string }
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
  if (s.type === 'sqlite') return openSqlite(s, log);
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

/**
 * The SQLite store. A database created now beside a file store's journal (an upgrade of the
 * default layout, ./data) starts with everything the file store held, imported in one
 * transaction and announced in the log; the journal is left as it was.
 */
async function openSqlite(s: Extract<StoreSpec, { type: 'sqlite' }>, log: Logger): Promise<Store> {
  const path = resolve(s.path);
  const journal = existsSync(path) ? null : journalBeside(path);
  const store = await SqliteStore.open({
    path,
    lockWaitMs: s.lock_wait_ms,
    pollMs: s.poll_interval_ms,
    invalidationWaitMs: s.invalidation_wait_ms,
    warn: (msg, fields) => log.warn(msg, fields),
    log: (msg, fields) => log.info(msg, fields),
  });
  if (journal !== null) {
    try {
      const moved = await migrateFileStore(journal, store);
      log.info('imported the file store into the new sqlite database; the journal is kept as it was', { from: journal, to: path, ...moved });
    } catch (err) {
      await store.close();
      throw new Error(`could not import the file store in ${journal} into the new ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
  return store;
}
