import type { SharedBuckets } from '../../shared-limiter.js';
import type { Client } from './connection.js';
import { TAKE } from './scripts.js';

type TakeScript = { kgTake(key: string, capacity: number, perMs: number, want: number): Promise<[number, string]> };

/**
 * The shared rate limiter's buckets in Redis, one script a take (lua/take.lua) on Redis's
 * clock. Each bucket is the key `{prefix}:rl:{id}`, its own hash tag, so Cluster spreads them;
 * it expires once it would be full again. The client is lent by the store, which closes it.
 */
export class RedisBuckets implements SharedBuckets {
  readonly #client: Client & TakeScript;
  readonly #prefix: string;

  constructor(client: Client, prefix: string) {
    client.defineCommand('kgTake', { numberOfKeys: 1, lua: TAKE });
    this.#client = client as Client & TakeScript;
    this.#prefix = prefix;
  }

  async take(id: string, capacity: number, perMs: number, want: number): Promise<[number, number]> {
    const [granted, left] = await this.#client.kgTake(`${this.#prefix}:rl:{${id}}`, capacity, perMs, want);
    return [granted, Number(left)];
  }
}
