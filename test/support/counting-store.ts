/**
 * An ObjectStore wrapper that counts the requests made through it, by method, and the most of them in flight at
 * once: for tests that bound how many requests a step makes (a per-object HEAD, a quadratic re-read) and how many
 * it makes at the same time, instead of timing it.
 */
import type { ObjectStore } from '../../src/storage/object-store.js';

export interface RequestCounts {
  /** Calls per method (`list` counts one per listing, however many pages). */
  readonly calls: Record<string, number>;
  /** Most calls in flight at once, all methods together (a listing is in flight until iterated to its end). */
  readonly maxInFlight: number;
}

export function countingStore<S extends ObjectStore>(
  inner: S,
): { store: S; counts: () => RequestCounts; reset: () => void } {
  let calls: Record<string, number> = {};
  let inFlight = 0;
  let maxInFlight = 0;
  const begin = (method: string): void => {
    calls[method] = (calls[method] ?? 0) + 1;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
  };
  const end = (): void => {
    inFlight--;
  };
  const store = new Proxy(inner, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function' || typeof key !== 'string') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (key === 'list') {
        return (...args: unknown[]) => {
          const iterable = Reflect.apply(method, target, args) as AsyncIterable<unknown>;
          return (async function* () {
            begin(key);
            try {
              yield* iterable;
            } finally {
              end();
            }
          })();
        };
      }
      return (...args: unknown[]) => {
        begin(key);
        let result: unknown;
        try {
          result = Reflect.apply(method, target, args);
        } catch (error) {
          end();
          throw error;
        }
        if (result instanceof Promise) return result.finally(end);
        end();
        return result;
      };
    },
  });
  return {
    store,
    counts: () => ({ calls: { ...calls }, maxInFlight }),
    reset: () => {
      calls = {};
      inFlight = 0;
      maxInFlight = 0;
    },
  };
}
