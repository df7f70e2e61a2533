/**
 * Per-key usage as the store keeps it: counters and times that only the gateway's traffic
 * moves. They live beside the key's versioned configuration, never in it, so recording traffic
 * never conflicts with an admin edit and never invalidates a cached key.
 */
export interface KeyUsageDelta {
  key_id: string;
  requests: number;
  /** Requests answered with a status of 400 or more. */
  errors: number;
  /** Time of the first and of the last request in this delta. */
  first_at: number;
  last_at: number;
}

/** Folds one request into a map of deltas by key id. */
export function addRequest(deltas: Map<string, KeyUsageDelta>, keyId: string, time: number, status: number): void {
  const error = status >= 400 ? 1 : 0;
  const d = deltas.get(keyId);
  if (d === undefined) {
    deltas.set(keyId, { key_id: keyId, requests: 1, errors: error, first_at: time, last_at: time });
    return;
  }
  d.requests++;
  d.errors += error;
  if (time < d.first_at) d.first_at = time;
  if (time > d.last_at) d.last_at = time;
}
