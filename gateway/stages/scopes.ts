import type { Denial, RequestContext, Stage } from '../context.js';

/**
 * The scopes the request needs (`ctx.required`: its route's, or the API's `unlisted` scopes
 * for a request no rule matched, and those a verification's caller names) must all be held; the missing
 * ones are named in the error, its message included. A refusal depends only on the required
 * list and the key's scope set, both objects shared by every request alike (compiled keys with
 * equal scopes share one set), so it is built once per pair and frozen, its body text kept.
 */
export function createScopesStage(): Stage {
  const refusals = new WeakMap<readonly string[], WeakMap<ReadonlySet<string>, Denial>>();
  const refusal = (required: readonly string[], held: ReadonlySet<string>): Denial => {
    let byHeld = refusals.get(required);
    if (byHeld === undefined) refusals.set(required, (byHeld = new WeakMap()));
    let denial = byHeld.get(held);
    if (denial === undefined) {
      const missing = Object.freeze(required.filter((r) => !held.has(r)));
      denial = Object.freeze({
        code: 'insufficient_permissions',
        message: lacks(missing),
        extra: Object.freeze({ required_scopes: required, missing_scopes: missing }),
      });
      byHeld.set(held, denial);
    }
    return denial;
  };
  return function scopes(ctx: RequestContext) {
    const required = ctx.required;
    if (required.length === 0) return undefined;
    const held = ctx.key!.scopes;
    for (const s of required) {
      if (!held.has(s)) return refusal(required, held);
    }
    return undefined;
  };
}

/** What the key holder reads: the scopes by name, and that only the API's owner can grant them. */
function lacks(missing: readonly string[]): string {
  if (missing.length === 1) return `This API key lacks the ${missing[0]} scope; ask the API's owner to grant it.`;
  return `This API key lacks the ${missing.slice(0, -1).join(', ')} and ${missing[missing.length - 1]} scopes; ask the API's owner to grant them.`;
}
