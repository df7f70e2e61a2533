import { resolve } from 'node:path';
import { Pool } from 'undici';
import type { ApiConfig, Config } from '../config/schema.js';
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
import type { KeyRecord } from '../core/record.js';
import type { Store } from '../core/store/store.js';
import { compileKey, type CompiledKey } from './compiled-key.js';
import { compileCors } from './cors.js';
import { ErrorBodies } from './error-body.js';
import { InvalidKeyBrake } from './invalid-key-brake.js';
import { GatewayMetrics } from './metrics.js';
import { KeyCache } from './key-cache.js';
import { Tracer } from './trace.js';
import { Tunnels } from './tunnels.js';
import type { UsageSink } from './usage-event.js';
import { buildRouteTable, orderApis, unlistedTemplate, type CompiledApi, type CompiledRoute } from './routes.js';

export type { UsageEvent, UsageSink } from './usage-event.js';

/**
 * Everything the stages read, built from the config: at start-up, and again by each
 * configuration reload (docs/operations.md, "Reloading the configuration"). A runtime is never
 * changed once built; a reload builds the next one beside it and the gateway swaps the two by
 * reference (server.ts). What outlives a reload (the store, the key cache, the limiter and its
 * buckets, open tunnels, the brake, metrics, sinks) is the same object in every generation; the
 * rest (APIs and their routes, plans, trusted proxies, error bodies) is the generation's own.
 */
export interface Runtime {
  /** 1 for the runtime built at start-up, one more for each reload applied. */
  readonly generation: number;
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
  /** Prometheus metrics of this gateway; null when `metrics.enabled` is off. */
  metrics: GatewayMetrics | null;
  /** Key tag (`live`) → environment name (`production`). */
  readonly tagToEnv: ReadonlyMap<string, string>;
  readonly sinks: UsageSink[];
  /** Trace context and span export (`tracing.enabled`); null when tracing is off. */
  readonly tracer: Tracer | null;
}

/**
 * The runtime of `config`. With `previous` (a reload), the parts that outlive a reload are taken
 * from it, and so is each API's upstream pool and per-key slot count where the API keeps its
 * name, origin and pool settings: requests in flight on the old runtime and new ones share them.
 */
export function buildRuntime(
  config: Config,
  deps: { clock: Clock; log: Logger; store: Store; hasher: KeyHasher },
  previous?: Runtime,
): Runtime {
  const plans = new Map<string, LimitPolicy>();
  const planQuotas = new Map<string, QuotaPolicy>();
  for (const [name, plan] of Object.entries(config.plans)) {
    plans.set(name, compilePolicy(name, plan, plan.on_store_failure, plan.max_concurrent, plan.mode));
    const quota = compileQuota(plan.quota, plan.credits);
    if (quota !== null) planQuotas.set(name, quota);
  }
  const before = new Map(previous?.apis.map((a) => [a.name, a]));
  const apis = orderApis(
    config.apis.map((api): CompiledApi => {
      const upstream = new URL(api.upstream);
      const old = before.get(api.name);
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
        // The slots keys hold on this API count on across a reload, or a key would get a
        // second share of the upstream for as long as its old requests run.
        inFlight: old?.inFlight ?? new Map(),
        cors: compileCors(api.cors, config),
        pool:
          old !== undefined && samePool(old.config, api)
            ? old.pool
            : new Pool(upstream.origin, {
                connections: api.max_connections,
                pipelining: 1,
                connect: { timeout: api.connect_timeout_ms },
                headersTimeout: api.timeout_ms,
                bodyTimeout: api.timeout_ms,
              }),
      };
    }),
  );
  if (previous !== undefined) {
    // Nothing of `previous` is changed here: a reload may still be refused (server.ts applies it).
    const rt: Runtime = { ...previous, generation: previous.generation + 1, config, plans, planQuotas, apis, ...configured(config) };
    return Object.freeze(rt);
  }
  const keys = new KeyCache(deps.store, deps.hasher, keyCompiler(plans, planQuotas), {
    max: config.keys.cache.max,
    ttlMs: config.keys.cache.ttl_seconds * 1000,
    negativeMax: config.keys.cache.negative_max,
    negativeTtlMs: config.keys.cache.negative_ttl_seconds * 1000,
    clock: deps.clock,
  });
  const brakeConfig = config.keys.invalid_key_brake;
  const rt: Runtime = {
    generation: 1,
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
    ...configured(config),
    tagToEnv: new Map(Object.entries(config.keys.environments).map(([env, tag]) => [tag, env])),
    sinks: [],
    tracer: config.tracing.enabled ? new Tracer(config.tracing, deps.log) : null,
  };
  if (config.metrics.enabled) {
    rt.metrics = new GatewayMetrics(rt);
    rt.sinks.push(rt.metrics.record);
  }
  return rt;
}

/** How the key cache turns a record into what the stages read, against these plans. */
export function keyCompiler(plans: ReadonlyMap<string, LimitPolicy>, planQuotas: ReadonlyMap<string, QuotaPolicy>): (rec: KeyRecord, gen: number) => CompiledKey {
  return (rec, gen) => compileKey(rec, plans, gen, planQuotas);
}

/** The parts of a runtime read from `config` alone. */
function configured(config: Config): Pick<Runtime, 'trusted' | 'docUrls' | 'errorBodies'> {
  const docUrls = errorDocUrls(config.errors.doc_base_url);
  return { trusted: new TrustedProxies(config.trusted_proxies.map((c) => parseCidr(c)!)), docUrls, errorBodies: new ErrorBodies(docUrls) };
}

/** Whether an API's upstream pool, built for `a`, serves `b` as it is: same origin, same pool settings. */
function samePool(a: ApiConfig, b: ApiConfig): boolean {
  return (
    new URL(a.upstream).origin === new URL(b.upstream).origin &&
    a.max_connections === b.max_connections &&
    a.connect_timeout_ms === b.connect_timeout_ms &&
    a.timeout_ms === b.timeout_ms
  );
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
