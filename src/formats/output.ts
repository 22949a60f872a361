/**
 * One output chunk (a `part-<shard>-<chunk>` file) in the job's `output.format`: Parquet (encodeParquet), JSON
 * Lines, or CSV. The text formats hold exactly what the Parquet file would, so a run's outputs mean the same
 * whatever the format:
 *
 * | type           | jsonl                                   | csv                                          |
 * |----------------|-----------------------------------------|----------------------------------------------|
 * | string         | JSON string                             | the text, quoted when it must be (RFC 4180)  |
 * | float          | number, shortest text that reads back   | same text as jsonl                           |
 * |                | as the same 32-bit float (0.1, not      |                                              |
 * |                | 0.10000000149011612)                    |                                              |
 * | double, int    | number                                  | number                                       |
 * | bigint         | integer, exact (no quotes, no rounding) | integer                                      |
 * | boolean        | true / false                            | true / false                                 |
 * | array<T>       | JSON array of the element values        | that JSON array as one quoted field          |
 * | null/undefined | null                                    | empty unquoted field (an empty string is "") |
 *
 * NaN and infinities have no JSON form: they are written as null (jsonl) and empty (csv), as Parquet readers show
 * a missing value. A CSV chunk starts with a header line; every line (the last one included) ends in `\n`, so
 * chunks concatenate (Finalize's single-file assembly keeps the first header only).
 *
 * Values are checked against their column's type with the same rules as the Parquet writer: a value that does not
 * fit is an OutputEncodeError naming the column and the row, never a silently different file.
 */
import { OUTPUT_FILES, type OutputFormat } from './output-files.js';
import { encodeParquet, type OutputColumn } from './parquet-write.js';

export type { OutputFormat } from './output-files.js';
export { OUTPUT_FILES } from './output-files.js';

export interface EncodedChunk {
  readonly body: Uint8Array;
  /** File extension without the dot: `parquet`, `jsonl`, `csv`. */
  readonly extension: string;
  readonly contentType: string;
}

export class OutputEncodeError extends Error {
  override readonly name = 'OutputEncodeError';
}

export function encodeChunk(format: OutputFormat, columns: readonly OutputColumn[]): EncodedChunk {
  const file = OUTPUT_FILES[format];
  if (format === 'parquet') return { body: encodeParquet(columns), ...file };
  const rows = checkColumns(columns);
  const encoders = columns.map((c) => valueEncoder(c, format));
  const lines: string[] = [];
  if (format === 'csv') lines.push(columns.map((c) => csvField(c.name)).join(','));
  for (let row = 0; row < rows; row++) {
    if (format === 'jsonl') {
      const parts = columns.map((c, k) => `${JSON.stringify(c.name)}:${encoders[k]!(c.values[row], row)}`);
      lines.push(`{${parts.join(',')}}`);
    } else {
      lines.push(columns.map((c, k) => encoders[k]!(c.values[row], row)).join(','));
    }
  }
  const text = lines.length > 0 ? `${lines.join('\n')}\n` : '';
  return { body: new TextEncoder().encode(text), ...file };
}

function checkColumns(columns: readonly OutputColumn[]): number {
  if (columns.length === 0) throw new OutputEncodeError('an output chunk needs at least one column');
  const rows = columns[0]!.values.length;
  const names = new Set<string>();
  for (const column of columns) {
    if (column.name === '') throw new OutputEncodeError('column names must not be empty');
    if (names.has(column.name)) throw new OutputEncodeError(`column "${column.name}" appears twice`);
    names.add(column.name);
    if (column.values.length !== rows) {
      throw new OutputEncodeError(
        `column "${column.name}" has ${column.values.length} values, column "${columns[0]!.name}" has ${rows}`,
      );
    }
  }
  return rows;
}

type Scalar = 'string' | 'float' | 'double' | 'int' | 'bigint' | 'boolean';
const SCALARS: readonly string[] = ['string', 'float', 'double', 'int', 'bigint', 'boolean'];

/** Text of one value as JSON (`null` for a missing one), or undefined when it does not fit the type. */
function jsonScalar(type: Scalar, value: unknown): string | undefined {
  if (value === null || value === undefined) return 'null';
  switch (type) {
    case 'string':
      return typeof value === 'string' ? JSON.stringify(value) : undefined;
    case 'float':
      return typeof value === 'number' ? numberText(Math.fround(value), true) : undefined;
    case 'double':
      return typeof value === 'number' ? numberText(value, false) : undefined;
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31
        ? String(value)
        : undefined;
    case 'bigint':
      if (typeof value === 'bigint')
        return value >= -(2n ** 63n) && value < 2n ** 63n ? value.toString() : undefined;
      return typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : undefined;
    case 'boolean':
      return typeof value === 'boolean' ? String(value) : undefined;
  }
}

/** A finite number as text (floats at their shortest float32 form); NaN and infinities are missing values. */
function numberText(value: number, float32: boolean): string {
  if (!Number.isFinite(value)) return 'null';
  if (float32) {
    for (let digits = 1; digits <= 9; digits++) {
      const candidate = Number(value.toPrecision(digits));
      if (Math.fround(candidate) === value) return String(candidate);
    }
  }
  return String(value);
}

function valueEncoder(
  column: OutputColumn,
  format: 'jsonl' | 'csv',
): (value: unknown, row: number) => string {
  const type = column.type as string;
  const element = /^array<(.+)>$/.exec(type)?.[1];
  const bad = (value: unknown, row: number): never => {
    const shown = typeof value === 'bigint' ? `${value}n` : (JSON.stringify(value) ?? String(value));
    throw new OutputEncodeError(
      `column "${column.name}" row ${row}: ${shown.length > 60 ? `${shown.slice(0, 57)}...` : shown} is not a ${type}`,
    );
  };
  if (element !== undefined) {
    if (!SCALARS.includes(element))
      throw new OutputEncodeError(`column "${column.name}" has unknown type ${type}`);
    return (value, row) => {
      if (value === null || value === undefined) return format === 'jsonl' ? 'null' : '';
      if (!Array.isArray(value) && !ArrayBuffer.isView(value)) return bad(value, row);
      const items = Array.from(value as ArrayLike<unknown>, (item) => {
        // Elements cannot be missing (Parquet stores them REQUIRED); a NaN element is written as null.
        if (item === null || item === undefined) return bad(value, row);
        const text = jsonScalar(
          element as Scalar,
          typeof item === 'bigint' && element !== 'bigint' ? Number(item) : item,
        );
        return text === undefined ? bad(value, row) : text;
      });
      const json = `[${items.join(',')}]`;
      return format === 'jsonl' ? json : csvField(json);
    };
  }
  if (!SCALARS.includes(type))
    throw new OutputEncodeError(`column "${column.name}" has unknown type ${type}`);
  return (value, row) => {
    const text = jsonScalar(type as Scalar, value);
    if (text === undefined) return bad(value, row);
    if (format === 'jsonl') return text;
    if (text === 'null') return '';
    // Strings go through RFC 4180 quoting of their own text, not of their JSON form.
    return type === 'string' ? csvField(value as string) : text;
  };
}

/**
 * One CSV field: quoted when it holds a comma, a quote, a line break or surrounding spaces, or is empty (an empty
 * quoted field is the empty string; an empty unquoted one is a missing value).
 */
function csvField(text: string): string {
  if (text === '' || /[",\r\n]/.test(text) || text.trim() !== text) return `"${text.replace(/"/g, '""')}"`;
  return text;
}
