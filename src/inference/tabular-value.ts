/**
 * How one value of a tabular column (`from: { columns }`) becomes a tensor value, kept free of ONNX Runtime so the
 * columnar CSV decoder's threads (src/formats/csv-columnar.ts) judge values exactly as the record path does.
 */
import type { TabularInputSpec } from '../spec/model-io.js';
import type { EntryIssue } from './entry.js';
import { invalid, missing as missingIssue } from './entry.js';

/**
 * One value of a tabular column as the number the tensor takes (before the dtype's rounding), or the issue that
 * makes its record an error row: the `missing` policy for an absent value, INVALID_VALUE for one that is not a
 * number (or not an integer, or out of int32 range, for integer dtypes). Shared by the record path above and the
 * columnar CSV decoder (src/formats/csv-columnar.ts), so both judge every value the same way.
 */
export function tabularValue(spec: TabularInputSpec, column: string, raw: unknown): number | EntryIssue {
  let num = toNumber(raw);
  if (num === undefined) {
    if (raw === null || raw === undefined || raw === '') {
      if (spec.missing === 'error') return missingIssue(column);
      num = spec.missing.fill;
    } else {
      return invalid(`column "${column}" is not a number: ${show(raw)}`);
    }
  }
  if ((spec.dtype === 'int32' || spec.dtype === 'int64') && !Number.isInteger(num)) {
    return invalid(`column "${column}" is not an integer: ${show(raw)}`);
  }
  if (spec.dtype === 'int32' && (num < -(2 ** 31) || num > 2 ** 31 - 1)) {
    return invalid(`column "${column}" is out of the int32 range: ${show(raw)}`);
  }
  return num;
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
