/**
 * Local Parquet files read by DuckDB for the columnar path (src/formats/parquet-native.ts): the values hyparquet's
 * flat reader gives, row for row, for every column type it takes (nulls in each, several row groups, a row range
 * that starts and ends inside the file); the column types it leaves to hyparquet; and a file replaced while DuckDB
 * reads it failing the read as a pinned read would.
 */
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { asyncBufferFromFile, parquetMetadataAsync, type FileMetaData } from 'hyparquet';
import type { ColumnarPlan } from '../../src/formats/columnar-rows.js';
import { readParquetColumnar, type NativeParquetOptions } from '../../src/formats/parquet-columnar.js';
import { NumericColumn, readFlatColumns, valueAt, type FlatColumn } from '../../src/formats/parquet-flat.js';
import { duckdbParquetReader, type NativeParquetReader } from '../../src/formats/parquet-native.js';
import { PARQUET_COMPRESSORS } from '../../src/formats/parquet-read.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { ObjectChangedError, type ByteRange, type ObjectStore } from '../../src/storage/object-store.js';
import { createS3Client, S3ObjectStore } from '../../src/storage/s3.js';
import type { InputRange } from '../../src/runs/types.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import { startIfMatchProxy, type IfMatchProxy } from '../storage/if-match-proxy.js';
import { pinObjects } from '../../src/storage/pinned.js';
import { expectIn } from '../support/expect-in.js';
import { tempDir, type TempDir } from './helpers.js';

let tmp: TempDir;
let file: string;
let metadata: FileMetaData;
beforeAll(async () => {
  tmp = await tempDir();
  file = path.join(tmp.dir, 'rows.parquet');
  await copy(ROWS_SQL, file, 'ROW_GROUP_SIZE 4096');
  metadata = await parquetMetadataAsync(await asyncBufferFromFile(file));
});
afterAll(() => tmp.cleanup());

const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;

async function copy(select: string, to: string, options: string): Promise<void> {
  const db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  try {
    await connection.run(`COPY (${select}) TO ${q(to)} (FORMAT parquet, ${options})`);
  } finally {
    connection.closeSync();
    db.closeSync();
  }
}

/** 10,000 rows of each type the native reader takes, with nulls in every column. */
const ROWS_SQL = `
  SELECT
    CASE WHEN i % 97 = 0 THEN NULL WHEN i % 101 = 1 THEN 'nan'::DOUBLE ELSE i * 0.5 END::DOUBLE AS d,
    CASE WHEN i % 89 = 0 THEN NULL ELSE (i % 1000) / 7 END::FLOAT AS f,
    CASE WHEN i % 83 = 0 THEN NULL ELSE i - 5000 END::INTEGER AS n,
    CASE WHEN i % 81 = 0 THEN NULL ELSE (i % 200) - 100 END::SMALLINT AS s,
    CASE WHEN i % 77 = 0 THEN NULL ELSE (i % 100) - 50 END::TINYINT AS t,
    CASE WHEN i % 79 = 0 THEN NULL ELSE i * 1000003 END::BIGINT AS b,
    CASE WHEN i % 73 = 0 THEN NULL ELSE ['M', 'B', 'é'][(i % 3) + 1] END AS category,
    CASE WHEN i % 71 = 0 THEN NULL ELSE 'P' || lpad(i::VARCHAR, 7, '0') END AS id,
    CASE WHEN i % 67 = 0 THEN NULL ELSE i % 2 = 0 END AS flag
  FROM range(10000) t(i)`;
const COLUMNS = ['d', 'f', 'n', 's', 't', 'b', 'category', 'id', 'flag'];

/** Every row of `columns` in rows [from, to) as hyparquet's flat reader gives them. */
async function viaHyparquet(columns: string[], from: number, to: number): Promise<unknown[][]> {
  const buffer = await asyncBufferFromFile(file);
  const out: unknown[][] = columns.map(() => []);
  let groupRow = 0;
  for (let g = 0; g < metadata.row_groups.length; g++) {
    const n = Number(metadata.row_groups[g]!.num_rows);
    const data = (await readFlatColumns(buffer, metadata, g, columns, PARQUET_COMPRESSORS))!;
    for (let r = 0; r < n; r++) {
      const row = groupRow + r;
      if (row >= from && row < to) data.forEach((column, k) => out[k]!.push(valueAt(column, r)));
    }
    groupRow += n;
  }
  return out;
}

async function viaDuckDb(
  columns: string[],
  from: number,
  to: number,
): Promise<{ values: unknown[][]; numeric: string[]; offsets: number[] }> {
  const values: unknown[][] = columns.map(() => []);
  const offsets: number[] = [];
  let numeric: string[] = [];
  for await (const part of duckdbParquetReader.read(file, columns, from, to)) {
    offsets.push(part.offset);
    numeric = columns.filter((_, k) => part.data[k] instanceof NumericColumn);
    part.data.forEach((column: FlatColumn, k) => {
      for (let r = 0; r < part.rows; r++) values[k]!.push(valueAt(column, r));
    });
  }
  return { values, numeric, offsets };
}

describe('duckdbParquetReader', () => {
  it('gives the values hyparquet gives, for every type it takes, over several row groups', async () => {
    expect(metadata.row_groups.length).toBeGreaterThan(2);
    expect(duckdbParquetReader.canRead(metadata, COLUMNS)).toBe(true);
    const native = await viaDuckDb(COLUMNS, 0, 10_000);
    expectIn(native.values, 'whole file').toEqual(await viaHyparquet(COLUMNS, 0, 10_000));
    // Numbers as typed arrays, as the flat reader gives them; bigints, strings and booleans as values.
    expect(native.numeric).toEqual(['d', 'f', 'n', 's', 't']);
    // Chunks in file order, each starting where the last ended.
    expect(native.offsets[0]).toBe(0);
    expect(native.offsets).toEqual([...native.offsets].sort((a, b) => a - b));
  });

  it('reads exactly the rows asked for, from inside one row group to inside another', async () => {
    const native = await viaDuckDb(['id', 'd'], 4_000, 8_300);
    expect(native.offsets[0]).toBe(4_000);
    expect(native.values[0]).toHaveLength(4_300);
    expectIn(native.values, 'rows 4000-8299').toEqual(await viaHyparquet(['id', 'd'], 4_000, 8_300));
  });

  it("reads a file in a Hive-style folder as it is: the folder's value does not replace a column's", async () => {
    const folder = path.join(tmp.dir, 'category=folder');
    await mkdir(folder);
    const hive = path.join(folder, 'rows.parquet');
    await copy(`SELECT category, id FROM (${ROWS_SQL})`, hive, 'ROW_GROUP_SIZE 4096');
    const values: unknown[] = [];
    for await (const part of duckdbParquetReader.read(hive, ['category'], 0, 10_000)) {
      for (let r = 0; r < part.rows; r++) values.push(valueAt(part.data[0]!, r));
    }
    expect(values).toEqual((await viaHyparquet(['category'], 0, 10_000))[0]);
  });

  it('leaves to hyparquet the columns it would give differently', async () => {
    const other = path.join(tmp.dir, 'other.parquet');
    await copy(
      `SELECT 1::DOUBLE AS d, 200::UTINYINT AS u, DATE '2020-01-02' AS day, TIMESTAMP '2020-01-02 03:04:05' AS ts,
              1.5::DECIMAL(9, 2) AS dec, 'x'::BLOB AS blob, [1, 2] AS list, {'a': 1} AS struct`,
      other,
      'ROW_GROUP_SIZE 2048',
    );
    const meta = await parquetMetadataAsync(await asyncBufferFromFile(other));
    expect(duckdbParquetReader.canRead(meta, ['d'])).toBe(true);
    for (const column of ['u', 'day', 'ts', 'dec', 'blob', 'list', 'struct', 'missing']) {
      expectIn(duckdbParquetReader.canRead(meta, ['d', column]), column).toBe(false);
    }
    // Names DuckDB could take for another column: two that differ only in case, and its own file_row_number.
    const renamed = (from: string, to: string): FileMetaData => ({
      ...metadata,
      schema: metadata.schema.map((e) => (e.name === from ? { ...e, name: to } : e)),
    });
    expect(duckdbParquetReader.canRead(metadata, ['d', 'f'])).toBe(true);
    expect(duckdbParquetReader.canRead(renamed('f', 'D'), ['d'])).toBe(false);
    expect(duckdbParquetReader.canRead(renamed('f', 'file_row_number'), ['d'])).toBe(false);
  });
});

describe('readParquetColumnar with the native reader', () => {
  const plan: ColumnarPlan = {
    entries: [{ tensor: 'x', dtype: 'float32', from: { columns: ['d', 'n'] }, missing: 'error' }],
    identity: ['id', 'category'],
    format: 'parquet',
  };

  /** Every block of `range` (the whole file when absent) of `uri` in `store`, pinned. */
  async function readAll(
    native: NativeParquetOptions | undefined,
    onReader?: (reader: string) => void,
    at: { store: ObjectStore; uri: string; range?: Partial<InputRange> } = {
      store: new LocalObjectStore(),
      uri: pathToFileURL(file).href,
    },
  ): Promise<unknown[]> {
    const info = await at.store.head(at.uri);
    const range: InputRange = {
      uri: at.uri,
      etag: info.etag,
      size: info.size,
      start: 0,
      end: info.size,
      ...at.range,
    };
    const blocks: unknown[] = [];
    const pinned = pinObjects(at.store, [range]);
    for await (const block of readParquetColumnar(pinned, range, plan, native, onReader)) {
      blocks.push({ ...block, entries: block.entries.map((e) => Array.from(e)) });
    }
    return blocks;
  }

  it('makes the blocks hyparquet makes, and says which reader read the range', async () => {
    const readers: string[] = [];
    const native = await readAll({ reader: duckdbParquetReader }, (r) => readers.push(r));
    const reference = await readAll(undefined, (r) => readers.push(r));
    expect(readers).toEqual(['duckdb', 'hyparquet']);
    expect(native).toEqual(reference);
  });

  it('goes on through hyparquet from the row where DuckDB refused a string that is not valid UTF-8', async () => {
    // Written by hyparquet-writer, which writes a string column's bytes as given: DuckDB refuses row 3,500's, where
    // hyparquet (and the record path) decode it with a replacement character.
    const rowsInFile = 5_000;
    const encoder = new TextEncoder();
    const bad = path.join(tmp.dir, 'bad-utf8.parquet');
    await writeFile(
      bad,
      new Uint8Array(
        parquetWriteBuffer({
          rowGroupSize: 1_000,
          columnData: [
            { name: 'd', type: 'DOUBLE', data: Array.from({ length: rowsInFile }, (_, i) => i * 0.25) },
            { name: 'n', type: 'INT32', data: Array.from({ length: rowsInFile }, (_, i) => i % 7) },
            {
              name: 'id',
              type: 'STRING',
              data: Array.from({ length: rowsInFile }, (_, i) =>
                i === 3_500 ? new Uint8Array([0x50, 0xff, 0x51]) : encoder.encode(`P${i}`),
              ),
            },
            {
              name: 'category',
              type: 'STRING',
              data: Array.from({ length: rowsInFile }, (_, i) => `c${i % 3}`),
            },
          ],
        }),
      ),
    );
    const at = { store: new LocalObjectStore(), uri: pathToFileURL(bad).href };
    const readers: string[] = [];
    let fromDuckDb = 0;
    const counting: NativeParquetReader = {
      canRead: (meta, columns) => duckdbParquetReader.canRead(meta, columns),
      async *read(local, columns, first, end) {
        for await (const part of duckdbParquetReader.read(local, columns, first, end)) {
          fromDuckDb += part.rows;
          yield part;
        }
      },
    };
    const native = await readAll({ reader: counting }, (r) => readers.push(r), at);
    expect(readers).toEqual(['duckdb', 'hyparquet']);
    // DuckDB's threads read ahead: its error may come before any row (here it did), or after some.
    expect(fromDuckDb).toBeLessThanOrEqual(3_500);
    const reference = await readAll(undefined, undefined, at);
    expect(native).toEqual(reference);
    expect(JSON.stringify(reference)).toContain('P\uFFFDQ');
  });

  it('takes the rows DuckDB gave before its refusal once: hyparquet goes on from the next row', async () => {
    // DuckDB gives two chunks, then refuses (as for a string that is not valid UTF-8).
    const refusing: NativeParquetReader = {
      canRead: (meta, columns) => duckdbParquetReader.canRead(meta, columns),
      async *read(local, columns, first, end) {
        let parts = 0;
        for await (const part of duckdbParquetReader.read(local, columns, first, end)) {
          if (++parts > 2) {
            throw new Error(
              'Invalid Input Error: Invalid string encoding found in Parquet file: not valid UTF8!',
            );
          }
          yield part;
        }
      },
    };
    const readers: string[] = [];
    const native = await readAll({ reader: refusing }, (r) => readers.push(r));
    expect(readers).toEqual(['duckdb', 'hyparquet']);
    expect(native).toEqual(await readAll(undefined));
    // Any other error of DuckDB's fails the read.
    const failing: NativeParquetReader = {
      canRead: refusing.canRead,
      async *read() {
        throw new Error('IO Error: No more space left on device');
      },
    };
    await expect(readAll({ reader: failing })).rejects.toThrow(/No more space left on device/);
  });

  it('fails with ObjectChangedError when the file changes while DuckDB reads it', async () => {
    // The file is touched (a new modification time: a new ETag) once the first rows are read.
    const touching: NativeParquetReader = {
      canRead: (meta, columns) => duckdbParquetReader.canRead(meta, columns),
      async *read(local, columns, from, to) {
        let first = true;
        for await (const part of duckdbParquetReader.read(local, columns, from, to)) {
          if (first) await utimes(local, new Date(), new Date(Date.now() + 5_000));
          first = false;
          yield part;
        }
      },
    };
    await expect(readAll({ reader: touching })).rejects.toBeInstanceOf(ObjectChangedError);
  });

  describe('from S3 (s3rver on loopback)', () => {
    let server: S3TestServer;
    // s3rver ignores If-Match; the proxy answers a stale one with 412, as S3 does.
    let proxy: IfMatchProxy;
    let restoreEnv: () => void;
    let s3: S3ObjectStore;
    let stageDir: string;
    beforeAll(async () => {
      server = await startS3Server();
      restoreEnv = useS3TestEnv(server.endpoint);
      await server.createBucket('pq-input');
      proxy = await startIfMatchProxy(server.endpoint);
      s3 = new S3ObjectStore(createS3Client({ endpoint: proxy.endpoint }));
      await s3.put('s3://pq-input/rows.parquet', await readFile(file));
      stageDir = path.join(tmp.dir, 'stage');
      await mkdir(stageDir);
    }, 60_000);
    afterAll(async () => {
      await proxy?.stop();
      await server?.stop();
      restoreEnv?.();
    });

    it('reads a whole object from a pinned copy, which it removes, and makes the same blocks', async () => {
      const readers: string[] = [];
      const at = { store: s3, uri: 's3://pq-input/rows.parquet' };
      const native = await readAll(
        { reader: duckdbParquetReader, stagePath: () => path.join(stageDir, 'copy.parquet') },
        (r) => readers.push(r),
        at,
      );
      expect(readers).toEqual(['duckdb']);
      expect(await readdir(stageDir)).toEqual([]);
      expect(native).toEqual(await readAll(undefined, undefined, at));
      // Without a folder to copy to, S3 objects are read through hyparquet.
      await readAll({ reader: duckdbParquetReader }, (r) => readers.push(r), at);
      expect(readers).toEqual(['duckdb', 'hyparquet']);
    });

    it('reads part of an object (some of its row groups) through hyparquet', async () => {
      const readers: string[] = [];
      const at = {
        store: s3,
        uri: 's3://pq-input/rows.parquet',
        range: { rowGroupStart: 1, rowGroupEnd: 2, rowStart: Number(metadata.row_groups[0]!.num_rows) },
      };
      await readAll(
        { reader: duckdbParquetReader, stagePath: () => path.join(stageDir, 'copy.parquet') },
        (r) => readers.push(r),
        at,
      );
      expect(readers).toEqual(['hyparquet']);
      expect(await readdir(stageDir)).toEqual([]);
    });

    it('fails with ObjectChangedError, leaving no copy, when the object was replaced after planning', async () => {
      const info = await s3.head('s3://pq-input/rows.parquet');
      const range: InputRange = {
        uri: 's3://pq-input/rows.parquet',
        etag: info.etag,
        size: info.size,
        start: 0,
        end: info.size,
      };
      const pinned = pinObjects(s3, [range]);
      // The footer is read (pinned) first; the object changes between that and the copy.
      let replaced = false;
      const replacing: ObjectStore = Object.assign(Object.create(pinned) as ObjectStore, {
        getStream: async (uri: string, byteRange?: ByteRange) => {
          if (!replaced) {
            replaced = true;
            // Other bytes: another ETag.
            await s3.put(
              's3://pq-input/rows.parquet',
              Buffer.concat([await readFile(file), Buffer.from('x')]),
            );
          }
          return pinned.getStream(uri, byteRange);
        },
      });
      const blocks = readParquetColumnar(replacing, range, plan, {
        reader: duckdbParquetReader,
        stagePath: () => path.join(stageDir, 'copy.parquet'),
      });
      await expect(blocks.next()).rejects.toBeInstanceOf(ObjectChangedError);
      expect(await readdir(stageDir)).toEqual([]);
    });
  });
});
