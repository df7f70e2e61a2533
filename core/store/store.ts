import type { KeyRecord, KeyStatus } from '../record.js';

export type KeySort = 'created_at' | 'last_used_at' | 'name';

export interface KeyQuery {
  /** Only this tenant's keys; null for a token that is not limited to one. */
  tenant: string | null;
  status?: KeyStatus | undefined;
  environment?: string | undefined;
  application?: string | undefined;
  scope?: string | undefined;
  /** Case-insensitive substring of the name, or an exact id. */
  q?: string | undefined;
  sort: KeySort;
  order: 'asc' | 'desc';
  limit: number;
  cursor?: string | undefined;
  /** The time that statuses are computed at. */
  now: number;
}

export interface KeyPage {
  data: KeyRecord[];
  next_cursor: string | null;
}

/** Raised when a write's expected version no longer matches: somebody wrote first. */
export class VersionConflictError extends Error {
  readonly code = 'KEYGATE_VERSION_CONFLICT';
}

/** Raised when the store cannot be reached or cannot persist; callers answer 503. */
export class StoreUnavailableError extends Error {
  readonly code = 'KEYGATE_STORE_UNAVAILABLE';
}

export class InvalidCursorError extends Error {
  readonly code = 'KEYGATE_INVALID_CURSOR';
}

/**
 * What both planes need of a store. Both implementations pass the same conformance tests.
 * Writes are compare-and-set on `version`: `putKey(rec, n)` succeeds only when the stored
 * version is `n` (0 for a new key) and stores the record with version `n + 1`.
 */
export interface Store {
  readonly kind: string;
  getKeyByHash(hash: string): Promise<KeyRecord | null>;
  getKey(id: string): Promise<KeyRecord | null>;
  putKey(rec: KeyRecord, expectedVersion: number): Promise<KeyRecord>;
  listKeys(query: KeyQuery): Promise<KeyPage>;
  /** Called with the lookup id of every key that changed, so caches can drop it. */
  onKeyChange(listener: (hash: string) => void): () => void;
  close(): Promise<void>;
}
