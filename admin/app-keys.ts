import type { AppRecord } from '../core/application.js';
import type { Clock } from '../core/clock.js';
import { VersionConflictError } from '../core/internal-errors.js';
import { appLimitOf, appQuotaOf, isRevoked, type KeyRecord } from '../core/record.js';
import type { Store } from '../core/store/store.js';

/**
 * What an application copies onto each of its keys that is not revoked (docs/admin-api.md, "An
 * application's shared limit"): its suspension, its shared limit and its shared quota
 * (docs/quotas.md), so that gateways read them with the key.
 */
export function appState(app: AppRecord): Pick<KeyRecord, 'app_suspended_at' | 'app_limit' | 'app_quota'> {
  return { app_suspended_at: app.suspended_at, app_limit: appLimitOf(app), app_quota: appQuotaOf(app) };
}

/** Whether `key` carries what its application copies onto it. */
export function inLine(key: KeyRecord, app: AppRecord): boolean {
  const want = appState(app);
  return (
    key.app_suspended_at === want.app_suspended_at &&
    JSON.stringify(key.app_limit ?? null) === JSON.stringify(want.app_limit) &&
    JSON.stringify(key.app_quota ?? null) === JSON.stringify(want.app_quota)
  );
}

/**
 * Brings every key of application `appId` that is not revoked in line with the application as
 * stored now. An application change copies itself onto the keys it reads in its own commit; a
 * key committed meanwhile (created from the application as it was) is missed there, so both
 * sides check again after committing: the change sweeps, and a key's creation looks at its
 * application once more. Whichever commits last sees the other. Rare: it writes only keys out
 * of line, and a version conflict (the key changed meanwhile) reads again.
 */
export async function alignKeys(store: Store, clock: Clock, appId: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const app = await store.getApp(appId);
    if (app === null) return;
    const now = clock.now();
    const out = (await store.keysOfApp(appId)).filter((k) => !isRevoked(k, now) && !inLine(k, app));
    if (out.length === 0) return;
    try {
      await store.commit({ keys: out.map((k) => ({ rec: { ...k, ...appState(app), updated_at: now }, expected: k.version })) });
      return;
    } catch (err) {
      if (!(err instanceof VersionConflictError)) throw err;
    }
  }
}
