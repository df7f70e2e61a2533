/**
 * Quotas and credits (docs/quotas.md): a balance of units per key that requests spend and
 * that refills, in whole calendar periods (UTC), to a set amount. Both spellings of the
 * configuration compile to the same terms:
 *
 * - `quota: { limit, period, refill: true }`: `limit` units per period; each period starts
 *   with `limit` again.
 * - `credits: { remaining, refill: { amount, every } }`: a key starts with `remaining`; each
 *   period (when `refill` is given) starts with `amount`.
 *
 * The arithmetic is `applyQuota`, which the file and SQLite stores run inside one write and the
 * Redis script (core/store/redis/lua/quota.lua) repeats line by line.
 */

export type QuotaPeriod = 'hour' | 'day' | 'month';
export type LimitMode = 'enforce' | 'shadow';

/** A key's, plan's or policy's `quota` as configured and stored. */
export interface QuotaSpec {
  limit: number;
  /** Null only with `refill: false`: `limit` units once, never refilled. */
  period: QuotaPeriod | null;
  refill: boolean;
  mode: LimitMode;
  /** Response classes whose units are given back (`5xx`: the upstream failed). */
  refund_on: '5xx'[];
}

/** A key's, plan's or policy's `credits` as configured and stored. */
export interface CreditsSpec {
  remaining: number;
  refill: { amount: number; every: 'day' | 'month' } | null;
  mode: LimitMode;
  refund_on: '5xx'[];
}

/** What a store needs to apply a key's quota: plain data, the same for both spellings. */
export interface QuotaTerms {
  /** Units a key has before anything was spent or set. */
  readonly initial: number;
  /** The balance each refill sets; null: it never refills. */
  readonly refill: number | null;
  readonly every: QuotaPeriod | null;
}

/** A key's quota as the hot path reads it, compiled once per distinct configuration. */
export interface QuotaPolicy extends QuotaTerms {
  /** Counted and reported but never refused (`mode: shadow`). */
  readonly shadow: boolean;
  readonly refundOn5xx: boolean;
  /** The `q` of the quota's `RateLimit-Policy` item. */
  readonly quota: number;
  /** The name of its items in `RateLimit-Policy` and `RateLimit`: `quota` (a key's), `app-quota` (its application's). */
  readonly name: string;
  /** This quota's item in `RateLimit-Policy`, built once. */
  readonly header: string;
}

/** The most units a balance holds: what `quota.limit`, `credits.remaining` and a `set` may be (config `units`); an `add` stops there. */
export const MAX_BALANCE = 1e12;

/** What an operation does to a balance: spend (if enough is left), give back, set, add, or only read. */
export type QuotaOp = 'spend' | 'refund' | 'set' | 'add' | 'read';

/** A balance as stored: units left and the start of the period they belong to. */
export interface QuotaState {
  balance: number;
  period: number;
}

export interface QuotaAnswer {
  /** False only for a spend refused: fewer units left than asked. */
  ok: boolean;
  /** Units left after the operation. */
  remaining: number;
  /** When the balance next refills (epoch ms); null when it never does. */
  resetAt: number | null;
}

const HOUR = 3_600_000;
const DAY = 86_400_000;

/** The start of the period holding `now` (UTC); 0 when there are no periods. */
export function periodStart(now: number, every: QuotaPeriod | null): number {
  if (every === null) return 0;
  if (every === 'hour') return now - (((now % HOUR) + HOUR) % HOUR);
  if (every === 'day') return now - (((now % DAY) + DAY) % DAY);
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** The start of the period after the one starting at `start`. */
export function nextPeriod(start: number, every: QuotaPeriod): number {
  if (every === 'hour') return start + HOUR;
  if (every === 'day') return start + DAY;
  const d = new Date(start);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * One operation on a stored balance (null: none stored yet), `start` being the start of the
 * current period (periodStart of the operation's time). Answers the state to store (null:
 * nothing changed) and the answer. A refund gives units back only within the period they were
 * spent in (the refund's `start` is that of the spending request), so a refill in between is not
 * topped up by requests of the period before.
 */
export function applyQuota(
  stored: QuotaState | null,
  terms: QuotaTerms,
  op: QuotaOp,
  amount: number,
  start: number,
): { state: QuotaState | null; ok: boolean; remaining: number } {
  let balance = stored === null ? terms.initial : stored.balance;
  let period = stored === null ? start : stored.period;
  let changed = false;
  if (terms.refill !== null && start > period) {
    balance = terms.refill;
    period = start;
    changed = true;
  }
  let ok = true;
  if (op === 'spend') {
    if (balance >= amount) {
      balance -= amount;
      changed = changed || amount !== 0;
    } else ok = false;
  } else if (op === 'refund') {
    if (stored === null || period !== start) return { state: null, ok: true, remaining: balance };
    balance += amount;
    changed = true;
  } else if (op === 'set') {
    balance = amount;
    changed = true;
  } else if (op === 'add') {
    // A balance never passes what a quota may be set to; a top-up beyond stops there.
    balance = Math.min(balance + amount, MAX_BALANCE);
    changed = true;
  }
  return { state: changed ? { balance, period } : null, ok, remaining: balance };
}

/** When a balance of these terms refills next, seen at period start `start`. */
export function quotaResetAt(terms: QuotaTerms, start: number): number | null {
  return terms.refill === null || terms.every === null ? null : nextPeriod(start, terms.every);
}

const PERIOD_SECONDS: Readonly<Record<QuotaPeriod, number>> = { hour: 3_600, day: 86_400, month: 2_592_000 };

/**
 * The terms and policy of a `quota` or `credits` configuration; null when there is neither.
 * `name` names its header items: a key's quota is `quota`, its application's `app-quota`.
 */
export function compileQuota(quota: QuotaSpec | null | undefined, credits: CreditsSpec | null | undefined, name = 'quota'): QuotaPolicy | null {
  if (quota) {
    const every = quota.refill ? quota.period : null;
    return Object.freeze({
      initial: quota.limit,
      refill: every === null ? null : quota.limit,
      every,
      shadow: quota.mode === 'shadow',
      refundOn5xx: quota.refund_on.includes('5xx'),
      quota: quota.limit,
      name,
      header: quotaHeader(name, quota.limit, every),
    });
  }
  if (credits) {
    const every = credits.refill?.every ?? null;
    const q = credits.refill?.amount ?? credits.remaining;
    return Object.freeze({
      initial: credits.remaining,
      refill: credits.refill?.amount ?? null,
      every,
      shadow: credits.mode === 'shadow',
      refundOn5xx: credits.refund_on.includes('5xx'),
      quota: q,
      name,
      header: quotaHeader(name, q, every),
    });
  }
  return null;
}

/** `"quota";q=…;w=…`: `w` the refill period in seconds (a month counted as 30 days); none when it never refills. */
function quotaHeader(name: string, q: number, every: QuotaPeriod | null): string {
  return every === null ? `"${name}";q=${q}` : `"${name}";q=${q};w=${PERIOD_SECONDS[every]}`;
}

/** A stable id of a quota configuration, for sharing compiled policies between keys. */
export function quotaId(quota: QuotaSpec | null | undefined, credits: CreditsSpec | null | undefined): string | null {
  if (quota) return `q/${quota.limit}/${quota.period}/${quota.refill}/${quota.mode}/${quota.refund_on.join('+')}`;
  if (credits) return `c/${credits.remaining}/${credits.refill?.amount}/${credits.refill?.every}/${credits.mode}/${credits.refund_on.join('+')}`;
  return null;
}
