/**
 * Parquet input read by DuckDB's own reader, for the columnar path (parquet-columnar.ts, docs/adr/0019 addendum of
 * 2026-12-07 midday): the file is decompressed and decoded in native code and each column of a 2,048-row chunk comes
 * back as one typed array, where hyparquet decoded it page by page in JavaScript on the worker's main thread
 * (measured on the demo's rows as Parquet: about 0.9 s of CPU per million rows, all threads, against 3.8 s).
 *
 * DuckDB reads a file by its path, so this serves local files only; the caller checks the file's ETag against its
 * pin before and after the read. It takes only columns whose values DuckDB and hyparquet give alike, so that
 * ColumnarRows judges the same values either way: DOUBLE, FLOAT and signed INT32 (NumericColumn), signed INT64
 * (bigint), BOOLEAN and UTF-8 strings, none of them repeated or nested. Any other column leaves the file to
 * hyparquet.
 *
 * Its own module because it loads DuckDB's native binding, which the Lambda bundles must not carry.
 */
import type { DuckDBDataChunk, DuckDBTypeId, DuckDBVector } from '@duckdb/node-api';
import { duckDb } from './duckdb-library.js';
import type { FileMetaData, SchemaElement } from 'hyparquet';
import { quoteIdentifier, quoteString, writerDatabase } from './parquet-chunk-writer.js';
import { NumericColumn, type FlatColumn } from './parquet-flat.js';

/** Rows `offset` to `offset + rows` of the file: each wanted column's values, in the order asked for. */
export interface NativeParquetPart {
  readonly data: FlatColumn[];
  readonly rows: number;
  readonly offset: number;
}

/** Where a columnar read can hand a local Parquet file to DuckDB. */
export interface NativeParquetReader {
  /** Whether every one of `columns` is a column this reader gives exactly as hyparquet does. */
  canRead(metadata: FileMetaData, columns: readonly string[]): boolean;
  /** Rows [rowStart, rowEnd) of the file at `path`, in file order. */
  read(
    path: string,
    columns: readonly string[],
    rowStart: number,
    rowEnd: number,
  ): AsyncGenerator<NativeParquetPart, void, undefined>;
}

const SIGNED_INTEGER_TYPES = new Set(['INT_8', 'INT_16', 'INT_32', 'INT_64']);

/** Whether hyparquet reads `element` as the plain value DuckDB gives for it (see the module's comment). */
function sameValues(element: SchemaElement): boolean {
  if (element.repetition_type === 'REPEATED' || (element.num_children ?? 0) > 0) return false;
  const converted = element.converted_type;
  const logical = element.logical_type;
  switch (element.type) {
    case 'DOUBLE':
    case 'FLOAT':
    case 'BOOLEAN':
      return converted === undefined && logical === undefined;
    case 'INT32':
    case 'INT64':
      return (
        (converted === undefined || SIGNED_INTEGER_TYPES.has(converted)) &&
        (logical === undefined || (logical.type === 'INTEGER' && logical.isSigned))
      );
    case 'BYTE_ARRAY':
      return logical ? logical.type === 'STRING' : converted === 'UTF8';
    default:
      return false;
  }
}

/** The top-level columns of a file's schema, by name. */
function topLevel(metadata: FileMetaData): Map<string, SchemaElement> {
  const out = new Map<string, SchemaElement>();
  const schema = metadata.schema;
  let i = 1;
  const skip = (at: number): number => {
    // An element and all its descendants: the index after them.
    let next = at + 1;
    for (let c = 0; c < (schema[at]?.num_children ?? 0); c++) next = skip(next);
    return next;
  };
  for (let c = 0; c < (schema[0]?.num_children ?? 0) && i < schema.length; c++) {
    out.set(schema[i]!.name, schema[i]!);
    i = skip(i);
  }
  return out;
}

let numericVectors: ReadonlySet<DuckDBTypeId> | undefined;

/** Whether vectors of the type hold numbers in a typed array (NumericColumn). */
function isNumericVector(type: DuckDBTypeId): boolean {
  if (numericVectors === undefined) {
    const { DOUBLE, FLOAT, INTEGER, SMALLINT, TINYINT } = duckDb().api.DuckDBTypeId;
    numericVectors = new Set([DOUBLE, FLOAT, INTEGER, SMALLINT, TINYINT]);
  }
  return numericVectors.has(type);
}

/** One column of a chunk as the flat reader gives it: a NumericColumn, or values with null for a missing one. */
function columnOf(vector: DuckDBVector, rows: number): FlatColumn {
  const typed = vector as DuckDBVector & {
    readonly items?: ArrayLike<number>;
    readonly validity?: { itemValid(i: number): boolean };
  };
  if (isNumericVector(vector.type.typeId) && typed.items && typed.validity) {
    const values = Float64Array.from(typed.items);
    let nulls: Uint8Array | undefined;
    for (let r = 0; r < rows; r++) {
      if (typed.validity.itemValid(r)) continue;
      nulls ??= new Uint8Array(rows);
      nulls[r] = 1;
    }
    return new NumericColumn(values, nulls);
  }
  const values = new Array<unknown>(rows);
  for (let r = 0; r < rows; r++) values[r] = vector.getItem(r);
  return values;
}

export const duckdbParquetReader: NativeParquetReader = {
  canRead(metadata, columns) {
    const elements = topLevel(metadata);
    // DuckDB matches names without regard to case and adds file_row_number: a file where that could pick another
    // column than the one asked for is left to hyparquet.
    const folded = new Set([...elements.keys()].map((name) => name.toLowerCase()));
    if (folded.size !== elements.size || folded.has('file_row_number')) return false;
    return columns.every((c) => {
      const element = elements.get(c);
      return element !== undefined && sameValues(element);
    });
  },

  async *read(path, columns, rowStart, rowEnd) {
    if (rowEnd <= rowStart) return;
    const connection = await (await writerDatabase()).connect();
    let pending: Promise<DuckDBDataChunk | null> | undefined;
    try {
      // file_row_number is each row's number in the file (the record's offset); the filter on it skips the row
      // groups outside the range. DuckDB keeps the file's row order (preserve_insertion_order). Hive partitioning
      // off: a path like .../date=2024-01-01/part.parquet must not put the folder's value in a column `date`.
      const select = [...columns.map(quoteIdentifier), 'file_row_number'].join(', ');
      const result = await connection.stream(
        `SELECT ${select} FROM read_parquet(${quoteString(path)}, file_row_number = true, hive_partitioning = false) ` +
          `WHERE file_row_number >= ${rowStart} AND file_row_number < ${rowEnd}`,
      );
      let expected = rowStart;
      pending = result.fetchChunk();
      for (;;) {
        const chunk = await pending;
        pending = undefined;
        if (!chunk || chunk.rowCount === 0) break;
        // The next chunk is read and decoded in DuckDB's threads while this one is turned into columns here. One
        // fetch at a time: two in flight come back out of order (measured: the check below caught it).
        pending = result.fetchChunk();
        const rows = chunk.rowCount;
        const numbers = chunk.getColumnVector(columns.length);
        const first = Number(numbers.getItem(0));
        const last = Number(numbers.getItem(rows - 1));
        // Offsets are the records' identity: a chunk out of order or with a gap must not be taken for another.
        if (first !== expected || last !== first + rows - 1) {
          throw new Error(
            `DuckDB read rows ${first}-${last} of ${path} where rows ${expected}-${expected + rows - 1} were due`,
          );
        }
        const data = columns.map((_, k) => columnOf(chunk.getColumnVector(k), rows));
        yield { data, rows, offset: first };
        expected = last + 1;
      }
      if (expected !== rowEnd) {
        throw new Error(
          `DuckDB read rows ${rowStart}-${expected - 1} of ${path}, not ${rowStart}-${rowEnd - 1}`,
        );
      }
    } finally {
      // A fetch still in flight (the reader stopped early, or failed) ends before its connection does.
      await pending?.catch(() => undefined);
      connection.closeSync();
    }
  },
};
