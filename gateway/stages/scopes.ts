import type { RequestContext, Stage } from '../context.js';

/**
 * The route's required scopes must all be held, or the API's `unlisted` scopes for a request
 * no rule matched (the route stage lets one through only when the API allows it); the missing
 * ones are named in the error.
 */
export function createScopesStage(): Stage {
  return function scopes(ctx: RequestContext) {
    const required = ctx.route === null ? ctx.api!.unlisted! : ctx.route.scopes;
    if (required.length === 0) return undefined;
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
