import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { StoreDamagedError, StoreLockedError, StoreUnavailableError } from '../../internal-errors.js';

/**
 * Opening the SQLite database and writing to it from an event loop.
 *
 * better-sqlite3 is synchronous, and SQLite's own busy handler waits by sleeping the thread, so
 * a process that met another's write lock would stall everything it serves. Connections are
 * therefore opened with no busy timeout: a write that finds the lock taken fails at once with
 * SQLITE_BUSY, and `write` tries it again after a short timer, the event loop free meanwhile.
 * In WAL mode readers never wait for writers, so only writes do this.
 */

const BUSY = new Set(['SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_BUSY_RECOVERY', 'SQLITE_LOCKED']);
const DAMAGED = new Set(['SQLITE_NOTADB', 'SQLITE_CORRUPT', 'SQLITE_CORRUPT_INDEX', 'SQLITE_CORRUPT_SEQUENCE', 'SQLITE_CORRUPT_VTAB']);

export const isBusy = (err: unknown): boolean => BUSY.has((err as { code?: string }).code ?? '');

/** Opens (creating it and its directory when missing) the database at `path`, in WAL mode. */
export async function openDatabase(path: string, lockWaitMs: number): Promise<Database> {
  let db: Database;
  try {
    mkdirSync(dirname(path), { recursive: true });
    createPrivate(path);
    db = new BetterSqlite3(path, { timeout: 0 });
  } catch (err) {
    throw storeError(err, path, 'open');
  }
  try {
    // Switching to WAL takes the write lock once; a database already in WAL answers at once.
    await write(db, path, 'open', lockWaitMs, () => db.pragma('journal_mode = WAL'));
    // Every acknowledged write is on disk, as the file store's fdatasync made it (a crash of
    // the process loses nothing even without this; a power cut loses nothing with it).
    db.pragma('synchronous = FULL');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Creates `path` empty, readable and writable by this user only (0600), unless it exists.
 * SQLite gives the -wal and -shm files it makes beside it the same permissions: key hashes,
 * audit and usage are nobody else's to read.
 */
export function createPrivate(path: string): void {
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * Runs `fn` (a write: a transaction or one statement), trying again while another process holds
 * the write lock, for at most `waitMs`. Failures become the store's errors (storeError).
 */
export async function write<T>(db: Database, path: string, what: string, waitMs: number, fn: () => T): Promise<T> {
  const until = performance.now() + waitMs;
  for (let delay = 0; ; delay = Math.min(delay === 0 ? 1 : delay * 2, 16)) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || !db.open) throw storeError(err, path, what);
      if (performance.now() >= until) throw storeError(err, path, what, waitMs);
    }
    await new Promise((r) => (delay === 0 ? setImmediate(r) : setTimeout(r, delay)));
  }
}

/**
 * A write whose loss in a power cut costs nothing (a cache-invalidation acknowledgement, a
 * heartbeat): committed without waiting for the disk. The connection's next write syncs it.
 */
export function unsynced<T>(db: Database, fn: () => T): T {
  db.pragma('synchronous = OFF');
  try {
    return fn();
  } finally {
    db.pragma('synchronous = FULL');
  }
}

/** SQLite's failure as the store's error: locked, damaged, or unavailable (disk full, I/O). */
export function storeError(err: unknown, path: string, what: string, waitedMs?: number): Error {
  const code = (err as { code?: string }).code ?? '';
  const message = (err as Error).message;
  // Keygate's own errors (a version conflict, a bad cursor, a damaged schema) pass unchanged.
  if (code.startsWith('KEYGATE_')) return err as Error;
  if (BUSY.has(code)) {
    const text =
      `${path} is locked by another process (${what} waited ${waitedMs ?? 0} ms): ` +
      'a long transaction (an sqlite3 shell, a backup tool) holds it; end it and Keygate goes on';
    // At start-up the process stops with this; later, the request that met it answers 503.
    return what === 'open' ? new StoreLockedError(text, { cause: err }) : new StoreUnavailableError(text, { cause: err });
  }
  if (DAMAGED.has(code)) {
    return new StoreDamagedError(
      `${path} is not a usable SQLite database (${message}): restore it from a backup, or move it aside to start empty ` +
        '(docs/operations.md, "Backups")',
      { cause: err },
    );
  }
  if (code === 'SQLITE_CANTOPEN' || code === 'EACCES' || code === 'ENOTDIR' || code === 'EEXIST') {
    return new StoreUnavailableError(`cannot open ${path}: ${message}; check that store.path names a file in a writable directory`, { cause: err });
  }
  return new StoreUnavailableError(`sqlite ${what} failed on ${path}: ${message}`, { cause: err });
}
