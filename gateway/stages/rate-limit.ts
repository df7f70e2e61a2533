import type { Denial, RequestContext, Stage } from '../context.js';
import { DenialsByNumber } from '../error-body.js';
import type { Runtime } from '../runtime.js';
import { newRateState, type Limiter, type LimitPolicy, type RateState } from '../../core/limiter.js';

const UNAVAILABLE: Denial = Object.freeze({
  code: 'service_unavailable',
  message: "Rate limiting is unavailable right now, and this API key's plan refuses requests meanwhile; retry shortly.",
});

/** The 429 for `retryAfter` seconds; `scope` says whose limit: the key's own ('') or the route's. */
function exceeded(scope: string): DenialsByNumber {
  return new DenialsByNumber((retryAfter) => ({
    code: 'rate_limit_exceeded',
    message: `Rate limit exceeded: this API key has used up its limit${scope}; try again in ${retryAfter} second${retryAfter === 1 ? '' : 's'}.`,
    extra: Object.freeze({ retry_after: retryAfter }),
  }));
}

/**
 * One token from the key's bucket, one from the route's when the route has its own limit, and
 * one from the application's when the key's application shares a limit among its keys. Tokens
 * the earlier buckets gave are handed back when a later one refuses, so a refusal by one costs
 * nothing from the others. A shared (Redis) limiter may answer with a promise; the local one
 * and a shared one holding a lease answer at once. A limit in `mode: shadow` never refuses:
 * what it would have refused is noted in `ctx.wouldDeny` (docs/quotas.md, Shadow mode).
 */
export function createRateLimitStage(rt: Runtime): Stage {
  const limiter = rt.limiter;
  const keyRefusals = exceeded('');
  const routeRefusals = exceeded(' for this route');
  const appRefusals = new DenialsByNumber((retryAfter) => ({
    code: 'rate_limit_exceeded',
    message: `Rate limit exceeded: the application this API key belongs to has used up the limit its keys share; try again in ${retryAfter} second${retryAfter === 1 ? '' : 's'}.`,
    extra: Object.freeze({ retry_after: retryAfter }),
  }));

  function routeStep(ctx: RequestContext): Denial | undefined | Promise<Denial | undefined> {
    const routePolicy = ctx.route?.policy ?? null;
    if (routePolicy === null) return appStep(ctx);
    const key = ctx.key!;
    const bucket = `${key.id}\u0000${routePolicy.name}`;
    const taken = limiter.take(bucket, routePolicy, ctx.now, ctx.routeRate);
    if (taken === true) return appStep(ctx);
    if (taken === false) return routeRefused(ctx, routePolicy);
    return taken.then((ok) => (ok ? appStep(ctx) : routeRefused(ctx, routePolicy)));
  }

  function appStep(ctx: RequestContext): Denial | undefined | Promise<Denial | undefined> {
    const key = ctx.key!;
    const appPolicy = key.appPolicy;
    if (appPolicy === null) return undefined;
    const state = (ctx.appRate ??= newRateState());
    const taken = limiter.take(key.application!, appPolicy, ctx.now, state);
    if (taken === true) return undefined;
    if (taken === false) return appRefused(ctx, appPolicy, state);
    return taken.then((ok) => (ok ? undefined : appRefused(ctx, appPolicy, state)));
  }

  function appRefused(ctx: RequestContext, appPolicy: LimitPolicy, state: RateState): Denial | undefined {
    if (appPolicy.shadow) return shadowed(ctx, state);
    handBack(limiter, ctx, false);
    return refusal(state, appRefusals);
  }

  function routeRefused(ctx: RequestContext, routePolicy: LimitPolicy): Denial | undefined | Promise<Denial | undefined> {
    if (routePolicy.shadow) {
      shadowed(ctx);
      return appStep(ctx);
    }
    const key = ctx.key!;
    // The key's own token, unless a shadow key limit let the request on without one.
    if (ctx.rate.allowed) {
      limiter.refund(key.id, key.policy, ctx.now);
      limiter.peek(key.id, key.policy, ctx.now, ctx.rate);
    }
    return refusal(ctx.routeRate, routeRefusals);
  }

  function keyRefused(ctx: RequestContext): Denial | undefined | Promise<Denial | undefined> {
    if (!ctx.key!.policy.shadow) return refusal(ctx.rate, keyRefusals);
    shadowed(ctx);
    return routeStep(ctx);
  }

  return function rateLimit(ctx: RequestContext) {
    const key = ctx.key!;
    ctx.rateChecked = true;
    const taken = limiter.take(key.id, key.policy, ctx.now, ctx.rate);
    if (taken === true) return routeStep(ctx);
    if (taken === false) return keyRefused(ctx);
    return taken.then((ok) => (ok ? routeStep(ctx) : keyRefused(ctx)));
  };
}

/**
 * Hands back the tokens the request's buckets gave (the key's, the route's, and with `app` the
 * application's), for a request a later check refused. A bucket that gave none (a shadow limit
 * let the request on without one) gets none back.
 */
export function handBack(limiter: Limiter, ctx: RequestContext, app: boolean): void {
  const key = ctx.key!;
  if (ctx.rate.allowed) {
    limiter.refund(key.id, key.policy, ctx.now);
    limiter.peek(key.id, key.policy, ctx.now, ctx.rate);
  }
  const routePolicy = ctx.route?.policy ?? null;
  if (routePolicy !== null && ctx.routeRate.allowed) {
    const bucket = `${key.id}\u0000${routePolicy.name}`;
    limiter.refund(bucket, routePolicy, ctx.now);
    limiter.peek(bucket, routePolicy, ctx.now, ctx.routeRate);
  }
  const appPolicy = key.appPolicy;
  if (app && appPolicy !== null && ctx.appRate !== null && ctx.appRate.allowed) {
    limiter.refund(key.application!, appPolicy, ctx.now);
    limiter.peek(key.application!, appPolicy, ctx.now, ctx.appRate);
  }
}

/**
 * A limit in `mode: shadow` that would have refused: noted for headers, metrics, usage and
 * alerts, and the request goes on. A store failing closed is not a refusal to note.
 */
function shadowed(ctx: RequestContext, app: RateState | null = null): undefined {
  if (!ctx.rate.unavailable && !ctx.routeRate.unavailable && app?.unavailable !== true) ctx.wouldDeny ??= 'rate_limit_exceeded';
  return undefined;
}

function refusal(state: { retryAfter: number; unavailable: boolean }, refusals: DenialsByNumber): Denial {
  return state.unavailable ? UNAVAILABLE : refusals.get(state.retryAfter);
}
