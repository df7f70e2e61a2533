/** The admin API and the dashboard's session calls, from the page (docs/dashboard.md). */

export interface SessionInfo {
  user: { name: string; email: string | null; role: 'admin' | 'developer' | 'viewer'; tenant: string | null };
  via: 'password' | 'token';
  csrf_token: string;
  expires_at: string;
  sudo_seconds_left: number;
  server_time: string;
  gateway_urls: Record<string, string>;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: { path: string; message: string }[] = [],
  ) {
    super(message);
  }
}

let csrf = '';
/** Server time minus this browser's, so that "2 minutes ago" is measured on the server's clock. */
let skew = 0;
/** performance.now() until which sudo mode lasts. */
let sudoUntil = 0;

export const serverNow = () => Date.now() + skew;

function adopt(s: SessionInfo): SessionInfo {
  csrf = s.csrf_token;
  skew = Date.parse(s.server_time) - Date.now();
  sudoUntil = performance.now() + s.sudo_seconds_left * 1000;
  return s;
}

/** Whether sudo mode still has a margin of a few seconds. */
export const inSudo = () => performance.now() + 5_000 < sudoUntil;

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  if (res.status === 204) return undefined as T;
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    throw new ApiError(res.status, String(json['error'] ?? 'error'), String(json['message'] ?? res.statusText), (json['details'] as ApiError['details']) ?? []);
  }
  return json as T;
}

export const api = {
  get: <T>(path: string) => call<T>('GET', path),
  post: <T>(path: string, body?: unknown) => call<T>('POST', path, body),
  patch: <T>(path: string, body: unknown) => call<T>('PATCH', path, body),
};

export const session = {
  current: async () => adopt(await call<SessionInfo>('GET', '/dashboard/api/session')),
  signIn: async (body: { email: string; password: string } | { token: string }) => adopt(await call<SessionInfo>('POST', '/dashboard/api/sign-in', body)),
  sudo: async (secret: string, via: SessionInfo['via']) => adopt(await call<SessionInfo>('POST', '/dashboard/api/sudo', via === 'token' ? { token: secret } : { password: secret })),
  signOut: () => call<void>('POST', '/dashboard/api/sign-out'),
};

export interface Key {
  id: string;
  name: string;
  description: string | null;
  environment: string;
  masked: string;
  status: 'pending' | 'active' | 'suspended' | 'expired' | 'revoked';
  scopes: string[];
  apis: string[] | null;
  plan: string | null;
  rate_limit: RateLimit | null;
  /** The key's own quota or credits (docs/quotas.md); at most one of them is set. */
  quota: Quota | null;
  credits: Credits | null;
  ip_allowlist: string[] | null;
  application: string | null;
  policy: string | null;
  created_at: string;
  created_by: string;
  updated_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  revoked_reason: string | null;
  suspended_at: string | null;
  suspended_reason: string | null;
  replaces: string | null;
  replaced_by: string | null;
  grace_ends_at: string | null;
  usage: { total_requests: number; error_count: number };
}

/** `GET /v1/keys/{id}` and the credits route add what is left of the key's quota or credits, its own or its plan's. */
export interface KeyWithBalance extends Key {
  balance: Balance | null;
}

export interface Balance {
  remaining: number;
  /** When the balance is next set to its refill amount; null when it never is. */
  refills_at: string | null;
}

export type LimitMode = 'enforce' | 'shadow';

export interface Quota {
  limit: number;
  /** Null with `refill: false`: `limit` units once. */
  period: 'hour' | 'day' | 'month' | null;
  refill: boolean;
  mode: LimitMode;
  refund_on: '5xx'[];
}

export interface Credits {
  remaining: number;
  refill: { amount: number; every: 'day' | 'month' } | null;
  mode: LimitMode;
  refund_on: '5xx'[];
}

export interface IssuedKey extends Key {
  key: string;
  curl: string | null;
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export interface ScopeCatalog {
  data: { name: string; description: string | null; category: string; dangerous: boolean }[];
  categories: { name: string; scopes: string[] }[];
  presets: { name: string; scopes: string[] }[];
}

export interface KeyEvent {
  type: string;
  scheduled_at: string | null;
  occurred_at: string | null;
  actor: string | null;
  detail: unknown;
}

export interface RateLimit {
  limit: number;
  window_seconds: number;
  burst: number | null;
}

export interface ApiRoute {
  name: string | null;
  method: string;
  path: string;
  example_path: string;
  scopes: string[];
  plan: string | null;
  rate_limit: RateLimit | null;
  max_body_bytes: number;
}

export interface ApiCatalog {
  gateway_urls: Record<string, string>;
  credential: { header: string; scheme: string | null; query_param: string | null };
  plans: ({ name: string } & RateLimit)[];
  data: {
    name: string;
    host: string | null;
    path_prefix: string;
    max_body_bytes: number;
    routes: ApiRoute[];
    unlisted: { policy: 'deny' | 'allow' | 'scopes'; scopes: string[] };
    cors: { origins: string[]; methods: string[]; headers: string[] } | null;
  }[];
}

export interface Application {
  id: string;
  name: string;
  description: string | null;
  status: 'active' | 'suspended';
  meta: Record<string, unknown>;
  tenant: string | null;
  created_at: string;
  created_by: string | null;
  updated_at: string;
  suspended_at: string | null;
  suspended_reason: string | null;
  /** The limit all its keys share: a plan's, or its own (`rate_limit`, which wins); neither: none. */
  plan: string | null;
  rate_limit: { limit: number; window_seconds: number; burst: number | null } | null;
  /** The quota or credits all its keys share, beside each key's own (docs/quotas.md); at most one of the two. */
  quota: Quota | null;
  credits: Credits | null;
}

/** `GET /v1/applications/{id}`, its PATCH and its credits route add what is left of the shared quota or credits. */
export interface ApplicationWithBalance extends Application {
  balance: Balance | null;
}

export interface Policy {
  name: string;
  description: string | null;
  plan: string | null;
  rate_limit: RateLimit | null;
  expires_in_seconds: number | null;
  ip_allowlist: string[] | null;
  allow_regeneration: boolean;
  regeneration_grace_seconds: number;
  rotation: { every_days: number; grace_seconds: number } | null;
}
