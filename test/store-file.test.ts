import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FileStore } from '../core/store/file-store.js';
import type { Store } from '../core/store/store.js';
import { storeConformance } from './lib/store-conformance.js';

// The shared store conformance suite on the embedded file store.

const dirs = new WeakMap<Store, string>();

storeConformance(t, {
  async open(t) {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-conf-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const store = await FileStore.open({ dir });
    t.teardown(() => store.close());
    dirs.set(store, dir);
    return store;
  },
  async reopen(t, store) {
    const dir = dirs.get(store)!;
    await store.close();
    const again = await FileStore.open({ dir });
    t.teardown(() => again.close());
    dirs.set(again, dir);
    return again;
  },
});
