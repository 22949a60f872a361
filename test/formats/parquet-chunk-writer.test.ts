/**
 * The worker's Parquet chunk writer (DuckDB appender; columns copied into its vectors in bulk by duckdb-columns.ts):
 * every column type, nulls, strings on both sides of DuckDB's 12-byte inline limit, ENUM codes of every width, and
 * values refused with the column and the file's row named. Files are read back by DuckDB's own Parquet reader.
 */
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { ParquetChunkWriter, type ColumnSpec } from '../../src/formats/parquet-chunk-writer.js';
import { ParquetEncodeError } from '../../src/formats/parquet-write.js';
import { tempDir, type TempDir } from './helpers.js';

/** Strings around the inline limit: 12 bytes inline, 13 not; multi-byte characters count as their UTF-8 bytes. */
const STRINGS = [
  '',
  'a',
  'abcdefghijkl', // 12 bytes: inline
  'abcdefghijklm', // 13 bytes: the vector's string heap
  'ééééé', // 10 bytes in 5 characters
  'éééééé', // 12 bytes
  'ééééééé', // 14 bytes in 7 characters: not inline though short
  '🚀🚀🚀', // 12 bytes in 6 UTF-16 units
  '🚀🚀🚀🚀', // 16 bytes
  'x'.repeat(300),
  'D0000001',
  'lone \ud800 surrogate',
  '\ud800',
];
const LABELS = ['benign', 'malignant', 'unknown'];
const SOURCES = Array.from({ length: 300 }, (_, k) => `file:///in/part-${k}.csv`);

const COLUMNS: ColumnSpec[] = [
  { name: 'id', type: 'string' },
  { name: 'f', type: 'float' },
  { name: 'd', type: 'double' },
  { name: 'n', type: 'int' },
  { name: 'big', type: 'bigint' },
  { name: 'b', type: 'boolean' },
  { name: 'label', type: 'string', categories: LABELS },
  { name: 'src', type: 'string', categories: SOURCES },
  { name: 'off', type: 'bigint', safeIntegers: true },
  { name: 'probs', type: 'array<float>' },
];

/** Rows `from`..`from + n` of the sample, column by column, as a shard writer hands them over. */
function sample(from: number, n: number): unknown[][] {
  const cols: unknown[][] = COLUMNS.map(() => []);
  for (let k = 0; k < n; k++) {
    const i = from + k;
    const row = [
      i % 17 === 3 ? null : `${STRINGS[i % STRINGS.length]!}${i % 2 ? '' : String(i % 5)}`,
      i % 11 === 4 ? undefined : i * 0.1,
      i % 13 === 5 ? null : i / 3,
      i === 1 ? 2147483647 : i === 2 ? -2147483648 : i % 5 === 0 ? null : i - 1000,
      i === 1
        ? 2n ** 63n - 1n
        : i === 2
          ? -(2n ** 63n)
          : i % 9 === 0
            ? null
            : i % 2
              ? BigInt(i) * 10n ** 12n
              : i,
      i % 4 === 0 ? null : i % 3 === 0,
      i % 23 === 1 ? null : LABELS[i % LABELS.length],
      i % 29 === 2 ? null : SOURCES[(i * 7) % SOURCES.length],
      i % 31 === 6 ? null : i * 1000 + 2 ** 40,
      i % 19 === 7 ? null : i % 37 === 8 ? [] : [i * 0.5, 1 / 3],
    ];
    row.forEach((v, c) => cols[c]!.push(v));
  }
  return cols;
}

/** What DuckDB must read back for a value written to `column`. */
function expected(column: ColumnSpec, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (column.type === 'float') return Math.fround(v as number);
  if (column.type === 'array<float>') return (v as number[]).map((x) => Math.fround(x));
  if (column.type === 'bigint') return BigInt(v as bigint | number);
  // A JavaScript string's UTF-8 form: a lone surrogate becomes U+FFFD, as any UTF-8 encoder writes it.
  if (column.type === 'string') return new TextDecoder().decode(new TextEncoder().encode(v as string));
  return v;
}

function bigintJson(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v}n` : v;
}

describe('ParquetChunkWriter', () => {
  let tmp: TempDir;
  let db: DuckDBInstance;
  let duck: DuckDBConnection;
  beforeAll(async () => {
    tmp = await tempDir();
    db = await DuckDBInstance.create(':memory:');
    duck = await db.connect();
  });
  afterAll(async () => {
    duck.closeSync();
    db.closeSync();
    await tmp.cleanup();
  });

  async function rowsOf(file: string): Promise<Record<string, unknown>[]> {
    const reader = await duck.runAndReadAll(
      `select * exclude (file_row_number) from read_parquet('${file}', file_row_number = true) order by file_row_number`,
    );
    return reader.getRowObjectsJS();
  }

  it('writes every column type, nulls included, over several vectors and appends, as DuckDB reads them back', async () => {
    const writer = await ParquetChunkWriter.create(COLUMNS, { rowGroupSize: 1000 });
    // Appends of 3,000 rows (one full vector, one partial), 1 row and 2,100 rows; `f` once from a Float32Array and
    // `d` once from a Float64Array, as the inference thread hands over scores.
    const parts: ArrayLike<unknown>[][] = [sample(0, 3000), sample(3000, 1), sample(3001, 2100)];
    parts[2]![1] = Float32Array.from(parts[2]![1]!, (v) => (v as number | undefined) ?? 0);
    parts[2]![2] = Float64Array.from(parts[2]![2]!, (v) => (v as number | null) ?? 0);
    for (const part of parts) writer.append(part, part[0]!.length);
    expect(writer.rows).toBe(5101);
    const file = path.join(tmp.dir, 'every-type.parquet');
    await writer.finish(file);

    const types = (
      await duck.runAndReadAll(`describe select * from read_parquet('${file}')`)
    ).getRowObjectsJS();
    expect(types.map((t) => [t.column_name, t.column_type])).toEqual([
      ['id', 'VARCHAR'],
      ['f', 'FLOAT'],
      ['d', 'DOUBLE'],
      ['n', 'INTEGER'],
      ['big', 'BIGINT'],
      ['b', 'BOOLEAN'],
      ['label', 'VARCHAR'],
      ['src', 'VARCHAR'],
      ['off', 'BIGINT'],
      ['probs', 'FLOAT[]'],
    ]);
    const rows = await rowsOf(file);
    expect(rows).toHaveLength(5101);
    let r = 0;
    for (const part of parts) {
      for (let k = 0; k < part[0]!.length; k++, r++) {
        const want = Object.fromEntries(COLUMNS.map((c, i) => [c.name, expected(c, part[i]![k])]));
        if (JSON.stringify(rows[r], bigintJson) !== JSON.stringify(want, bigintJson)) {
          expectIn(rows[r], `row ${r}`).toEqual(want);
        }
      }
    }
    // Spot checks the loop could only pass by accident.
    expect(rows[29]).toMatchObject({ id: 'abcdefghijklm', b: false, label: 'unknown' });
    expect(rows[5]).toMatchObject({ id: 'éééééé', d: null });
    expect(rows[7]?.id).toBe('🚀🚀🚀');
    expect(rows[25]?.id).toBe('\ufffd');
    expect(rows[1]).toMatchObject({ n: 2147483647, big: 2n ** 63n - 1n, label: null });
    expect(rows[2]).toMatchObject({ n: -2147483648, big: -(2n ** 63n), src: null });
    expect(rows[4]?.f).toBeNull();
    expect(rows[9]?.id).toBe(`${'x'.repeat(300)}`);
  });

  it('keeps every member of ENUM columns whose codes take one, two and four bytes', async () => {
    for (const members of [255, 256, 65_535, 65_536]) {
      const categories = Array.from({ length: members }, (_, k) => `m${k}`);
      const writer = await ParquetChunkWriter.create([{ name: 'c', type: 'string', categories }]);
      const picks = [categories[0]!, categories[members - 1]!, null, categories[Math.floor(members / 2)]!];
      writer.append([picks], picks.length);
      const file = path.join(tmp.dir, `enum-${members}.parquet`);
      await writer.finish(file);
      expectIn(
        (await rowsOf(file)).map((row) => row.c),
        `${members} members`,
      ).toEqual(picks);
    }
  });

  it('writers of the same columns, appending in turn, each write their own rows (nulls and long strings included)', async () => {
    // They fill the same reused data chunk: what one append left in it (nulls, strings in the vector's heap) must
    // not show in the next.
    const columns: ColumnSpec[] = [
      { name: 'id', type: 'string' },
      { name: 'n', type: 'int' },
      { name: 'label', type: 'string', categories: LABELS },
    ];
    const a = await ParquetChunkWriter.create(columns);
    const b = await ParquetChunkWriter.create(columns);
    const withNulls = [
      [null, 'a string longer than twelve bytes', null],
      [null, 7, null],
      [null, 'malignant', null],
    ];
    const plain = [
      ['x', 'another string longer than twelve', 'y'],
      [1, 2, 3],
      ['benign', 'benign', 'unknown'],
    ];
    a.append(withNulls, 3);
    b.append(plain, 3);
    a.append(plain, 3);
    b.append(withNulls, 3);
    const files = [path.join(tmp.dir, 'turn-a.parquet'), path.join(tmp.dir, 'turn-b.parquet')];
    await a.finish(files[0]!);
    await b.finish(files[1]!);
    const asRows = (cols: unknown[][]) =>
      [0, 1, 2].map((r) => ({ id: cols[0]![r], n: cols[1]![r], label: cols[2]![r] }));
    expect(await rowsOf(files[0]!)).toEqual([...asRows(withNulls), ...asRows(plain)]);
    expect(await rowsOf(files[1]!)).toEqual([...asRows(plain), ...asRows(withNulls)]);
  });

  it('writers of more sets of columns than chunks are kept, appending in turn, each write their own rows', async () => {
    // Each shard's source objects make a different ENUM: six sets of column types, appended to round-robin twice,
    // so kept chunks are dropped and made again.
    const writers = await Promise.all(
      [0, 1, 2, 3, 4, 5].map((k) =>
        ParquetChunkWriter.create([
          { name: '_source', type: 'string', categories: [`file:///in/${k}.csv`, 'file:///in/common.csv'] },
          { name: '_offset', type: 'bigint', safeIntegers: true },
        ]),
      ),
    );
    for (const round of [0, 1]) {
      writers.forEach((w, k) =>
        w.append(
          [
            [`file:///in/${k}.csv`, null],
            [round, k],
          ],
          2,
        ),
      );
    }
    for (const [k, w] of writers.entries()) {
      const file = path.join(tmp.dir, `sets-${k}.parquet`);
      await w.finish(file);
      const source = `file:///in/${k}.csv`;
      expectIn(await rowsOf(file), `writer ${k}`).toEqual([
        { _source: source, _offset: 0n },
        { _source: null, _offset: BigInt(k) },
        { _source: source, _offset: 1n },
        { _source: null, _offset: BigInt(k) },
      ]);
    }
  });

  it('refuses a value that does not fit its column, naming the column and its row in the file', async () => {
    const cases: [ColumnSpec, unknown, string][] = [
      [{ name: 'id', type: 'string' }, 7, 'column "id" (string) row 2052: expected a string, got number 7'],
      [{ name: 'f', type: 'float' }, '1.5', 'column "f" (float) row 2052: expected a number, got "1.5"'],
      [{ name: 'n', type: 'int' }, 2.5, 'column "n" (int) row 2052: expected an integer in the 32-bit range'],
      [
        { name: 'n', type: 'int' },
        2 ** 31,
        'column "n" (int) row 2052: expected an integer in the 32-bit range',
      ],
      [{ name: 'big', type: 'bigint' }, 2n ** 63n, 'column "big" (bigint) row 2052: expected'],
      [{ name: 'big', type: 'bigint' }, 2 ** 53, 'column "big" (bigint) row 2052: expected'],
      [{ name: 'b', type: 'boolean' }, 0, 'column "b" (boolean) row 2052: expected a boolean'],
      [
        { name: 'label', type: 'string', categories: LABELS },
        'maybe',
        'column "label" (string) row 2052: "maybe" is not one of its declared categories',
      ],
      [
        { name: 'label', type: 'string', categories: LABELS },
        1,
        'column "label" (string) row 2052: expected a string',
      ],
      [
        { name: 'off', type: 'bigint', safeIntegers: true },
        0.5,
        'column "off" (bigint, safe integers) row 2052: expected a safe integer, got number 0.5',
      ],
      [
        { name: 'probs', type: 'array<float>' },
        [1, null],
        'column "probs" (array<float>) row 2052: expected',
      ],
    ];
    for (const [column, bad, message] of cases) {
      const writer = await ParquetChunkWriter.create([column]);
      const good = sample(0, 2050)[COLUMNS.findIndex((c) => c.name === column.name)]!;
      writer.append([good.slice(0, 2000)], 2000);
      // The bad value is the second append's 53rd: row 2,052 of the file.
      const second = good.slice(0, 50).concat([good[50], good[51], bad]);
      const attempt = () => writer.append([second], second.length);
      expectIn(attempt, `${column.name} given ${String(bad)}`).toThrow(ParquetEncodeError);
      expectIn(attempt, `${column.name} given ${String(bad)}`).toThrow(message);
      await writer.abort();
    }
  });
});
