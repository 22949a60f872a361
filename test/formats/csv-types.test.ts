/**
 * CSV typed columns: id and passthrough columns that output.schema types (int, bigint, float, double, boolean) are
 * converted from their text by the reader; empty fields are null; a value not of its type makes the record an
 * INVALID_VALUE error row naming the column and the value, with the record's other values kept for its id.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { parseTyped, readCsv, type CsvReadOptions } from '../../src/formats/csv.js';
import type { SourceRecord } from '../../src/formats/records.js';
import { byteRange, collect, rangesFromCuts, tempDir, type TempDir } from './helpers.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(async () => {
  await tmp.cleanup();
});

const TYPES = {
  age: 'int',
  visits: 'bigint',
  bmi: 'double',
  ratio: 'float',
  smoker: 'boolean',
  site: 'string',
};

async function read(content: string, options: Partial<CsvReadOptions> = {}): Promise<SourceRecord[]> {
  const file = await tmp.write(`t-${Math.random().toString(36).slice(2)}.csv`, content);
  return collect(
    readCsv(tmp.store, byteRange(file.uri, file.size, 0, file.size), { batchSize: 3, ...options }),
  );
}

describe('parseTyped', () => {
  it('converts each type, trims spaces, and makes empty text null', () => {
    expect(parseTyped('42', 'int')).toBe(42);
    expect(parseTyped(' -7 ', 'int')).toBe(-7);
    expect(parseTyped('+2147483647', 'int')).toBe(2147483647);
    expect(parseTyped('9007199254740993', 'bigint')).toBe(9007199254740993n);
    expect(parseTyped('-9223372036854775808', 'bigint')).toBe(-(2n ** 63n));
    expect(parseTyped('3.25', 'double')).toBe(3.25);
    expect(parseTyped('.5e-3', 'double')).toBe(0.0005);
    expect(parseTyped('1e38', 'float')).toBe(1e38);
    for (const t of ['true', 'TRUE', 't', 'yes', '1']) expect(parseTyped(t, 'boolean')).toBe(true);
    for (const t of ['false', 'F', 'No', '0']) expect(parseTyped(t, 'boolean')).toBe(false);
    for (const type of ['int', 'bigint', 'float', 'double', 'boolean'] as const) {
      expect(parseTyped('', type)).toBeNull();
      expect(parseTyped('   ', type)).toBeNull();
    }
  });

  it('rejects text that is not of the type, out of range or not finite', () => {
    const rejected: [string, 'int' | 'bigint' | 'float' | 'double' | 'boolean'][] = [
      ['12.5', 'int'],
      ['2147483648', 'int'],
      ['0x10', 'int'],
      ['1e3', 'int'],
      ['9223372036854775808', 'bigint'],
      ['12abc', 'bigint'],
      ['n/a', 'double'],
      ['1e400', 'double'],
      ['NaN', 'double'],
      ['Infinity', 'double'],
      ['1e39', 'float'],
      ['maybe', 'boolean'],
      ['2', 'boolean'],
    ];
    for (const [text, type] of rejected) {
      expectIn(typeof parseTyped(text, type), `${text} as ${type}`).toBe('symbol');
    }
  });
});

describe('readCsv with typed columns', () => {
  const header = 'id,age,visits,bmi,ratio,smoker,site,x\n';

  it('returns typed values, null for empty fields (quoted or not), and text for untyped columns', async () => {
    const content =
      header +
      'P1,61,12,27.5,0.25,true,north,1.5\n' +
      'P2,,"",,"",,"",2\n' +
      'P3,"40",9007199254740993,"31.25",1e-3,No,"south, east",3\n';
    const records = await read(content, { types: TYPES });
    expect(records.map((r) => r.error)).toEqual([undefined, undefined, undefined]);
    expect(records.map((r) => r.values)).toEqual([
      { id: 'P1', age: 61, visits: 12n, bmi: 27.5, ratio: 0.25, smoker: true, site: 'north', x: '1.5' },
      { id: 'P2', age: null, visits: null, bmi: null, ratio: null, smoker: null, site: '', x: '2' },
      {
        id: 'P3',
        age: 40,
        visits: 9007199254740993n,
        bmi: 31.25,
        ratio: 0.001,
        smoker: false,
        site: 'south, east',
        x: '3',
      },
    ]);
    // Without types every field is text, as before.
    const untyped = await read(content);
    expect(untyped[0]!.values).toMatchObject({ age: '61', visits: '12', smoker: 'true' });
  });

  it('makes a record with a value not of its type an INVALID_VALUE error naming column and value', async () => {
    const content =
      header +
      'P1,61,12,27.5,0.25,true,north,1\n' +
      'P2,sixty,12,27.5,0.25,true,north,2\n' +
      'P3,"61",12,n/a,0.25,maybe,"quoted, site",3\n' +
      'P4,61,12,27.5,0.25,false,south,4\n';
    const records = await read(content, { types: TYPES });
    expect(records.map((r) => r.error?.reason)).toEqual([
      undefined,
      'INVALID_VALUE',
      'INVALID_VALUE',
      undefined,
    ]);
    expect(records[1]!.error!.message).toBe(
      'column "age" value "sixty" is not an int (an integer from -2147483648 to 2147483647), the type ' +
        'output.schema declares',
    );
    // The first bad value is named (both lines: the fast path and the quoted-field path).
    expect(records[2]!.error!.message).toMatch(
      /^column "bmi" value "n\/a" is not a double \(a finite decimal/,
    );
    expect(records.map((r) => r.offset)).toEqual(
      [1, 2, 3, 4].map((i) => Buffer.byteLength(content.split('\n').slice(0, i).join('\n')) + 1),
    );
    // What was read stays with the error, so the error row carries the record's id.
    expect(records[1]!.values).toBeUndefined();
    expect(records[1]!.error && records[1]).toMatchObject({
      partial: { id: 'P2', age: 'sixty', visits: 12n },
    });
    expect(records[2]).toMatchObject({ partial: { id: 'P3', age: 61, bmi: 'n/a', smoker: 'maybe' } });
  });

  it('converts the same way whatever the range cuts, and only the selected columns', async () => {
    const lines = [header.trim()];
    for (let i = 0; i < 60; i++) {
      const age = i % 13 === 5 ? 'old' : String(20 + i);
      lines.push(`P${i},${age},${i * 1000},${(i / 4).toFixed(2)},0.5,${i % 2 === 0},"s${i}",${i}`);
    }
    const content = `${lines.join('\n')}\n`;
    const file = await tmp.write('cuts.csv', content);
    const options = { batchSize: 7, types: TYPES, columns: ['id', 'age', 'smoker'] };
    const whole = await collect(readCsv(tmp.store, byteRange(file.uri, file.size, 0, file.size), options));
    const parts: SourceRecord[] = [];
    for (const range of rangesFromCuts(file.uri, file.size, [17, 400, 401, 1500, 2222])) {
      parts.push(...(await collect(readCsv(tmp.store, range, options))));
    }
    expect(parts).toEqual(whole);
    expect(whole).toHaveLength(60);
    expect(whole.flatMap((r) => (r.error ? [r.partial?.id] : []))).toEqual([
      'P5',
      'P18',
      'P31',
      'P44',
      'P57',
    ]);
    expect(whole[0]!.values).toEqual({ id: 'P0', age: 20, smoker: true });
  });
});
