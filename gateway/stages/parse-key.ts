import { parseKey } from '../../core/key-format.js';
import type { Denial, RequestContext, Stage, StageResult } from '../context.js';
import { CHALLENGES } from '../respond.js';
import { queryParamValue } from '../query-credential.js';
import type { Runtime } from '../runtime.js';

const MALFORMED: Denial = Object.freeze({ code: 'invalid_token', reason: 'malformed' });
// Another scheme (Basic, a bare key) is no bearer credential at all: RFC 6750 §3.1 gives such
// a request a challenge without an error code.
const NOT_BEARER: Denial = Object.freeze({
  code: 'invalid_token',
  reason: 'malformed',
  message: 'Send the API key with the Bearer scheme: "Authorization: Bearer <key>".',
  challenge: CHALLENGES.bearerMissing,
});

/** The 401 for a request without a key, saying where this gateway reads keys from. */
function missing(header: string, param: string | null): Denial {
  const where = header === 'authorization' ? 'as "Authorization: Bearer <key>"' : `in the "${header}" header`;
  const or = param === null ? '' : ` or as the "${param}" query parameter`;
  return Object.freeze({ code: 'missing_token', message: `This request needs an API key. Send it ${where}${or}.` });
}
// Several different values of the credential parameter: which one the gateway checks and
// which one a later reader (the upstream, a log) takes would differ. RFC 6750 §3.1 names a
// repeated parameter an `invalid_request`, answered 400; the README's 400 `bad_request` (Errors)
// is a malformed request the proxy refuses, not a key that was checked and found wanting (401).
const AMBIGUOUS: Denial = Object.freeze({
  code: 'bad_request',
  message: 'The API key query parameter is given more than once with different values; send it once.',
});

const BEARER = 'bearer ';
/** Whether `value` starts with `Bearer ` in any case, read in place (no lower-cased copy). */
function isBearer(value: string): boolean {
  if (value.length < 7) return false;
  for (let i = 0; i < 6; i++) if ((value.charCodeAt(i) | 0x20) !== BEARER.charCodeAt(i)) return false;
  return value.charCodeAt(6) === 32;
}

/**
 * Whether `ctx.token` has a key's shape, checksum and a known environment tag: a key that does
 * not is refused before any lookup, and counts towards the invalid-key brake. Shared by the
 * parse-key stage and the verify API (gateway/verify.ts), which is handed its key in a body.
 */
export function createKeyShapeCheck(rt: Runtime): (ctx: RequestContext) => StageResult {
  const prefix = rt.config.keys.prefix;
  const brake = rt.brake;
  return function keyShape(ctx: RequestContext) {
    const tag = parseKey(ctx.token!, prefix);
    // A bad shape or checksum counts towards the invalid-key brake; a key sent the wrong way
    // (no Bearer scheme, or twice) is a client's mistake, not a guess, and does not.
    if (tag === null || !rt.tagToEnv.has(tag)) return brake === null ? MALFORMED : brake.refuse(ctx, MALFORMED);
    return undefined;
  };
}

/** Takes the key from the configured header (Bearer scheme for Authorization) or query parameter. */
export function createParseKeyStage(rt: Runtime): Stage {
  const { header, query_param: param } = rt.config.keys;
  const bearer = header === 'authorization';
  const MISSING = missing(header, param);
  const shape = createKeyShapeCheck(rt);
  return function parseKeyStage(ctx: RequestContext) {
    let raw = ctx.req.headers[header];
    if (Array.isArray(raw)) raw = raw[0];
    let token: string | null = null;
    if (raw !== undefined && raw !== '') {
      if (bearer) {
        if (!isBearer(raw)) return NOT_BEARER;
        // One slice in the usual case; trim() only when there is whitespace to trim.
        token = raw.charCodeAt(7) > 32 && raw.charCodeAt(raw.length - 1) > 32 ? raw.slice(7) : raw.slice(7).trim();
      } else {
        token = raw.trim();
      }
    } else if (param !== null) {
      const value = queryParamValue(ctx.query, param);
      if (value === undefined) return AMBIGUOUS;
      token = value;
    }
    if (token === null || token === '') return MISSING;
    ctx.token = token;
    return shape(ctx);
  };
}
