import type { RequestContext, Stage } from '../context.js';

/** A key that lists APIs may call only those. */
export function createApiStage(): Stage {
  return function api(ctx: RequestContext) {
    const allowed = ctx.key!.apis;
    const name = ctx.api!.name;
    if (allowed === null || allowed.has(name)) return undefined;
    return { code: 'api_not_allowed', extra: { api: name } };
  };
}
