import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { KeyRecord } from '../record.js';
import { queryKeys } from './query.js';
import { StoreUnavailableError, VersionConflictError, type KeyPage, type KeyQuery, type Store } from './store.js';

export class StoreLockedError extends Error {
  readonly code = 'KEYGATE_STORE_LOCKED';
}

export interface FileStoreOptions {
  dir: string;
  /** Told about skipped torn or corrupt journal lines on open. */
  warn?: (msg: string, fields: Record<string, unknown>) => void;
}

interface Entry {
  t: 'key';
  v: KeyRecord;
}

const JOURNAL = 'journal.log';
const LOCK = 'LOCK';
/** Lock files this process holds, so that opening one directory twice in-process is refused too. */
const heldLocks = new Set<string>();

/**
 * The embedded store: every record in memory, every write appended to a journal and
 * fdatasync'ed before it is acknowledged. Each journal line is `crc32hex json`, so a line torn
 * by a crash fails its checksum and is skipped (and cut off) when the store next opens.
 * One process owns a directory at a time through a LOCK file holding its pid; a lock whose
 * process is gone is taken over.
 */
export class FileStore implements Store {
  readonly kind = 'file';
  readonly #dir: string;
  readonly #byId = new Map<string, KeyRecord>();
  readonly #byHash = new Map<string, KeyRecord>();
  readonly #events = new EventEmitter();
  #fh: FileHandle | null = null;
  /** Journal length after the last acknowledged write: a failed append is cut back to it. */
  #offset = 0;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(dir: string) {
    this.#dir = dir;
    this.#events.setMaxListeners(0);
  }

  static async open(options: FileStoreOptions): Promise<FileStore> {
    mkdirSync(options.dir, { recursive: true });
    // One spelling per directory, so that a relative and an absolute path share one lock.
    const dir = realpathSync(options.dir);
    const store = new FileStore(dir);
    acquireLock(join(dir, LOCK));
    try {
      store.#replay(options.warn ?? (() => {}));
      const path = join(dir, JOURNAL);
      const created = !existsSync(path);
      store.#fh = await open(path, 'a');
      store.#offset = (await store.#fh.stat()).size;
      if (created) syncDir(dir);
    } catch (err) {
      releaseLock(join(dir, LOCK));
      throw err;
    }
    return store;
  }

  #replay(warn: NonNullable<FileStoreOptions['warn']>): void {
    const path = join(this.#dir, JOURNAL);
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let offset = 0;
    let lines = 0;
    let skipped = 0;
    while (offset < buf.length) {
      const nl = buf.indexOf(10, offset);
      const end = nl === -1 ? buf.length : nl;
      const entry = nl === -1 ? null : decodeLine(buf.subarray(offset, end));
      if (entry) {
        this.#apply(entry.v);
        lines++;
      } else {
        skipped++;
        warn('skipped a torn or corrupt journal line', { path, offset, bytes: end - offset });
      }
      offset = end + 1;
    }
    // Rewrite the journal when it was damaged or holds mostly superseded records, so that
    // appends start from clean, compact ground.
    if (skipped > 0 || (lines > 1000 && lines > 2 * this.#byId.size)) this.#compact(path);
  }

  #compact(path: string): void {
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      for (const rec of this.#byId.values()) writeSync(fd, encodeLine({ t: 'key', v: rec }));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    syncDir(this.#dir);
  }

  #apply(rec: KeyRecord): void {
    const prev = this.#byId.get(rec.id);
    if (prev && prev.hash !== rec.hash) this.#byHash.delete(prev.hash);
    this.#byId.set(rec.id, rec);
    this.#byHash.set(rec.hash, rec);
  }

  async getKeyByHash(hash: string): Promise<KeyRecord | null> {
    return this.#byHash.get(hash) ?? null;
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    return this.#byId.get(id) ?? null;
  }

  putKey(rec: KeyRecord, expectedVersion: number): Promise<KeyRecord> {
    // Writes are serialised so that the version check, the journal order and the in-memory
    // state agree.
    const run = this.#tail.then(async () => {
      if (this.#closed || !this.#fh) throw new StoreUnavailableError('the file store is closed');
      const current = this.#byId.get(rec.id);
      if ((current?.version ?? 0) !== expectedVersion) {
        throw new VersionConflictError(`key ${rec.id} changed since version ${expectedVersion}`);
      }
      if (!current && this.#byHash.has(rec.hash)) {
        throw new VersionConflictError('a key with this hash already exists');
      }
      const next: KeyRecord = { ...rec, version: expectedVersion + 1 };
      await this.#append(encodeLine({ t: 'key', v: next }));
      this.#apply(next);
      this.#events.emit('key', next.hash);
      if (current && current.hash !== next.hash) this.#events.emit('key', current.hash);
      return next;
    });
    this.#tail = run.catch(() => {});
    return run;
  }

  /**
   * Appends and syncs one line. When that fails part-way (disk full, I/O error) the torn bytes
   * are cut off, so the next acknowledged line is not glued to them and lost on replay; if
   * even that fails, the store refuses further writes rather than risk it.
   */
  async #append(line: string): Promise<void> {
    const fh = this.#fh!;
    const bytes = Buffer.from(line);
    try {
      await fh.write(bytes);
      await fh.datasync();
      this.#offset += bytes.length;
    } catch (err) {
      try {
        await fh.truncate(this.#offset);
      } catch {
        this.#closed = true;
      }
      throw new StoreUnavailableError('could not write the journal', { cause: err });
    }
  }

  async listKeys(query: KeyQuery): Promise<KeyPage> {
    return queryKeys(this.#byId.values(), query);
  }

  onKeyChange(listener: (hash: string) => void): () => void {
    this.#events.on('key', listener);
    return () => this.#events.off('key', listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#tail;
    await this.#fh?.close();
    this.#fh = null;
    releaseLock(join(this.#dir, LOCK));
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function encodeLine(entry: Entry): string {
  const json = JSON.stringify(entry);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

function decodeLine(line: Buffer): Entry | null {
  if (line.length < 10 || line[8] !== 32) return null;
  const json = line.subarray(9);
  if (crc32(json).toString(16).padStart(8, '0') !== line.subarray(0, 8).toString('latin1')) return null;
  try {
    const entry = JSON.parse(json.toString('utf8')) as Entry;
    return entry.t === 'key' && entry.v && typeof entry.v.id === 'string' ? entry : null;
  } catch {
    return null;
  }
}

function acquireLock(path: string): void {
  if (heldLocks.has(path)) {
    throw new StoreLockedError(`data directory ${join(path, '..')} is already open in this process`);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      fsyncSync(fd);
      closeSync(fd);
      heldLocks.add(path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number.parseInt(readLock(path), 10);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
      throw new StoreLockedError(
        `data directory ${join(path, '..')} is in use by process ${pid}; stop it or point store.path elsewhere`,
      );
    }
    // The owner is gone (killed, or an earlier run whose pid this process now has): take over.
    try {
      unlinkSync(path);
    } catch {
      // another process may have removed it first; the next attempt decides
    }
  }
  throw new StoreLockedError(`could not lock data directory ${join(path, '..')}`);
}

function readLock(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseLock(path: string): void {
  heldLocks.delete(path);
  try {
    if (readLock(path) === String(process.pid)) unlinkSync(path);
  } catch {
    // nothing to release
  }
}
