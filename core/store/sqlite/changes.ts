import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Database, Statement } from 'better-sqlite3';
import { unsynced, write } from './connection.js';

/** How long a membership is held without renewal, and how often it is renewed, in ms. */
const MEMBERSHIP_TTL_MS = 5_000;
const MEMBERSHIP_RENEW_MS = 1_000;
/** Changes read in one poll at most; a poll that finds more drops every cached key instead. */
const POLL_PAGE = 1_000;
/** Changes are kept this long for processes that poll late; one that misses some drops everything. */
const CHANGES_KEPT_MS = 60_000;

export interface ChangeFeedOptions {
  path: string;
  /** How often a process that caches keys looks for other processes' changes. */
  pollMs: number;
  /** How long a writer waits for every caching process to confirm a change (as Redis's invalidation_wait_ms). */
  waitMs: number;
  /** How long a write waits for the lock. */
  lockWaitMs: number;
  warn: (msg: string, fields: Record<string, unknown>) => void;
}

/**
 * Cache invalidation between the processes that share one SQLite database (gateway workers and
 * the admin plane), with the guarantee the Redis store gives (core/store/redis/invalidation.ts):
 * when a write that changed a key answers, every process already refuses the old record.
 *
 * A commit appends the lookup hashes it changed to `changes`, in its own transaction. Each
 * process that caches keys is a member (a row of `members`, renewed while it runs); it polls
 * `PRAGMA data_version` every `pollMs` (a counter in shared memory: no disk read), reads the new
 * changes when the database moved, tells its listeners, and records in its row the last change
 * it applied. The writer then waits (bounded by `waitMs`) until no live member lags behind its
 * commit. Changes are kept for a minute; a member that finds some missing drops every cached key.
 */
export class ChangeFeed {
  readonly #db: Database;
  readonly #options: ChangeFeedOptions;
  readonly #instance = randomUUID();
  readonly #emitter = new EventEmitter();
  readonly #dataVersion: Statement;
  readonly #since: Statement;
  readonly #append: Statement;
  readonly #lagging: Statement;
  readonly #newest: Statement;
  /** The last change this process has applied. */
  #seen: number;
  #version = -1;
  #poll: NodeJS.Timeout | undefined;
  #membership: NodeJS.Timeout | undefined;
  #appended = 0;
  /** Since a poll failed, until one succeeds: the failure is told once. */
  #failing = false;
  #closed = false;

  constructor(db: Database, options: ChangeFeedOptions) {
    this.#db = db;
    this.#options = options;
    this.#emitter.setMaxListeners(0);
    this.#dataVersion = db.prepare('PRAGMA data_version').pluck();
    this.#since = db.prepare(`SELECT seq, hash FROM changes WHERE seq > ? ORDER BY seq LIMIT ${POLL_PAGE}`).raw();
    this.#newest = db.prepare('SELECT coalesce(max(seq), 0) FROM changes').pluck();
    this.#append = db.prepare('INSERT INTO changes (hash, at) VALUES (?, ?)');
    this.#lagging = db.prepare('SELECT pid, expires FROM members WHERE instance != ? AND expires > ? AND seq < ?').raw();
    this.#seen = (db.prepare('SELECT coalesce(max(seq), 0) FROM changes').pluck().get() as number) ?? 0;
  }

  /** Inside a commit's transaction: records the changed hashes; answers the last change's number (0 for none). */
  append(hashes: readonly string[], now: number): number {
    let seq = 0;
    for (const h of hashes) seq = Number(this.#append.run(h, now).lastInsertRowid);
    if (hashes.length > 0 && (this.#appended += hashes.length) >= 256) {
      this.#appended = 0;
      this.#db.prepare('DELETE FROM changes WHERE at < ?').run(now - CHANGES_KEPT_MS);
    }
    return seq;
  }

  /**
   * After a commit: tells this process's listeners at once, then waits until every other
   * caching process has applied the change too (or `waitMs` has passed).
   */
  async published(hashes: readonly string[], seq: number): Promise<void> {
    if (hashes.length === 0) return;
    for (const h of hashes) this.#emitter.emit('key', h);
    // Nothing unseen before these: this process is up to date without reading them back.
    if (this.#seen === seq - hashes.length) this.#seen = seq;
    await this.#awaitAcks(seq);
  }

  async #awaitAcks(seq: number): Promise<void> {
    if (this.#options.waitMs <= 0) return;
    const until = performance.now() + this.#options.waitMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 8)) {
      if (this.#closed) return;
      const now = Date.now();
      // A member whose renewal lapsed (another program held the write lock longer than the
      // lease) still caches keys while its process lives: every member is on this machine, so
      // its pid tells. Rows of processes gone go when they are a minute old.
      const rows = this.#lagging.all(this.#instance, now - CHANGES_KEPT_MS, seq) as [number, number][];
      const lagging = rows.filter(([pid, expires]) => expires > now || processAlive(pid)).length;
      if (lagging === 0) return;
      if (performance.now() >= until) {
        this.#options.warn('gateway processes did not confirm a key change in time', { lagging, wait_ms: this.#options.waitMs });
        return;
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  onKeyChange(listener: (hash: string | null) => void): () => void {
    this.#join();
    this.#emitter.on('key', listener);
    return () => this.#emitter.off('key', listener);
  }

  /** Tells every listener to drop every cached key. */
  dropAll(): void {
    if (!this.#closed) this.#emitter.emit('key', null);
  }

  /** Becomes a member (a process that caches keys and confirms changes) and starts polling. */
  #join(): void {
    if (this.#membership !== undefined || this.#closed) return;
    this.#renew();
    // Changes committed since the store opened: read now, whatever data_version says.
    this.#version = -1;
    this.poll();
    this.#membership = setInterval(() => this.#renew(), MEMBERSHIP_RENEW_MS);
    this.#membership.unref();
    this.#poll = setInterval(() => this.poll(), this.#options.pollMs);
    this.#poll.unref();
  }

  /**
   * Reads and applies other processes' changes, if the database moved since the last look. It
   * runs on a timer, so a read that fails (a damaged page, an I/O error) is a warning, not an
   * exception: this process drops its cached keys (it can no longer hear of changes; writers
   * wait for it meanwhile and warn) and tries again at the next poll.
   */
  poll(): void {
    if (this.#closed) return;
    try {
      this.#pollOnce();
      this.#failing = false;
    } catch (err) {
      this.#version = -1;
      if (this.#failing) return;
      this.#failing = true;
      this.#options.warn('cannot read key changes from the store; dropping cached keys', { err: (err as Error).message });
      this.#emitter.emit('key', null);
    }
  }

  #pollOnce(): void {
    const version = this.#dataVersion.get() as number;
    if (version === this.#version) return;
    this.#version = version;
    const rows = this.#since.all(this.#seen) as [number, string][];
    if (rows.length === 0) return;
    if (rows.length === POLL_PAGE) {
      // A large change (an application's keys suspended): dropping every cached key is cheaper
      // than reading it all, and it never stalls this process for long.
      this.#emitter.emit('key', null);
      this.#seen = this.#newest.get() as number;
    } else {
      // Numbers run without a gap unless changes were pruned before this process read them:
      // from the front (it polled too late), or from the middle (pruning goes by each writer's
      // clock, so a clock set back leaves newer changes older-looking than the ones before).
      if (rows[rows.length - 1]![0] - this.#seen !== rows.length) {
        this.#options.warn('missed key changes (polled too late); dropping cached keys', { seen: this.#seen, next: rows[0]![0] });
        this.#emitter.emit('key', null);
      } else {
        for (const [, hash] of rows) this.#emitter.emit('key', hash);
      }
      this.#seen = rows[rows.length - 1]![0];
    }
    this.#confirm();
  }

  /** Records in this member's row the last change applied. */
  #confirm(): void {
    const seen = this.#seen;
    void write(this.#db, this.#options.path, 'confirm', this.#options.lockWaitMs, () =>
      unsynced(this.#db, () => this.#db.prepare('UPDATE members SET seq = max(seq, ?) WHERE instance = ?').run(seen, this.#instance)),
    ).catch(() => {});
  }

  #renew(): void {
    const now = Date.now();
    const seen = this.#seen;
    void write(this.#db, this.#options.path, 'membership', this.#options.lockWaitMs, () =>
      unsynced(this.#db, () => {
        this.#db
          .prepare(
            `INSERT INTO members (instance, pid, seq, expires) VALUES (?, ?, ?, ?)
             ON CONFLICT (instance) DO UPDATE SET seq = max(seq, excluded.seq), expires = excluded.expires`,
          )
          .run(this.#instance, process.pid, seen, now + MEMBERSHIP_TTL_MS);
        this.#db.prepare('DELETE FROM members WHERE expires < ?').run(now - CHANGES_KEPT_MS);
      }),
    ).catch(() => {});
  }

  /** Leaves the members, so that no writer waits for this process. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#poll);
    clearInterval(this.#membership);
    if (this.#membership !== undefined) {
      try {
        this.#db.prepare('DELETE FROM members WHERE instance = ?').run(this.#instance);
      } catch {
        // the row expires by itself
      }
    }
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
