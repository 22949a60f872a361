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

function schemaFor({ name, type }: OutputColumn): SchemaElement[] {
  const repetition_type = 'OPTIONAL';
  switch (type) {
    case 'string':
      return [
        {
          name,
          type: 'BYTE_ARRAY',
          converted_type: 'UTF8',
          logical_type: { type: 'STRING' },
          repetition_type,
        },
      ];
    case 'float':
      return [{ name, type: 'FLOAT', repetition_type }];
    case 'double':
      return [{ name, type: 'DOUBLE', repetition_type }];
    case 'int':
      return [{ name, type: 'INT32', repetition_type }];
    case 'bigint':
      return [{ name, type: 'INT64', repetition_type }];
    case 'boolean':
      return [{ name, type: 'BOOLEAN', repetition_type }];
    case 'array<float>':
      // The standard 3-level LIST layout, which Spark, Athena, DuckDB and Arrow all read as list<float>.
      return [
        { name, repetition_type, converted_type: 'LIST', logical_type: { type: 'LIST' }, num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', type: 'FLOAT', repetition_type: 'REQUIRED' },
      ];
  }
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
  const fail = (row: number, expected: string): never => {
    throw new ParquetEncodeError(
      `column "${column.name}" (${type}) row ${row}: expected ${expected}, got ${describe(values[row])}`,
    );
  };
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      out[i] = null;
      continue;
    }
    switch (type) {
      case 'string':
        if (typeof v !== 'string') fail(i, 'a string');
        out[i] = v;
        break;
      case 'float':
      case 'double':
        if (typeof v !== 'number') fail(i, 'a number');
        out[i] = v;
        break;
      case 'int':
        if (typeof v !== 'number' || !Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) {
          fail(i, 'an integer in the 32-bit range');
        }
        out[i] = v;
        break;
      case 'bigint':
        if (typeof v === 'bigint') {
          if (v < INT64_MIN || v > INT64_MAX) fail(i, 'an integer in the 64-bit range');
          out[i] = v;
        } else if (typeof v === 'number' && Number.isSafeInteger(v)) {
          out[i] = BigInt(v);
        } else {
          fail(i, 'a bigint or a safe integer');
        }
        break;
      case 'boolean':
        if (typeof v !== 'boolean') fail(i, 'a boolean');
        out[i] = v;
        break;
      case 'array<float>':
        out[i] = floatList(v, () => fail(i, 'an array of numbers'));
        break;
    }
  }
  return out;
}

/** The writer walks lists with Array.isArray, so typed arrays become plain arrays here. */
function floatList(v: unknown, fail: () => never): number[] {
  if (Array.isArray(v)) {
    for (const x of v) if (typeof x !== 'number') fail();
    return v as number[];
  }
  if (v instanceof Float32Array || v instanceof Float64Array) return Array.from(v);
  return fail();
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return `${typeof v} ${v}`;
  if (typeof v === 'object') return v.constructor?.name ?? 'an object';
  return typeof v;
}
