import { unusable, type LifeReason } from '../compiled-key.js';
import type { Denial, RequestContext, Stage } from '../context.js';

const d = (reason: LifeReason): Denial => Object.freeze({ code: 'invalid_token', reason });
const DENIALS: Readonly<Record<LifeReason, Denial>> = Object.freeze({
  revoked: d('revoked'),
  expired: d('expired'),
  suspended: d('suspended'),
  pending: d('pending'),
});

/** Revoked, expired, suspended or pending keys are refused (gateway/compiled-key.ts unusable). */
export function createStatusStage(): Stage {
  return function status(ctx: RequestContext) {
    const life = ctx.key!.life;
    if (life === null) return undefined;
    const reason = unusable(life, ctx.now);
    return reason === undefined ? undefined : DENIALS[reason];
  };
}
