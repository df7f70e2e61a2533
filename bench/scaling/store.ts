import { FileStore } from '../../core/store/file-store.js';
import { RedisStore } from '../../core/store/redis-store.js';
import { SqliteStore } from '../../core/store/sqlite-store.js';
import type { Store } from '../../core/store/store.js';

/**
 * Where a scaling run keeps its keys: a file store's directory, `sqlite:PATH` (a SQLite
 * database file, opened with the store's defaults, as `store: { type: sqlite }` opens it), or
 * `redis://HOST:PORT#PREFIX` (a Redis store under that key prefix). Seeding commits 10,000 keys
 * at a time, so Redis commands get a generous timeout here.
 */
export async function openBenchStore(spec: string): Promise<Store> {
  if (spec.startsWith('sqlite:')) return SqliteStore.open({ path: sqlitePath(spec) });
  if (!spec.startsWith('redis://')) return FileStore.open({ dir: spec });
  const hash = spec.indexOf('#');
  if (hash === -1) throw new Error(`a redis store spec needs a #prefix: ${spec}`);
  return RedisStore.open({ url: spec.slice(0, hash), prefix: spec.slice(hash + 1), commandTimeoutMs: 120_000, connectTimeoutMs: 10_000 });
}

/** The database file of a `sqlite:PATH` spec. */
export const sqlitePath = (spec: string): string => spec.slice('sqlite:'.length);
