import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { migrateFileStore } from '../core/store/migrate.js';
import { backup, inspect } from '../core/store/sqlite/maintenance.js';
import { SqliteStore } from '../core/store/sqlite-store.js';
import type { Config } from '../config/schema.js';

// The CLI's store commands (docs/operations.md, "Backups" and "Moving from the file store").
// Each prints what it did to stdout, or one line saying what went wrong to stderr, and answers
// the exit code: 0 done, 1 failed, 2 used wrongly.

export const MIGRATE_USAGE = 'usage: keygate migrate --from file:DIR --to sqlite:FILE\n';
export const BACKUP_USAGE = 'usage: keygate backup [--config FILE] --to FILE\n';

const fail = (message: string, code = 1): number => {
  process.stderr.write(`keygate: ${message}\n`);
  return code;
};

/** `keygate migrate --from file:./data --to sqlite:./data/keygate.db` */
export async function migrateCommand(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({ args: argv, options: { from: { type: 'string' }, to: { type: 'string' } }, strict: true }).values;
  } catch (err) {
    return fail(`${(err as Error).message}\n${MIGRATE_USAGE}`, 2);
  }
  const from = /^file:(.+)$/.exec(args.from ?? '');
  const to = /^sqlite:(.+)$/.exec(args.to ?? '');
  if (!from || !to) return fail(`--from must be file:DIR and --to sqlite:FILE\n${MIGRATE_USAGE}`, 2);
  const dir = resolve(from[1]!);
  const path = resolve(to[1]!);
  if (!existsSync(resolve(dir, 'journal.log'))) return fail(`${dir} holds no file store (no journal.log)`);
  let store: SqliteStore;
  try {
    store = await SqliteStore.open({ path });
  } catch (err) {
    return fail((err as Error).message);
  }
  try {
    const moved = await migrateFileStore(dir, store);
    process.stdout.write(
      `migrated ${dir} to ${path}: ${moved.keys} keys, ${moved.apps} applications, ${moved.audit} audit entries, ` +
        `${moved.events} key events, ${moved.buckets} usage buckets, ${moved.errors} error samples, ${moved.batches} usage batch ids, ` +
        `${moved.alerts} alerts, ${moved.deliveries} alert deliveries\n` +
        `the file store is unchanged; set store: { type: sqlite, path: ${to[1]} } to use the new database\n`,
    );
    return 0;
  } catch (err) {
    return fail((err as Error).message);
  } finally {
    await store.close();
  }
}

/** `keygate backup --to FILE`: a consistent copy of the configured SQLite database, safe while Keygate runs. */
export function backupCommand(config: Config, to: string): number {
  if (config.store.type !== 'sqlite') return fail(`backup copies the sqlite store; this configuration's store is ${config.store.type}`);
  const dest = resolve(to);
  try {
    const copy = backup(resolve(config.store.path), dest);
    process.stdout.write(`backup written to ${dest}: ${copy.keys} keys, schema version ${copy.schema}, ${copy.bytes} bytes, integrity ok\n`);
    return 0;
  } catch (err) {
    return fail((err as Error).message);
  }
}

/** `keygate --check --store`: SQLite's integrity check of the configured database, read-only. */
export function checkStore(config: Config): number {
  if (config.store.type !== 'sqlite') {
    return fail(`--store checks the sqlite store; this configuration's store is ${config.store.type}`);
  }
  const path = resolve(config.store.path);
  try {
    const found = inspect(path);
    if (found.integrity.length === 1 && found.integrity[0] === 'ok') {
      process.stdout.write(`${path}: integrity ok (schema version ${found.schema}, ${found.keys} keys)\n`);
      return 0;
    }
    for (const line of found.integrity) process.stderr.write(`${path}: ${line}\n`);
    return fail(`${path}: integrity check failed; restore the latest backup (docs/operations.md, "Backups")`);
  } catch (err) {
    return fail((err as Error).message);
  }
}
