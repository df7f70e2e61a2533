import type { Denial, RequestContext, Stage } from '../context.js';
import type { Runtime } from '../runtime.js';
import { hasDotSegment, matchablePath, matchApi, matchRoute } from '../routes.js';

const NOT_FOUND: Denial = Object.freeze({ code: 'route_not_found' });
const BAD_TARGET: Denial = Object.freeze({ code: 'bad_request', message: 'Request target must be an absolute path.' });
const DOT_SEGMENT: Denial = Object.freeze({
  code: 'bad_request',
  message: 'Request path must not contain "." or ".." segments, plain or percent-encoded.',
});

/** Finds the API by host and longest path prefix, then the first matching route rule. */
export function createRouteStage(rt: Runtime): Stage {
  const apis = rt.apis;
  const anyHost = apis.some((a) => a.host !== null);
  return function route(ctx: RequestContext) {
    const url = ctx.req.url ?? '';
    if (url.charCodeAt(0) !== 47 /* / */) return BAD_TARGET;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    ctx.path = path;
    ctx.query = q === -1 ? '' : url.slice(q);
    if (hasDotSegment(path)) return DOT_SEGMENT;
    let host: string | null = null;
    if (anyHost) {
      const h = ctx.req.headers.host;
      if (h) {
        const colon = h.startsWith('[') ? h.indexOf(':', h.indexOf(']')) : h.indexOf(':');
        host = (colon === -1 ? h : h.slice(0, colon)).toLowerCase();
      }
    }
    const matchable = matchablePath(path);
    const api = matchApi(apis, host, matchable);
    if (api === null) return NOT_FOUND;
    ctx.api = api;
    ctx.route = api.routes.length === 0 ? null : matchRoute(api, ctx.req.method ?? 'GET', matchable);
    return undefined;
  };
}
