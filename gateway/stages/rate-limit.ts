import type { RequestContext, Stage } from '../context.js';
import type { Runtime } from '../runtime.js';

/**
 * One token from the key's bucket, and one from the route's when the route has its own limit.
 * Both are checked before either is spent, so a refusal by one costs nothing from the other.
 */
export function createRateLimitStage(rt: Runtime): Stage {
  const limiter = rt.limiter;
  return function rateLimit(ctx: RequestContext) {
    const key = ctx.key!;
    const routePolicy = ctx.route?.policy ?? null;
    ctx.rateChecked = true;
    if (routePolicy !== null) {
      if (!limiter.peek(key.id, key.policy, ctx.now, ctx.rate)) return limited(ctx.rate.retryAfter);
      const routeBucket = `${key.id}\u0000${routePolicy.name}`;
      if (!limiter.take(routeBucket, routePolicy, ctx.now, ctx.routeRate)) return limited(ctx.routeRate.retryAfter);
    }
    if (!limiter.take(key.id, key.policy, ctx.now, ctx.rate)) return limited(ctx.rate.retryAfter);
    return undefined;
  };
}

function limited(retryAfter: number) {
  return {
    code: 'rate_limit_exceeded' as const,
    message: `Rate limit exceeded. Try again in ${retryAfter} second${retryAfter === 1 ? '' : 's'}.`,
    extra: { retry_after: retryAfter },
  };
}
