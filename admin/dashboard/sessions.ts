import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../core/clock.js';
import type { Principal } from '../auth.js';

/**
 * Dashboard sessions, held in this process's memory (docs/dashboard.md, "Sessions"): a restart
 * signs everyone out, and with several admin processes behind one address a session works only
 * on the process that made it.
 *
 * A session id is 32 random bytes; the map is keyed by its SHA-256, so the ids themselves are
 * kept nowhere but in the browsers' cookies. Each session carries the powers of an admin token,
 * a Principal (role and tenant), and a CSRF token that every mutation must echo.
 */
export interface Session {
  readonly principal: Principal;
  readonly email: string | null;
  /** How the user signed in: which secret sudo asks for again. */
  readonly via: 'password' | 'token';
  readonly csrf: string;
  readonly expiresAt: number;
  sudoUntil: number;
}

/** Sessions beyond this are refused a new one until some expire: memory stays bounded. */
const MAX_SESSIONS = 10_000;

const digest = (s: string) => hash('sha256', s, 'buffer');

export class Sessions {
  readonly #byDigest = new Map<string, Session>();
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #sudoMs: number;

  constructor(clock: Clock, ttlMinutes: number, sudoMinutes: number) {
    this.#clock = clock;
    this.#ttlMs = ttlMinutes * 60_000;
    this.#sudoMs = sudoMinutes * 60_000;
  }

  get ttlSeconds(): number {
    return this.#ttlMs / 1000;
  }

  /** A new session; its id (for the cookie) is returned once and not kept. Null when full. */
  create(principal: Principal, email: string | null, via: Session['via']): { id: string; session: Session } | null {
    const now = this.#clock.now();
    if (this.#byDigest.size >= MAX_SESSIONS) this.#sweep(now);
    if (this.#byDigest.size >= MAX_SESSIONS) return null;
    const id = randomBytes(32).toString('base64url');
    // A fresh sign-in counts as having just entered the password.
    const session: Session = { principal, email, via, csrf: randomBytes(32).toString('base64url'), expiresAt: now + this.#ttlMs, sudoUntil: now + this.#sudoMs };
    this.#byDigest.set(digest(id).toString('base64'), session);
    return { id, session };
  }

  /** The live session of this id, or null (unknown, malformed or expired). */
  get(id: string): Session | null {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
    const key = digest(id).toString('base64');
    const s = this.#byDigest.get(key);
    if (s === undefined) return null;
    if (this.#clock.now() >= s.expiresAt) {
      this.#byDigest.delete(key);
      return null;
    }
    return s;
  }

  delete(id: string): void {
    if (/^[A-Za-z0-9_-]{43}$/.test(id)) this.#byDigest.delete(digest(id).toString('base64'));
  }

  /** Whether `given` is this session's CSRF token; compared in constant time. */
  csrfMatches(s: Session, given: string | undefined): boolean {
    return given !== undefined && timingSafeEqual(digest(given), digest(s.csrf));
  }

  inSudo(s: Session): boolean {
    return this.#clock.now() < s.sudoUntil;
  }

  grantSudo(s: Session): void {
    s.sudoUntil = Math.min(this.#clock.now() + this.#sudoMs, s.expiresAt);
  }

  #sweep(now: number): void {
    for (const [k, s] of this.#byDigest) if (now >= s.expiresAt) this.#byDigest.delete(k);
  }
}

/**
 * Failed sign-ins (and failed sudo) per client address in a fixed 15-minute window; once an
 * address reaches the limit, sign-in from it is refused until the window ends, even with the
 * right password, so guessing costs the attacker the window. An attempt counts as a failure
 * from the moment it starts and is refunded when it succeeds, so that many attempts sent at
 * once cannot all pass the check before the first of them has failed.
 */
export class SignInThrottle {
  static readonly WINDOW_MS = 15 * 60_000;
  /** Addresses tracked at most; the oldest window is dropped first. */
  static readonly MAX_ADDRESSES = 100_000;
  readonly #failures = new Map<string, { count: number; resetAt: number }>();
  readonly #clock: Clock;
  readonly #max: number;

  constructor(clock: Clock, max: number) {
    this.#clock = clock;
    this.#max = max;
  }

  /** Seconds until `ip` may try again, or 0 when it may now. */
  blockedFor(ip: string): number {
    const f = this.#failures.get(ip);
    if (f === undefined) return 0;
    const now = this.#clock.now();
    if (now >= f.resetAt) {
      this.#failures.delete(ip);
      return 0;
    }
    return f.count >= this.#max ? Math.ceil((f.resetAt - now) / 1000) : 0;
  }

  /** Takes back one failure counted by `fail` when the attempt it stood for succeeded. */
  refund(ip: string): void {
    const f = this.#failures.get(ip);
    if (f !== undefined && f.count > 0) f.count--;
  }

  fail(ip: string): void {
    const now = this.#clock.now();
    const f = this.#failures.get(ip);
    if (f !== undefined && now < f.resetAt) {
      f.count++;
      return;
    }
    this.#failures.delete(ip);
    if (this.#failures.size >= SignInThrottle.MAX_ADDRESSES) this.#failures.delete(this.#failures.keys().next().value!);
    this.#failures.set(ip, { count: 1, resetAt: now + SignInThrottle.WINDOW_MS });
  }
}
