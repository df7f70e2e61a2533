import { type Store } from '../../core/store/store.js';
import { StoreUnavailableError } from '../../core/internal-errors.js';

export interface Switchable {
  /** With `down` set, every call but close/onKeyChange fails as an unreachable store does. */
  down: boolean;
  /** How many key lookups by hash reached the store. */
  lookups: number;
  /** When set, lookups by hash wait for it, so tests can hold several misses in flight. */
  gate: Promise<void> | null;
  /** When set, lookups by hash read the store, then wait for it: their answer arrives late. */
  hold: Promise<void> | null;
}

/**
 * The real store behind a switch, so tests can cut it off without killing the process that
 * owns it. Every method is the real one; only the failure and the counting are added.
 */
export function switchable(inner: Store): Store & Switchable {
  const state: Switchable = { down: false, lookups: 0, gate: null, hold: null };
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop in state) return state[prop as keyof Switchable];
      if (prop === 'available') return !state.down && target.available;
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      if (prop === 'close' || prop === 'onKeyChange') return value.bind(target);
      return async (...args: unknown[]) => {
        if (prop === 'getKeyByHash') {
          state.lookups++;
          if (state.gate) await state.gate;
        }
        if (state.down) throw new StoreUnavailableError('store switched off by the test');
        const result: unknown = await (value as (...a: unknown[]) => unknown).apply(target, args);
        if (prop === 'getKeyByHash' && state.hold) await state.hold;
        return result;
      };
    },
    set(_target, prop, value) {
      if (!(prop in state)) return false;
      (state as unknown as Record<string, unknown>)[prop as string] = value;
      return true;
    },
  }) as Store & Switchable;
}
