import { randomUUID } from 'node:crypto';
import type { Config, PolicyConfig } from '../config/schema.js';
import type { AppRecord } from '../core/application.js';
import { alignKeys, appState, inLine } from './app-keys.js';
import { diff, type Actor, type AuditAction, type AuditEntry, type KeyEvent, type KeyEventType } from '../core/audit.js';
import type { Clock } from '../core/clock.js';
import { HttpError } from '../core/errors.js';
import { generateKey, keyDisplayParts, randomBase62 } from '../core/key-format.js';
import type { KeyHasher } from '../core/key-hash.js';
import { compileQuota, type QuotaPolicy } from '../core/quota.js';
import { GRACE_ENDED, isRevoked, keyStatus, keyToWire, NEW_KEY_STATE, quotaAccount, rotatesBeforeExpiry, type KeyRecord } from '../core/record.js';
import { type Commit, type KeyPage, type KeyQuery, type Store } from '../core/store/store.js';
import type { CreateKeyInput, CreditsInput, UpdateKeyInput } from './key-input.js';
import { VersionConflictError } from '../core/internal-errors.js';

const DAY_MS = 86_400_000;

/** Key configuration fields: what an edit may change and what a regeneration copies. */
export const KEY_CONFIG_FIELDS = [
  'name',
  'description',
  'scopes',
  'apis',
  'plan',
  'rate_limit',
  'quota',
  'credits',
  'ip_allowlist',
  'expires_at',
  'meta',
] as const satisfies readonly (keyof KeyRecord)[];

/** What the audit log shows of a key: never its hash or display fragments. */
const AUDITED_FIELDS = [
  ...KEY_CONFIG_FIELDS,
  'environment',
  'application',
  'policy',
  'not_before',
  'revoked_at',
  'revoked_reason',
  'suspended_at',
  'suspended_reason',
  'app_suspended_at',
  'replaced_by',
  'grace_ends_at',
] as const satisfies readonly (keyof KeyRecord)[];

/**
 * When a key of a rotating policy rotates: `every_days` after it started (its `not_before`, or
 * its creation; a rotated key's successor starts at the rotation). Rotation wins over expiry on
 * the same UTC day: the key is rotated no later than it would expire.
 */
export function rotationTime(rec: Pick<KeyRecord, 'not_before' | 'created_at' | 'expires_at'>, policy: PolicyConfig | null): number | null {
  if (!policy?.rotation) return null;
  const rotateAt = (rec.not_before ?? rec.created_at) + policy.rotation.every_days * DAY_MS;
  const expiresAt = rec.expires_at;
  if (expiresAt === null) return rotateAt;
  return Math.floor(rotateAt / DAY_MS) === Math.floor(expiresAt / DAY_MS) ? Math.min(rotateAt, expiresAt) : rotateAt;
}

export interface Issued {
  record: KeyRecord;
  key: string;
}

/**
 * Key lifecycle operations of the admin plane. Each one is a single store commit: the
 * records it changes, one audit entry, and the key's timeline events.
 */
/** What a key found leaked gets (`leaks.action`). */
export type LeakAction = 'notify' | 'suspend' | 'revoke';

export class KeyService {
  #config: Config;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #hasher: KeyHasher;
  #committed: ((events: readonly KeyEvent[], records: readonly KeyRecord[]) => Promise<void>) | null = null;

  constructor(config: Config, store: Store, clock: Clock, hasher: KeyHasher) {
    this.#config = config;
    this.#store = store;
    this.#clock = clock;
    this.#hasher = hasher;
  }

  /**
   * Reads `config` from now on (a configuration reload, docs/operations.md): its policies
   * and scopes; the sections a reload does not apply are the running ones, unchanged.
   */
  reconfigure(config: Config): void {
    this.#config = config;
  }

  get clock(): Clock {
    return this.#clock;
  }

  /** Called after each committed change with its timeline events (the alerts' lifecycle events); it must not throw. */
  onCommitted(listener: (events: readonly KeyEvent[], records: readonly KeyRecord[]) => Promise<void>): void {
    this.#committed = listener;
  }

  policy(name: string | null): PolicyConfig | null {
    return name === null ? null : (this.#config.policies[name] ?? null);
  }

  async create(input: CreateKeyInput, by: Actor): Promise<Issued> {
    const now = this.#clock.now();
    const policy = this.policy(input.policy);
    const expires_at = input.expires_at !== undefined ? input.expires_at : policy?.expires_in_seconds ? now + policy.expires_in_seconds * 1000 : null;
    if (expires_at !== null && expires_at <= now) throw invalid('expires_at', 'must be in the future');
    if (expires_at !== null && input.not_before !== null && input.not_before >= expires_at) throw invalid('not_before', 'must be before expires_at');
    const app = input.application === null ? null : await this.#app(input.application, by, 'application');
    const { key, fragments } = this.#mint(input.environment);
    const rotate_at = rotationTime({ not_before: input.not_before, created_at: now, expires_at }, policy);
    const record: KeyRecord = {
      ...NEW_KEY_STATE,
      ...fragments,
      id: newKeyId(),
      // A key lives in its application's tenant, whoever creates it, so the tenant sees it.
      tenant: app ? app.tenant : by.tenant,
      name: input.name,
      description: input.description,
      environment: input.environment,
      scopes: input.scopes,
      apis: input.apis,
      plan: input.plan !== undefined ? input.plan : (policy?.plan ?? null),
      rate_limit: input.rate_limit !== undefined ? input.rate_limit : (policy?.rate_limit ?? null),
      // A quota or credits given replace the policy's, whichever of the two the policy has.
      ...(input.quota !== undefined || input.credits !== undefined
        ? { quota: input.quota ?? null, credits: input.credits ?? null }
        : { quota: policy?.quota ?? null, credits: policy?.credits ?? null }),
      ip_allowlist: input.ip_allowlist !== undefined ? input.ip_allowlist : (policy?.ip_allowlist ?? null),
      application: app?.id ?? null,
      ...(app ? appState(app) : { app_suspended_at: null, app_limit: null, app_quota: null }),
      policy: input.policy,
      meta: input.meta,
      created_at: now,
      created_by: by.name,
      updated_at: now,
      expires_at,
      not_before: input.not_before,
      rotate_at,
      usage: { total_requests: 0, error_count: 0 },
    };
    const [created] = await this.#commit(
      { keys: [{ rec: record, expected: 0 }] },
      [audit(by, now, 'key.created', record, diff(null, record, AUDITED_FIELDS))],
      [event(record.id, 'created', null, now, by)],
    );
    if (app !== null) {
      // A suspension or a new shared limit committed since the application was read missed
      // this key: bring it in line (admin/app-keys.ts).
      const current = await this.#store.getApp(app.id);
      if (current !== null && !inLine(created!, current)) {
        await alignKeys(this.#store, this.#clock, app.id);
        return { record: (await this.#store.getKey(created!.id)) ?? created!, key };
      }
    }
    return { record: created!, key };
  }

  /** The key, or 404 when it does not exist or belongs to another tenant (its existence is not revealed). */
  async get(id: string, by: { tenant: string | null }): Promise<KeyRecord> {
    const rec = await this.#store.getKey(id);
    if (rec === null || (by.tenant !== null && rec.tenant !== by.tenant)) throw new HttpError('not_found', `No key with id ${id}.`);
    return rec;
  }

  /** The record of a plaintext key (under the current pepper, then the older ones), or null. */
  async byPlaintext(key: string): Promise<KeyRecord | null> {
    for (const hash of [this.#hasher.hash(key), ...this.#hasher.fallbacks(key)]) {
      const rec = await this.#store.getKeyByHash(hash);
      if (rec !== null) return rec;
    }
    return null;
  }

  /**
   * Records that key `id` was found where it should not be (docs/secret-scanning/README.md),
   * in its timeline and the audit log, and applies `action`: suspend or revoke it, or only
   * record it (`notify`). A key already in that state is only recorded.
   */
  async reportLeak(id: string, action: LeakAction, found: { source: string; url: string | null }, by: Actor): Promise<KeyRecord> {
    const detail = { source: found.source, url: found.url, action };
    const reason = `leaked (${found.source})`;
    return this.#change(id, by, 'key.leaked', (rec, now) => {
      const leaked = event(id, 'leaked', null, now, by, detail);
      const status = keyStatus(rec, now);
      if (action === 'notify' || status === 'revoked' || status === 'expired') return { next: rec, events: [leaked] };
      if (action === 'suspend') {
        if (rec.suspended_at !== null) return { next: rec, events: [leaked] };
        return {
          next: { ...rec, suspended_at: now, suspended_reason: reason, updated_at: now },
          events: [leaked, event(id, 'suspended', null, now, by, { reason })],
        };
      }
      return {
        next: { ...rec, revoked_at: now, revoked_reason: reason, updated_at: now },
        events: [leaked, event(id, 'revoked', null, now, by, { reason })],
      };
    });
  }

  list(query: Omit<KeyQuery, 'tenant' | 'now'>, by: { tenant: string | null }): Promise<KeyPage> {
    return this.#store.listKeys({ ...query, tenant: by.tenant, now: this.#clock.now() });
  }

  async events(id: string, by: { tenant: string | null }): Promise<KeyEvent[]> {
    await this.get(id, by);
    return this.#store.listKeyEvents(id);
  }

  async update(id: string, patch: UpdateKeyInput, by: Actor): Promise<KeyRecord> {
    return this.#change(id, by, 'key.updated', (rec, now) => {
      const status = keyStatus(rec, now);
      if (status === 'revoked' || status === 'expired') throw new HttpError('conflict', `Key ${id} is ${status}; it can no longer be edited.`);
      const next: KeyRecord = { ...rec, updated_at: now };
      for (const field of KEY_CONFIG_FIELDS) {
        if (patch[field] !== undefined) (next as unknown as Record<string, unknown>)[field] = patch[field];
      }
      // A key has one balance: a quota given replaces its credits, and credits its quota.
      if (patch.quota != null) next.credits = null;
      if (patch.credits != null) next.quota = null;
      if (next.expires_at !== null && next.expires_at <= now) throw invalid('expires_at', 'must be in the future');
      if (next.expires_at !== null && next.not_before !== null && next.not_before >= next.expires_at) {
        throw invalid('expires_at', 'must be after not_before');
      }
      if (patch.expires_at !== undefined && rec.rotate_at !== null) next.rotate_at = rotationTime(next, this.policy(rec.policy));
      const changed = Object.keys(diff(rec, next, KEY_CONFIG_FIELDS));
      return { next, events: changed.length ? [event(id, 'edited', null, now, by, { fields: changed })] : [] };
    });
  }

  async revoke(id: string, reason: string | null, by: Actor): Promise<KeyRecord> {
    return this.#change(id, by, 'key.revoked', (rec, now) => {
      if (isRevoked(rec, now)) {
        throw new HttpError('already_revoked', `Key ${id} was revoked at ${new Date(rec.revoked_at ?? rec.grace_ends_at!).toISOString()}.`);
      }
      return {
        next: { ...rec, revoked_at: now, revoked_reason: reason, updated_at: now },
        events: [event(id, 'revoked', null, now, by, reason === null ? {} : { reason })],
      };
    });
  }

  async suspend(id: string, reason: string | null, by: Actor): Promise<KeyRecord> {
    return this.#change(id, by, 'key.suspended', (rec, now) => {
      const status = keyStatus(rec, now);
      if (status === 'revoked' || status === 'expired') throw new HttpError('conflict', `Key ${id} is ${status}; it cannot be suspended.`);
      if (rec.suspended_at !== null) throw new HttpError('conflict', `Key ${id} is already suspended.`);
      return {
        next: { ...rec, suspended_at: now, suspended_reason: reason, updated_at: now },
        events: [event(id, 'suspended', null, now, by, reason === null ? {} : { reason })],
      };
    });
  }

  async reactivate(id: string, by: Actor): Promise<KeyRecord> {
    return this.#change(id, by, 'key.reactivated', (rec, now) => {
      const status = keyStatus(rec, now);
      if (status === 'revoked' || status === 'expired') throw new HttpError('conflict', `Key ${id} is ${status}; it cannot be reactivated.`);
      if (rec.suspended_at === null) {
        throw new HttpError(
          'conflict',
          rec.app_suspended_at !== null
            ? `Key ${id} is suspended through its application ${rec.application}; reactivate the application.`
            : `Key ${id} is not suspended.`,
        );
      }
      return {
        next: { ...rec, suspended_at: null, suspended_reason: null, updated_at: now },
        events: [event(id, 'reactivated', null, now, by)],
      };
    });
  }

  /**
   * Issues a successor with the same configuration. Without grace the old key is revoked now;
   * with grace it keeps working until the grace ends. Only the latest key of a chain may be
   * regenerated, and only while it is neither revoked nor expired.
   */
  async regenerate(
    id: string,
    grace: number | undefined,
    by: Actor,
    scheduledAt: number | null = null,
    beforeCommit?: (issued: Issued) => Promise<void>,
  ): Promise<Issued> {
    for (let attempt = 0; ; attempt++) {
      const rec = await this.get(id, by);
      const now = this.#clock.now();
      const status = keyStatus(rec, now);
      if (rec.replaced_by !== null) {
        throw new HttpError('conflict', `Key ${id} was already regenerated as ${rec.replaced_by}; regenerate the latest key of the chain.`);
      }
      const automatic = scheduledAt !== null;
      // A rotation that was due no later than the expiry still happens, even when the scheduler
      // gets to it after the expiry (downtime): rotation wins.
      const rotationWins = automatic && rotatesBeforeExpiry(rec);
      if (status === 'revoked' || (status === 'expired' && !rotationWins)) {
        throw new HttpError('conflict', `Key ${id} is ${status}; it cannot be regenerated.`);
      }
      const policy = this.policy(rec.policy);
      if (!automatic && policy && !policy.allow_regeneration) {
        throw new HttpError('conflict', `Policy ${rec.policy} does not allow regenerating its keys by hand.`);
      }
      const graceSeconds = grace ?? (automatic ? policy?.rotation?.grace_seconds : policy?.regeneration_grace_seconds) ?? 0;
      const { key, fragments } = this.#mint(rec.environment);
      const expires_at = automatic ? (policy?.expires_in_seconds ? now + policy.expires_in_seconds * 1000 : null) : rec.expires_at;
      const successor: KeyRecord = {
        ...NEW_KEY_STATE,
        ...fragments,
        id: newKeyId(),
        tenant: rec.tenant,
        name: rec.name,
        description: rec.description,
        environment: rec.environment,
        scopes: rec.scopes,
        apis: rec.apis,
        plan: rec.plan,
        rate_limit: rec.rate_limit,
        quota: rec.quota ?? null,
        credits: rec.credits ?? null,
        // The successor spends the same balance: a rotation neither resets nor loses it.
        quota_account: quotaAccount(rec),
        ip_allowlist: rec.ip_allowlist,
        application: rec.application,
        policy: rec.policy,
        meta: rec.meta,
        created_at: now,
        created_by: by.name,
        updated_at: now,
        expires_at,
        not_before: null,
        suspended_at: rec.suspended_at,
        suspended_reason: rec.suspended_reason,
        app_suspended_at: rec.app_suspended_at,
        app_limit: rec.app_limit ?? null,
        app_quota: rec.app_quota ?? null,
        replaces: rec.id,
        rotate_at: rotationTime({ not_before: null, created_at: now, expires_at }, policy),
        usage: { total_requests: 0, error_count: 0 },
      };
      const old: KeyRecord =
        graceSeconds > 0
          ? { ...rec, replaced_by: successor.id, grace_ends_at: now + graceSeconds * 1000, rotate_at: null, updated_at: now }
          : { ...rec, replaced_by: successor.id, revoked_at: now, revoked_reason: 'regenerated', rotate_at: null, updated_at: now };
      const detail = { replaced_by: successor.id, grace_ends_at: old.grace_ends_at === null ? null : new Date(old.grace_ends_at).toISOString() };
      await beforeCommit?.({ record: successor, key });
      try {
        const [, created] = await this.#commit(
          { keys: [{ rec: old, expected: rec.version }, { rec: successor, expected: 0 }] },
          [audit(by, now, automatic ? 'key.rotated' : 'key.regenerated', rec, { ...diff(rec, old, AUDITED_FIELDS), grace_period_seconds: { from: null, to: graceSeconds } })],
          [
            event(rec.id, 'rotated', scheduledAt, now, by, detail),
            ...(graceSeconds > 0 ? [] : [event(rec.id, 'revoked', null, now, by, { reason: 'regenerated' })]),
            event(successor.id, 'created', null, now, by, { replaces: rec.id }),
          ],
        );
        return { record: created!, key };
      } catch (err) {
        if (!(err instanceof VersionConflictError) || attempt >= 4) throw conflictOr(err);
      }
    }
  }

  /** Records a transition that was due: activation, expiry, or the end of a grace (as revocation). */
  async recordTransition(id: string, type: 'activated' | 'expired' | 'grace_ended', by: Actor): Promise<KeyRecord> {
    return this.#change(id, by, `key.${type}`, (rec, now) => {
      if (type === 'activated') {
        return { next: { ...rec, activated_at: now }, events: [event(id, 'activated', rec.not_before, now, by)] };
      }
      if (type === 'expired') {
        return { next: { ...rec, expired_at: now }, events: [event(id, 'expired', rec.expires_at, now, by)] };
      }
      return {
        next: { ...rec, revoked_at: rec.grace_ends_at, revoked_reason: GRACE_ENDED },
        events: [event(id, 'revoked', rec.grace_ends_at, now, by, { reason: GRACE_ENDED })],
      };
    });
  }

  wire(rec: KeyRecord) {
    return keyToWire(rec, this.#clock.now());
  }

  /** The quota a key spends: its own quota or credits, else its plan's; null when it has none. */
  quotaOf(rec: KeyRecord): QuotaPolicy | null {
    if (rec.quota || rec.credits) return compileQuota(rec.quota, rec.credits);
    const plan = this.#config.plans[rec.plan ?? 'default'] ?? this.#config.plans['default'];
    return plan ? compileQuota(plan.quota, plan.credits) : null;
  }

  /** The key's quota balance now: units left and when they refill; null for a key without a quota. */
  async balance(rec: KeyRecord): Promise<{ remaining: number; refills_at: string | null } | null> {
    const q = this.quotaOf(rec);
    if (q === null) return null;
    const a = await this.#store.quota(quotaAccount(rec), q, 'read', 0, this.#clock.now());
    return { remaining: a.remaining, refills_at: a.resetAt === null ? null : new Date(a.resetAt).toISOString() };
  }

  /**
   * Sets or tops up a key's balance (`POST /v1/keys/{id}/credits`), audited as
   * key.credits_changed. The balance is changed in one atomic store operation, so requests
   * spending meanwhile are neither lost nor counted twice; the audit entry follows it.
   */
  async changeCredits(id: string, input: CreditsInput, by: Actor): Promise<{ rec: KeyRecord; remaining: number; refills_at: string | null }> {
    const rec = await this.get(id, by);
    const now = this.#clock.now();
    const status = keyStatus(rec, now);
    if (status === 'revoked' || status === 'expired') throw new HttpError('conflict', `Key ${id} is ${status}; its balance can no longer change.`);
    const q = this.quotaOf(rec);
    if (q === null) {
      throw new HttpError('conflict', `Key ${id} has no quota or credits, nor has its plan; give it one first (PATCH /v1/keys/${id} with quota or credits).`);
    }
    const { from, to, refills_at } = await changeBalance(this.#store, quotaAccount(rec), q, input, now);
    await this.#commit({}, [audit(by, now, 'key.credits_changed', rec, { balance: { from, to } })], []);
    return { rec, remaining: to, refills_at };
  }

  async #app(id: string, by: { tenant: string | null }, path: string): Promise<AppRecord> {
    const app = await this.#store.getApp(id);
    if (app === null || (by.tenant !== null && app.tenant !== by.tenant)) throw invalid(path, `no application with id ${id}`);
    return app;
  }

  #mint(environment: string) {
    const tag = this.#config.keys.environments[environment]!;
    const key = generateKey(this.#config.keys.prefix, tag);
    return { key, fragments: { ...keyDisplayParts(key), hash: this.#hasher.hash(key), hash_kind: this.#hasher.currentKind } };
  }

  /** Read, change, compare-and-set with its audit entry and events; a concurrent writer makes it read again. */
  async #change(
    id: string,
    by: Actor,
    action: AuditAction,
    change: (rec: KeyRecord, now: number) => { next: KeyRecord; events: KeyEvent[] },
  ): Promise<KeyRecord> {
    for (let attempt = 0; ; attempt++) {
      const rec = await this.get(id, by);
      const now = this.#clock.now();
      const { next, events } = change(rec, now);
      try {
        const [saved] = await this.#commit(
          { keys: [{ rec: next, expected: rec.version }] },
          [audit(by, now, action, rec, diff(rec, next, AUDITED_FIELDS))],
          events,
        );
        return saved!;
      } catch (err) {
        if (!(err instanceof VersionConflictError) || attempt >= 4) throw conflictOr(err);
      }
    }
  }

  async #commit(change: Commit, entries: AuditEntry[], events: KeyEvent[]): Promise<KeyRecord[]> {
    const { keys } = await this.#store.commit({ ...change, audit: entries, events });
    // Before answering, so that an alert about a change exists once the change is answered.
    if (this.#committed !== null && events.length > 0) await this.#committed(events, keys);
    return keys;
  }
}

function conflictOr(err: unknown): unknown {
  return err instanceof VersionConflictError ? new HttpError('conflict', 'The key kept changing; try again.') : err;
}

function invalid(path: string, message: string): HttpError {
  return new HttpError('validation_failed', undefined, { details: [{ path, message }] });
}

function newKeyId(): string {
  return `key_${randomBase62(20)}`;
}

export function audit(
  by: Actor,
  now: number,
  action: AuditAction,
  target: { id: string; tenant: string | null },
  changes: AuditEntry['changes'],
  targetType: AuditEntry['target_type'] = 'key',
): AuditEntry {
  return {
    id: `aud_${now.toString(36)}_${randomUUID().slice(0, 8)}`,
    time: now,
    actor: by.name,
    role: by.role,
    tenant: target.tenant,
    ip: by.ip,
    request_id: by.request_id,
    action,
    target_type: targetType,
    target_id: target.id,
    changes,
  };
}

export function event(keyId: string, type: KeyEventType, scheduledAt: number | null, at: number, by: Actor, detail: Record<string, unknown> = {}): KeyEvent {
  return { key_id: keyId, type, scheduled_at: scheduledAt, at, actor: by.name, detail };
}

/**
 * Sets (`set`) or tops up (`add`) the balance kept under `account` (a key's quota account, or an
 * application's id) with policy `q`, for `POST …/credits`. The balance is read first, so that the
 * audit's `from` is what it was, even when a top-up stops at the most a balance holds.
 */
export async function changeBalance(
  store: Store,
  account: string,
  q: QuotaPolicy,
  input: CreditsInput,
  now: number,
): Promise<{ from: number; to: number; refills_at: string | null }> {
  const from = (await store.quota(account, q, 'read', 0, now)).remaining;
  const a = input.set !== undefined ? await store.quota(account, q, 'set', input.set, now) : await store.quota(account, q, 'add', input.add!, now);
  return { from, to: a.remaining, refills_at: a.resetAt === null ? null : new Date(a.resetAt).toISOString() };
}
