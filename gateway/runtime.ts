import { resolve } from 'node:path';
import { Pool } from 'undici';
import type { Config } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import { errorDocUrls, type ErrorCode } from '../core/errors.js';
import { parseCidr, TrustedProxies } from '../core/ip.js';
import type { KeyHasher } from '../core/key-hash.js';
import { compilePolicy, LocalLimiter, type Limiter, type LimitPolicy } from '../core/limiter.js';
import { compileQuota, type QuotaPolicy } from '../core/quota.js';
import { SharedLimiter } from '../core/shared-limiter.js';
import { RedisBuckets } from '../core/store/redis/buckets.js';
import { RedisStore } from '../core/store/redis-store.js';
import { SqliteBuckets } from '../core/store/sqlite/buckets.js';
import type { Logger } from '../core/log.js';
import type { Store } from '../core/store/store.js';
import { compileKey } from './compiled-key.js';
import { compileCors } from './cors.js';
import { ErrorBodies } from './error-body.js';
import { InvalidKeyBrake } from './invalid-key-brake.js';
import { GatewayMetrics } from './metrics.js';
import { KeyCache } from './key-cache.js';
import { Tunnels } from './tunnels.js';
import type { UsageSink } from './usage-event.js';
import { buildRouteTable, orderApis, unlistedTemplate, type CompiledApi, type CompiledRoute } from './routes.js';

export type { UsageEvent, UsageSink } from './usage-event.js';

/** Everything the stages read, built once from the config at start-up. */
export interface Runtime {
  readonly config: Config;
  readonly clock: Clock;
  readonly log: Logger;
  readonly store: Store;
  readonly hasher: KeyHasher;
  readonly keys: KeyCache;
  /** Open WebSockets, closed when their key stops being usable. */
  readonly tunnels: Tunnels;
  /** The invalid-key brake (`keys.invalid_key_brake`); null when it is off. */
  readonly brake: InvalidKeyBrake | null;
  readonly limiter: Limiter;
  readonly plans: ReadonlyMap<string, LimitPolicy>;
  /** Each plan's quota, by plan name; plans without one are left out. */
  readonly planQuotas: ReadonlyMap<string, QuotaPolicy>;
  readonly apis: readonly CompiledApi[];
  readonly trusted: TrustedProxies;
  /** Each error code's `doc_url` (`errors.doc_base_url`). */
  readonly docUrls: Readonly<Record<ErrorCode, string>>;
  /** Refusals' JSON bodies, their text kept per denial. */
  readonly errorBodies: ErrorBodies;
  /** Key tag (`live`) → environment name (`production`). */
  /** Prometheus metrics of this gateway; null when `metrics.enabled` is off. */
  metrics: GatewayMetrics | null;
  readonly tagToEnv: ReadonlyMap<string, string>;
  readonly sinks: UsageSink[];
}

export function buildRuntime(
  config: Config,
  deps: { clock: Clock; log: Logger; store: Store; hasher: KeyHasher },
): Runtime {
  const plans = new Map<string, LimitPolicy>();
  const planQuotas = new Map<string, QuotaPolicy>();
  for (const [name, plan] of Object.entries(config.plans)) {
    plans.set(name, compilePolicy(name, plan, plan.on_store_failure, plan.max_concurrent, plan.mode));
    const quota = compileQuota(plan.quota, plan.credits);
    if (quota !== null) planQuotas.set(name, quota);
  }
  const apis = orderApis(
    config.apis.map((api): CompiledApi => {
      const upstream = new URL(api.upstream);
      const routes = api.routes.map((r, i): CompiledRoute => {
        const name = r.name ?? `${api.name}_${i}`;
        return {
          name,
          method: r.method,
          template: r.path,
          scopes: r.scopes,
          policy: r.rate_limit ? compilePolicy(name, r.rate_limit, r.rate_limit.on_store_failure, null, r.rate_limit.mode) : r.plan ? plans.get(r.plan)! : null,
          maxBody: r.max_body_bytes,
          cost: r.cost,
        };
      });
      return {
        name: api.name,
        host: api.host?.toLowerCase() ?? null,
        // Lower-case: matchApi compares prefixes without ASCII case.
        prefix: api.path_prefix.toLowerCase(),
        unlistedTemplate: unlistedTemplate(api.path_prefix),
        upstream,
        basePath: upstream.pathname.replace(/\/+$/, ''),
        config: api,
        routes: buildRouteTable(routes, api.case_sensitive),
        unlisted: api.unlisted === 'deny' ? null : api.unlisted === 'allow' ? [] : api.unlisted.scopes,
        maxBody: api.max_body_bytes,
        keyShare: api.max_concurrent_per_key ?? Math.max(1, Math.floor(api.max_connections / 4)),
        inFlight: new Map(),
        cors: compileCors(api.cors, config),
        pool: new Pool(upstream.origin, {
          connections: api.max_connections,
          pipelining: 1,
          connect: { timeout: api.connect_timeout_ms },
          headersTimeout: api.timeout_ms,
          bodyTimeout: api.timeout_ms,
        }),
      };
    }),
  );
  const keys = new KeyCache(deps.store, deps.hasher, (rec, gen) => compileKey(rec, plans, gen, planQuotas), {
    max: config.keys.cache.max,
    ttlMs: config.keys.cache.ttl_seconds * 1000,
    negativeMax: config.keys.cache.negative_max,
    negativeTtlMs: config.keys.cache.negative_ttl_seconds * 1000,
    clock: deps.clock,
  });
  const brakeConfig = config.keys.invalid_key_brake;
  const docUrls = errorDocUrls(config.errors.doc_base_url);
  const rt: Runtime = {
    metrics: null,
    config,
    clock: deps.clock,
    log: deps.log,
    store: deps.store,
    hasher: deps.hasher,
    keys,
    tunnels: new Tunnels(keys, { hasher: deps.hasher, clock: deps.clock, log: deps.log, ttlMs: config.keys.cache.ttl_seconds * 1000 }),
    brake:
      brakeConfig === null
        ? null
        : new InvalidKeyBrake({ max: brakeConfig.max, windowMs: brakeConfig.window_seconds * 1000, maxAddresses: brakeConfig.max_addresses, clock: deps.clock }),
    limiter: createLimiter(config, deps.store, deps.clock),
    plans,
    planQuotas,
    apis,
    trusted: new TrustedProxies(config.trusted_proxies.map((c) => parseCidr(c)!)),
    docUrls,
    errorBodies: new ErrorBodies(docUrls),
    tagToEnv: new Map(Object.entries(config.keys.environments).map(([env, tag]) => [tag, env])),
    sinks: [],
  };
  if (config.metrics.enabled) {
    rt.metrics = new GatewayMetrics(rt);
    rt.sinks.push(rt.metrics.record);
  }
  return rt;
}

/**
 * Buckets in Redis when the store is Redis (shared by every gateway); in a SQLite file beside
 * the store's when several workers share a SQLite store; else in this process, which is exact
 * for one process alone.
 */
function createLimiter(config: Config, store: Store, clock: Clock): Limiter {
  const local = new LocalLimiter(() => clock.now());
  const r = config.rate_limiter;
  const options = { leaseFraction: r.lease_fraction, leaseMax: r.lease_max, leaseTtlMs: r.lease_ttl_ms };
  if (store instanceof RedisStore && config.store.type === 'redis') return new SharedLimiter(new RedisBuckets(store.client, config.store.prefix), local, options);
  if (config.store.type === 'sqlite' && config.workers > 1) {
    return new SharedLimiter(new SqliteBuckets(`${resolve(config.store.path)}-limits`, { now: () => clock.now() }), local, options);
  }
  return local;
}
