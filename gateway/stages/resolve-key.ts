import { checksumMatches } from '../../core/key-format.js';
import type { Denial, RequestContext, Stage, StageResult } from '../context.js';
import { isMissing, type CacheEntry } from '../key-cache.js';
import type { Runtime } from '../runtime.js';
import { MALFORMED } from './parse-key.js';

const NOT_FOUND: Denial = Object.freeze({ code: 'invalid_token', reason: 'not_found' });
const UNAVAILABLE: Denial = Object.freeze({
  code: 'service_unavailable',
  message: 'The key store is unreachable and this key is not cached. Retry shortly.',
});

/**
 * Hash → compiled key from the LRU; only a miss goes to the store, and only a miss awaits.
 * A miss first checks the key's checksum (DESIGN.md §2: a bad one is refused before any store
 * lookup). A hit needs no such check: a cached entry is a key the store holds, or a miss
 * cached after the checksum passed.
 */
export function createResolveKeyStage(rt: Runtime): Stage {
  const { hasher, keys } = rt;
  const settle = (ctx: RequestContext, entry: CacheEntry): StageResult => {
    if (isMissing(entry)) return NOT_FOUND;
    ctx.key = entry;
    return undefined;
  };
  return function resolveKey(ctx: RequestContext) {
    const token = ctx.token!;
    const id = hasher.cacheId(token);
    const hit = keys.get(id);
    if (hit !== undefined) return settle(ctx, hit);
    if (!checksumMatches(token)) return MALFORMED;
    return keys.load(id, token).then(
      (entry) => settle(ctx, entry),
      (err: unknown) => {
        rt.log.warn('key lookup failed', { request_id: ctx.requestId, err: String(err) });
        return UNAVAILABLE;
      },
    );
  };
}
