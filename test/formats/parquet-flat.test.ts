/**
 * Flat Parquet columns decoded without hyparquet's list assembly (src/formats/parquet-flat.ts): the values
 * `parquetRead` gives, row group by row group, for files written by DuckDB (OPTIONAL columns, dictionaries, nulls,
 * several pages per chunk, data pages v1 and v2, the codecs the worker reads on Node 20) and by this project's own writer; a
 * nested column is left to `parquetRead`.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  asyncBufferFromFile,
  parquetMetadataAsync,
  parquetRead,
  type AsyncBuffer,
  type FileMetaData,
} from 'hyparquet';
import { NumericColumn, readFlatColumns, valueAt, type FlatColumn } from '../../src/formats/parquet-flat.js';
import { PARQUET_COMPRESSORS } from '../../src/formats/parquet-read.js';
import { encodeParquet } from '../../src/formats/parquet-write.js';
import { expectIn } from '../support/expect-in.js';
import { tempDir, type TempDir } from './helpers.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(() => tmp.cleanup());

const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/** 30,000 rows of every scalar type, with nulls in each column and low- and high-cardinality strings. */
const ROWS_SQL = `
  SELECT
    CASE WHEN i % 97 = 0 THEN NULL ELSE i * 0.5 END::DOUBLE AS d,
    CASE WHEN i % 89 = 0 THEN NULL ELSE (i % 1000) / 7 END::FLOAT AS f,
    CASE WHEN i % 83 = 0 THEN NULL ELSE i - 15000 END::INTEGER AS n,
    CASE WHEN i % 79 = 0 THEN NULL ELSE i * 1000003 END::BIGINT AS b,
    CASE WHEN i % 73 = 0 THEN NULL ELSE ['M', 'B', 'X'][(i % 3) + 1] END AS category,
    CASE WHEN i % 71 = 0 THEN NULL ELSE 'P' || lpad(i::VARCHAR, 7, '0') END AS id,
    CASE WHEN i % 67 = 0 THEN NULL ELSE i % 2 = 0 END AS flag,
    i::DOUBLE AS dense,
    CASE WHEN i % 61 = 0 THEN NULL ELSE DATE '2020-01-01' + (i % 365)::INTEGER END AS day
  FROM range(30000) t(i)`;

async function duckdbFile(name: string, options: string): Promise<string> {
  const file = path.join(tmp.dir, name);
  const db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  try {
    await connection.run(`COPY (${ROWS_SQL}) TO ${q(file)} (FORMAT parquet, ${options})`);
  } finally {
    connection.closeSync();
    db.closeSync();
  }
  return file;
}

/** Row group `g` of every named column through hyparquet's own reader. */
async function viaParquetRead(
  file: AsyncBuffer,
  metadata: FileMetaData,
  g: number,
  names: string[],
): Promise<unknown[][]> {
  const groupRow = metadata.row_groups.slice(0, g).reduce((n, rg) => n + Number(rg.num_rows), 0);
  const n = Number(metadata.row_groups[g]!.num_rows);
  const data = names.map(() => new Array<unknown>(n));
  await parquetRead({
    file,
    metadata,
    columns: names,
    rowStart: groupRow,
    rowEnd: groupRow + n,
    compressors: PARQUET_COMPRESSORS,
    onChunk: ({ columnName, columnData, rowStart }) => {
      const into = data[names.indexOf(columnName)]!;
      for (let i = 0; i < columnData.length; i++) {
        const row = rowStart - groupRow + i;
        if (row >= 0 && row < n) into[row] = columnData[i];
      }
    },
  });
  return data;
}

/** A column's rows as an array (null for missing), as parquetRead gives them. */
const rowsOf = (column: FlatColumn): unknown[] =>
  Array.from({ length: column instanceof NumericColumn ? column.values.length : column.length }, (_, r) =>
    valueAt(column, r),
  );

/**
 * readFlatColumns against parquetRead on every row group of `path`; the columns that came back unboxed
 * (NumericColumn) in the first group.
 */
async function compareGroups(filePath: string, names: string[]): Promise<string[]> {
  const file = await asyncBufferFromFile(filePath);
  const metadata = await parquetMetadataAsync(file);
  let numeric: string[] = [];
  for (let g = 0; g < metadata.row_groups.length; g++) {
    const flat = await readFlatColumns(file, metadata, g, names, PARQUET_COMPRESSORS);
    const reference = await viaParquetRead(file, metadata, g, names);
    expectIn(flat?.map(rowsOf), `${path.basename(filePath)}, row group ${g}`).toEqual(reference);
    if (g === 0) numeric = names.filter((_, k) => flat?.[k] instanceof NumericColumn);
  }
  return numeric;
}

const COLUMNS = ['d', 'f', 'n', 'b', 'category', 'id', 'flag', 'dense', 'day'];

describe('readFlatColumns', () => {
  it.each([
    ['snappy, data pages v1', 'COMPRESSION snappy, ROW_GROUP_SIZE 12000'],
    ['brotli', 'COMPRESSION brotli, ROW_GROUP_SIZE 12000'],
    ['gzip', 'COMPRESSION gzip, ROW_GROUP_SIZE 12000'],
    ['uncompressed', 'COMPRESSION uncompressed, ROW_GROUP_SIZE 12000'],
    ['data pages v2 and their encodings', 'COMPRESSION snappy, PARQUET_VERSION V2, ROW_GROUP_SIZE 12000'],
    ['one large row group (several pages per column chunk)', 'COMPRESSION snappy, ROW_GROUP_SIZE 100000'],
  ])('gives the values parquetRead gives: DuckDB, %s', async (name, options) => {
    const file = await duckdbFile(`${name.replace(/\W+/g, '-')}.parquet`, options);
    // DOUBLE, FLOAT and INT32 come back unboxed; BIGINT (bigint values), strings, booleans and dates as arrays.
    expect(await compareGroups(file, COLUMNS)).toEqual(['d', 'f', 'n', 'dense']);
  });

  it('gives the values parquetRead gives for a file of this project’s writer', async () => {
    const rows = 5_000;
    const file = path.join(tmp.dir, 'own.parquet');
    await writeFile(
      file,
      encodeParquet(
        [
          {
            name: 'label',
            type: 'string',
            values: Array.from({ length: rows }, (_, i) => (i % 11 ? `c${i % 4}` : null)),
          },
          {
            name: 'score',
            type: 'float',
            values: Array.from({ length: rows }, (_, i) => (i % 13 ? i / 8 : null)),
          },
          { name: 'count', type: 'bigint', values: Array.from({ length: rows }, (_, i) => BigInt(i)) },
          { name: 'ok', type: 'boolean', values: Array.from({ length: rows }, (_, i) => i % 3 === 0) },
        ],
        { rowGroupSize: 1_500 },
      ),
    );
    expect(await compareGroups(file, ['label', 'score', 'count', 'ok'])).toEqual(['score']);
  });

  it('reads a row group’s chunks in one request when they lie together, and apart when they do not', async () => {
    const file = await duckdbFile('requests.parquet', 'COMPRESSION snappy, ROW_GROUP_SIZE 12000');
    const buffer = await asyncBufferFromFile(file);
    const metadata = await parquetMetadataAsync(buffer);
    const slices: [number, number][] = [];
    const counting = {
      byteLength: buffer.byteLength,
      slice: (start: number, end?: number) => {
        slices.push([start, end ?? buffer.byteLength]);
        return buffer.slice(start, end);
      },
    };
    const groups = metadata.row_groups.length;
    for (let g = 0; g < groups; g++)
      await readFlatColumns(counting, metadata, g, COLUMNS, PARQUET_COMPRESSORS);
    expect(slices).toHaveLength(groups);
    // Two columns far apart (the first and the last of the group, most bytes between them unread): one request each.
    slices.length = 0;
    const [first] = (await readFlatColumns(counting, metadata, 0, ['d', 'day'], PARQUET_COMPRESSORS))!;
    expect(slices).toHaveLength(2);
    expect(rowsOf(first!)).toEqual((await viaParquetRead(buffer, metadata, 0, ['d']))[0]);
  });

  it('leaves a row group with a nested column to parquetRead', async () => {
    const file = path.join(tmp.dir, 'nested.parquet');
    const db = await DuckDBInstance.create(':memory:');
    const connection = await db.connect();
    try {
      await connection.run(
        `COPY (SELECT i::DOUBLE AS x, [i, i + 1] AS pair FROM range(100) t(i)) TO ${q(file)} (FORMAT parquet)`,
      );
    } finally {
      connection.closeSync();
      db.closeSync();
    }
    const buffer = await asyncBufferFromFile(file);
    const metadata = await parquetMetadataAsync(buffer);
    expect(await readFlatColumns(buffer, metadata, 0, ['x', 'pair'], PARQUET_COMPRESSORS)).toBeUndefined();
    const [x] = (await readFlatColumns(buffer, metadata, 0, ['x'], PARQUET_COMPRESSORS))!;
    expect(rowsOf(x!)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});
