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

/**
 * The key's quota (docs/quotas.md), last of the checks: it spends the route's `cost` only once
 * every other check has passed, so a refused request costs nothing. A key without a quota (most
 * keys) costs one property read. With one, the spend is a store operation, exact across every
 * gateway and worker (Store.quota), so the stage answers with a promise.
 *
 * Refused: 429 quota_exceeded with `Retry-After` at the next refill, and the rate-limit tokens
 * this request took are handed back. In `mode: shadow` the refusal is only noted
 * (`ctx.wouldDeny`). When the store cannot be asked, the key's plan's `on_store_failure`
 * decides: `closed` refuses with 503, `open` and `local` let the request through uncounted.
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
    return refusal(ctx);
  }

  /** The tokens the rate limit took for a request the quota refuses. */
  function giveBackTokens(ctx: RequestContext): void {
    if (ctx.rateChecked) handBack(limiter, ctx, true);
  }

  function failed(ctx: RequestContext, q: QuotaPolicy, err: unknown): Denial | undefined {
    rt.log.warn('quota store operation failed', { request_id: ctx.requestId, err: String(err) });
    return ctx.key!.policy.onStoreFailure === 'closed' && !q.shadow ? UNAVAILABLE : undefined;
  }

  return function quota(ctx: RequestContext) {
    const key = ctx.key!;
    const q = key.quota;
    if (q === null) return undefined;
    const cost = ctx.cost ?? ctx.route?.cost ?? 1;
    if (cost === 0) return undefined;
    return store.quota(key.account, q, 'spend', cost, ctx.now).then(
      (a) => answered(ctx, q, cost, a),
      (err: unknown) => failed(ctx, q, err),
    );
  };
}

/** The 429 of an empty balance: when it refills, or that it never does. */
function refusal(ctx: RequestContext): Denial {
  if (ctx.quotaResetAt === 0) return NEVER_REFILLS;
  const retryAfter = Math.max(1, Math.ceil((ctx.quotaResetAt - ctx.now) / 1000));
  return {
    code: 'quota_exceeded',
    message: `Quota exceeded: this API key has used up its quota; it refills at ${new Date(ctx.quotaResetAt).toISOString()}, in ${retryAfter} second${retryAfter === 1 ? '' : 's'}.`,
    extra: { retry_after: retryAfter },
  };
}

/**
 * Gives back what the request spent when nothing was sent upstream for it (the client left
 * while the spend was answered, or the forward stage refused it), or when its answer was a 5xx
 * and the key's quota says `refund_on: [5xx]`; called once the response is over and recorded.
 * The refund counts only within the period the units were spent in.
 */
export function refundQuota(rt: Runtime, ctx: RequestContext): void {
  const spent = ctx.quotaSpent;
  if (spent === 0) return;
  ctx.quotaSpent = 0;
  const key = ctx.key!;
  const q = key.quota!;
  const forwarded = ctx.upstreamStartedAt !== 0;
  if (forwarded && (!q.refundOn5xx || ctx.status < 500)) return;
  rt.store.quota(key.account, q, 'refund', spent, ctx.now).then(
    (a) => {
      ctx.quotaRemaining = a.remaining;
    },
    (err: unknown) => rt.log.warn('quota refund failed', { request_id: ctx.requestId, err: String(err) }),
  );
}
