import type { QuotaAnswer, QuotaPolicy } from '../../core/quota.js';
import type { Denial, RequestContext, Stage } from '../context.js';
import type { Runtime } from '../runtime.js';
import { handBack } from './rate-limit.js';

const UNAVAILABLE: Denial = Object.freeze({
  code: 'service_unavailable',
  message: "Quotas cannot be checked right now, and this API key's plan refuses requests meanwhile; retry shortly.",
});
const NEVER_REFILLS: Denial = Object.freeze({
  code: 'quota_exceeded',
  message: "Quota exceeded: this API key has used up its credits, which do not refill; ask the API's owner for more.",
});
const APP_NEVER_REFILLS: Denial = Object.freeze({
  code: 'quota_exceeded',
  message: "Quota exceeded: the application this API key belongs to has used up the credits its keys share, which do not refill; ask the API's owner for more.",
});

/**
 * The key's quota and its application's (docs/quotas.md), last of the checks: it spends the
 * route's `cost` only once every other check has passed, so a refused request costs nothing. A
 * key without either (most keys) costs two property reads. With one, the spend is a store
 * operation, exact across every gateway and worker (Store.quota), so the stage answers with a
 * promise. With both, the key's balance is spent first, then the application's (kept under the
 * application's id); when the application's refuses, the key's units are given back before
 * the refusal is answered, so its headers show the balance as it is.
 *
 * Refused: 429 quota_exceeded with `Retry-After` at the next refill of the balance that
 * refused, and the rate-limit tokens this request took are handed back. In `mode: shadow` the
 * refusal is only noted (`ctx.wouldDeny`). When the store cannot be asked, the key's plan's
 * `on_store_failure` decides: `closed` refuses with 503, `open` and `local` let the request
 * through uncounted.
 */
export function createQuotaStage(rt: Runtime): Stage {
  const store = rt.store;
  const limiter = rt.limiter;

  function answered(ctx: RequestContext, q: QuotaPolicy, cost: number, a: QuotaAnswer): Denial | undefined {
    ctx.quotaRemaining = a.remaining;
    ctx.quotaResetAt = a.resetAt ?? 0;
    if (a.ok) {
      ctx.quotaSpent = cost;
      return undefined;
    }
    if (q.shadow) {
      ctx.wouldDeny ??= 'quota_exceeded';
      return undefined;
    }
    giveBackTokens(ctx);
    return refusal(ctx.quotaResetAt, ctx.now, false);
  }

  /** The tokens the rate limit took for a request the quota refuses. */
  function giveBackTokens(ctx: RequestContext): void {
    if (ctx.rateChecked) handBack(limiter, ctx, true);
  }

  function failed(ctx: RequestContext, q: QuotaPolicy, err: unknown): Denial | undefined {
    rt.log.warn('quota store operation failed', { request_id: ctx.requestId, err: String(err) });
    return ctx.key!.policy.onStoreFailure === 'closed' && !q.shadow ? UNAVAILABLE : undefined;
  }

  /** The application's share, once the key's own balance (if any) let the request on. */
  function appSpend(ctx: RequestContext, aq: QuotaPolicy, cost: number): Promise<Denial | undefined> {
    return store.quota(ctx.key!.application!, aq, 'spend', cost, ctx.now).then(
      (a) => appAnswered(ctx, aq, cost, a),
      (err: unknown) => {
        const denial = failed(ctx, aq, err);
        return denial === undefined ? undefined : keyUnitsBack(ctx, denial);
      },
    );
  }

  function appAnswered(ctx: RequestContext, aq: QuotaPolicy, cost: number, a: QuotaAnswer): Denial | undefined | Promise<Denial> {
    ctx.appQuotaRemaining = a.remaining;
    ctx.appQuotaResetAt = a.resetAt ?? 0;
    if (a.ok) {
      ctx.appQuotaSpent = cost;
      return undefined;
    }
    if (aq.shadow) {
      ctx.wouldDeny ??= 'quota_exceeded';
      return undefined;
    }
    giveBackTokens(ctx);
    return keyUnitsBack(ctx, refusal(ctx.appQuotaResetAt, ctx.now, true));
  }

  /** Gives back what the key's own balance gave this request, then answers `denial`. */
  function keyUnitsBack(ctx: RequestContext, denial: Denial): Denial | Promise<Denial> {
    const spent = ctx.quotaSpent;
    if (spent === 0) return denial;
    ctx.quotaSpent = 0;
    const key = ctx.key!;
    return store.quota(key.account, key.quota!, 'refund', spent, ctx.now).then(
      (a) => {
        ctx.quotaRemaining = a.remaining;
        return denial;
      },
      (err: unknown) => {
        rt.log.warn('quota refund failed', { request_id: ctx.requestId, err: String(err) });
        return denial;
      },
    );
  }

  return function quota(ctx: RequestContext) {
    const key = ctx.key!;
    const q = key.quota;
    const aq = key.appQuota;
    if (q === null && aq === null) return undefined;
    const cost = ctx.cost ?? ctx.route?.cost ?? 1;
    if (cost === 0) return undefined;
    if (q === null) return appSpend(ctx, aq!, cost);
    const own = store.quota(key.account, q, 'spend', cost, ctx.now).then(
      (a) => answered(ctx, q, cost, a),
      (err: unknown) => failed(ctx, q, err),
    );
    return aq === null ? own : own.then((denial) => (denial === undefined ? appSpend(ctx, aq, cost) : denial));
  };
}

/** The 429 of an empty balance, the key's or (`app`) its application's: when it refills, or that it never does. */
function refusal(resetAt: number, now: number, app: boolean): Denial {
  if (resetAt === 0) return app ? APP_NEVER_REFILLS : NEVER_REFILLS;
  const retryAfter = Math.max(1, Math.ceil((resetAt - now) / 1000));
  const whose = app ? 'the application this API key belongs to has used up the quota its keys share' : 'this API key has used up its quota';
  return {
    code: 'quota_exceeded',
    message: `Quota exceeded: ${whose}; it refills at ${new Date(resetAt).toISOString()}, in ${retryAfter} second${retryAfter === 1 ? '' : 's'}.`,
    extra: { retry_after: retryAfter },
  };
}

/**
 * Gives back what the request spent, from the key's balance and its application's, when
 * nothing was sent upstream for it (the client left while the spend was answered, or the
 * forward stage refused it), or when its answer was a 5xx and that quota says
 * `refund_on: [5xx]`; called once the response is over and recorded. The refund counts only
 * within the period the units were spent in.
 */
export function refundQuota(rt: Runtime, ctx: RequestContext): void {
  if (ctx.quotaSpent === 0 && ctx.appQuotaSpent === 0) return;
  const key = ctx.key!;
  const forwarded = ctx.upstreamStartedAt !== 0;
  const spent = ctx.quotaSpent;
  ctx.quotaSpent = 0;
  if (spent !== 0 && (!forwarded || (key.quota!.refundOn5xx && ctx.status >= 500))) {
    rt.store.quota(key.account, key.quota!, 'refund', spent, ctx.now).then(
      (a) => {
        ctx.quotaRemaining = a.remaining;
      },
      (err: unknown) => rt.log.warn('quota refund failed', { request_id: ctx.requestId, err: String(err) }),
    );
  }
  const appSpent = ctx.appQuotaSpent;
  ctx.appQuotaSpent = 0;
  if (appSpent !== 0 && (!forwarded || (key.appQuota!.refundOn5xx && ctx.status >= 500))) {
    rt.store.quota(key.application!, key.appQuota!, 'refund', appSpent, ctx.now).then(
      (a) => {
        ctx.appQuotaRemaining = a.remaining;
      },
      (err: unknown) => rt.log.warn('application quota refund failed', { request_id: ctx.requestId, err: String(err) }),
    );
  }
}
