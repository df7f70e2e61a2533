import { ANSWERED, type AnsweringStage, type Denial, type RequestContext, type Stage } from './context.js';
import type { Runtime } from './runtime.js';
import { createApiStage } from './stages/api.js';
import { createConcurrencyStage } from './stages/concurrency.js';
import { createEnvironmentStage } from './stages/environment.js';
import { createIpAllowlistStage } from './stages/ip-allowlist.js';
import { createQuotaStage, refundQuota } from './stages/quota.js';
import { createRateLimitStage } from './stages/rate-limit.js';
import { createResolveKeyStage } from './stages/resolve-key.js';
import { createScopesStage } from './stages/scopes.js';
import { createStatusStage } from './stages/status.js';

const INTERNAL: Denial = Object.freeze({ code: 'internal_error' });

/**
 * The checks of a key that has a key's shape, in their one order (docs/architecture.md,
 * Request pipeline): resolve it, then its status, environment, API, IP allowlist, scopes,
 * the key's share of the API's upstream connections (only where a request is forwarded), the
 * rate limit, which spends only once every other check passed, and the quota, which spends
 * only once the rate limit passed too. The proxy pipeline, `/auth`
 * and the verify API (gateway/verify.ts) all run this list, so a key is judged the same way
 * wherever it is shown.
 */
export function createKeyChecks(
  rt: Runtime,
  options: {
    forwarded: boolean;
    /** Wraps the two stages whose time a request's trace reports (gateway/trace.ts); null: tracing is off. */
    timed?: ((stage: Stage, which: 'resolve' | 'rate_limit') => Stage) | null;
  },
): Stage[] {
  const timed = options.timed ?? ((stage: Stage) => stage);
  return [
    timed(createResolveKeyStage(rt), 'resolve'),
    createStatusStage(),
    createEnvironmentStage(),
    createApiStage(rt),
    createIpAllowlistStage(),
    createScopesStage(),
    ...(options.forwarded ? [createConcurrencyStage()] : []),
    timed(createRateLimitStage(rt), 'rate_limit'),
    // Last: it spends only for a request every other check let through.
    createQuotaStage(rt),
  ];
}

/** What a run of checks ends with: the first denial, ANSWERED (a stage answered), or undefined (all passed). */
export type Finish = (ctx: RequestContext, denial: Denial | typeof ANSWERED | undefined) => void;

/**
 * Runs `checks` in order, synchronously one after another; only a stage that returns a promise
 * (a key-cache miss, a shared limiter's round trip) makes the rest wait. `finish` is called once,
 * unless the client left while a stage waited (`ctx.closed`): then nothing more is done for it.
 * A stage that throws or rejects finishes the run with 500 `internal_error`.
 */
export function createRunner(rt: Runtime, checks: readonly (Stage | AnsweringStage)[], finish: Finish): (ctx: RequestContext) => void {
  function fail(ctx: RequestContext, err: unknown): void {
    rt.log.error('pipeline stage failed', { request_id: ctx.requestId, err: String(err) });
    finish(ctx, INTERNAL);
  }

  function run(ctx: RequestContext, from: number): void {
    for (let i = from; i < checks.length; i++) {
      const result = checks[i]!(ctx);
      if (result === undefined) continue;
      if (result instanceof Promise) {
        result.then(
          // A client that left while the stage waited was recorded (and refunded) when it left;
          // units a quota stage spent since are given back now.
          (denial) => (ctx.closed ? refundQuota(rt, ctx) : denial === undefined ? run(ctx, i + 1) : finish(ctx, denial)),
          (err: unknown) => fail(ctx, err),
        );
        return;
      }
      finish(ctx, result);
      return;
    }
    finish(ctx, undefined);
  }

  return function start(ctx: RequestContext): void {
    try {
      run(ctx, 0);
    } catch (err) {
      fail(ctx, err);
    }
  };
}
