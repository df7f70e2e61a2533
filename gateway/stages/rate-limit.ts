import type { Denial, RequestContext, Stage } from '../context.js';
import type { Runtime } from '../runtime.js';

/**
 * One token from the key's bucket, and one from the route's when the route has its own limit.
 * A token the key's bucket gave is handed back when the route's refuses, so a refusal by one
 * costs nothing from the other. A shared (Redis) limiter may answer with a promise; the local
 * one and a shared one holding a lease answer at once.
 */
export function createRateLimitStage(rt: Runtime): Stage {
  const limiter = rt.limiter;

  function routeStep(ctx: RequestContext): Denial | undefined | Promise<Denial | undefined> {
    const routePolicy = ctx.route?.policy ?? null;
    if (routePolicy === null) return undefined;
    const key = ctx.key!;
    const bucket = `${key.id}\u0000${routePolicy.name}`;
    const taken = limiter.take(bucket, routePolicy, ctx.now, ctx.routeRate);
    if (taken === true) return undefined;
    if (taken === false) return routeRefused(ctx);
    return taken.then((ok) => (ok ? undefined : routeRefused(ctx)));
  }

  function routeRefused(ctx: RequestContext): Denial {
    const key = ctx.key!;
    limiter.refund(key.id, key.policy, ctx.now);
    limiter.peek(key.id, key.policy, ctx.now, ctx.rate);
    return refusal(ctx.routeRate);
  }

  return function rateLimit(ctx: RequestContext) {
    const key = ctx.key!;
    ctx.rateChecked = true;
    const taken = limiter.take(key.id, key.policy, ctx.now, ctx.rate);
    if (taken === true) return routeStep(ctx);
    if (taken === false) return refusal(ctx.rate);
    return taken.then((ok) => (ok ? routeStep(ctx) : refusal(ctx.rate)));
  };
}

function refusal(state: { retryAfter: number; unavailable: boolean }): Denial {
  if (state.unavailable) {
    return { code: 'service_unavailable', message: 'Rate limiting is unavailable right now, and this plan refuses requests meanwhile. Retry shortly.' };
  }
  const retryAfter = state.retryAfter;
  return {
    code: 'rate_limit_exceeded',
    message: `Rate limit exceeded. Try again in ${retryAfter} second${retryAfter === 1 ? '' : 's'}.`,
    extra: { retry_after: retryAfter },
  };
}
