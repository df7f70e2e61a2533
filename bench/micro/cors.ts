import type { IncomingMessage } from 'node:http';
import { parseConfig } from '../../config/load.js';
import { compileCors, preflightRefusal, pushCorsHeaders, type CompiledCors } from '../../gateway/cors.js';
import { HOP_BY_HOP, pushResponseHeaders } from '../../gateway/headers.js';
import { measure, report, type CaseResult } from './lib.js';

/**
 * Nanoseconds per response of what CORS adds (gateway/cors.ts): an upstream response's headers
 * as the forward stage builds them for an API without `cors` (the baseline, measured in the
 * same run), with `cors` and no Origin, and with an allowed Origin; and a preflight's verdict,
 * allowed, refused by origin, and refused unread for a 12 KB Access-Control-Request-Headers.
 *   node --import=tsx bench/micro/cors.ts
 */
const APP = 'https://app.example.com';
const config = parseConfig({
  listeners: [{ port: 0, environment: 'production' }],
  admin: { tokens: [{ name: 'bench', token: 'bench-token-0123456789', role: 'admin' }] },
  apis: [{ name: 'bench', upstream: 'http://127.0.0.1:1', cors: { origins: [APP, 'http://localhost:3000'], headers: ['content-type', 'x-trace'] } }],
});
const cors = compileCors(config.apis[0]!.cors, config)!;
// As undici hands an upstream's head over: raw name and value buffers.
const upstream = [
  ['Content-Type', 'application/json'],
  ['Content-Length', '120'],
  ['Date', 'Mon, 01 Jun 2026 12:00:00 GMT'],
  ['Connection', 'keep-alive'],
  ['Keep-Alive', 'timeout=5'],
  ['ETag', '"abc"'],
].flat().map((s) => Buffer.from(s, 'latin1'));
const request = (headers: Record<string, string>) => ({ method: 'OPTIONS', headers }) as unknown as IncomingMessage;

function headersCase(name: string, api: CompiledCors | null, req: IncomingMessage): CaseResult {
  return measure(name, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const h: string[] = [];
      pushResponseHeaders(upstream, HOP_BY_HOP, api !== null, h);
      h.push('x-request-id', 'id');
      if (api !== null) pushCorsHeaders(api, req, h);
      s += h.length;
    }
    return s;
  });
}

function verdictCase(name: string, req: IncomingMessage, expected: ReturnType<typeof preflightRefusal>): CaseResult {
  if (preflightRefusal(cors, req) !== expected) throw new Error(`${name}: not ${String(expected)}`);
  return measure(name, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (preflightRefusal(cors, req) === null) s++;
    return s;
  });
}

const cases = [
  headersCase('response headers, API without cors', null, request({})),
  headersCase('response headers, cors, no Origin', cors, request({})),
  headersCase('response headers, cors, allowed Origin', cors, request({ origin: APP })),
  verdictCase(
    'preflight verdict, allowed (3 headers)',
    request({ origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,x-trace' }),
    null,
  ),
  verdictCase('preflight verdict, origin refused', request({ origin: 'https://evil.example', 'access-control-request-method': 'POST' }), 'cors_origin_not_allowed'),
  verdictCase(
    'preflight verdict, 12 KB of request headers',
    request({ origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-h,'.repeat(3_000) }),
    'cors_headers_not_allowed',
  ),
];
const ns = (name: string) => cases.find((c) => c.name === name)!.ns;
const base = 'response headers, API without cors';
report('cors: gateway/cors.ts, per response and per preflight', cases, [
  `cors, no Origin: ${(ns('response headers, cors, no Origin') / ns(base)).toFixed(2)}x the API without cors (adds Vary: Origin)`,
  `cors, allowed Origin: ${(ns('response headers, cors, allowed Origin') / ns(base)).toFixed(2)}x the API without cors`,
]);
