import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { ALERT_TYPES } from '../core/alerts.js';
import { DEFAULT_DOC_BASE_URL } from '../core/errors.js';
import { parseCidr } from '../core/ip.js';
import { parsePasswordHash } from '../core/password.js';
import { foldName } from '../core/query-name.js';

/**
 * The most keys `keys.cache.max` may hold: the key cache's table (gateway/key-table.ts) keeps a
 * 64-byte row a key in one ArrayBuffer made at start-up, and Node's typed arrays stop at 2^32
 * bytes. Above it the gateway would fail at start with a RangeError.
 */
export const MAX_CACHED_KEYS = 2 ** 26;

const port = z.number().int().min(0).max(65535);
/** A secret given as `${VAR}` may hold only digits; it is still a string. */
const secret = z.preprocess((v) => (typeof v === 'number' ? String(v) : v), z.string().min(16, 'must be at least 16 characters'));
const host = z.string().min(1);
const name = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, "_", "-" or "."');
const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be a valid HTTP header name')
  .transform((s) => s.toLowerCase());

export const cidr = z.string().refine((s) => parseCidr(s) !== null, 'must be an IPv4 or IPv6 address or CIDR');

export const rateLimitSpec = z.strictObject({
  limit: z.number().int().positive(),
  window_seconds: z.number().positive(),
  burst: z.number().int().positive().nullable().default(null),
});

/** What the limiter does when a shared store cannot be asked: admit, refuse (503), or count per node. */
const onStoreFailure = z.enum(['open', 'closed', 'local']).default('local');

/** `shadow`: the limit is computed and reported (headers, metrics, usage, alerts) but never refuses (docs/quotas.md). */
export const limitMode = z.enum(['enforce', 'shadow']).default('enforce');
/** Quota units: whole numbers up to a trillion, so that balances stay exact in every store (doubles in Lua). */
export const units = z.number().int().max(1e12);
/** Upstream answers whose quota units are given back: `5xx`, the upstream failed. */
const refundOn = z.array(z.literal('5xx')).max(1).default([]);

/** `limit` units per calendar period (UTC); with `refill: false`, `limit` units once (no period). */
export const quotaSpec = z
  .strictObject({
    limit: units.positive(),
    period: z.enum(['hour', 'day', 'month']).nullable().default(null),
    refill: z.boolean().default(true),
    mode: limitMode,
    refund_on: refundOn,
  })
  .superRefine((q, ctx) => {
    if (q.refill && q.period === null) ctx.addIssue({ code: 'custom', path: ['period'], message: 'is needed to refill: hour, day or month (or set refill: false for a one-time allowance)' });
    if (!q.refill && q.period !== null) ctx.addIssue({ code: 'custom', path: ['period'], message: 'has no meaning with refill: false; leave it out' });
  });

/** A balance of `remaining` units, set to `refill.amount` at the start of every day or month when `refill` is given. */
export const creditsSpec = z.strictObject({
  remaining: units.nonnegative(),
  refill: z
    .strictObject({ amount: units.positive(), every: z.enum(['day', 'month']) })
    .nullable()
    .default(null),
  mode: limitMode,
  refund_on: refundOn,
});

const plan = z.strictObject({
  limit: z.number().int().positive(),
  window_seconds: z.number().positive(),
  burst: z.number().int().positive().nullable().default(null),
  on_store_failure: onStoreFailure,
  /** Upstream requests one key of this plan may have in flight per API (null: the API's own share). */
  max_concurrent: z.number().int().positive().nullable().default(null),
  /** `shadow`: the plan's rate limit (and a key's own limit under it) is reported, never enforced. */
  mode: limitMode,
  /** Units per period for keys of this plan that carry no quota or credits of their own. */
  quota: quotaSpec.nullable().default(null),
  credits: creditsSpec.nullable().default(null),
});

/** A body limit in bytes; null: no limit. */
const maxBodyBytes = z.number().int().nonnegative().nullable();

const scopeName = z.string().regex(/^[a-z][a-z0-9_:.-]{0,63}$/, 'must be a lower-case scope name');
const scopeEntry = z.strictObject({
  name: scopeName,
  description: z.string().max(500).nullable().default(null),
  category: z.string().min(1).max(64).nullable().default(null),
  /** Marked as dangerous where people grant scopes (the dashboard's pickers): deletes, billing, admin. */
  dangerous: z.boolean().default(false),
});
export interface ScopeEntry {
  name: string;
  description: string | null;
  category: string;
  dangerous: boolean;
}
function toScopeEntry(v: string | z.output<typeof scopeEntry>): ScopeEntry {
  const entry = typeof v === 'string' ? { name: v, description: null, category: null, dangerous: false } : v;
  const underscore = entry.name.indexOf('_');
  return { ...entry, category: entry.category ?? (underscore === -1 ? 'general' : entry.name.slice(underscore + 1)) };
}

/** Thresholds of the traffic alerts (docs/alerts.md); a policy's `alerts` overrides them for its keys. */
const alertRules = z.strictObject({
  /** key.rate_limited: a key refused by its rate limit this many times within the window. */
  rate_limited: z.strictObject({ count: z.number().int().min(1).default(100), window_minutes: z.number().int().min(1).max(1440).default(5) }).prefault({}),
  /** key.ip_denied: requests of a key from addresses outside its allowlist within the window. */
  ip_denied: z.strictObject({ count: z.number().int().min(1).default(1), window_minutes: z.number().int().min(1).max(1440).default(60) }).prefault({}),
  /** key.used_after_revocation: requests with a revoked key, or an old key after its rotation grace. */
  used_after_revocation: z.strictObject({ count: z.number().int().min(1).default(1), window_minutes: z.number().int().min(1).max(1440).default(60) }).prefault({}),
  /** key.error_rate: the share of a key's requests answered 4xx or 5xx, with at least `min_requests`. */
  error_rate: z
    .strictObject({
      share: z.number().gt(0).max(1).default(0.5),
      min_requests: z.number().int().min(1).default(20),
      window_minutes: z.number().int().min(1).max(1440).default(15),
    })
    .prefault({}),
  /** key.unusual_usage: a key's requests in the last hour at least `factor` × its hourly average of the `baseline_days` before. */
  unusual_usage: z
    .strictObject({
      factor: z.number().min(1.5).default(10),
      min_requests: z.number().int().min(1).default(1_000),
      baseline_days: z.number().int().min(1).max(30).default(7),
    })
    .prefault({}),
});
const alertRuleOverrides = z.strictObject({
  rate_limited: alertRules.shape.rate_limited.unwrap().partial().optional(),
  ip_denied: alertRules.shape.ip_denied.unwrap().partial().optional(),
  used_after_revocation: alertRules.shape.used_after_revocation.unwrap().partial().optional(),
  error_rate: alertRules.shape.error_rate.unwrap().partial().optional(),
  unusual_usage: alertRules.shape.unusual_usage.unwrap().partial().optional(),
  /** Days before expiry that key.expiring fires, once per key and threshold. */
  expiring_days: z.array(z.number().int().min(1).max(365)).min(1).max(5).optional(),
  /** Alert types not raised for this policy's keys. */
  off: z.array(z.enum(ALERT_TYPES)).default([]),
});
/** An alert type, or "*" for all of them. */
const alertType = z.string().refine((s) => s === '*' || (ALERT_TYPES as readonly string[]).includes(s), { error: `must be "*" or an alert type: ${ALERT_TYPES.join(', ')}` });
const httpUrl = z.string().refine((s) => /^https?:\/\/[^\s]+$/.test(s), 'must be an http:// or https:// URL');
const alertWebhook = z.strictObject({
  /** How deliveries name it (`webhook:<name>`); default `webhook-<position from 1>`. */
  name: name.optional(),
  url: httpUrl,
  /** Signs each body (`Keygate-Signature`, as the rotation webhook); not used by `slack`. */
  secret: z.preprocess((v) => (typeof v === 'number' ? String(v) : v), z.string().min(16, 'must be at least 16 characters')).nullable().default(null),
  /** `keygate`: the alert as JSON, signed; `slack`: a Slack-compatible incoming-webhook message. */
  format: z.enum(['keygate', 'slack']).default('keygate'),
  /** Alert types sent here; ["*"] for all. */
  events: z.array(alertType).min(1).default(['*']),
  /** Only this tenant's alerts (null: all). */
  tenant: z.string().min(1).nullable().default(null),
  timeout_ms: z.number().int().min(100).max(60_000).default(10_000),
});
/** Alerts: what is watched, and where alerts go (docs/alerts.md). */
const alerts = z
  .strictObject({
    enabled: z.boolean().default(true),
    /** How often the admin plane looks for expiring keys and traffic that crosses a threshold. */
    interval_ms: z.number().int().min(100).max(3_600_000).default(60_000),
    /** Alerts (and their deliveries) are kept this long. */
    retention_days: z.number().int().min(1).max(3660).default(30),
    /** Days before a key expires that key.expiring fires, once per key and threshold. */
    expiring_days: z.array(z.number().int().min(1).max(365)).min(1).max(5).default([7]),
    rules: alertRules.prefault({}),
    /** usage.error_rate: the share of all requests answered 4xx or 5xx. */
    usage_error_rate: z
      .strictObject({
        share: z.number().gt(0).max(1).default(0.25),
        min_requests: z.number().int().min(1).default(100),
        window_minutes: z.number().int().min(1).max(1440).default(15),
      })
      .prefault({}),
    webhooks: z
      .array(alertWebhook)
      .default([])
      .transform((hooks) => hooks.map((w, i) => ({ ...w, name: w.name ?? `webhook-${i + 1}` })))
      .superRefine((hooks, ctx) => {
        const seen = new Set<string>();
        hooks.forEach((w, i) => {
          if (seen.has(w.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `"${w.name}" is used twice` });
          seen.add(w.name);
        });
      }),
    email: z
      .strictObject({
        smtp: z.strictObject({
          host: z.string().min(1),
          port: port.default(587),
          /** TLS from the start (port 465); otherwise STARTTLS when the server offers it. */
          secure: z.boolean().default(false),
          user: z.string().min(1).nullable().default(null),
          password: z.string().min(1).nullable().default(null),
          timeout_ms: z.number().int().min(100).max(120_000).default(15_000),
        }),
        from: z.string().min(3),
        /** Always sent to these addresses. */
        to: z.array(z.string().regex(/^[^\s@]{1,64}@[^\s@]{1,255}$/, 'must be an email address')).default([]),
        /** Also to the dashboard user who created the key, when it has an email. */
        owners: z.boolean().default(true),
        events: z.array(alertType).min(1).default(['*']),
      })
      .nullable()
      .default(null),
    /** Retries: the first after `backoff_seconds`, doubling up to `max_backoff_seconds`, for `give_up_hours`. */
    delivery: z
      .strictObject({
        backoff_seconds: z.number().int().min(1).default(30),
        max_backoff_seconds: z.number().int().min(1).default(3_600),
        give_up_hours: z.number().min(0.01).max(24 * 7).default(24),
        interval_ms: z.number().int().min(50).max(60_000).default(1_000),
      })
      .prefault({}),
  })
  .prefault({});

const policy = z.strictObject({
  description: z.string().max(500).nullable().default(null),
  plan: z.string().nullable().default(null),
  rate_limit: z
    .strictObject({
      limit: z.number().int().positive(),
      window_seconds: z.number().positive(),
      burst: z.number().int().positive().nullable().default(null),
    })
    .nullable()
    .default(null),
  /** New keys of this policy get this quota (or these credits) unless their request sets one. */
  quota: quotaSpec.nullable().default(null),
  credits: creditsSpec.nullable().default(null),
  /** New keys expire this many seconds after creation. */
  expires_in_seconds: z.number().int().positive().nullable().default(null),
  ip_allowlist: z.array(z.string().refine((s) => parseCidr(s) !== null, 'must be an IPv4 or IPv6 address or CIDR')).nullable().default(null),
  /** Whether keys of this policy may be regenerated through the admin API. */
  allow_regeneration: z.boolean().default(true),
  /** Grace for manual regenerations that do not give their own. */
  regeneration_grace_seconds: z.number().int().nonnegative().default(0),
  rotation: z
    .strictObject({
      every_days: z.number().positive(),
      grace_seconds: z.number().int().nonnegative().default(86_400),
      webhook: z.strictObject({
        url: z.string().refine((s) => /^https?:\/\//.test(s), 'must be an http:// or https:// URL'),
        secret: z.preprocess((v) => (typeof v === 'number' ? String(v) : v), z.string().min(16, 'must be at least 16 characters')),
        timeout_ms: z.number().int().positive().default(5_000),
      }),
    })
    .nullable()
    .default(null),
  /** Alert thresholds for this policy's keys, over the global `alerts.rules` (docs/alerts.md). */
  alerts: alertRuleOverrides.nullable().default(null),
});

const route = z.strictObject({
  name: name.optional(),
  method: z
    .string()
    .regex(/^([A-Z]+|\*)$/, 'must be an upper-case HTTP method or "*"')
    .default('*'),
  path: z.string().regex(/^\//, 'must start with "/"'),
  scopes: z.array(z.string()).default([]),
  rate_limit: rateLimitSpec.extend({ on_store_failure: onStoreFailure, mode: limitMode }).nullable().default(null),
  plan: z.string().nullable().default(null),
  /** Quota units a request matching this rule spends (0: free). */
  cost: z.number().int().nonnegative().max(1_000_000).default(1),
  /** The API's max_body_bytes for requests matching this rule (unset: the API's). */
  max_body_bytes: maxBodyBytes.optional(),
});

/**
 * An origin as a browser sends it in `Origin` (RFC 6454 §6.2): `scheme://host[:port]`, lower
 * case, no default port, no path; or `*`. Written in another case, it is lower-cased here.
 */
const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/([a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/;
const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443' };
function originProblem(value: string): string | null {
  const s = value.toLowerCase();
  if (s === '*') return null;
  if (s === 'null') return '"null" is the origin of sandboxed frames, local files and redirects, which any page can take on: list real origins';
  if (s.includes('*')) return 'must be an exact origin: patterns are not supported, list each origin (or "*" alone)';
  if (/[^\x00-\x7f]/.test(s)) return 'must be written in ASCII, the host in its punycode form (xn--...), as browsers send it';
  const m = ORIGIN.exec(s);
  if (m === null) {
    return /^[a-z][a-z0-9+.-]*:\/\/[^/]+\/.*$/.test(s)
      ? 'must be an origin, scheme://host[:port], with no path (not even a trailing "/")'
      : 'must be an origin such as https://app.example.com (scheme://host[:port]) or "*"';
  }
  const port = m[3];
  if (port !== undefined) {
    if (Number(port) < 1 || Number(port) > 65535) return 'has a port out of range';
    if (DEFAULT_PORTS[m[1]!] === port) return `must leave out the default port :${port}, as browsers do`;
  }
  return null;
}
const origin = z
  .string()
  .superRefine((s, ctx) => {
    const problem = originProblem(s);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform((s) => s.toLowerCase());
const corsHeader = z
  .string()
  .refine((s) => s !== '*', '"*" is not supported: list each header (browsers ignore "*" on requests with credentials, and never take it to cover Authorization)')
  .pipe(headerName);
const corsMethod = z
  .string()
  .refine((s) => s !== '*', '"*" is not supported: list each method (browsers ignore "*" on requests with credentials)')
  .pipe(z.string().regex(/^[A-Z]+$/, 'must be an upper-case HTTP method such as GET (browsers compare methods by case)'));

/**
 * Cross-origin requests from browsers (docs/cors.md): preflights answered by the gateway, and
 * the Access-Control-* headers on responses to the listed origins.
 */
const cors = z
  .strictObject({
    /** Exact origins (`https://app.example.com`), or `["*"]` for any (then never credentials). */
    origins: z.array(origin).min(1, 'must list at least one origin (for none, leave cors out)'),
    /** Methods a preflight may announce; upper case, as browsers compare them. */
    methods: z
      .array(corsMethod)
      .min(1)
      .default(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']),
    /** Request headers a preflight may announce, besides the key header (`keys.header`), which is always allowed. */
    headers: z.array(corsHeader).default(['content-type']),
    /** Upstream response headers the browser may read, besides the gateway's own (rate limit, request id). */
    expose: z.array(corsHeader).default([]),
    /** Allow cookies and TLS client certificates (not needed for API keys); never with origin "*". */
    credentials: z.boolean().default(false),
    /** How long a browser may keep a preflight's answer, in seconds (Chromium keeps it at most 7200). */
    max_age: z.number().int().min(0).max(86_400).default(600),
  })
  .superRefine((c, ctx) => {
    if (!c.origins.includes('*')) return;
    if (c.origins.length > 1) ctx.addIssue({ code: 'custom', path: ['origins'], message: '"*" must be the only origin' });
    if (c.credentials) {
      ctx.addIssue({
        code: 'custom',
        path: ['credentials'],
        message:
          'cannot be true with origins ["*"]: browsers refuse credentials with a wildcard origin, and answering every origin with credentials would let any site read responses with its visitors\' cookies; list the origins',
      });
    }
  });

const api = z.strictObject({
  name,
  host: z.string().min(1).nullable().default(null),
  path_prefix: z
    .string()
    .regex(/^\/[^?#]*$/, 'must start with "/" and hold no query')
    .transform((s) => (s.length > 1 && s.endsWith('/') ? s.slice(0, -1) : s))
    .default('/'),
  upstream: z.string().refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && !u.search && !u.hash;
    } catch {
      return false;
    }
  }, 'must be an http:// or https:// URL without query or fragment'),
  strip_prefix: z.boolean().default(false),
  timeout_ms: z.number().int().positive().default(30_000),
  connect_timeout_ms: z.number().int().positive().default(5_000),
  max_connections: z.number().int().positive().default(256),
  /**
   * Upstream requests one key may have in flight to this API at once; over it, 429
   * concurrency_limit_exceeded. null: a quarter of max_connections (at least 1), so one key
   * cannot hold every connection of the pool.
   */
  max_concurrent_per_key: z.number().int().positive().nullable().default(null),
  /** Largest request body forwarded: 413 when Content-Length says more, cut when a stream grows past it. */
  max_body_bytes: maxBodyBytes.default(10 * 1024 * 1024),
  /** Whether the upstream receives the client's credential header or parameter. */
  forward_credential: z.boolean().default(false),
  /** Keep the client's Host header instead of the upstream's authority. */
  preserve_host: z.boolean().default(false),
  routes: z.array(route).default([]),
  /**
   * A request matching no route rule: `deny` refuses it (404 route_not_found), `allow` lets it
   * through needing no scope, `{ scopes }` lets it through needing these.
   */
  unlisted: z.union([z.enum(['deny', 'allow']), z.strictObject({ scopes: z.array(z.string()).min(1, 'must name at least one scope (for none, say unlisted: allow)') })]).default('deny'),
  /** Match route rules with ASCII case as written; by default `/SEND` matches the rule for `/send`. */
  case_sensitive: z.boolean().default(false),
  /** Browsers on these origins may call the API (docs/cors.md); null: no cross-origin access. */
  cors: cors.nullable().default(null),
});

const token = z.strictObject({
  name,
  token: secret,
  /** `gateway`: may only hand usage to the admin plane (POST /v1/usage/events). */
  role: z.enum(['admin', 'developer', 'viewer', 'gateway']),
  tenant: z.string().min(1).nullable().default(null),
});

const dashboardUser = z.strictObject({
  name,
  email: z.string().regex(/^[^\s@]{1,64}@[^\s@]{1,255}$/, 'must be an email address').transform((e) => e.toLowerCase()),
  role: z.enum(['admin', 'developer', 'viewer']),
  tenant: z.string().min(1).nullable().default(null),
  password_hash: z.string().refine((h) => parsePasswordHash(h) !== null, 'must be a hash made by `keygate hash-password` ($scrypt$ln=…,r=…,p=…$salt$key)'),
});

const pepper = z.strictObject({
  id: name,
  secret,
});

/** The journal store of earlier releases; deprecated for sqlite (`keygate migrate`, docs/operations.md). */
const fileStore = z.strictObject({ type: z.literal('file'), path: z.string().min(1).default('./data') });
/** The embedded default: one SQLite database that every process of one machine shares. */
const sqliteStore = z.strictObject({
  type: z.literal('sqlite'),
  path: z.string().min(1).default('./data/keygate.db'),
  /** How long a write waits for another process's write lock before it fails with 503. */
  lock_wait_ms: z.number().int().positive().max(60_000).default(5_000),
  /** How often each process that caches keys looks for other processes' key changes. */
  poll_interval_ms: z.number().int().min(1).max(1_000).default(2),
  /** How long a key change waits for every gateway process to confirm it dropped the key. */
  invalidation_wait_ms: z.number().int().min(0).max(10_000).default(500),
});
const redisNode = z.strictObject({ host: z.string().min(1), port });
const redisStore = z
  .strictObject({
    type: z.literal('redis'),
    /** A single node (`redis://[:password@]host:port[/db]`, or `rediss://` for TLS). */
    url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
    /** Sentinels watching the master `name`, instead of `url`. */
    sentinels: z.array(redisNode).min(1).optional(),
    name: z.string().min(1).default('mymaster'),
    /** Cluster seed nodes, instead of `url`. */
    cluster: z.array(redisNode).min(1).optional(),
    password: z.string().nullable().default(null),
    /** Every Redis key name starts with `{prefix}`, one hash tag, so Cluster keeps them together. */
    prefix: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/).default('keygate'),
    command_timeout_ms: z.number().int().positive().default(500),
    connect_timeout_ms: z.number().int().positive().default(5_000),
    /** How long a key change waits for every gateway process to confirm it dropped the key. */
    invalidation_wait_ms: z.number().int().min(0).max(10_000).default(500),
  })
  .superRefine((v, ctx) => {
    const modes = [v.url, v.sentinels, v.cluster].filter((m) => m !== undefined).length;
    if (modes !== 1) ctx.addIssue({ code: 'custom', message: 'set exactly one of url, sentinels or cluster' });
  });
function isEcPublicKey(pem: string): boolean {
  try {
    return createPublicKey(pem).asymmetricKeyType === 'ec';
  } catch {
    return false;
  }
}

/** A base for `doc_url`: printable, no fragment, and an http(s) URL when it names a scheme. */
function docBaseUrl(s: string): boolean {
  if (!/^[\x21-\x7e]+$/.test(s) || /["#<>\\^`{|}]/.test(s)) return false;
  if (!/^[a-z][a-z0-9+.-]*:/i.test(s)) return true;
  return /^https?:\/\/[^/?]/i.test(s) && URL.canParse(s);
}

const pemPath = z.string().min(1, 'must be a path to a PEM file');
const servername = z
  .string()
  .regex(/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/, 'must be a host name, or "*." and a host name')
  .transform((s) => s.toLowerCase());

/** What every TLS listener takes (docs/configuration.md, TLS): PEM paths, read at start-up and on reload. */
const tlsFields = {
  /** The certificate, with its chain after it (leaf first). */
  cert: pemPath,
  key: pemPath,
  /** CA certificates that sign client certificates (client_auth). */
  ca: pemPath.nullable().default(null),
  min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  /** An OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults); null: Node's defaults. */
  ciphers: z.string().min(1).nullable().default(null),
  /** Other certificates, chosen by the name the client asks for (SNI); `*.example.com` matches one label. */
  sni: z.array(z.strictObject({ servernames: z.array(servername).min(1), cert: pemPath, key: pemPath })).default([]),
  /** Client certificates signed by `ca`: `required` refuses a handshake without one; `optional` asks. */
  client_auth: z.enum(['none', 'optional', 'required']).default('none'),
};
/** Strict-Transport-Security on every response of the listener (the operator's choice: off by default). */
const hsts = z.strictObject({
  max_age: z.number().int().min(0).default(31_536_000),
  include_subdomains: z.boolean().default(false),
  preload: z.boolean().default(false),
});
const listenerTls = z.strictObject({
  ...tlsFields,
  /** The verified client certificate's subject goes upstream in this header; a client's own copy is always dropped. */
  client_subject_header: headerName.nullable().default(null),
  hsts: hsts.nullable().default(null),
  /** Offer HTTP/2 (ALPN h2) beside HTTP/1.1. */
  http2: z.boolean().default(true),
});
const adminTls = z.strictObject({ ...tlsFields, hsts: hsts.nullable().default(null) });
const statusTls = z.strictObject(tlsFields);

export const configSchema = z.strictObject({
  role: z.enum(['all', 'gateway', 'admin']).default('all'),
  /** Gateway worker processes (node:cluster) sharing the listeners; more than 1 needs the sqlite or redis store. */
  workers: z.number().int().min(1).max(256).default(1),
  listeners: z
    .array(z.strictObject({ port, host: host.default('127.0.0.1'), environment: z.string(), tls: listenerTls.nullable().default(null) }))
    .default([]),
  trusted_proxies: z.array(cidr).default([]),
  keys: z
    .strictObject({
      prefix: z
        .string()
        .regex(/^[a-z]{2,8}$/, 'must be 2 to 8 lower-case letters')
        .default('gw'),
      environments: z
        .record(z.string(), z.string().regex(/^[a-z]{1,16}$/, 'tag must be 1 to 16 lower-case letters'))
        .default({ production: 'live', test: 'test' }),
      header: headerName.default('authorization'),
      /** Matched as frameworks read query names (case, `.`, `[]`: core/query-name.ts), so kept folded. */
      query_param: z
        .string()
        .min(1)
        .transform((s) => foldName(s))
        .nullable()
        .default(null),
      cache: z
        .strictObject({
          max: z
            .number()
            .int()
            .positive()
            .max(MAX_CACHED_KEYS, { error: `must be at most ${MAX_CACHED_KEYS.toLocaleString('en-US')}: the key cache keeps 64 bytes a key in one buffer, and Node's buffers stop at 4 GiB` })
            .default(100_000),
          ttl_seconds: z.number().positive().default(60),
          negative_ttl_seconds: z.number().positive().default(5),
          /** Unknown keys remembered, at most; kept apart from `max`, so they never evict a known key. */
          negative_max: z.number().int().positive().default(10_000),
        })
        .prefault({}),
      pepper: pepper.nullable().default(null),
      previous_peppers: z.array(pepper).default([]),
      /**
       * After `max` invalid keys (unknown, or of a bad shape or checksum) from one client
       * address within `window_seconds`, its keys are refused with 429 too_many_invalid_keys,
       * unasked of the store, until the window ends. An IPv6 client counts by its /64.
       * `max_addresses` bounds how many addresses are counted at once. null: off.
       */
      invalid_key_brake: z
        .strictObject({
          max: z.number().int().positive().default(20),
          window_seconds: z.number().positive().default(60),
          max_addresses: z.number().int().positive().default(100_000),
        })
        .nullable()
        .prefault({}),
    })
    .prefault({}),
  plans: z
    .record(name, plan)
    .default({ default: { limit: 300, window_seconds: 60, burst: null, on_store_failure: 'local', max_concurrent: null, mode: 'enforce', quota: null, credits: null } }),
  headers: z
    .strictObject({
      request_id: headerName.default('x-request-id'),
      key_id: headerName.default('x-key-id'),
      key_environment: headerName.default('x-key-environment'),
      key_scopes: headerName.default('x-key-scopes'),
      application_id: headerName.default('x-application-id'),
      legacy_rate_limit: z.boolean().default(false),
      /**
       * Client headers whose names hold "_": `forward` them (those that read as a gateway-set
       * header with "_" taken as "-" are always dropped), or `drop` every one, as nginx does.
       */
      underscores: z.enum(['forward', 'drop']).default('forward'),
    })
    .prefault({}),
  /** What a key found leaked gets, and who may report one (docs/secret-scanning/README.md). */
  leaks: z
    .strictObject({
      /**
       * notify: record it only; suspend (default); revoke; rotate: a successor sent to the key's
       * policy's rotation webhook, the old key working `rotate_grace_seconds` more (a key whose
       * policy has no rotation webhook is suspended instead).
       */
      action: z.enum(['notify', 'suspend', 'revoke', 'rotate']).default('suspend'),
      rotate_grace_seconds: z.number().int().min(0).max(86_400).default(900),
      /**
       * GitHub secret scanning's partner alerts at POST /v1/leaks, signed with these ECDSA public
       * keys (PEM, as GitHub publishes them; configured, never fetched). Empty: the route is off.
       */
      github_public_keys: z
        .array(
          z.strictObject({
            id: z.string().min(1).max(200),
            pem: z.string().refine(isEcPublicKey, 'must be a PEM ECDSA public key (-----BEGIN PUBLIC KEY-----)'),
          }),
        )
        .default([]),
      /** Tokens in one alert, at most. */
      max_tokens: z.number().int().positive().max(10_000).default(1_000),
    })
    .prefault({}),
  /** What error bodies say besides their code (docs/errors.md). */
  errors: z
    .strictObject({
      /**
       * Where docs/errors.md is published: every error body's `doc_url` is this with `#<code>`
       * appended. An http(s) URL, or a path (the default, relative to the repository's root).
       */
      doc_base_url: z
        .string()
        .refine(docBaseUrl, 'must be an http:// or https:// URL or a path, without "#" (the error code is appended as "#<code>"), spaces or quotes')
        .default(DEFAULT_DOC_BASE_URL),
    })
    .prefault({}),
  scopes: z
    .strictObject({
      /** Scope names, or `{ name, description, category, dangerous }`; the category defaults to the part after the first `_`. */
      catalog: z.array(z.union([scopeName, scopeEntry]).transform(toScopeEntry)).default([]),
      presets: z.record(z.string(), z.array(z.string())).default({}),
    })
    .prefault({}),
  /**
   * Policy templates a key may name: the values it takes unless its request sets them.
   * rotation: rotate the key every `every_days`, the old key working `grace_seconds` more;
   * the new key is POSTed to `webhook.url`, signed with `webhook.secret`.
   */
  policies: z.record(name, policy).default({}),
  scheduler: z
    .strictObject({
      enabled: z.boolean().default(true),
      interval_ms: z.number().int().min(100).default(5_000),
    })
    .prefault({}),
  /** The shared (redis store) rate limiter: how many tokens a gateway leases from Redis at once. */
  rate_limiter: z
    .strictObject({
      lease_fraction: z.number().min(0).max(1).default(0.02),
      lease_max: z.number().int().min(1).default(50),
      lease_ttl_ms: z.number().int().min(10).default(1_000),
    })
    .prefault({}),
  /** Per-key usage (counters, last use, first use): batched from the gateway to the store. */
  usage: z
    .strictObject({
      flush_interval_ms: z.number().int().min(10).default(1_000),
      max_pending_keys: z.number().int().positive().default(100_000),
      /** How long per-minute and per-day aggregates are kept. */
      minute_retention_hours: z.number().int().min(1).max(24 * 14).default(24),
      day_retention_days: z.number().int().min(1).max(3660).default(30),
      /** Most recent errors kept for GET /v1/usage/errors. */
      errors_kept: z.number().int().min(0).max(1_000_000).default(10_000),
      /** A request header holding the client's country (ISO 3166 alpha-2), e.g. cf-ipcountry. */
      country_header: z
        .string()
        .regex(/^[A-Za-z0-9-]+$/, 'must be a header name')
        .transform((h) => h.toLowerCase())
        .nullable()
        .default(null),
      /**
       * A gateway running without the admin plane sends its usage events here over HTTP (the
       * admin plane's URL and a token with role `gateway`); null: it writes usage to the store
       * itself.
       */
      ship_to: z
        .strictObject({
          url: z.url({ protocol: /^https?$/ }),
          token: z.string().min(16, 'must be at least 16 characters'),
          /** Events held while the admin plane cannot take them; more are dropped and counted. */
          max_buffered_events: z.number().int().min(1_000).default(1_000_000),
          max_batch_events: z.number().int().min(1).max(100_000).default(5_000),
          timeout_ms: z.number().int().min(100).default(10_000),
        })
        .nullable()
        .default(null),
    })
    .prefault({}),
  apis: z.array(api).default([]),
  admin: z
    .strictObject({
      port: port.default(8081),
      host: host.default('127.0.0.1'),
      tls: adminTls.nullable().default(null),
      tokens: z.array(token).default([]),
      max_body_bytes: z.number().int().positive().default(65_536),
      /** Body limit of POST /v1/usage/events, where gateways send batches of usage events. */
      max_usage_batch_bytes: z.number().int().positive().default(32 * 1024 * 1024),
    })
    .prefault({}),
  alerts,
  /** The web dashboard on the admin listener at /dashboard (docs/dashboard.md). */
  dashboard: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** People who sign in with an email and password; admin tokens sign in too. */
      users: z.array(dashboardUser).default([]),
      /** A session ends this long after sign-in, whatever its use. */
      session_ttl_minutes: z.number().int().min(1).max(7 * 24 * 60).default(480),
      /** How long re-entering the password allows creating, regenerating and revoking keys. */
      sudo_minutes: z.number().int().min(1).max(60).default(5),
      /** Failed sign-ins per client address within 15 minutes before sign-in is refused there. */
      max_failed_sign_ins: z.number().int().min(1).max(1000).default(10),
    })
    .prefault({}),
  store: z.discriminatedUnion('type', [sqliteStore, fileStore, redisStore]).prefault({ type: 'sqlite' }),
  demo_upstream: z.strictObject({ port, host: host.default('127.0.0.1') }).nullable().default(null),
  /** Prometheus metrics on /metrics of both planes (the gateway's on its status listener). */
  metrics: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
  /** The gateway's operations listener: /healthz, /readyz, /metrics (null: none); and the verify API (docs/verify.md). */
  status_listener: z
    .strictObject({
      port,
      host: host.default('127.0.0.1'),
      tls: statusTls.nullable().default(null),
      /** POST /v1/keys/verify and GET /auth: key checks for services behind another proxy (docs/verify.md). */
      verify: z
        .strictObject({
          enabled: z.boolean().default(false),
          /** Callers send it in X-Keygate-Verify-Token; null (and no token_file): loopback callers only. */
          token: secret.nullable().default(null),
          /** A file holding the token (read at start-up, surrounding whitespace dropped); instead of `token`. */
          token_file: z.string().min(1).nullable().default(null),
          /** The environment keys are checked for when a call names none; null: the first listener's. */
          environment: z.string().min(1).nullable().default(null),
          /**
           * GET /auth takes the environment from X-Keygate-Environment. Only for a proxy that sets
           * that header itself on every auth subrequest: a client's own copy would otherwise choose it.
           */
          environment_header: z.boolean().default(false),
          /** Largest POST /v1/keys/verify body; larger ones get 413. */
          max_body_bytes: z.number().int().min(512).max(1_048_576).default(16_384),
          /** A request to the status listener (head and body) must arrive within this; then 408. */
          timeout_ms: z.number().int().min(100).max(300_000).default(10_000),
        })
        .prefault({}),
    })
    .nullable()
    .default(null),
  /** W3C trace context and OpenTelemetry spans (docs/operations.md, Tracing). */
  tracing: z
    .strictObject({
      /** Off: traceparent and tracestate reach the upstream as the client sent them, and nothing more is done. */
      enabled: z.boolean().default(false),
      /** The share of new traces sampled (and of every trace when parent_based is false), by trace id. */
      sample_ratio: z.number().min(0).max(1).default(1),
      /** A client's valid traceparent decides sampling by its sampled flag. */
      parent_based: z.boolean().default(true),
      service_name: z.string().min(1).max(256).default('keygate'),
      /** Where spans are sent (OTLP over HTTP, JSON); null: Keygate takes part in traces but exports nothing. */
      otlp: z
        .strictObject({
          /** A collector's base URL (`/v1/traces` is added) or its full traces URL. */
          endpoint: z
            .url({ protocol: /^https?$/ })
            .refine((u) => !/^[a-z]+:\/\/[^/]*@/i.test(u), 'must not hold credentials; send them in tracing.otlp.headers (e.g. authorization)'),
          /** Sent with every export, e.g. a vendor's API key (`${VAR}` reads it from the environment). */
          headers: z.record(headerName, z.string()).default({}),
          timeout_ms: z.number().int().min(100).max(120_000).default(10_000),
          /** Spans waiting to be sent; more are dropped and counted. */
          max_queue_spans: z.number().int().min(1).max(1_000_000).default(2_048),
          max_batch_spans: z.number().int().min(1).max(100_000).default(512),
          flush_interval_ms: z.number().int().min(10).max(60_000).default(2_000),
        })
        .nullable()
        .default(null),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
      /** One JSON line per request, denials included (fields: docs/observability/README.md). */
      access: z.boolean().default(false),
    })
    .prefault({}),
  /** What a client connection may take from the gateway listeners (docs/operations.md, Security). */
  limits: z
    .strictObject({
      /** The request head (line and headers) must arrive within this; then 408 and the connection closes. */
      headers_timeout_ms: z.number().int().min(100).max(300_000).default(30_000),
      /** A request body that sends nothing for this long: 408 (or cut, once forwarding) and closed. */
      body_idle_timeout_ms: z.number().int().min(100).max(3_600_000).default(30_000),
      /** A response the client reads nothing of for this long (its buffers full): the connection is closed. */
      response_idle_timeout_ms: z.number().int().min(100).max(3_600_000).default(60_000),
      /** Open connections per listener; more are closed as they arrive. */
      max_connections: z.number().int().positive().default(10_000),
      /** Open connections per client address (the socket peer; trusted proxies are exempt). */
      max_connections_per_ip: z.number().int().positive().default(1_000),
      /** A TLS handshake not finished within this is cut (a client stalling it holds a connection for nothing). */
      tls_handshake_timeout_ms: z.number().int().min(100).max(120_000).default(10_000),
      /** HTTP/2 on TLS listeners (docs/operations.md, HTTP/2). */
      http2: z
        .strictObject({
          /** Streams one connection may have open at once; more are refused (REFUSED_STREAM). */
          max_concurrent_streams: z.number().int().min(1).max(10_000).default(100),
          /** A request's header list, in HTTP/2's measure (names, values and 32 bytes per field). */
          max_header_list_bytes: z.number().int().min(1_024).max(1_048_576).default(16_384),
          /** Header fields in one request. */
          max_header_fields: z.number().int().min(8).max(10_000).default(128),
        })
        .prefault({}),
    })
    .prefault({}),
  shutdown: z.strictObject({ drain_timeout_ms: z.number().int().nonnegative().default(10_000) }).prefault({}),
});

export type Config = z.output<typeof configSchema>;
export type ApiConfig = Config['apis'][number];
export type RouteConfig = ApiConfig['routes'][number];
export type CorsConfig = NonNullable<ApiConfig['cors']>;
export type PlanConfig = Config['plans'][string];
export type ListenerTls = NonNullable<Config['listeners'][number]['tls']>;
export type TokenConfig = Config['admin']['tokens'][number];
export type DashboardUser = Config['dashboard']['users'][number];
export type PolicyConfig = Config['policies'][string];
