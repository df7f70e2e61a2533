import type { Config } from '../config/schema.js';
import { concretePath, listenerUrl } from './curl-example.js';

/**
 * The gateway's APIs as a developer calling them needs to know them (GET /v1/apis): where to
 * send a request and with which header, what each route needs (method, path, scopes, rate
 * limit, body size), and which browser origins may call it. Left out is what only the operator
 * needs and what would help an attacker more than a developer: upstream addresses, timeouts,
 * connection pools, whether the credential is forwarded or the Host kept.
 *
 * Built once from the configuration; the gateway URLs are read per call, as the listeners
 * learn their ports after the admin plane is made.
 */
export function apiCatalog(config: Config, gatewayUrls: Readonly<Record<string, string>>): () => unknown {
  const header = config.keys.header;
  const credential = {
    header,
    scheme: header === 'authorization' ? 'Bearer' : null,
    query_param: config.keys.query_param,
  };
  const plans = Object.entries(config.plans).map(([name, p]) => ({ name, limit: p.limit, window_seconds: p.window_seconds, burst: p.burst }));
  const data = config.apis.map((api) => ({
    name: api.name,
    host: api.host,
    path_prefix: api.path_prefix,
    max_body_bytes: api.max_body_bytes,
    routes: api.routes.map((r) => ({
      name: r.name ?? null,
      method: r.method,
      path: r.path,
      example_path: concretePath(r.path),
      scopes: r.scopes,
      plan: r.plan,
      rate_limit: r.rate_limit === null ? null : { limit: r.rate_limit.limit, window_seconds: r.rate_limit.window_seconds, burst: r.rate_limit.burst },
      max_body_bytes: r.max_body_bytes ?? api.max_body_bytes,
    })),
    unlisted: api.unlisted === 'deny' || api.unlisted === 'allow' ? { policy: api.unlisted, scopes: [] } : { policy: 'scopes', scopes: api.unlisted.scopes },
    cors: api.cors === null ? null : { origins: api.cors.origins, methods: api.cors.methods, headers: [...new Set([...api.cors.headers, header])] },
  }));
  return () => ({ gateway_urls: publicGatewayUrls(config, gatewayUrls), credential, plans, data });
}

/**
 * The gateway's base URL per environment, as examples and Try it use it: the address a
 * listener of this process got, else the configured listener's.
 */
export function publicGatewayUrls(config: Config, gatewayUrls: Readonly<Record<string, string>>): Record<string, string> {
  const urls: Record<string, string> = {};
  for (const l of config.listeners) {
    const url = gatewayUrls[l.environment] ?? listenerUrl(config, l.environment);
    if (url !== null) urls[l.environment] ??= url;
  }
  return urls;
}
