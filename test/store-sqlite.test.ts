import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { SqliteStore } from '../core/store/sqlite-store.js';
import type { Store } from '../core/store/store.js';
import { storeConformance } from './lib/store-conformance.js';

// The shared store conformance suite on the embedded SQLite store.

const paths = new WeakMap<Store, string>();

storeConformance(t, {
  async open(t) {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-conf-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'keygate.db');
    const store = await SqliteStore.open({ path });
    t.teardown(() => store.close());
    paths.set(store, path);
    return store;
  },
  async reopen(t, store) {
    const path = paths.get(store)!;
    await store.close();
    const again = await SqliteStore.open({ path });
    t.teardown(() => again.close());
    paths.set(again, path);
    return again;
  },
});
