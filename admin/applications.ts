import { randomBase62 } from '../core/key-format.js';
import { appToWire, type AppRecord } from '../core/application.js';
import { diff, type Actor, type AuditAction, type KeyEvent } from '../core/audit.js';
import type { Clock } from '../core/clock.js';
import { HttpError } from '../core/errors.js';
import { compileQuota, type QuotaPolicy } from '../core/quota.js';
import { appLimitOf, appQuotaOf, isRevoked, type KeyRecord } from '../core/record.js';
import { type AppQuery, type Page, type Store } from '../core/store/store.js';
import type { CreateAppInput, CreditsInput, UpdateAppInput } from './key-input.js';
import { alignKeys, appState } from './app-keys.js';
import { audit, changeBalance, event } from './keys.js';
import { VersionConflictError } from '../core/internal-errors.js';

const APP_FIELDS = ['name', 'description', 'meta', 'plan', 'rate_limit', 'quota', 'credits', 'suspended_at', 'suspended_reason'] as const satisfies readonly (keyof AppRecord)[];

/**
 * Consumer applications. Suspending one marks every key it owns as suspended through it
 * (`app_suspended_at`), in the same commit; reactivating clears only that mark, so keys
 * suspended on their own stay suspended. An application's shared limit (`plan` or `rate_limit`)
 * is copied onto each of its keys that is not revoked (`app_limit`) in the same way, so that a
 * gateway reads it with the key and drops it from its cache when it changes; so is its shared
 * quota or credits (`app_quota`), whose balance the store keeps under the application's id.
 */
export class AppService {
  readonly #store: Store;
  readonly #clock: Clock;

  constructor(store: Store, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  async create(input: CreateAppInput, by: Actor): Promise<AppRecord> {
    const now = this.#clock.now();
    const app: AppRecord = {
      id: `app_${randomBase62(16)}`,
      version: 0,
      tenant: by.tenant,
      name: input.name,
      description: input.description,
      meta: input.meta,
      created_at: now,
      created_by: by.name,
      updated_at: now,
      suspended_at: null,
      suspended_reason: null,
      plan: input.plan,
      rate_limit: input.rate_limit,
      quota: input.quota,
      credits: input.credits,
    };
    const { apps } = await this.#store.commit({
      apps: [{ rec: app, expected: 0 }],
      audit: [audit(by, now, 'application.created', app, diff(null, app, APP_FIELDS), 'application')],
    });
    return apps[0]!;
  }

  async get(id: string, by: { tenant: string | null }): Promise<AppRecord> {
    const app = await this.#store.getApp(id);
    if (app === null || (by.tenant !== null && app.tenant !== by.tenant)) throw new HttpError('not_found', `No application with id ${id}.`);
    // Records written before applications had limits have none.
    return { ...app, plan: app.plan ?? null, rate_limit: app.rate_limit ?? null, quota: app.quota ?? null, credits: app.credits ?? null };
  }

  list(query: Omit<AppQuery, 'tenant'>, by: { tenant: string | null }): Promise<Page<AppRecord>> {
    return this.#store.listApps({ ...query, tenant: by.tenant });
  }

  update(id: string, patch: UpdateAppInput, by: Actor): Promise<AppRecord> {
    return this.#change(id, by, 'application.updated', async (app, now) => {
      const next: AppRecord = {
        ...app,
        name: patch.name ?? app.name,
        description: patch.description !== undefined ? patch.description : app.description,
        meta: patch.meta ?? app.meta,
        plan: patch.plan !== undefined ? patch.plan : (app.plan ?? null),
        rate_limit: patch.rate_limit !== undefined ? patch.rate_limit : (app.rate_limit ?? null),
        // One balance: a quota given replaces the credits, and credits the quota.
        quota: patch.quota !== undefined ? patch.quota : patch.credits != null ? null : (app.quota ?? null),
        credits: patch.credits !== undefined ? patch.credits : patch.quota != null ? null : (app.credits ?? null),
        updated_at: now,
      };
      const limit = appLimitOf(next);
      const quota = appQuotaOf(next);
      if (JSON.stringify([limit, quota]) === JSON.stringify([appLimitOf(app), appQuotaOf(app)])) return { next, keys: [] };
      // The new shared limit and quota go onto every key of the application that can still be used.
      const keys = (await this.#store.keysOfApp(id)).filter((k) => !isRevoked(k, now));
      return { next, keys: keys.map((k) => ({ before: k, after: { ...k, app_limit: limit, app_quota: quota, updated_at: now } })) };
    });
  }

  suspend(id: string, reason: string | null, by: Actor): Promise<AppRecord> {
    return this.#change(id, by, 'application.suspended', async (app, now) => {
      if (app.suspended_at !== null) throw new HttpError('conflict', `Application ${id} is already suspended.`);
      const keys = (await this.#store.keysOfApp(id)).filter((k) => !isRevoked(k, now));
      return {
        next: { ...app, suspended_at: now, suspended_reason: reason, updated_at: now },
        keys: keys.map((k) => ({ before: k, after: { ...k, app_suspended_at: now, updated_at: now } })),
        event: 'suspended',
      };
    });
  }

  reactivate(id: string, by: Actor): Promise<AppRecord> {
    return this.#change(id, by, 'application.reactivated', async (app, now) => {
      if (app.suspended_at === null) throw new HttpError('conflict', `Application ${id} is not suspended.`);
      const keys = (await this.#store.keysOfApp(id)).filter((k) => k.app_suspended_at !== null);
      return {
        next: { ...app, suspended_at: null, suspended_reason: null, updated_at: now },
        keys: keys.map((k) => ({ before: k, after: { ...k, app_suspended_at: null, updated_at: now } })),
        event: 'reactivated',
      };
    });
  }

  wire(app: AppRecord) {
    return appToWire(app);
  }

  /** The application's record with `balance`: what is left of its shared quota or credits (null: it has none). */
  async wireWithBalance(app: AppRecord) {
    return { ...appToWire(app), balance: await this.balance(app) };
  }

  /** The application's shared quota, as the gateways compile it (named `app-quota` in the RateLimit headers). */
  quotaOf(app: AppRecord): QuotaPolicy | null {
    return compileQuota(app.quota, app.credits, 'app-quota');
  }

  /** The shared balance now: units left and when they refill; null for an application without a quota. */
  async balance(app: AppRecord): Promise<{ remaining: number; refills_at: string | null } | null> {
    const q = this.quotaOf(app);
    if (q === null) return null;
    const a = await this.#store.quota(app.id, q, 'read', 0, this.#clock.now());
    return { remaining: a.remaining, refills_at: a.resetAt === null ? null : new Date(a.resetAt).toISOString() };
  }

  /**
   * Sets or tops up the application's shared balance (`POST /v1/applications/{id}/credits`),
   * audited as application.credits_changed: one atomic store operation, as for a key's.
   */
  async changeCredits(id: string, input: CreditsInput, by: Actor): Promise<{ app: AppRecord; remaining: number; refills_at: string | null }> {
    const app = await this.get(id, by);
    const q = this.quotaOf(app);
    if (q === null) {
      throw new HttpError('conflict', `Application ${id} has no quota or credits; give it one first (PATCH /v1/applications/${id} with quota or credits).`);
    }
    const now = this.#clock.now();
    const { from, to, refills_at } = await changeBalance(this.#store, app.id, q, input, now);
    await this.#store.commit({ audit: [audit(by, now, 'application.credits_changed', app, { balance: { from, to } }, 'application')] });
    return { app, remaining: to, refills_at };
  }

  async #change(
    id: string,
    by: Actor,
    action: AuditAction,
    change: (
      app: AppRecord,
      now: number,
    ) =>
      | Promise<{ next: AppRecord; keys: { before: KeyRecord; after: KeyRecord }[]; event?: 'suspended' | 'reactivated' }>
      | { next: AppRecord; keys: { before: KeyRecord; after: KeyRecord }[]; event?: 'suspended' | 'reactivated' },
  ): Promise<AppRecord> {
    for (let attempt = 0; ; attempt++) {
      const app = await this.get(id, by);
      const now = this.#clock.now();
      const { next, keys, event: type } = await change(app, now);
      const changes = diff(app, next, APP_FIELDS);
      if (keys.length > 0) changes['keys'] = { from: null, to: keys.map((k) => k.before.id) };
      const events: KeyEvent[] = type ? keys.map((k) => event(k.before.id, type, null, now, by, { application: id })) : [];
      try {
        const { apps } = await this.#store.commit({
          apps: [{ rec: next, expected: app.version }],
          keys: keys.map((k) => ({ rec: k.after, expected: k.before.version })),
          audit: [audit(by, now, action, app, changes, 'application')],
          events,
        });
        // A key created from the application as it was, committed after `keys` were read.
        if (JSON.stringify(appState(next)) !== JSON.stringify(appState(app))) await alignKeys(this.#store, this.#clock, id);
        return apps[0]!;
      } catch (err) {
        if (!(err instanceof VersionConflictError)) throw err;
        if (attempt >= 4) throw new HttpError('conflict', 'The application or its keys kept changing; try again.');
      }
    }
  }
}
