import type { Denial, RequestContext, Stage, StageResult } from '../context.js';
import { isMissing, type CacheEntry } from '../key-cache.js';
import type { Runtime } from '../runtime.js';

const NOT_FOUND: Denial = Object.freeze({ code: 'invalid_token', reason: 'not_found' });
const UNAVAILABLE: Denial = Object.freeze({
  code: 'service_unavailable',
  message: 'The gateway cannot check this API key right now (its key store is unreachable); retry shortly.',
});

/**
 * Hash → compiled key from the LRU; only a miss goes to the store, and only a miss awaits.
 * A known key in the cache goes on at once; anything else first passes the invalid-key brake
 * (gateway/invalid-key-brake.ts), which a braked client's miss never gets past to the store.
 */
export function createResolveKeyStage(rt: Runtime): Stage {
  const { hasher, keys, brake } = rt;
  const settle = (ctx: RequestContext, entry: CacheEntry): StageResult => {
    if (isMissing(entry)) {
      brake?.count(ctx);
      return NOT_FOUND;
    }
    ctx.key = entry;
    return undefined;
  };
  return function resolveKey(ctx: RequestContext) {
    const token = ctx.token!;
    const id = hasher.cacheId(token);
    const hit = keys.get(id);
    if (hit !== undefined && !isMissing(hit)) {
      ctx.key = hit;
      return undefined;
    }
    if (brake !== null) {
      const braked = brake.check(ctx);
      if (braked !== undefined) return braked;
    }
    if (hit !== undefined) return settle(ctx, hit);
    return keys.load(id, token).then(
      (entry) => settle(ctx, entry),
      (err: unknown) => {
        rt.log.warn('key lookup failed', { request_id: ctx.requestId, err: String(err) });
        return UNAVAILABLE;
      },
    );
  };
}
