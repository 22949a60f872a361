/**
 * encodeChunk: each output format, checked by reading the files back with independent readers (DuckDB, and the
 * project's own jsonl/csv input readers), so "what the worker writes" and "what the catalogue reads" agree.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { readRange } from '../../src/formats/index.js';
import { OutputEncodeError, encodeChunk } from '../../src/formats/output.js';
import type { OutputColumn } from '../../src/formats/parquet-write.js';
import { LocalObjectStore } from '../../src/storage/local.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'output-format-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const COLUMNS: OutputColumn[] = [
  { name: 'id', type: 'bigint', values: [1n, 9007199254740993n, null] },
  { name: 'label', type: 'string', values: ['plain', 'a, "quoted" one\nwith a break', ''] },
  { name: 'score', type: 'float', values: [Math.fround(0.1), 0.5, Number.NaN] },
  { name: 'exact', type: 'double', values: [0.1, 1e-300, null] },
  { name: 'n', type: 'int', values: [-(2 ** 31), 0, 7] },
  { name: 'ok', type: 'boolean', values: [true, false, undefined] },
  { name: 'probs', type: 'array<float>', values: [new Float32Array([0.1, 0.9]), [], null] },
];

async function query(sql: string): Promise<unknown[][]> {
  const db = await DuckDBInstance.create(':memory:');
  try {
    const conn = await db.connect();
    try {
      return (await conn.runAndReadAll(sql)).getRowsJS();
    } finally {
      conn.closeSync();
    }
  } finally {
    db.closeSync();
  }
}

describe('encodeChunk', () => {
  it('writes JSON Lines: exact bigints, shortest floats, NaN as null, arrays, one line per row', async () => {
    const chunk = encodeChunk('jsonl', COLUMNS);
    expect(chunk.extension).toBe('jsonl');
    expect(chunk.contentType).toBe('application/x-ndjson');
    const text = new TextDecoder().decode(chunk.body);
    expect(text.split('\n')).toEqual([
      '{"id":1,"label":"plain","score":0.1,"exact":0.1,"n":-2147483648,"ok":true,"probs":[0.1,0.9]}',
      '{"id":9007199254740993,"label":"a, \\"quoted\\" one\\nwith a break","score":0.5,"exact":1e-300,"n":0,"ok":false,"probs":[]}',
      '{"id":null,"label":"","score":null,"exact":null,"n":7,"ok":null,"probs":null}',
      '',
    ]);
    const file = path.join(root, 'c.jsonl');
    await writeFile(file, chunk.body);
    const rows = await query(
      `SELECT id::VARCHAR, label, score, n, ok, probs FROM read_json('${file}', format = 'newline_delimited', columns = {id: 'BIGINT', label: 'VARCHAR', score: 'FLOAT', exact: 'DOUBLE', n: 'INTEGER', ok: 'BOOLEAN', probs: 'FLOAT[]'})`,
    );
    expect(rows[1]![0]).toBe('9007199254740993');
    expect(rows[1]![1]).toBe('a, "quoted" one\nwith a break');
    expect(rows.map((r) => r[3])).toEqual([-(2 ** 31), 0, 7]);
  });

  it('writes CSV with a header, RFC 4180 quoting, empty unquoted fields for missing values', async () => {
    const chunk = encodeChunk('csv', COLUMNS);
    expect(chunk.extension).toBe('csv');
    const text = new TextDecoder().decode(chunk.body);
    expect(text).toBe(
      'id,label,score,exact,n,ok,probs\n' +
        '1,plain,0.1,0.1,-2147483648,true,"[0.1,0.9]"\n' +
        '9007199254740993,"a, ""quoted"" one\nwith a break",0.5,1e-300,0,false,[]\n' +
        ',"",,,7,,\n',
    );
    // The project's own CSV reader sees the same values (it does not support the quoted line break: leave it out).
    const simple: OutputColumn[] = COLUMNS.map((c) =>
      c.name === 'label' ? { ...c, values: ['plain', 'a, "quoted" one', ''] } : c,
    );
    const file = path.join(root, 'c.csv');
    const bytes = encodeChunk('csv', simple).body;
    await writeFile(file, bytes);
    const records = [];
    for await (const batch of readRange(
      new LocalObjectStore(),
      'csv',
      { uri: pathToFileURL(file).href, etag: 'e', size: bytes.length, start: 0, end: bytes.length },
      { batchSize: 10 },
    )) {
      records.push(...batch);
    }
    expect(records.map((r) => r.values)).toEqual([
      {
        id: '1',
        label: 'plain',
        score: '0.1',
        exact: '0.1',
        n: '-2147483648',
        ok: 'true',
        probs: '[0.1,0.9]',
      },
      {
        id: '9007199254740993',
        label: 'a, "quoted" one',
        score: '0.5',
        exact: '1e-300',
        n: '0',
        ok: 'false',
        probs: '[]',
      },
      { id: null, label: '', score: null, exact: null, n: '7', ok: null, probs: null },
    ]);
    // As the local catalogue reads CSV: an empty quoted field is the empty string, not a missing value.
    const rows = await query(
      `SELECT label, n::INTEGER FROM read_csv('${file}', header = true, allow_quoted_nulls = false) ORDER BY n`,
    );
    expect(rows).toEqual([
      ['plain', -(2 ** 31)],
      ['a, "quoted" one', 0],
      ['', 7],
    ]);
  });

  it('delegates Parquet to the Parquet writer', () => {
    const chunk = encodeChunk('parquet', [{ name: 'x', type: 'int', values: [1, 2] }]);
    expect(chunk.extension).toBe('parquet');
    expect(Buffer.from(chunk.body.subarray(0, 4)).toString()).toBe('PAR1');
  });

  it('writes a header-only CSV and an empty JSON Lines chunk for no rows', () => {
    const none: OutputColumn[] = [{ name: 'a', type: 'string', values: [] }];
    expect(new TextDecoder().decode(encodeChunk('csv', none).body)).toBe('a\n');
    expect(encodeChunk('jsonl', none).body.length).toBe(0);
  });

  it.each<[string, OutputColumn[], RegExp]>([
    [
      'a string in an int column',
      [{ name: 'n', type: 'int', values: [1, '2'] }],
      /column "n" row 1: "2" is not a int/,
    ],
    [
      'a fraction in an int column',
      [{ name: 'n', type: 'int', values: [1.5] }],
      /column "n" row 0: 1\.5 is not a int/,
    ],
    ['an int beyond int32', [{ name: 'n', type: 'int', values: [2 ** 31] }], /is not a int/],
    ['an unsafe integer as bigint', [{ name: 'b', type: 'bigint', values: [2 ** 53] }], /is not a bigint/],
    [
      'a null array element',
      [{ name: 'p', type: 'array<float>', values: [[1, null]] }],
      /column "p" row 0: \[1,null\] is not a array<float>/,
    ],
    [
      'a number in a string column',
      [{ name: 's', type: 'string', values: [5] }],
      /column "s" row 0: 5 is not a string/,
    ],
    [
      'columns of different lengths',
      [
        { name: 'a', type: 'int', values: [1] },
        { name: 'b', type: 'int', values: [1, 2] },
      ],
      /column "b" has 2 values, column "a" has 1/,
    ],
    [
      'a column named twice',
      [
        { name: 'a', type: 'int', values: [] },
        { name: 'a', type: 'int', values: [] },
      ],
      /column "a" appears twice/,
    ],
    ['no columns', [], /at least one column/],
  ])('refuses %s', (_name, columns, message) => {
    for (const format of ['jsonl', 'csv'] as const) {
      let err: unknown;
      try {
        encodeChunk(format, columns);
      } catch (e) {
        err = e;
      }
      expectIn(err, format).toBeInstanceOf(OutputEncodeError);
      expectIn((err as Error).message, format).toMatch(message);
    }
  });
});
