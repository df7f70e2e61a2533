import { randomBase62, keyDisplayParts } from '../../core/key-format.js';
import type { KeyHasher } from '../../core/key-hash.js';
import { NEW_KEY_STATE, type KeyRecord } from '../../core/record.js';

/** A version-0 key record for `key`, as the admin plane would build it, with `over` applied. */
export function keyRecord(key: string, hasher: KeyHasher, now: number, over: Partial<KeyRecord> = {}): KeyRecord {
  const { start, end } = keyDisplayParts(key);
  return {
    ...NEW_KEY_STATE,
    id: `key_${randomBase62(20)}`,
    tenant: null,
    hash: hasher.hash(key),
    hash_kind: hasher.currentKind,
    start,
    end,
    name: 'a key',
    description: null,
    environment: 'production',
    scopes: [],
    apis: null,
    plan: null,
    rate_limit: null,
    ip_allowlist: null,
    application: null,
    policy: null,
    meta: {},
    created_at: now,
    created_by: null,
    updated_at: now,
    expires_at: null,
    not_before: null,
    usage: { total_requests: 0, error_count: 0 },
    ...over,
  };
}
