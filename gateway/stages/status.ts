import { unusable } from '../compiled-key.js';
import type { RequestContext, Stage } from '../context.js';

/** Revoked, expired, suspended or pending keys are refused (gateway/compiled-key.ts unusable). */
export function createStatusStage(): Stage {
  return function status(ctx: RequestContext) {
    const life = ctx.key!.life;
    return life === null ? undefined : unusable(life, ctx.now);
  };
}
