import type { Denial, RequestContext, Stage } from '../context.js';

const BUSY: Denial = Object.freeze({ code: 'concurrency_limit_exceeded', extra: Object.freeze({ retry_after: 1 }) });

/**
 * A key's fair share of an API's upstream connections (docs/operations.md, Security): at most
 * `max_concurrent_per_key` of its requests (by default a quarter of `max_connections`, and no
 * more than its plan's `max_concurrent`) are forwarded to one API at once, so a key whose
 * requests hang (a slow upload, a response it never reads) holds only its own share of the
 * pool. It runs before the rate limit: a request refused here spends no token. The slot is
 * given back when the response is over (pipeline.ts). A WebSocket tunnel holds a slot too,
 * until it closes: each has an upstream connection of its own, outside the pool.
 */
export function createConcurrencyStage(): Stage {
  return function concurrency(ctx: RequestContext) {
    const api = ctx.api!;
    const key = ctx.key!;
    const planCap = key.policy.maxConcurrent;
    const limit = planCap !== null && planCap < api.keyShare ? planCap : api.keyShare;
    const held = api.inFlight.get(key.id) ?? 0;
    if (held >= limit) return BUSY;
    api.inFlight.set(key.id, held + 1);
    ctx.slot = true;
    return undefined;
  };
}

/** Gives back the slot `ctx` took, once its response is over. */
export function releaseSlot(ctx: RequestContext): void {
  if (!ctx.slot) return;
  ctx.slot = false;
  const inFlight = ctx.api!.inFlight;
  const id = ctx.key!.id;
  const held = inFlight.get(id)!;
  if (held <= 1) inFlight.delete(id);
  else inFlight.set(id, held - 1);
}
