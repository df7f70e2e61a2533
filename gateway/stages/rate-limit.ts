import type { LimitPolicy } from '../../core/limiter.js';
import type { Denial, RequestContext, Stage } from '../context.js';
import { DenialsByNumber } from '../error-body.js';
import type { Runtime } from '../runtime.js';

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
 * One token from the key's bucket, and one from the route's when the route has its own limit.
 * A token the key's bucket gave is handed back when the route's refuses, so a refusal by one
 * costs nothing from the other. A shared (Redis) limiter may answer with a promise; the local
 * one and a shared one holding a lease answer at once. A limit in `mode: shadow` never refuses:
 * what it would have refused is noted in `ctx.wouldDeny` (docs/quotas.md, Shadow mode).
 */
export function createRateLimitStage(rt: Runtime): Stage {
  const limiter = rt.limiter;
  const keyRefusals = exceeded('');
  const routeRefusals = exceeded(' for this route');

  function routeStep(ctx: RequestContext): Denial | undefined | Promise<Denial | undefined> {
    const routePolicy = ctx.route?.policy ?? null;
    if (routePolicy === null) return undefined;
    const key = ctx.key!;
    const bucket = `${key.id}\u0000${routePolicy.name}`;
    const taken = limiter.take(bucket, routePolicy, ctx.now, ctx.routeRate);
    if (taken === true) return undefined;
    if (taken === false) return routeRefused(ctx, routePolicy);
    return taken.then((ok) => (ok ? undefined : routeRefused(ctx, routePolicy)));
  }

  function routeRefused(ctx: RequestContext, routePolicy: LimitPolicy): Denial | undefined {
    if (routePolicy.shadow) return shadowed(ctx);
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
 * A limit in `mode: shadow` that would have refused: noted for headers, metrics, usage and
 * alerts, and the request goes on. A store failing closed is not a refusal to note.
 */
function shadowed(ctx: RequestContext): undefined {
  if (!ctx.rate.unavailable && !ctx.routeRate.unavailable) ctx.wouldDeny ??= 'rate_limit_exceeded';
  return undefined;
}

function refusal(state: { retryAfter: number; unavailable: boolean }, refusals: DenialsByNumber): Denial {
  return state.unavailable ? UNAVAILABLE : refusals.get(state.retryAfter);
}
