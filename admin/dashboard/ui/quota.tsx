import { useState } from 'preact/hooks';
import { api, type Balance, type Credits, type Key, type Quota } from './api';
import { EditForm, type Editor } from './edit-form';
import { ErrorNote, fmt, Modal, useLoad, When } from './ui';

/**
 * A key's quota or credits (docs/quotas.md) on the dashboard: the key page's Quota card with
 * the balance, its editor (`PATCH /v1/keys/{id}` with `quota` or `credits`), the top-up dialog
 * (`POST /v1/keys/{id}/credits`), and the compact balance of the keys list. An application's
 * shared quota uses the same parts with `of="application"`: the same fields and routes under
 * `/v1/applications/{id}`, and words that say its keys spend it together.
 */

/** What carries the quota: a key (its own or its plan's) or an application (shared by its keys). */
export type Holder = 'key' | 'application';

/** A key or an application as `GET /v1/keys/{id}` or `GET /v1/applications/{id}` answer it: with its balance. */
export interface QuotaHolder {
  id: string;
  name: string;
  plan: string | null;
  quota: Quota | null;
  credits: Credits | null;
  balance: Balance | null;
}

const pathOf = (of: Holder, id: string) => `${of === 'key' ? '/v1/keys/' : '/v1/applications/'}${encodeURIComponent(id)}`;
/** What a spent quota refuses, in the card's mode and the editor's warning. */
const REFUSED: Record<Holder, string> = { key: 'requests are refused', application: 'requests with any of its keys are refused' };

type Period = 'hour' | 'day' | 'month';
const A: Record<Period, string> = { hour: 'an hour', day: 'a day', month: 'a month' };
const EACH: Record<Period, string> = { hour: 'each hour', day: 'each day', month: 'each month' };
const THIS: Record<Period, string> = { hour: 'this hour', day: 'today', month: 'this month' };
/** Units are whole numbers up to 10^12 (config/schema.ts `units`). */
const MAX_UNITS = 1e12;
const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

/** What a balance is measured against: the allowance a period starts with (null: none), its period, and how it runs. */
interface Terms {
  allowance: number | null;
  every: Period | null;
  shadow: boolean;
  refund: boolean;
}

function termsOf(k: Pick<Key, 'quota' | 'credits'>): Terms | null {
  if (k.quota) {
    const q = k.quota;
    return { allowance: q.limit, every: q.refill ? q.period : null, shadow: q.mode === 'shadow', refund: q.refund_on.includes('5xx') };
  }
  if (k.credits) {
    const c = k.credits;
    return { allowance: c.refill?.amount ?? null, every: c.refill?.every ?? null, shadow: c.mode === 'shadow', refund: c.refund_on.includes('5xx') };
  }
  return null;
}

/** The key's own quota or credits in words: "10,000 a month", "credits: 500 to start, 100 each day". */
export function quotaText(k: Pick<Key, 'quota' | 'credits'>): string | null {
  if (k.quota) {
    const q = k.quota;
    return q.refill && q.period ? `${fmt.format(q.limit)} ${A[q.period]}` : `${fmt.format(q.limit)} once, never refilled`;
  }
  if (k.credits) {
    const c = k.credits;
    return `credits: ${fmt.format(c.remaining)} to start, ${c.refill ? `refilled to ${fmt.format(c.refill.amount)} ${EACH[c.refill.every]}` : 'topped up by hand'}`;
  }
  return null;
}

/** "7,500 of 10,000 left this month", "350 left". */
function leftText(b: Balance, t: Terms | null): string {
  if (t === null || t.allowance === null) return `${fmt.format(b.remaining)} left`;
  return `${fmt.format(b.remaining)} of ${fmt.format(t.allowance)} left${t.every ? ` ${THIS[t.every]}` : ''}`;
}

/** The share of the allowance left, for the bar's colour: amber under 20%, red under 5%. */
function lowClass(remaining: number, of: number): string {
  const share = of > 0 ? remaining / of : 1;
  return share < 0.05 ? 'high' : share < 0.2 ? 'warm' : '';
}

const exact = (at: string) => new Date(at).toLocaleString('en-GB', { timeZone: 'UTC', dateStyle: 'medium', timeStyle: 'short' }) + ' UTC';

/** The key page's Quota card: the balance, what it refills to and when, how it runs, and the actions the user may take. */
export function QuotaCard(props: { k: QuotaHolder; of?: Holder; editable: boolean; note: string | null; onEdit: () => void; onTopUp: () => void }) {
  const { k } = props;
  const of = props.of ?? 'key';
  const id = of === 'key' ? 'key' : 'app';
  const b = k.balance;
  const t = termsOf(k);
  const allowance = t?.allowance ?? null;
  return (
    <section class="card" aria-labelledby="quota-title">
      <div class="page-head">
        <h2 id="quota-title">
          {of === 'key' ? 'Quota' : 'Shared quota'} {t?.shadow && <span class="badge shadow">shadow mode</span>}
        </h2>
        {props.editable && (
          <div class="actions">
            {b && (
              <button type="button" class="secondary small-button" onClick={props.onTopUp}>
                Top up or set balance
              </button>
            )}
            <button type="button" class="secondary small-button" onClick={props.onEdit}>
              Edit quota
            </button>
          </div>
        )}
      </div>
      {props.note && (
        <p class="saved" role="status">
          {props.note}
        </p>
      )}
      {b === null ? (
        <p class="muted" data-testid={`${id}-balance`}>
          {of === 'key' ? 'No quota: only the rate limit bounds this key.' : 'No shared quota: its keys spend only their own, if they have one.'}
        </p>
      ) : (
        <>
          <p class="balance" data-testid={`${id}-balance`}>
            <strong>{leftText(b, t)}</strong>
          </p>
          {allowance !== null && (
            <progress
              max={Math.max(allowance, b.remaining)}
              value={b.remaining}
              class={lowClass(b.remaining, allowance)}
              aria-label={`Quota left of ${k.name}: ${fmt.format(b.remaining)} of ${fmt.format(allowance)}`}
            />
          )}
          <dl class="meta quota-terms">
            <dt>Allowance</dt>
            <dd data-testid={`${id}-quota`}>{quotaText(k) ?? `its plan's (${k.plan ?? 'default'})`}</dd>
            <dt>Next refill</dt>
            <dd>
              {b.refills_at ? (
                <>
                  <When at={b.refills_at} /> <span class="muted">({exact(b.refills_at)}{allowance !== null ? `, back to ${fmt.format(allowance)}` : ''})</span>
                </>
              ) : (
                <span class="muted">never: only a top-up adds units</span>
              )}
            </dd>
            {t && (
              <>
                <dt>Mode</dt>
                <dd data-testid={`${id}-quota-mode`}>
                  {t.shadow ? 'shadow: counted and reported, never refused' : `enforced: once spent, ${REFUSED[of]} (429 quota_exceeded)`}
                </dd>
                <dt>Refunds</dt>
                <dd>{t.refund ? 'units of requests answered 5xx are given back' : <span class="muted">none</span>}</dd>
              </>
            )}
          </dl>
        </>
      )}
    </section>
  );
}

const unitsOf = (s: string, min: number): number | null => (/^\d+$/.test(s.trim()) && Number(s) >= min && Number(s) <= MAX_UNITS ? Number(s) : null);

/** Sets or tops up the balance through `POST /v1/keys/{id}/credits` (or the application's); answers the new balance. */
export function BalanceDialog(props: { k: QuotaHolder; of?: Holder; onClose: () => void; onDone: (b: Balance) => void }) {
  const { k } = props;
  const of = props.of ?? 'key';
  const b = k.balance!;
  const t = termsOf(k);
  const [how, setHow] = useState<'add' | 'set'>('add');
  const [units, setUnits] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const n = unitsOf(units, how === 'add' ? 1 : 0);
  const to = n === null ? null : how === 'add' ? b.remaining + n : n;
  return (
    <Modal title={`Top up or set the balance of ${k.name}`} onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (n === null) return;
          setBusy(true);
          setError(null);
          try {
            const r = await api.post<QuotaHolder>(`${pathOf(of, k.id)}/credits`, how === 'add' ? { add: n } : { set: n });
            props.onDone(r.balance!);
          } catch (err) {
            setError(err);
            setBusy(false);
          }
        }}
      >
        <p>
          Now: <strong>{leftText(b, t)}</strong>
        </p>
        <fieldset>
          <legend>Change</legend>
          <label class="inline">
            <input type="radio" name="balance-change" checked={how === 'add'} onChange={() => setHow('add')} /> Add to the balance (top up)
          </label>
          <label class="inline">
            <input type="radio" name="balance-change" checked={how === 'set'} onChange={() => setHow('set')} /> Set the balance to
          </label>
        </fieldset>
        <label>
          Units
          <input name="units" inputMode="numeric" value={units} onInput={(e) => setUnits(e.currentTarget.value)} aria-invalid={units.trim() !== '' && n === null} aria-describedby="units-help" required />
        </label>
        <p id="units-help" class={units.trim() !== '' && n === null ? 'field-error' : 'muted small'}>
          {units.trim() !== '' && n === null ? `A whole number from ${how === 'add' ? 1 : 0} to 1,000,000,000,000.` : 'Whole units; a request spends 1, or its route’s cost.'}
        </p>
        <div class="consequence" aria-live="polite">
          {to !== null && (
            <>
              <p>
                The balance goes from {fmt.format(b.remaining)} to {fmt.format(to)} at once, for every gateway.
              </p>
              {b.refills_at && (
                <p class="muted">
                  The refill <When at={b.refills_at} /> sets it to {t?.allowance != null ? fmt.format(t.allowance) : 'its refill amount'} again, whatever was added.
                </p>
              )}
              {to === 0 && !t?.shadow && <p class="warning">With nothing left, {of === 'key' ? 'requests with this key are refused' : REFUSED.application} until {b.refills_at ? 'the refill' : 'a top-up'}.</p>}
            </>
          )}
        </div>
        <ErrorNote error={error} />
        <div class="actions">
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" disabled={n === null || busy}>
            {how === 'add' ? 'Add units' : 'Set balance'}
          </button>
        </div>
      </form>
    </Modal>
  );
}

type Kind = 'none' | 'quota' | 'credits';

/**
 * The quota fields of the editor and of Create: none, units per period, or credits, each with
 * shadow mode and a refund on 5xx, checked as typed. `spec` is what to send (null for none or
 * while a number is wrong, which `problem` says).
 */
export function useQuotaForm(k: Pick<Key, 'quota' | 'credits'>, noneLabel: string) {
  const current: Quota | Credits | null = k.quota ?? k.credits;
  const [kind, setKind] = useState<Kind>(k.quota ? 'quota' : k.credits ? 'credits' : 'none');
  const [limit, setLimit] = useState(String(k.quota?.limit ?? ''));
  const [period, setPeriod] = useState<Period | 'once'>(k.quota ? (k.quota.refill && k.quota.period ? k.quota.period : 'once') : 'month');
  const [start, setStart] = useState(String(k.credits?.remaining ?? ''));
  const [every, setEvery] = useState<'never' | 'day' | 'month'>(k.credits?.refill?.every ?? 'never');
  const [amount, setAmount] = useState(String(k.credits?.refill?.amount ?? ''));
  const [shadow, setShadow] = useState(current?.mode === 'shadow');
  const [refund, setRefund] = useState(current?.refund_on.includes('5xx') ?? false);

  const mode = shadow ? 'shadow' : 'enforce';
  const refund_on: '5xx'[] = refund ? ['5xx'] : [];
  const nLimit = unitsOf(limit, 1);
  const nStart = unitsOf(start, 0);
  const nAmount = unitsOf(amount, 1);
  let problem: string | null = null;
  let spec: Quota | Credits | null = null;
  if (kind === 'quota') {
    if (nLimit === null) problem = 'The units must be a whole number from 1 to 1,000,000,000,000.';
    else spec = { limit: nLimit, period: period === 'once' ? null : period, refill: period !== 'once', mode, refund_on };
  } else if (kind === 'credits') {
    if (nStart === null) problem = 'The starting balance must be a whole number from 0 to 1,000,000,000,000.';
    else if (every !== 'never' && nAmount === null) problem = 'The refill amount must be a whole number from 1 to 1,000,000,000,000.';
    else spec = { remaining: nStart, refill: every === 'never' ? null : { amount: nAmount!, every }, mode, refund_on };
  }
  /** The period the balance refills in, if it does. */
  const periodWord: Period | null = kind === 'quota' ? (period === 'once' ? null : period) : kind === 'credits' && every !== 'never' ? every : null;

  const fields = (
    <>
      <fieldset>
        <legend>Quota</legend>
        <label class="inline">
          <input type="radio" name="quota-kind" checked={kind === 'none'} onChange={() => setKind('none')} /> {noneLabel}
        </label>
        <label class="inline">
          <input type="radio" name="quota-kind" checked={kind === 'quota'} onChange={() => setKind('quota')} /> Units per period
        </label>
        <label class="inline">
          <input type="radio" name="quota-kind" checked={kind === 'credits'} onChange={() => setKind('credits')} /> Credits
        </label>
      </fieldset>
      {kind === 'quota' && (
        <div class="fields">
          <label>
            Units
            <input name="quota_limit" inputMode="numeric" value={limit} onInput={(e) => setLimit(e.currentTarget.value)} aria-invalid={nLimit === null} required />
          </label>
          <label>
            Per
            <select name="quota_period" value={period} onChange={(e) => setPeriod(e.currentTarget.value as Period | 'once')}>
              <option value="hour">hour (UTC)</option>
              <option value="day">day (UTC)</option>
              <option value="month">calendar month (UTC)</option>
              <option value="once">once: never refilled</option>
            </select>
          </label>
        </div>
      )}
      {kind === 'credits' && (
        <div class="fields">
          <label>
            Starting balance
            <input name="credits_remaining" inputMode="numeric" value={start} onInput={(e) => setStart(e.currentTarget.value)} aria-invalid={nStart === null} required />
          </label>
          <label>
            Refill
            <select name="credits_every" value={every} onChange={(e) => setEvery(e.currentTarget.value as 'never' | 'day' | 'month')}>
              <option value="never">never: top up by hand</option>
              <option value="day">each day (UTC)</option>
              <option value="month">each month (UTC)</option>
            </select>
          </label>
          {every !== 'never' && (
            <label>
              Refill amount
              <input name="credits_amount" inputMode="numeric" value={amount} onInput={(e) => setAmount(e.currentTarget.value)} aria-invalid={nAmount === null} required />
            </label>
          )}
        </div>
      )}
      {kind !== 'none' && (
        <>
          <label class="inline">
            <input type="checkbox" name="quota_shadow" checked={shadow} onChange={(e) => setShadow(e.currentTarget.checked)} /> Shadow mode: count and report, never refuse
          </label>
          <label class="inline">
            <input type="checkbox" name="quota_refund" checked={refund} onChange={(e) => setRefund(e.currentTarget.checked)} /> Give the units back when the answer is a 5xx
          </label>
        </>
      )}
      {problem && <p class="field-error">{problem}</p>}
    </>
  );
  return { kind, spec, problem, current, shadow, periodWord, fields };
}

/** The quota editor: none, units per period, or credits, each in enforce or shadow mode. */
export function QuotaEditor(props: { keyRecord: QuotaHolder; of?: Holder; onClose: () => void; onSaved: (what: Editor) => void }) {
  const k = props.keyRecord;
  const of = props.of ?? 'key';
  const form = useQuotaForm(k, of === 'key' ? 'None of its own' : 'None: each key spends only its own');
  /** Who spends it, in the consequence. */
  const who = of === 'key' ? 'the key' : 'the keys of the application together';
  const { kind, spec, problem, periodWord } = form;
  const wasKind: Kind = k.quota ? 'quota' : k.credits ? 'credits' : 'none';
  const same = kind === wasKind && JSON.stringify(spec) === JSON.stringify(form.current);
  const body = (): Record<string, unknown> | null => {
    if (same || problem !== null) return null;
    if (kind === 'none') return { quota: null, credits: null };
    return kind === 'quota' ? { quota: spec } : { credits: spec };
  };
  const fromPlan = wasKind === 'none' && k.balance !== null;
  const q = kind === 'quota' ? (spec as Quota | null) : null;
  const c = kind === 'credits' ? (spec as Credits | null) : null;

  return (
    <EditForm
      {...props}
      editor="quota"
      path={pathOf(of, k.id)}
      wide
      body={body}
      consequence={
        same ? (
          <p class="muted">No change yet.</p>
        ) : problem ? null : kind === 'none' && of === 'application' ? (
          <p>The application will have no shared quota: its keys spend only their own, if they have one.</p>
        ) : kind === 'none' ? (
          <p>The key will have no quota of its own{fromPlan || k.plan ? `: its plan's (${k.plan ?? 'default'}) applies if it has one` : ''}.</p>
        ) : (
          <>
            <p>
              {q
                ? periodWord
                  ? `From the next request ${who} may spend ${fmt.format(q.limit)} units ${A[periodWord]}.`
                  : `From the next request ${who} may spend ${fmt.format(q.limit)} units in all, never refilled.`
                : `From the next request ${who} ${of === 'key' ? 'spends' : 'spend'} credits${c?.refill ? `, refilled to ${fmt.format(c.refill.amount)} ${EACH[c.refill.every]}` : ', topped up by hand only'}.`}{' '}
              {k.balance !== null
                ? `The ${fmt.format(k.balance.remaining)} left now stay until ${periodWord ? 'the next refill' : 'a top-up or a set'}; Top up or set balance changes them at once.`
                : `It starts with ${fmt.format(q ? q.limit : c!.remaining)}.`}
            </p>
            {form.shadow ? (
              <p>In shadow mode nothing is refused: what the quota would have refused shows in usage, metrics and the rate-limit alert.</p>
            ) : (
              <p class="warning">Once the balance is spent, {REFUSED[of]} with 429 quota_exceeded until {periodWord ? 'the next refill' : 'a top-up'}.</p>
            )}
          </>
        )
      }
    >
      {form.fields}
    </EditForm>
  );
}

type Listed = Pick<Key, 'id' | 'quota' | 'credits' | 'updated_at'> & { status: string };

/**
 * The keys list's compact balance for a key with a quota or credits of its own: "quota 7.5K of
 * 10K left"; the applications list's for an application with a shared one.
 */
export function BalanceIndicator({ k, of = 'key' }: { k: Listed; of?: Holder }) {
  // A revoked or expired key spends nothing more: its balance is not worth a request.
  if ((!k.quota && !k.credits) || k.status === 'revoked' || k.status === 'expired') return null;
  return <LoadedBalance k={k} of={of} />;
}

function LoadedBalance({ k, of }: { k: Listed; of: Holder }) {
  const one = useLoad(() => api.get<QuotaHolder>(pathOf(of, k.id)), [of, k.id, k.updated_at]);
  const b = one.data?.balance;
  if (!b) return null;
  const t = termsOf(k);
  const allowance = t?.allowance ?? null;
  const text = allowance === null ? `quota ${compact.format(b.remaining)} left` : `quota ${compact.format(b.remaining)} of ${compact.format(allowance)} left`;
  return (
    <div class={`quota-mini small ${allowance !== null ? lowClass(b.remaining, allowance) : ''}`} data-testid="balance-indicator" title={`Quota: ${leftText(b, t)}${t?.shadow ? ' (shadow mode: never refused)' : ''}`}>
      {text}
      {t?.shadow && <span class="muted"> · shadow</span>}
    </div>
  );
}
