import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreUnavailableError } from '../../internal-errors.js';
import type { SharedBuckets } from '../../shared-limiter.js';
import { createPrivate } from './connection.js';

export interface SqliteBucketsOptions {
  /** Milliseconds since the epoch: the machine's clock, which every process on it shares. */
  now?: () => number;
  /** How long a take retries a database another process holds before it rejects. */
  busyMs?: number;
  /** How often buckets that are full again are deleted. */
  pruneIntervalMs?: number;
}

interface Row {
  tokens: number;
  last: number;
}

/** Buckets deleted at once by a prune, so that it holds the write lock only briefly. */
const PRUNE_BATCH = 1_000;
/** Opening waits this long for another worker creating the same file (only at start-up). */
const OPEN_WAIT_MS = 5_000;

/**
 * The shared rate limiter's buckets in a SQLite file of their own, for the gateway workers of
 * one machine (docs/architecture.md, Rate limits). A take is one short write transaction with
 * the arithmetic of the Redis script (core/store/redis/lua/take.lua), on the machine's clock.
 *
 * The file is a cache of recent spending, not a record: `synchronous=OFF`, as buckets need not
 * survive a power loss. better-sqlite3 is synchronous and SQLite's busy handler sleeps the
 * whole thread, so the busy timeout is 0: a take that finds the database locked retries on
 * later turns of the event loop, for `busyMs` in all, then rejects, and the limiter falls back
 * to each policy's `onStoreFailure`.
 */
export class SqliteBuckets implements SharedBuckets {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #take: (id: string, capacity: number, perMs: number, want: number) => [number, number];
  readonly #prune: Database.Statement<[number, number]>;
  readonly #now: () => number;
  readonly #busyMs: number;
  readonly #pruneTimer: NodeJS.Timeout;

  constructor(path: string, options: SqliteBucketsOptions = {}) {
    this.path = path;
    this.#now = options.now ?? Date.now;
    this.#busyMs = options.busyMs ?? 250;
    let db: Database.Database | undefined;
    try {
      try {
        createPrivate(path);
      } catch {
        // a path that cannot be created is reported by the open below
      }
      db = new Database(path, { timeout: OPEN_WAIT_MS });
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, not wal`);
      db.pragma('synchronous = OFF');
      // `expires`: when the bucket would be full again, as good as absent, so it can go.
      db.exec(`CREATE TABLE IF NOT EXISTS buckets (
        id TEXT PRIMARY KEY NOT NULL,
        tokens REAL NOT NULL,
        last INTEGER NOT NULL,
        expires INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS buckets_expires ON buckets (expires);`);
      db.pragma('busy_timeout = 0');
    } catch (err) {
      db?.close();
      throw new StoreUnavailableError(`cannot open the rate-limit buckets database ${path}: ${reason(err, path)}`, { cause: err });
    }
    this.#db = db;
    const read = db.prepare<[string], Row>('SELECT tokens, last FROM buckets WHERE id = ?');
    const write = db.prepare<[string, number, number, number]>(
      'INSERT INTO buckets (id, tokens, last, expires) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET tokens = excluded.tokens, last = excluded.last, expires = excluded.expires',
    );
    const take = db.transaction((id: string, cap: number, perMs: number, want: number): [number, number] => {
      // As lua/take.lua, line by line.
      const now = this.#now();
      const row = read.get(id);
      let tokens = cap;
      let last = now;
      if (row !== undefined) {
        tokens = row.tokens;
        last = row.last;
      }
      if (now > last) tokens = Math.min(cap, tokens + (now - last) * perMs);
      if (tokens > cap) tokens = cap;
      let granted = 0;
      if (tokens >= 1) {
        granted = Math.min(want, Math.floor(tokens));
        tokens = tokens - granted;
      }
      write.run(id, tokens, now, now + Math.ceil((cap - tokens) / perMs) + 1000);
      return [granted, tokens];
    });
    this.#take = take.immediate;
    this.#prune = db.prepare('DELETE FROM buckets WHERE id IN (SELECT id FROM buckets WHERE expires <= ? LIMIT ?)');
    this.#pruneTimer = setInterval(() => this.#pruneSome(), options.pruneIntervalMs ?? 60_000);
    this.#pruneTimer.unref();
  }

  take(id: string, capacity: number, perMs: number, want: number): Promise<[number, number]> {
    try {
      return Promise.resolve(this.#take(id, capacity, perMs, want));
    } catch (err) {
      if (!busy(err)) return Promise.reject(err);
    }
    return this.#retry(id, capacity, perMs, want);
  }

  /** Takes again on later turns of the event loop (never sleeping in it) until `busyMs` is over. */
  #retry(id: string, capacity: number, perMs: number, want: number): Promise<[number, number]> {
    const deadline = performance.now() + this.#busyMs;
    return new Promise((resolve, reject) => {
      let attempt = 0;
      const again = (): void => {
        try {
          resolve(this.#take(id, capacity, perMs, want));
          return;
        } catch (err) {
          if (!busy(err)) return reject(err);
        }
        const left = deadline - performance.now();
        if (left <= 0) return reject(new StoreUnavailableError(`the rate-limit buckets database ${this.path} stayed locked for ${this.#busyMs} ms`));
        // A take holds the lock for some 30 µs: try again on the next turns of the loop for a
        // while, then back off (1, 2 … 32 ms) so that a stuck lock costs little.
        if (++attempt <= 10) setImmediate(again);
        else setTimeout(again, Math.min(left, 2 ** Math.min(attempt - 11, 5)));
      };
      setImmediate(again);
    });
  }

  /** Deletes buckets that are full again, a batch a turn; a locked database waits for the next round. */
  #pruneSome(): void {
    try {
      if (this.#prune.run(this.#now(), PRUNE_BATCH).changes === PRUNE_BATCH) setImmediate(() => this.#pruneSome());
    } catch {
      // Locked, or closed meanwhile: the next round prunes.
    }
  }

  close(): void {
    clearInterval(this.#pruneTimer);
    this.#db.close();
  }
}

function busy(err: unknown): boolean {
  return typeof (err as { code?: unknown })?.code === 'string' && (err as { code: string }).code.startsWith('SQLITE_BUSY');
}

function reason(err: unknown, path: string): string {
  const message = err instanceof Error ? err.message : String(err);
  if (/directory does not exist/.test(message)) return `its directory ${dirname(path)} does not exist`;
  if ((err as { code?: unknown })?.code === 'SQLITE_NOTADB') return 'the file is not a SQLite database';
  return message;
}
