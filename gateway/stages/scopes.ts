import type { RequestContext, Stage } from '../context.js';

/** The route's required scopes must all be held; the missing ones are named in the error. */
export function createScopesStage(): Stage {
  return function scopes(ctx: RequestContext) {
    const required = ctx.route?.scopes;
    if (required === undefined || required.length === 0) return undefined;
    const held = ctx.key!.scopes;
    for (const s of required) {
      if (!held.has(s)) {
        return {
          code: 'insufficient_permissions',
          extra: { required_scopes: required, missing_scopes: required.filter((r) => !held.has(r)) },
        };
      }
    }
    return undefined;
  };
}
