/**
 * Encodes output columns as one Parquet file (hyparquet-writer, SNAPPY).
 *
 * The schema depends only on the declared column types, never on the data: every column is OPTIONAL whether or
 * not this file happens to hold a null, so all files of a run share one schema and the catalog can union them.
 *
 * | type         | Parquet                                                          | values accepted          |
 * |--------------|------------------------------------------------------------------|--------------------------|
 * | string       | BYTE_ARRAY, UTF8 / STRING                                        | string                   |
 * | float        | FLOAT                                                            | number                   |
 * | double       | DOUBLE                                                           | number                   |
 * | int          | INT32                                                            | integer number in range  |
 * | bigint       | INT64                                                            | bigint, or safe integer  |
 * | boolean      | BOOLEAN                                                          | boolean                  |
 * | array<float> | LIST (3-level: optional group / repeated group list / required FLOAT element) | number[] or typed array |
 *
 * null and undefined are null everywhere (for array<float> the whole list is null; elements cannot be).
 *
 * Two writers with the same types and checks:
 * - `encodeParquet` (here): one call, columns in, bytes out, in JavaScript (hyparquet-writer). Simple, for small
 *   files, and free of native code, so the Lambdas that write Parquet bundle it without DuckDB.
 * - `ParquetChunkWriter` (parquet-chunk-writer.ts): rows appended batch by batch into DuckDB, for the worker.
 */
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { ColumnSource, SchemaElement } from 'hyparquet-writer';
import type { JobSpec } from '../spec/schema.js';

/** The output column types a job spec may declare (`output.schema`). */
export type OutputColumnType = NonNullable<JobSpec['output']['schema']>[string];

export interface OutputColumn {
  readonly name: string;
  readonly type: OutputColumnType;
  /** One value per row; every column of a file has the same length. */
  readonly values: ArrayLike<unknown>;
}

export interface EncodeOptions {
  /** Rows per row group (the unit a later reader splits work by). @default 100_000 */
  readonly rowGroupSize?: number;
}

export const DEFAULT_ROW_GROUP_SIZE = 100_000;

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

type ColumnData = ColumnSource['data'];

export class ParquetEncodeError extends Error {
  override readonly name = 'ParquetEncodeError';
}

export function encodeParquet(columns: readonly OutputColumn[], options: EncodeOptions = {}): Uint8Array {
  const rowGroupSize = options.rowGroupSize ?? DEFAULT_ROW_GROUP_SIZE;
  if (!Number.isInteger(rowGroupSize) || rowGroupSize < 1) {
    throw new ParquetEncodeError(`rowGroupSize must be a positive integer, got ${rowGroupSize}`);
  }
  if (columns.length === 0) throw new ParquetEncodeError('a Parquet file needs at least one column');
  const rows = columns[0]!.values.length;
  const names = new Set<string>();
  for (const column of columns) {
    if (column.name === '') throw new ParquetEncodeError('column names must not be empty');
    if (names.has(column.name)) throw new ParquetEncodeError(`column "${column.name}" appears twice`);
    names.add(column.name);
    if (column.values.length !== rows) {
      throw new ParquetEncodeError(
        `column "${column.name}" has ${column.values.length} values, column "${columns[0]!.name}" has ${rows}`,
      );
    }
  }

  const schema: SchemaElement[] = [{ name: 'root', num_children: columns.length }];
  const columnData: ColumnSource[] = [];
  for (const column of columns) {
    schema.push(...schemaFor(column));
    columnData.push({ name: column.name, data: dataFor(column) });
  }
  const buffer = parquetWriteBuffer({
    columnData,
    schema,
    codec: 'SNAPPY',
    rowGroupSize,
    createdBy: 'batch-infer (hyparquet-writer)',
  });
  return new Uint8Array(buffer);
}

export type ScalarType = 'string' | 'float' | 'double' | 'int' | 'bigint' | 'boolean';
export const SCALAR_TYPES: readonly ScalarType[] = ['string', 'float', 'double', 'int', 'bigint', 'boolean'];

/** The element type of an `array<...>` column; undefined for a scalar column. */
export function elementTypeOf(type: OutputColumnType): ScalarType | undefined {
  const match = /^array<(.+)>$/.exec(type);
  const element = match?.[1] as ScalarType | undefined;
  return element !== undefined && SCALAR_TYPES.includes(element) ? element : undefined;
}

function scalarSchema(
  name: string,
  type: ScalarType,
  repetition_type: 'OPTIONAL' | 'REQUIRED',
): SchemaElement {
  switch (type) {
    case 'string':
      return {
        name,
        type: 'BYTE_ARRAY',
        converted_type: 'UTF8',
        logical_type: { type: 'STRING' },
        repetition_type,
      };
    case 'float':
      return { name, type: 'FLOAT', repetition_type };
    case 'double':
      return { name, type: 'DOUBLE', repetition_type };
    case 'int':
      return { name, type: 'INT32', repetition_type };
    case 'bigint':
      return { name, type: 'INT64', repetition_type };
    case 'boolean':
      return { name, type: 'BOOLEAN', repetition_type };
  }
}

function schemaFor({ name, type }: OutputColumn): SchemaElement[] {
  const repetition_type = 'OPTIONAL';
  const element = elementTypeOf(type);
  if (element === undefined) return [scalarSchema(name, type as ScalarType, repetition_type)];
  // The standard 3-level LIST layout, which Spark, Athena, DuckDB and Arrow all read as list<element>.
  return [
    { name, repetition_type, converted_type: 'LIST', logical_type: { type: 'LIST' }, num_children: 1 },
    { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
    scalarSchema('element', element, 'REQUIRED'),
  ];
}

/** Marks a value that does not fit its declared type. */
export const INVALID: unique symbol = Symbol('invalid');

const EXPECTED: Record<ScalarType, string> = {
  string: 'a string',
  float: 'a number',
  double: 'a number',
  int: 'an integer in the 32-bit range',
  bigint: 'a bigint or a safe integer',
  boolean: 'a boolean',
};

/** A non-null value checked against a scalar type, normalised (safe integers become bigint for INT64). */
export function checkScalar(
  type: ScalarType,
  v: unknown,
): string | number | bigint | boolean | typeof INVALID {
  switch (type) {
    case 'string':
      return typeof v === 'string' ? v : INVALID;
    case 'float':
    case 'double':
      return typeof v === 'number' ? v : INVALID;
    case 'int':
      return typeof v === 'number' && Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX ? v : INVALID;
    case 'bigint':
      if (typeof v === 'bigint') return v >= INT64_MIN && v <= INT64_MAX ? v : INVALID;
      return typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : INVALID;
    case 'boolean':
      return typeof v === 'boolean' ? v : INVALID;
  }
}

/**
 * A list value checked element by element; typed arrays become plain arrays (the writers walk lists with
 * Array.isArray). Elements cannot be null.
 */
export function checkList(element: ScalarType, v: unknown): unknown[] | typeof INVALID {
  const items: ArrayLike<unknown> | undefined = Array.isArray(v)
    ? (v as unknown[])
    : ArrayBuffer.isView(v) && !(v instanceof DataView)
      ? (v as unknown as ArrayLike<unknown>)
      : undefined;
  if (!items) return INVALID;
  const out = new Array<unknown>(items.length);
  for (let k = 0; k < items.length; k++) {
    const x = checkScalar(element, items[k]);
    if (x === INVALID) return INVALID;
    out[k] = x;
  }
  return out;
}

const EXPECTED_LIST: Record<ScalarType, string> = {
  string: 'an array of strings',
  float: 'an array of numbers',
  double: 'an array of numbers',
  int: 'an array of 32-bit integers',
  bigint: 'an array of 64-bit integers',
  boolean: 'an array of booleans',
};

export function expectedText(type: OutputColumnType, v: unknown): string {
  const element = elementTypeOf(type);
  if (element !== undefined) return EXPECTED_LIST[element];
  // A bigint that is out of range gets the more precise message.
  return type === 'bigint' && typeof v === 'bigint'
    ? 'an integer in the 64-bit range'
    : EXPECTED[type as ScalarType];
}

/** One non-null value checked against a column type; INVALID when it does not fit. */
function checkValue(type: OutputColumnType, v: unknown): unknown {
  const element = elementTypeOf(type);
  return element === undefined ? checkScalar(type as ScalarType, v) : checkList(element, v);
}

/** Checks every value against the declared type and returns the array the writer takes. */
function dataFor(column: OutputColumn): ColumnData {
  const { type, values } = column;
  // Typed arrays cannot hold nulls or wrong types: hand them over as they are.
  if (
    (type === 'float' || type === 'double') &&
    (values instanceof Float32Array || values instanceof Float64Array)
  ) {
    return values;
  }
  if (type === 'bigint' && values instanceof BigInt64Array) return values;
  if (type === 'int' && values instanceof Int32Array) return values;

  const out = new Array<unknown>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      out[i] = null;
      continue;
    }
    const checked = checkValue(type, v);
    if (checked === INVALID) {
      throw new ParquetEncodeError(
        `column "${column.name}" (${type}) row ${i}: expected ${expectedText(type, v)}, got ${describe(v)}`,
      );
    }
    out[i] = checked;
  }
  return out;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return `${typeof v} ${v}`;
  if (typeof v === 'object') return v.constructor?.name ?? 'an object';
  return typeof v;
}
