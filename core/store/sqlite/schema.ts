import { readdirSync, readFileSync } from 'node:fs';
import type { Database } from 'better-sqlite3';
import { StoreDamagedError } from '../../internal-errors.js';

/**
 * The schema as numbered migrations: `migrations/NNNN-name.sql` beside this module (the build
 * copies them into dist/ at the same place). A database records the number of the last one it
 * took in `PRAGMA user_version`, and Keygate's mark in `PRAGMA application_id`.
 */
const MIGRATIONS = new URL('./migrations/', import.meta.url);

/** "KGAT": marks a database as Keygate's, so that another program's file is not taken for one. */
export const APPLICATION_ID = 0x4b474154;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every migration shipped, in order; their numbers run 1, 2, 3… without a gap. */
export function migrations(): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(MIGRATIONS).sort()) {
    const m = /^(\d{4})-[a-z0-9-]+\.sql$/.exec(file);
    if (!m) continue;
    out.push({ version: Number(m[1]), name: file, sql: readFileSync(new URL(file, MIGRATIONS), 'utf8') });
  }
  out.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${m.name} is out of sequence (expected number ${i + 1})`);
  });
  return out;
}

/** The schema version this Keygate writes. */
export const SCHEMA_VERSION = migrations().length;

/**
 * Brings the database at `path` to SCHEMA_VERSION: every migration it lacks, in order, in one
 * transaction (all of them or none). Refuses a database of a newer schema, and a file that some
 * other program made. Answers the version found before.
 */
export function migrate(db: Database, path: string): number {
  const run = db.transaction(() => {
    const found = db.pragma('user_version', { simple: true }) as number;
    const app = db.pragma('application_id', { simple: true }) as number;
    if (found > SCHEMA_VERSION) {
      throw new StoreDamagedError(
        `${path} has schema version ${found}, newer than this Keygate knows (${SCHEMA_VERSION}): ` +
          'it was written by a newer release. Run that release, or restore a backup taken before the upgrade (docs/operations.md, "Backups").',
      );
    }
    if (app !== APPLICATION_ID) {
      const tables = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as { n: number };
      if (app !== 0 || tables.n > 0) {
        throw new StoreDamagedError(`${path} is a SQLite database of another program, not Keygate's; point store.path at a new file`);
      }
      db.pragma(`application_id = ${APPLICATION_ID}`);
    }
    for (const m of migrations()) if (m.version > found) db.exec(m.sql);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    return found;
  });
  return run.immediate();
}
