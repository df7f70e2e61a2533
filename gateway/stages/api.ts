import type { Denial, RequestContext, Stage } from '../context.js';
import type { Runtime } from '../runtime.js';

/** A key that lists APIs may call only those; the refusal names the API, one built per API at start-up. */
export function createApiStage(rt: Runtime): Stage {
  const refusals = new Map<string, Denial>();
  for (const { name } of rt.apis) {
    refusals.set(
      name,
      Object.freeze({
        code: 'api_not_allowed',
        message: `This API key may not call the ${name} API; ask the API's owner to allow it.`,
        extra: Object.freeze({ api: name }),
      }),
    );
  }
  return function api(ctx: RequestContext) {
    const allowed = ctx.key!.apis;
    // A verification that names no API and no path (gateway/verify.ts) has none to judge.
    if (allowed === null || ctx.api === null) return undefined;
    const name = ctx.api.name;
    if (allowed.has(name)) return undefined;
    return refusals.get(name);
  };
}
