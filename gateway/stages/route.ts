import type { Denial, RequestContext, Stage } from '../context.js';
import { preflightMethod } from '../cors.js';
import type { Runtime } from '../runtime.js';
import { bodyTooLarge } from '../upstream-request.js';
import { AMBIGUOUS, bodyLimit, canonicalPath, foldNonAscii, hasNonAscii, matchApi, matchRoute, scanPath, type PathFault } from '../routes.js';

const NOT_FOUND: Denial = Object.freeze({ code: 'route_not_found' });
const NO_RULE: Denial = Object.freeze({ code: 'route_not_found', message: 'No route of this API matches this method and path.' });
const AMBIGUOUS_PATH: Denial = Object.freeze({
  code: 'route_not_found',
  message: 'This path is ambiguous: read with and without its suffix, or by case, it matches different routes of this API.',
});
const BAD_TARGET: Denial = Object.freeze({ code: 'bad_request', message: 'Request target must be an absolute path.' });
const FAULTS: Readonly<Record<PathFault, Denial>> = Object.freeze({
  character: Object.freeze({
    code: 'bad_request',
    message: 'Request target holds a character that is not allowed in a URL path ("#" and the like); percent-encode it.',
  }),
  escape: Object.freeze({ code: 'bad_request', message: 'Request path holds a "%" that is not followed by two hex digits.' }),
  separator: Object.freeze({
    code: 'bad_request',
    message: 'Request path must not contain an encoded "/", "\\" or control character (%2F, %5C, %00 and the like).',
  }),
  dot_segment: Object.freeze({
    code: 'bad_request',
    message: 'Request path must not contain "." or ".." segments, plain or percent-encoded.',
  }),
  parameters: Object.freeze({ code: 'bad_request', message: 'Request path must not contain a segment of ";" parameters only.' }),
  blank: Object.freeze({ code: 'bad_request', message: 'Request path must not contain a segment of spaces only.' }),
  encoding: Object.freeze({
    code: 'bad_request',
    message: 'Request path holds percent-encoded bytes that are not UTF-8 (overlong forms such as %C0%AE included).',
  }),
} satisfies Record<PathFault, Denial>);

const BAD_CODING: Denial = Object.freeze({
  code: 'bad_request',
  message: 'Transfer-Encoding must be "chunked" alone; send other codings as Content-Encoding.',
});

/** `Transfer-Encoding: chunked` alone, in any case; any other coding would be lost on the way. */
function chunkedOnly(te: string): boolean {
  return te.length === 7 ? te.toLowerCase() === 'chunked' : te.trim().toLowerCase() === 'chunked';
}

/**
 * Judges a request target (`/path?query`) and method: checks the target, puts its path in
 * canonical form (routes.ts canonicalPath), finds the API by host and longest path prefix, then
 * the first matching route rule, and sets what the request needs (`ctx.required`). `ctx.path` is
 * what the upstream receives; the rule is matched on the canonical form of the same segments.
 * A request matching no rule is refused unless the API lets unlisted requests through
 * (`unlisted`, docs/architecture.md, Route rules); then its route is null and it needs the
 * API's unlisted scopes. With `preflights`, a CORS preflight to an API with `cors` is marked
 * for the preflight stage and matched by the method it announces (docs/cors.md). The proxy's
 * route stage, `/auth` and the verify API (gateway/verify.ts) all match with it.
 */
export type RouteMatcher = (ctx: RequestContext, method: string, url: string, hostHeader: string | undefined) => Denial | undefined;

export function createRouteMatcher(rt: Runtime, preflights: boolean): RouteMatcher {
  const apis = rt.apis;
  const anyHost = apis.some((a) => a.host !== null);
  return function matchTarget(ctx, method, url, hostHeader) {
    if (url.charCodeAt(0) !== 47 /* / */) return BAD_TARGET;
    const q = url.indexOf('?');
    let path = q === -1 ? url : url.slice(0, q);
    if (q !== -1) {
      ctx.query = url.slice(q);
      // A fragment is never sent (RFC 9112 §3.2); one in the query is refused like one in the path.
      if (ctx.query.includes('#')) return FAULTS.character;
    }
    let match = path;
    const scan = scanPath(path);
    if (scan === 'character') return FAULTS.character;
    if (scan === 'work') {
      const canonical = canonicalPath(path);
      if (typeof canonical === 'string') return FAULTS[canonical];
      path = canonical.forward;
      match = canonical.match;
    }
    ctx.path = path;
    let host: string | null = null;
    if (anyHost && hostHeader) {
      const h = hostHeader;
      const colon = h.startsWith('[') ? h.indexOf(':', h.indexOf(']')) : h.indexOf(':');
      host = (colon === -1 ? h : h.slice(0, colon)).toLowerCase();
    }
    const api = matchApi(apis, host, match);
    if (api === null) return NOT_FOUND;
    ctx.api = api;
    if (!api.routes.caseSensitive && scan === 'work' && hasNonAscii(match)) {
      const folded = foldNonAscii(match);
      if (folded === null) return AMBIGUOUS_PATH;
      match = folded;
    }
    // A preflight is matched as the request it announces: the gateway vouches only for what
    // it would serve, and one matching no rule is refused as that request would be.
    if (preflights && api.cors !== null && method === 'OPTIONS') {
      const announced = preflightMethod(ctx.req);
      if (announced !== null) {
        ctx.preflight = true;
        method = announced;
      }
    }
    const route = matchRoute(api.routes, method, match);
    if (route === AMBIGUOUS) return AMBIGUOUS_PATH;
    if (route === null) {
      if (api.unlisted === null) return NO_RULE;
      ctx.required = api.unlisted;
    } else {
      ctx.required = route.scopes;
    }
    ctx.route = route;
    return undefined;
  };
}

/**
 * The proxy's route stage: the request's own target, method and Host (createRouteMatcher),
 * then what the request says of its body, judged here, before its key costs a lookup or a token.
 */
export function createRouteStage(rt: Runtime): Stage {
  const matchTarget = createRouteMatcher(rt, true);
  return function route(ctx: RequestContext) {
    const req = ctx.req;
    const denial = matchTarget(ctx, ctx.method, req.url ?? '', req.headers.host);
    if (denial !== undefined) return denial;
    const te = req.headers['transfer-encoding'];
    if (te !== undefined && !chunkedOnly(te)) return BAD_CODING;
    const limit = bodyLimit(ctx.api!, ctx.route);
    const cl = req.headers['content-length'];
    if (limit !== null && cl !== undefined && Number(cl) > limit) return bodyTooLarge(limit);
    return undefined;
  };
}
