import { existsSync, rmSync, statSync } from 'node:fs';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { StoreDamagedError } from '../../internal-errors.js';
import { createPrivate, storeError } from './connection.js';
import { APPLICATION_ID, SCHEMA_VERSION } from './schema.js';

// What an operator does to a database file by hand (`keygate --check --store`, `keygate backup`,
// docs/operations.md "Backups"): read-only, so that it is safe while Keygate runs on the file.

export interface Inspection {
  schema: number;
  keys: number;
  /** SQLite's integrity_check: ['ok'], or what is wrong, one problem a line. */
  integrity: string[];
}

/** Opens `path` read-only; refuses a file that is missing, not a database, or not Keygate's. */
function openReadOnly(path: string): Database {
  if (!existsSync(path)) throw new StoreDamagedError(`${path}: no such database`);
  let db: Database | undefined;
  try {
    db = new BetterSqlite3(path, { readonly: true, fileMustExist: true, timeout: 5_000 });
    const app = db.pragma('application_id', { simple: true }) as number;
    const version = db.pragma('user_version', { simple: true }) as number;
    if (app !== APPLICATION_ID) throw new StoreDamagedError(`${path} is not a Keygate database (application_id ${app})`);
    if (version > SCHEMA_VERSION) {
      throw new StoreDamagedError(`${path} has schema version ${version}, newer than this Keygate knows (${SCHEMA_VERSION})`);
    }
    return db;
  } catch (err) {
    db?.close();
    throw storeError(err, path, 'open');
  }
}

/** The database's own check of every page and index, with what it holds. */
export function inspect(path: string): Inspection {
  const db = openReadOnly(path);
  try {
    return {
      schema: db.pragma('user_version', { simple: true }) as number,
      keys: db.prepare('SELECT count(*) FROM keys').pluck().get() as number,
      integrity: db.prepare('PRAGMA integrity_check').pluck().all() as string[],
    };
  } catch (err) {
    throw storeError(err, path, 'integrity check');
  } finally {
    db.close();
  }
}

/**
 * A consistent copy of the database at `dest` (which must not exist), taken in one read
 * transaction while other processes go on writing (VACUUM INTO: the copy is also compacted);
 * then checked. Answers what the copy holds.
 */
export function backup(path: string, dest: string): Inspection & { bytes: number } {
  if (existsSync(dest)) throw new Error(`${dest} already exists; a backup never overwrites a file`);
  const db = openReadOnly(path);
  let created = false;
  try {
    // Made empty and private (0600) first, as the database is: VACUUM INTO fills an empty file.
    createPrivate(dest);
    created = true;
    db.prepare('VACUUM INTO ?').run(dest);
  } catch (err) {
    if (created) rmSync(dest, { force: true });
    // The database was opened and read: a file that cannot be made is the destination's.
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_CANTOPEN' || code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR') {
      throw new Error(`cannot write the backup to ${dest}: ${(err as Error).message}; check that its directory exists and is writable`, { cause: err });
    }
    throw storeError(err, path, 'backup');
  } finally {
    db.close();
  }
  const copy = inspect(dest);
  if (copy.integrity.length !== 1 || copy.integrity[0] !== 'ok') throw new Error(`the backup at ${dest} failed its integrity check: ${copy.integrity.join('; ')}`);
  return { ...copy, bytes: statSync(dest).size };
}
