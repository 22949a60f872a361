/**
 * `expect` with a context line: jest's `expect` takes one argument, so a check inside a loop would not say which case
 * failed. `expectIn(actual, context)` has every matcher of `expect(actual)` (`.not`, `.resolves`, `.rejects`
 * included) and puts the context first in the failure message.
 */
import { expect } from '@jest/globals';

type Matchers<T> = ReturnType<typeof expect<T>>;

const describeContext = (context: unknown): string =>
  typeof context === 'string' ? context : (JSON.stringify(context) ?? String(context));

const prefixed = (error: unknown, context: string): unknown => {
  if (error instanceof Error) error.message = `${context}\n\n${error.message}`;
  return error;
};

function withContext(target: object, context: string): object {
  return new Proxy(target, {
    get(object, key, receiver) {
      const value: unknown = Reflect.get(object, key, receiver);
      if (typeof value === 'function') {
        return (...args: unknown[]): unknown => {
          try {
            const result: unknown = Reflect.apply(value as (...a: unknown[]) => unknown, object, args);
            if (!(result instanceof Promise)) return result;
            return result.catch((e: unknown) => {
              throw prefixed(e, context);
            });
          } catch (e) {
            throw prefixed(e, context);
          }
        };
      }
      return typeof value === 'object' && value !== null ? withContext(value, context) : value;
    },
  });
}

export function expectIn<T>(actual: T, context: unknown): Matchers<T> {
  return withContext(expect(actual), describeContext(context)) as Matchers<T>;
}
