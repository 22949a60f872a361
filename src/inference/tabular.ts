/**
 * Tabular entries (`from: { columns }`): the listed columns, in order, become the last dimension of a
 * [batch, columns] tensor. Values may be numbers or numeric strings (CSV cells); missing values follow the spec's
 * `missing` policy.
 */
import { columnPlucker } from '../formats/pluck.js';
import type { TabularInputSpec } from '../spec/model-io.js';
import { allocate, tensorOf } from './dtypes.js';
import type { EntryBuilder, EntryIssue } from './entry.js';
import { invalid, missing as missingIssue } from './entry.js';

export function tabularEntry(spec: TabularInputSpec): EntryBuilder {
  const cols = spec.from.columns;
  const width = cols.length;
  const integral = spec.dtype === 'int32' || spec.dtype === 'int64';
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
            const column = cols[c]!;
            const raw = row[c];
            let num = toNumber(raw);
            if (num === undefined) {
              if (raw === null || raw === undefined || raw === '') {
                if (spec.missing === 'error') return missingIssue(column);
                num = spec.missing.fill;
              } else {
                return invalid(`column "${column}" is not a number: ${show(raw)}`);
              }
            }
            if (integral && !Number.isInteger(num)) {
              return invalid(`column "${column}" is not an integer: ${show(raw)}`);
            }
            if (spec.dtype === 'int32' && (num < -(2 ** 31) || num > 2 ** 31 - 1)) {
              return invalid(`column "${column}" is out of the int32 range: ${show(raw)}`);
            }
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

/** A decimal number as text: what CSV writers, spreadsheets and humans write (same as the CSV reader's). */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A finite number, or undefined when the value is absent or not numeric. */
function toNumber(raw: unknown): number | undefined {
  switch (typeof raw) {
    case 'number':
      return Number.isFinite(raw) ? raw : undefined;
    case 'string': {
      // Decimal spellings only: Number() would also read "0x10" as 16, "0b1" as 1 and "0o7" as 7, silently
      // altering a value that no one wrote as a number (issue 17).
      const t = raw.trim();
      if (!DECIMAL.test(t)) return undefined;
      const n = Number(t);
      return Number.isFinite(n) ? n : undefined;
    }
    case 'bigint':
      return Number(raw);
    default:
      return undefined;
  }
}

function show(raw: unknown): string {
  const text = typeof raw === 'string' ? JSON.stringify(raw) : String(raw);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
