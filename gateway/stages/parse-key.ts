import { parseKey } from '../../core/key-format.js';
import type { Denial, RequestContext, Stage } from '../context.js';
import type { Runtime } from '../runtime.js';

const MISSING: Denial = Object.freeze({ code: 'missing_token' });
const MALFORMED: Denial = Object.freeze({ code: 'invalid_token', reason: 'malformed' });
const NOT_BEARER: Denial = Object.freeze({
  code: 'invalid_token',
  reason: 'malformed',
  message: 'Send the API key with the Bearer scheme: "Authorization: Bearer <key>".',
});

/** Takes the key from the configured header (Bearer scheme for Authorization) or query parameter. */
export function createParseKeyStage(rt: Runtime): Stage {
  const { header, query_param: param, prefix } = rt.config.keys;
  const bearer = header === 'authorization';
  const queryNeedle = param === null ? null : `${param}=`;
  return function parseKeyStage(ctx: RequestContext) {
    let raw = ctx.req.headers[header];
    if (Array.isArray(raw)) raw = raw[0];
    let token: string | null = null;
    if (raw !== undefined && raw !== '') {
      if (bearer) {
        if (raw.length < 7 || raw.slice(0, 7).toLowerCase() !== 'bearer ') return NOT_BEARER;
        token = raw.slice(7).trim();
      } else {
        token = raw.trim();
      }
    } else if (queryNeedle !== null && ctx.query.includes(queryNeedle)) {
      token = new URLSearchParams(ctx.query).get(param!) ?? null;
    }
    if (token === null || token === '') return MISSING;
    ctx.token = token;
    const tag = parseKey(token, prefix);
    if (tag === null || !rt.tagToEnv.has(tag)) return MALFORMED;
    return undefined;
  };
}
