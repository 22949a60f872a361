import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { encodeParquet, parquetLayout, readers, readRange } from '../../src/formats/index.js';
import { readCsv } from '../../src/formats/csv.js';
import { readFiles } from '../../src/formats/files.js';
import { readJsonl } from '../../src/formats/jsonl.js';
import { readParquet } from '../../src/formats/parquet-read.js';
import { byteRange, collect, tempDir, type TempDir } from './helpers.js';

describe('readRange', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await tempDir();
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  it('maps every input format to its reader', () => {
    expect(readers).toEqual({ jsonl: readJsonl, csv: readCsv, parquet: readParquet, files: readFiles });
  });

  it('reads the same rows from jsonl, csv and parquet versions of one table', async () => {
    const ids = ['007', '008', '009'];
    const jsonl = await tmp.write(
      't.jsonl',
      ids.map((id, i) => JSON.stringify({ id, x: String(i) })).join('\n'),
    );
    const csv = await tmp.write('t.csv', `id,x\n${ids.map((id, i) => `${id},${i}`).join('\n')}\n`);
    const parquet = await tmp.write(
      't.parquet',
      encodeParquet([
        { name: 'id', type: 'string', values: ids },
        { name: 'x', type: 'string', values: ['0', '1', '2'] },
      ]),
    );
    const layout = await parquetLayout(tmp.store, parquet.uri, parquet.size);
    const fromJsonl = await collect(
      readRange(tmp.store, 'jsonl', byteRange(jsonl.uri, jsonl.size, 0, jsonl.size), { batchSize: 2 }),
    );
    const fromCsv = await collect(
      readRange(tmp.store, 'csv', byteRange(csv.uri, csv.size, 0, csv.size), { batchSize: 2 }),
    );
    const fromParquet = await collect(
      readRange(
        tmp.store,
        'parquet',
        {
          ...byteRange(parquet.uri, parquet.size, 0, parquet.size),
          rowGroupStart: 0,
          rowGroupEnd: layout.rowGroups.length,
        },
        { batchSize: 2 },
      ),
    );
    const expected = ids.map((id, i) => ({ id, x: String(i) }));
    expect(fromJsonl.map((r) => r.values)).toEqual(expected);
    expect(fromCsv.map((r) => r.values)).toEqual(expected);
    expect(fromParquet.map((r) => r.values)).toEqual(expected);
    expect(fromParquet.map((r) => r.offset)).toEqual([0, 1, 2]);
  });

  it('rejects a batch size that is not a positive integer', () => {
    const range = byteRange(tmp.uri('none.jsonl'), 0, 0, 0);
    expect(() => readRange(tmp.store, 'jsonl', range, { batchSize: 0 })).toThrow(
      /batchSize must be a positive integer/,
    );
    expect(() => readRange(tmp.store, 'csv', range, { batchSize: 1.5 })).toThrow(RangeError);
  });
});
