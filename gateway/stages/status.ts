import type { Denial, RequestContext, Stage } from '../context.js';

const d = (reason: string): Denial => Object.freeze({ code: 'invalid_token', reason });
const REVOKED = d('revoked');
const EXPIRED = d('expired');
const SUSPENDED = d('suspended');
const PENDING = d('pending');

/** Judges the key's times against the request's clock reading, not a scheduler's last run. */
export function createStatusStage(): Stage {
  return function status(ctx: RequestContext) {
    const key = ctx.key!;
    if (key.revokedAt !== null && key.revokedAt <= ctx.now) return REVOKED;
    if (key.expiresAt !== null && key.expiresAt <= ctx.now) return EXPIRED;
    if (key.suspended) return SUSPENDED;
    if (key.notBefore !== null && key.notBefore > ctx.now) return PENDING;
    return undefined;
  };
}
