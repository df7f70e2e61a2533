import type { AggregatedEvent } from '../core/usage-agg.js';

/** Called once per request when its response is over, denials included. */
export type UsageSink = (event: UsageEvent) => void;

/**
 * One finished request: what aggregates read (core/usage-agg.ts documents those fields), plus
 * what only the access log and the usage API's callers see.
 */
export interface UsageEvent extends AggregatedEvent {
  application: string | null;
  environment: string;
  client_ip: string;
  rate_limit_remaining: number | null;
  /** Quota units left after this request (docs/quotas.md); null for a key without a quota, or a request refused before the quota was asked. */
  quota_remaining: number | null;
}
