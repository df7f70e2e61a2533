import t from 'tap';
import { RedisStore } from '../core/store/redis-store.js';
import type { Store } from '../core/store/store.js';
import { RedisServer } from './lib/redis.js';
import { storeConformance } from './lib/store-conformance.js';

// The shared store conformance suite on the Redis store, against a real redis-server.

const server = await RedisServer.start();
t.teardown(() => server.stop());

let n = 0;
const prefixes = new WeakMap<Store, string>();
const open = async (prefix: string) =>
  RedisStore.open({ url: server.url, prefix, commandTimeoutMs: 1000, connectTimeoutMs: 2000 });

storeConformance(t, {
  async open(t) {
    // Each test its own prefix: a fresh, empty store on the same server.
    const prefix = `conf${n++}`;
    const store = await open(prefix);
    t.teardown(() => store.close());
    prefixes.set(store, prefix);
    return store;
  },
  async reopen(t, store) {
    const prefix = prefixes.get(store)!;
    await store.close();
    const again = await open(prefix);
    t.teardown(() => again.close());
    prefixes.set(again, prefix);
    return again;
  },
});
