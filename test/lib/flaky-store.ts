import type { KeyRecord } from '../../core/record.js';
import { StoreUnavailableError, type KeyPage, type KeyQuery, type Store } from '../../core/store/store.js';

/**
 * The real store behind a switch: with `down` set, every call fails the way an unreachable
 * store does. Lets tests cut the store off without killing the process that owns it.
 */
export class SwitchableStore implements Store {
  readonly kind: string;
  down = false;
  /** How many key lookups by hash reached the store. */
  lookups = 0;
  /** When set, lookups wait for it, so tests can hold several misses in flight. */
  gate: Promise<void> | null = null;
  readonly #inner: Store;

  constructor(inner: Store) {
    this.#inner = inner;
    this.kind = inner.kind;
  }

  #check(): void {
    if (this.down) throw new StoreUnavailableError('store switched off by the test');
  }

  async getKeyByHash(hash: string): Promise<KeyRecord | null> {
    this.lookups++;
    if (this.gate) await this.gate;
    this.#check();
    return this.#inner.getKeyByHash(hash);
  }
  async getKey(id: string): Promise<KeyRecord | null> {
    this.#check();
    return this.#inner.getKey(id);
  }
  async putKey(rec: KeyRecord, expectedVersion: number): Promise<KeyRecord> {
    this.#check();
    return this.#inner.putKey(rec, expectedVersion);
  }
  async listKeys(query: KeyQuery): Promise<KeyPage> {
    this.#check();
    return this.#inner.listKeys(query);
  }
  onKeyChange(listener: (hash: string) => void): () => void {
    return this.#inner.onKeyChange(listener);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}
