import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import { columnPlucker } from '../../src/formats/pluck.js';
import { expectIn } from '../support/expect-in.js';

describe('columnPlucker', () => {
  it('reads exactly what values[column] reads, for any column names', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ maxLength: 8 }), { maxLength: 6 }),
        fc.array(fc.oneof(fc.double(), fc.string(), fc.constant(null)), { maxLength: 6 }),
        (names, cells) => {
          const values: Record<string, unknown> = {};
          names.forEach((name, k) =>
            Object.defineProperty(values, name, { value: cells[k], enumerable: true, writable: true }),
          );
          const columns = [...names, 'not-there'];
          const out = new Array<unknown>(columns.length);
          columnPlucker(columns)(values, out);
          expect(out).toEqual(columns.map((c) => values[c]));
        },
      ),
    );
  });

  it('keeps names that look like code, quotes or __proto__ as plain keys', () => {
    const names = ['"]; throw 1; //', "a'b", 'back\\slash', 'line\nbreak', '__proto__', 'constructor', 'x'];
    const values: Record<string, unknown> = {};
    names.forEach((name, k) =>
      Object.defineProperty(values, name, { value: k, enumerable: true, writable: true }),
    );
    const out = new Array<unknown>(names.length);
    columnPlucker(names)(values, out);
    names.forEach((name, k) => expectIn(out[k], name).toBe(k));
  });

  it('gives undefined for every column of a record without values, and reuses one function per list', () => {
    const pluck = columnPlucker(['a', 'b']);
    const out: unknown[] = [1, 2];
    pluck(undefined, out);
    expect(out).toEqual([undefined, undefined]);
    expect(columnPlucker(['a', 'b'])).toBe(pluck);
    expect(columnPlucker(['b', 'a'])).not.toBe(pluck);
  });
});
