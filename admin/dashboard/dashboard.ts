import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../../config/schema.js';
import type { Clock } from '../../core/clock.js';
import { HttpError } from '../../core/errors.js';
import { verifyPassword } from '../../core/password.js';
import { publicGatewayUrls } from '../api-catalog.js';
import type { Principal, TokenAuth } from '../auth.js';
import { readJson, sendJson } from '../http.js';
import { FROM_SOURCES, loadAssets, type Assets } from './assets.js';
import { Sessions, SignInThrottle, type Session } from './sessions.js';

/**
 * The dashboard on the admin listener (docs/dashboard.md): its page and assets under
 * /dashboard, sign-in, sudo and sign-out under /dashboard/api, and the session cookie that lets
 * the page call the admin API (/v1/...) with the powers of the signed-in user, as a token would.
 */
export interface Dashboard {
  /** Answers a request under /dashboard. */
  handle(req: IncomingMessage, res: ServerResponse, path: string, requestId: string, ip: string): Promise<void>;
  /**
   * The principal of a request to an admin route that carries a session cookie and no
   * Authorization header, or null when it has no cookie. Throws when the session is unknown or
   * ended, when a mutation lacks the session's CSRF token or comes from another origin, and when
   * a route that needs sudo comes outside it.
   */
  principalOf(req: IncomingMessage, routeKey: string): Principal | null;
  /** Built: resolves once the assets are read from dist/, rejects when they cannot be. */
  ready(): Promise<void>;
}

export interface DashboardDeps {
  clock: Clock;
  auth: TokenAuth;
  gatewayUrls: Record<string, string>;
}

/** Routes that create, regenerate or revoke a key: only in sudo mode when called with a session. */
export const SUDO_ROUTES: ReadonlySet<string> = new Set(['POST /v1/keys', 'POST /v1/keys/{id}/regenerate', 'POST /v1/keys/{id}/revoke']);

const COOKIE = 'kg_session';
const CSRF_HEADER = 'x-csrf-token';
/** Sign-in, sudo and sign-out bodies are a few short strings. */
const MAX_BODY = 4096;

/**
 * The page's Content-Security-Policy. It talks to its own origin, and to the gateways' only for
 * "Try it" on the API docs page, which sends a developer's request through the gateway.
 */
export function contentSecurityPolicy(gatewayUrls: Readonly<Record<string, string>>): string {
  const gateways = new Set<string>();
  for (const url of Object.values(gatewayUrls)) {
    try {
      gateways.add(new URL(url).origin);
    } catch {
      // not a URL: nothing to allow
    }
  }
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    ["connect-src 'self'", ...[...gateways].sort()].join(' '),
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const PAGE_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
} as const;

export function createDashboard(config: Config, deps: DashboardDeps): Dashboard {
  const cfg = config.dashboard;
  const sessions = new Sessions(deps.clock, cfg.session_ttl_minutes, cfg.sudo_minutes);
  const throttle = new SignInThrottle(deps.clock, cfg.max_failed_sign_ins);
  const users = new Map(cfg.users.map((u) => [u.email, u]));
  // Checked when the email is unknown, so that the answer takes as long as for a known one.
  const decoy = cfg.users[0]?.password_hash ?? null;
  // Built, the assets are read at start-up, so that a missing build fails the start. From the
  // sources, bundling costs a second or two of CPU: done on the first request for the page, so
  // that processes that never serve it (most tests) never pay for it.
  let loaded: Promise<Assets> | undefined;
  const assets = () => (loaded ??= loadAssets());

  const secure = (req: IncomingMessage) => (req.socket as TLSSocket).encrypted === true;
  const cookieOf = (req: IncomingMessage): string | null => {
    const header = req.headers.cookie;
    if (header === undefined || header.length > 8192) return null;
    for (const part of header.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === COOKIE) return part.slice(eq + 1).trim();
    }
    return null;
  };
  const setCookie = (req: IncomingMessage, value: string, maxAge: number) =>
    `${COOKIE}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure(req) ? '; Secure' : ''}`;

  /** A mutation must come from a page of this very origin. */
  const sameOrigin = (req: IncomingMessage): boolean => {
    const origin = req.headers.origin;
    const host = req.headers.host;
    return origin !== undefined && host !== undefined && origin.toLowerCase() === `${secure(req) ? 'https' : 'http'}://${host.toLowerCase()}`;
  };

  const checkMutation = (req: IncomingMessage, s: Session) => {
    if (!sameOrigin(req)) throw new HttpError('forbidden', 'A dashboard session may change things only from a page of the dashboard itself (the Origin header does not match).');
    const given = req.headers[CSRF_HEADER];
    if (!sessions.csrfMatches(s, typeof given === 'string' ? given : undefined)) {
      throw new HttpError('forbidden', `This change needs the session's CSRF token in ${CSRF_HEADER}; reload the dashboard and try again.`);
    }
  };

  const ended = () => new HttpError('unauthorized', 'Your dashboard session has ended; sign in again.');

  const sessionBody = (s: Session) => ({
    user: { name: s.principal.name, email: s.email, role: s.principal.role, tenant: s.principal.tenant },
    via: s.via,
    csrf_token: s.csrf,
    expires_at: new Date(s.expiresAt).toISOString(),
    // Seconds rather than a time: the page's clock need not agree with the server's.
    sudo_seconds_left: Math.max(0, Math.floor((s.sudoUntil - deps.clock.now()) / 1000)),
    server_time: new Date(deps.clock.now()).toISOString(),
    gateway_urls: deps.gatewayUrls,
  });

  /** The user's secret, checked against how they signed in: password for users, the token for tokens. */
  const checkSecret = async (body: Record<string, unknown>): Promise<{ principal: Principal; email: string | null; via: Session['via'] } | null> => {
    if (typeof body['token'] === 'string' && body['token'].length <= 1024) {
      const p = deps.auth.match(body['token']);
      // A gateway token can only ship usage; it has nothing to show.
      return p !== null && p.role !== 'gateway' ? { principal: p, email: null, via: 'token' } : null;
    }
    const email = typeof body['email'] === 'string' ? body['email'].trim().toLowerCase() : '';
    const password = typeof body['password'] === 'string' && body['password'].length <= 1024 ? body['password'] : null;
    if (password === null) return null;
    const user = users.get(email);
    if (user === undefined) {
      if (decoy !== null) await verifyPassword(password, decoy);
      return null;
    }
    if (!(await verifyPassword(password, user.password_hash))) return null;
    return { principal: Object.freeze({ name: user.name, role: user.role, tenant: user.tenant }), email: user.email, via: 'password' };
  };

  const throttled = (ip: string) => {
    const wait = throttle.blockedFor(ip);
    // A 429 of its own, not one more 401: the client is told to wait, not that its password is wrong.
    if (wait > 0) throw new HttpError('too_many_sign_ins', `Too many failed sign-ins from this address; try again in ${wait} seconds.`, undefined, { 'retry-after': String(wait) });
  };

  const objectBody = async (req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown>> => {
    const body = await readJson(req, res, MAX_BODY);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError('bad_request', 'Send a JSON object.');
    return body as Record<string, unknown>;
  };

  async function api(req: IncomingMessage, res: ServerResponse, action: string, requestId: string, ip: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (action === 'session' && method === 'GET') {
      const id = cookieOf(req);
      const s = id === null ? null : sessions.get(id);
      if (s === null) throw ended();
      return sendJson(res, 200, sessionBody(s), requestId);
    }
    if (method !== 'POST' || !['sign-in', 'sudo', 'sign-out'].includes(action)) {
      throw new HttpError('not_found', `No dashboard call ${method} /dashboard/api/${action}.`);
    }
    if (action === 'sign-in') {
      if (!sameOrigin(req)) throw new HttpError('forbidden', 'Sign in from the dashboard page itself (the Origin header does not match).');
      // Checked and counted in one step, before any await: see SignInThrottle.
      throttled(ip);
      throttle.fail(ip);
      const body = await objectBody(req, res);
      const who = await checkSecret(body);
      if (who === null) throw new HttpError('unauthorized', 'Those credentials are not recognised: check the email and password, or the token.');
      throttle.refund(ip);
      // A sign-in replaces the session this browser had.
      const previous = cookieOf(req);
      if (previous !== null) sessions.delete(previous);
      const made = sessions.create(who.principal, who.email, who.via);
      if (made === null) throw new HttpError('service_unavailable', 'Too many dashboard sessions are open; try again later.');
      return sendJson(res, 200, sessionBody(made.session), requestId, { 'set-cookie': setCookie(req, made.id, sessions.ttlSeconds) });
    }
    const id = cookieOf(req);
    const s = id === null ? null : sessions.get(id);
    if (s === null || id === null) throw ended();
    checkMutation(req, s);
    if (action === 'sign-out') {
      sessions.delete(id);
      res.writeHead(204, { 'set-cookie': setCookie(req, '', 0), 'cache-control': 'no-store', 'x-request-id': requestId });
      return void res.end();
    }
    throttled(ip);
    throttle.fail(ip);
    const body = await objectBody(req, res);
    const who = await checkSecret(s.via === 'token' ? { token: body['token'] } : { email: s.email, password: body['password'] });
    if (who === null || who.principal.name !== s.principal.name) {
      throw new HttpError('unauthorized', s.via === 'token' ? 'That is not the token you signed in with.' : 'That password is not right.');
    }
    throttle.refund(ip);
    sessions.grantSudo(s);
    return sendJson(res, 200, sessionBody(s), requestId);
  }

  async function page(res: ServerResponse, requestId: string): Promise<void> {
    const a = await assets();
    const html =
      '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
      '<meta name="viewport" content="width=device-width, initial-scale=1">' +
      '<title>Keygate dashboard</title><link rel="icon" href="data:,">' +
      `<link rel="stylesheet" href="/dashboard/assets/${a.css}">` +
      `<script type="module" src="/dashboard/assets/${a.js}"></script>` +
      '</head><body><div id="app"></div></body></html>';
    res.writeHead(200, {
      ...PAGE_HEADERS,
      'content-security-policy': contentSecurityPolicy(publicGatewayUrls(config, deps.gatewayUrls)),
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(html),
      'cache-control': 'no-store',
      'x-request-id': requestId,
    });
    res.end(html);
  }

  async function asset(req: IncomingMessage, res: ServerResponse, name: string, a: Assets): Promise<void> {
    const file = a.files.get(name);
    if (file === undefined) throw new HttpError('not_found', `No dashboard asset ${name}.`);
    const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = gzip ? file.gzip : file.body;
    res.writeHead(200, {
      'content-type': file.type,
      'content-length': body.length,
      'cache-control': 'public, max-age=31536000, immutable',
      'x-content-type-options': 'nosniff',
      vary: 'accept-encoding',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  return {
    async ready() {
      if (!FROM_SOURCES) await assets();
    },
    async handle(req, res, path, requestId, ip) {
      if (path.startsWith('/dashboard/api/')) return api(req, res, path.slice('/dashboard/api/'.length), requestId, ip);
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        throw new HttpError('method_not_allowed', `${path} answers GET, HEAD.`);
      }
      if (path.startsWith('/dashboard/assets/')) return asset(req, res, path.slice('/dashboard/assets/'.length), await assets());
      return page(res, requestId);
    },
    principalOf(req, routeKey) {
      const id = cookieOf(req);
      if (id === null) return null;
      const s = sessions.get(id);
      if (s === null) throw ended();
      if (req.method !== 'GET' && req.method !== 'HEAD') checkMutation(req, s);
      if (SUDO_ROUTES.has(routeKey) && !sessions.inSudo(s)) {
        throw new HttpError('forbidden', 'Confirm your password first: creating, regenerating and revoking keys need it re-entered within the last few minutes (sudo mode).');
      }
      return s.principal;
    },
  };
}
