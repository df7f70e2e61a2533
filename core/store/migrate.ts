import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FileStore } from './file-store.js';
import type { SqliteStore } from './sqlite-store.js';
import type { StoreDump } from './store.js';

/** What a migration moved, by kind of record. */
export type MigrationCounts = { [K in keyof StoreDump]: number };

const count = (d: StoreDump): MigrationCounts => ({
  keys: d.keys.length,
  apps: d.apps.length,
  audit: d.audit.length,
  events: d.events.length,
  buckets: d.buckets.length,
  errors: d.errors.length,
  batches: d.batches.length,
  alerts: d.alerts.length,
  deliveries: d.deliveries.length,
  quotas: d.quotas.length,
});

/**
 * Copies everything of the file store in `dir` (records with their hashes and usage, timelines,
 * audit, aggregates, error samples, applied batch ids, alerts with their dedup keys and
 * deliveries, quota balances) into `target`, which must be empty, in
 * one transaction; then reads it back and checks that every kind of record arrived whole. The
 * file store is locked while it is read, and its journal left byte for byte as it was (not
 * repaired or compacted, as opening a file store would): the earlier release can still use it.
 */
export async function migrateFileStore(dir: string, target: SqliteStore): Promise<MigrationCounts> {
  if (!existsSync(join(dir, 'journal.log'))) throw new Error(`${dir} holds no file store (no journal.log)`);
  const dump = FileStore.readDump({ dir });
  await target.importDump(dump);
  const moved = count(dump);
  const arrived = count(target.dump());
  for (const kind of Object.keys(moved) as (keyof MigrationCounts)[]) {
    if (arrived[kind] !== moved[kind]) throw new Error(`migration check failed: ${moved[kind]} ${kind} read, ${arrived[kind]} in ${target.path}`);
  }
  return moved;
}

/**
 * The file store an upgrade leaves next to a new SQLite database: the default layout of
 * earlier releases kept its journal in ./data, where the default database now is.
 */
export function journalBeside(dbPath: string): string | null {
  const dir = dirname(dbPath);
  return existsSync(join(dir, 'journal.log')) ? dir : null;
}
