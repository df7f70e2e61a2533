import type { Denial, RequestContext, Stage } from '../context.js';

const d = (reason: string): Denial => Object.freeze({ code: 'invalid_token', reason });
const REVOKED = d('revoked');
const EXPIRED = d('expired');
const SUSPENDED = d('suspended');
const PENDING = d('pending');

/** Judges the key's times against the request's clock reading, not a scheduler's last run. */
export function createStatusStage(): Stage {
  return function status(ctx: RequestContext) {
    const life = ctx.key!.life;
    if (life === null) return undefined;
    if (life.revokedAt !== null && life.revokedAt <= ctx.now) return REVOKED;
    if (life.expiresAt !== null && life.expiresAt <= ctx.now) return EXPIRED;
    if (life.suspended) return SUSPENDED;
    if (life.notBefore !== null && life.notBefore > ctx.now) return PENDING;
    return undefined;
  };
}
