import type { Denial, RequestContext, Stage } from '../context.js';

const WRONG: Denial = Object.freeze({ code: 'invalid_token', reason: 'wrong_environment' });

/** A live key works only on production listeners, a test key only on test ones. */
export function createEnvironmentStage(): Stage {
  return function environment(ctx: RequestContext) {
    return ctx.key!.environment === ctx.listener.environment ? undefined : WRONG;
  };
}
