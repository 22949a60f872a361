import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { encodeParquet, ParquetEncodeError, type OutputColumn } from '../../src/formats/parquet-write.js';
import { tempDir, type TempDir } from './helpers.js';

const N = 2500;

/** Rows with every type, nulls in every column, extremes, and both null and empty lists. */
function sampleColumns(): OutputColumn[] {
  const id: (string | null)[] = [];
  const f: (number | null)[] = [];
  const d: (number | null)[] = [];
  const n: (number | null)[] = [];
  const big: (bigint | null)[] = [];
  const b: (boolean | null)[] = [];
  const probs: (number[] | null)[] = [];
  for (let i = 0; i < N; i++) {
    id.push(i % 7 === 3 ? null : `id-${i}-${i % 2 ? 'é🚀' : 'x'}`);
    f.push(i % 11 === 4 ? null : i * 0.1);
    d.push(i % 13 === 5 ? null : i / 3);
    n.push(i === 1 ? 2147483647 : i === 2 ? -2147483648 : i % 5 === 0 ? null : i - 1000);
    big.push(i === 1 ? 2n ** 63n - 1n : i === 2 ? -(2n ** 63n) : i % 9 === 0 ? null : BigInt(i) * 10n ** 12n);
    b.push(i % 4 === 0 ? null : i % 3 === 0);
    probs.push(i % 17 === 6 ? null : i % 19 === 7 ? [] : [i * 0.5, 1 / 3, -i, 1e-8]);
  }
  return [
    { name: 'id', type: 'string', values: id },
    { name: 'f', type: 'float', values: f },
    { name: 'd', type: 'double', values: d },
    { name: 'n', type: 'int', values: n },
    { name: 'big', type: 'bigint', values: big },
    { name: 'b', type: 'boolean', values: b },
    { name: 'probs', type: 'array<float>', values: probs },
  ];
}

/** What any correct reader must return for a column value: floats narrowed to 32 bits. */
function expected(column: OutputColumn, row: number): unknown {
  const v = column.values[row] ?? null;
  if (v === null) return null;
  if (column.type === 'float') return Math.fround(v as number);
  if (column.type === 'array<float>') return Array.from(v as ArrayLike<number>, (x) => Math.fround(x));
  if (column.type === 'bigint') return BigInt(v as bigint | number);
  return v;
}

describe('encodeParquet, checked with DuckDB', () => {
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

  async function save(name: string, bytes: Uint8Array): Promise<string> {
    const file = path.join(tmp.dir, name);
    await writeFile(file, bytes);
    return file;
  }

  async function query(sql: string): Promise<Record<string, unknown>[]> {
    return (await duck.runAndReadAll(sql)).getRowObjectsJS();
  }

  it('DuckDB sees the same rows and types, in row groups of the requested size, SNAPPY-compressed', async () => {
    const columns = sampleColumns();
    const file = await save('sample.parquet', encodeParquet(columns, { rowGroupSize: 1000 }));

    const types = await query(`describe select * from read_parquet('${file}')`);
    expect(types.map((t) => [t.column_name, t.column_type])).toEqual([
      ['id', 'VARCHAR'],
      ['f', 'FLOAT'],
      ['d', 'DOUBLE'],
      ['n', 'INTEGER'],
      ['big', 'BIGINT'],
      ['b', 'BOOLEAN'],
      ['probs', 'FLOAT[]'],
    ]);

    const rows = await query(
      `select * exclude (file_row_number) from read_parquet('${file}', file_row_number = true) order by file_row_number`,
    );
    expect(rows).toHaveLength(N);
    for (let i = 0; i < N; i++) {
      const want = Object.fromEntries(columns.map((c) => [c.name, expected(c, i)]));
      if (JSON.stringify(rows[i], bigintJson) !== JSON.stringify(want, bigintJson)) {
        expectIn(rows[i], `row ${i}`).toEqual(want);
      }
    }
    // Spot checks the loop above could only pass by accident.
    expect(rows[1]).toMatchObject({ n: 2147483647, big: 2n ** 63n - 1n });
    expect(rows[2]).toMatchObject({ n: -2147483648, big: -(2n ** 63n) });
    expect(rows[6]?.probs).toBeNull();
    expect(rows[7]?.probs).toEqual([]);
    expect(rows[3]?.id).toBeNull();

    const meta = await query(
      `select row_group_id, row_group_num_rows, compression from parquet_metadata('${file}') order by row_group_id`,
    );
    const groups = new Map(meta.map((m) => [m.row_group_id, m.row_group_num_rows]));
    expect([...groups.values()]).toEqual([1000n, 1000n, 500n]);
    expect(new Set(meta.map((m) => m.compression))).toEqual(new Set(['SNAPPY']));
  });

  it('accepts typed arrays and safe-integer numbers for bigint', async () => {
    const columns: OutputColumn[] = [
      { name: 'f', type: 'float', values: new Float32Array([1.25, -2, 3.5]) },
      { name: 'd', type: 'double', values: new Float64Array([0.1, 0.2, 0.3]) },
      { name: 'n', type: 'int', values: new Int32Array([1, -2, 3]) },
      { name: 'big', type: 'bigint', values: [1, -(2 ** 53 - 1), null] },
      {
        name: 'v',
        type: 'array<float>',
        values: [new Float32Array([0.25, 0.75]), new Float64Array([0.1]), [1, 2]],
      },
    ];
    const file = await save('typed.parquet', encodeParquet(columns));
    const rows = await query(`select * from read_parquet('${file}')`);
    expect(rows).toEqual([
      { f: 1.25, d: 0.1, n: 1, big: 1n, v: [0.25, 0.75] },
      { f: -2, d: 0.2, n: -2, big: -(2n ** 53n - 1n), v: [Math.fround(0.1)] },
      { f: 3.5, d: 0.3, n: 3, big: null, v: [1, 2] },
    ]);
  });

  it('a file with no rows still carries the declared schema', async () => {
    const columns = sampleColumns().map((c) => ({ ...c, values: [] }));
    const file = await save('empty.parquet', encodeParquet(columns));
    expect(await query(`select count(*)::int as n from read_parquet('${file}')`)).toEqual([{ n: 0 }]);
    const types = await query(`describe select * from read_parquet('${file}')`);
    expect(types.map((t) => t.column_type)).toEqual([
      'VARCHAR',
      'FLOAT',
      'DOUBLE',
      'INTEGER',
      'BIGINT',
      'BOOLEAN',
      'FLOAT[]',
    ]);
  });

  it('rejects values that do not fit the declared type, naming the column and row', () => {
    const bad = (type: OutputColumn['type'], values: unknown[]) => () =>
      encodeParquet([{ name: 'c', type, values }]);
    expect(bad('int', [1, 2.5])).toThrow(
      'column "c" (int) row 1: expected an integer in the 32-bit range, got number 2.5',
    );
    expect(bad('int', [2 ** 31])).toThrow(ParquetEncodeError);
    expect(bad('bigint', [2n ** 63n])).toThrow(/64-bit range/);
    expect(bad('bigint', [2 ** 53])).toThrow(/a bigint or a safe integer/);
    expect(bad('string', [1])).toThrow('column "c" (string) row 0: expected a string, got number 1');
    expect(bad('float', ['1.5'])).toThrow(/expected a number, got "1.5"/);
    expect(bad('boolean', [0])).toThrow(/expected a boolean/);
    expect(bad('array<float>', [[1, null]])).toThrow(/expected an array of numbers/);
    expect(bad('array<float>', [1])).toThrow(/expected an array of numbers/);
  });

  it('rejects inconsistent column sets', () => {
    expect(() => encodeParquet([])).toThrow(/at least one column/);
    expect(() =>
      encodeParquet([
        { name: 'a', type: 'int', values: [1, 2] },
        { name: 'b', type: 'int', values: [1] },
      ]),
    ).toThrow('column "b" has 1 values, column "a" has 2');
    expect(() =>
      encodeParquet([
        { name: 'a', type: 'int', values: [1] },
        { name: 'a', type: 'string', values: ['x'] },
      ]),
    ).toThrow(/appears twice/);
    expect(() => encodeParquet([{ name: 'a', type: 'int', values: [1] }], { rowGroupSize: 0 })).toThrow(
      /rowGroupSize/,
    );
  });

  it('writes 250,000 rows x 6 columns that DuckDB reads back exactly', async () => {
    const rows = 250_000;
    const ids: string[] = [];
    const scores = new Float32Array(rows);
    const d: number[] = [];
    const label: string[] = [];
    const big: bigint[] = [];
    const probs: number[][] = [];
    for (let i = 0; i < rows; i++) {
      ids.push(`rec-${i}`);
      scores[i] = i / rows;
      d.push(i * 1.5);
      label.push(`class-${i % 10}`);
      big.push(BigInt(i));
      probs.push([0.1, 0.2, 0.7]);
    }
    const bytes = encodeParquet([
      { name: 'id', type: 'string', values: ids },
      { name: 'score', type: 'float', values: scores },
      { name: 'd', type: 'double', values: d },
      { name: 'label', type: 'string', values: label },
      { name: 'big', type: 'bigint', values: big },
      { name: 'probs', type: 'array<float>', values: probs },
    ]);
    const file = await save('big.parquet', bytes);
    expect(
      await query(`select count(*)::int as n, sum(big)::bigint as s from read_parquet('${file}')`),
    ).toEqual([{ n: rows, s: BigInt((rows * (rows - 1)) / 2) }]);
  });
});

function bigintJson(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? `${value}n` : value;
}
