import type { Config } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import { HttpError } from '../core/errors.js';
import { generateKey, keyDisplayParts, randomBase62 } from '../core/key-format.js';
import type { KeyHasher } from '../core/key-hash.js';
import { keyStatus, keyToWire, type KeyRecord } from '../core/record.js';
import { VersionConflictError, type KeyPage, type KeyQuery, type Store } from '../core/store/store.js';
import type { Principal } from './auth.js';
import type { CreateKeyInput } from './key-input.js';

/** Key lifecycle operations of the admin plane, over the shared store interface. */
export class KeyService {
  readonly #config: Config;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #hasher: KeyHasher;

  constructor(config: Config, store: Store, clock: Clock, hasher: KeyHasher) {
    this.#config = config;
    this.#store = store;
    this.#clock = clock;
    this.#hasher = hasher;
  }

  async create(input: CreateKeyInput, by: Principal): Promise<{ record: KeyRecord; key: string }> {
    const now = this.#clock.now();
    if (input.expires_at !== null && input.expires_at <= now) {
      throw new HttpError('validation_failed', undefined, { details: [{ path: 'expires_at', message: 'must be in the future' }] });
    }
    if (input.expires_at !== null && input.not_before !== null && input.not_before >= input.expires_at) {
      throw new HttpError('validation_failed', undefined, { details: [{ path: 'not_before', message: 'must be before expires_at' }] });
    }
    const tag = this.#config.keys.environments[input.environment]!;
    const key = generateKey(this.#config.keys.prefix, tag);
    const { start, end } = keyDisplayParts(key);
    const record: KeyRecord = {
      id: `key_${randomBase62(20)}`,
      version: 0,
      tenant: by.tenant,
      hash: this.#hasher.hash(key),
      hash_kind: this.#hasher.currentKind,
      start,
      end,
      name: input.name,
      description: input.description,
      environment: input.environment,
      scopes: input.scopes,
      apis: input.apis,
      plan: input.plan,
      rate_limit: input.rate_limit,
      ip_allowlist: input.ip_allowlist,
      application: null,
      policy: null,
      meta: input.meta,
      created_at: now,
      created_by: by.name,
      updated_at: now,
      expires_at: input.expires_at,
      not_before: input.not_before,
      last_used_at: null,
      revoked_at: null,
      revoked_reason: null,
      suspended_at: null,
      suspended_reason: null,
      replaces: null,
      replaced_by: null,
      usage: { total_requests: 0, error_count: 0 },
    };
    return { record: await this.#store.putKey(record, 0), key };
  }

  /** The key, or 404 when it does not exist or belongs to another tenant (its existence is not revealed). */
  async get(id: string, by: Principal): Promise<KeyRecord> {
    const rec = await this.#store.getKey(id);
    if (rec === null || (by.tenant !== null && rec.tenant !== by.tenant)) {
      throw new HttpError('not_found', `No key with id ${id}.`);
    }
    return rec;
  }

  list(query: Omit<KeyQuery, 'tenant' | 'now'>, by: Principal): Promise<KeyPage> {
    return this.#store.listKeys({ ...query, tenant: by.tenant, now: this.#clock.now() });
  }

  async revoke(id: string, reason: string | null, by: Principal): Promise<KeyRecord> {
    return this.#update(id, by, (rec, now) => {
      if (rec.revoked_at !== null) throw new HttpError('already_revoked', `Key ${id} was revoked at ${new Date(rec.revoked_at).toISOString()}.`);
      return { ...rec, revoked_at: now, revoked_reason: reason, updated_at: now };
    });
  }

  /** Read, change, compare-and-set; a concurrent writer makes it read again. */
  async #update(id: string, by: Principal, change: (rec: KeyRecord, now: number) => KeyRecord): Promise<KeyRecord> {
    for (let attempt = 0; ; attempt++) {
      const rec = await this.get(id, by);
      try {
        return await this.#store.putKey(change(rec, this.#clock.now()), rec.version);
      } catch (err) {
        if (!(err instanceof VersionConflictError) || attempt >= 4) {
          if (err instanceof VersionConflictError) throw new HttpError('conflict', 'The key kept changing; try again.');
          throw err;
        }
      }
    }
  }

  wire(rec: KeyRecord) {
    return keyToWire(rec, this.#clock.now());
  }

  status(rec: KeyRecord) {
    return keyStatus(rec, this.#clock.now());
  }
}
