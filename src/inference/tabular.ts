/**
 * Tabular entries (`from: { columns }`): the listed columns, in order, become the last dimension of a
 * [batch, columns] tensor. Values may be numbers or numeric strings (CSV cells); missing values follow the spec's
 * `missing` policy.
 */
import { columnPlucker } from '../formats/pluck.js';
import type { TabularInputSpec } from '../spec/model-io.js';
import { allocate, tensorOf } from './dtypes.js';
import type { EntryBuilder, EntryIssue } from './entry.js';
import { tabularValue } from './tabular-value.js';

export function tabularEntry(spec: TabularInputSpec): EntryBuilder {
  const cols = spec.from.columns;
  const width = cols.length;
  // The record's values of `cols`, read with one cached property load per column (pluck.ts).
  const pluck = columnPlucker(cols);
  return {
    feeds: [spec.tensor],
    columns: cols,
    async: false,
    batch(records) {
      // Values are checked into a scratch row per record and copied out for the accepted ones: a record another
      // entry rejects must not leave a row behind.
      const scratch = new Float64Array(records.length * width);
      const row = new Array<unknown>(width);
      return {
        prepare(index): EntryIssue | undefined {
          pluck(records[index]!.values, row);
          const base = index * width;
          for (let c = 0; c < width; c++) {
            const num = tabularValue(spec, cols[c]!, row[c]);
            if (typeof num !== 'number') return num;
            scratch[base + c] = num;
          }
          return undefined;
        },
        assemble(included) {
          const rows = included.length;
          // float64 with every record accepted: the scratch buffer is the tensor.
          if (spec.dtype === 'float64' && rows === records.length) {
            return { [spec.tensor]: tensorOf('float64', scratch, [rows, width]) };
          }
          const out = allocate(spec.dtype, rows * width);
          for (let r = 0; r < rows; r++) {
            const from = included[r]! * width;
            const to = r * width;
            if (out instanceof BigInt64Array) {
              for (let c = 0; c < width; c++) out[to + c] = BigInt(scratch[from + c]!);
            } else {
              (out as Float32Array).set(scratch.subarray(from, from + width), to);
            }
          }
          return { [spec.tensor]: tensorOf(spec.dtype, out, [rows, width]) };
        },
      };
    },
  };
}
