/**
 * Reading a fixed list of columns from many records. `values[column]` with the column name in a variable is a keyed
 * load whose key changes on every step of the inner loop: V8 cannot cache it and looks the name up in the record's
 * map each time. Profiled on the tabular worker (30 feature columns), those lookups were the largest single cost of
 * building tensors and of summarising the model's inputs (docs/adr/0019-tabular-data-path.md). A function generated
 * once per column list reads each column with its name written in the code: one cached, monomorphic load per
 * column, as for an object literal's fields.
 *
 * The result is exactly `columns.map((c) => values[c])`: a generated `v["name"]` is the same property access as
 * `values[name]`, for every name (`__proto__` included: an own property of that name wins, as it does for the
 * variable key). Names are embedded with JSON.stringify, a valid string literal for any text, so a column name
 * cannot inject code.
 */

/** Copies `values[columns[k]]` into `out[k]` for every k (undefined for every k when `values` is undefined). */
export type ColumnPlucker = (values: Readonly<Record<string, unknown>> | undefined, out: unknown[]) => void;

/** Generated functions, by column list: a worker builds the same few lists for every batch. */
const cache = new Map<string, ColumnPlucker>();

/** The plucker for `columns` (generated on first use). */
export function columnPlucker(columns: readonly string[]): ColumnPlucker {
  const key = JSON.stringify(columns);
  let pluck = cache.get(key);
  if (!pluck) {
    const body =
      'if (v === undefined || v === null) { for (let k = 0; k < o.length; k++) o[k] = undefined; return; }\n' +
      columns.map((column, k) => `o[${k}] = v[${JSON.stringify(column)}];`).join('\n');
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- see above: generated once per column list, names escaped.
    pluck = new Function('v', 'o', body) as ColumnPlucker;
    cache.set(key, pluck);
  }
  return pluck;
}
