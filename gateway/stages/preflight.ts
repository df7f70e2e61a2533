import { ANSWERED, type AnsweringStage, type RequestContext } from '../context.js';
import { PREFLIGHT_VARY, preflightRefusal, setPreflightHeaders } from '../cors.js';
import { closeUnderUnreadBody } from '../in-flight.js';
import type { Runtime } from '../runtime.js';

/**
 * Answers a CORS preflight to an API with `cors` (the route stage marked it and found its
 * route) from the configuration, before any key is asked for: 204, with the allow headers
 * when its origin, announced method and announced headers are all allowed, without them
 * otherwise (browsers then refuse the request), as Kong's and Envoy's CORS filters answer a
 * preflight they do not allow (docs/cors.md). Nothing reaches the store or the upstream.
 * The pipeline has this stage only when some API has `cors`.
 */
export function createPreflightStage(rt: Runtime): AnsweringStage {
  const requestIdHeader = rt.config.headers.request_id;
  return function preflight(ctx: RequestContext) {
    if (!ctx.preflight) return undefined;
    const res = ctx.res!;
    const cors = ctx.api!.cors!;
    const headers: Record<string, unknown> = { vary: PREFLIGHT_VARY, [requestIdHeader]: ctx.requestId };
    const refusal = preflightRefusal(cors, ctx.req);
    if (refusal === null) setPreflightHeaders(cors, ctx.req, headers);
    // A preflight has no body; one announced is not read (see respond.ts renderDenial).
    if (ctx.listener.hsts) headers['strict-transport-security'] = ctx.listener.hsts;
    closeUnderUnreadBody(ctx, headers);
    ctx.status = 204;
    ctx.reason = refusal ?? 'cors_preflight';
    res.writeHead(204, headers as Record<string, string>);
    res.end();
    return ANSWERED;
  };
}
