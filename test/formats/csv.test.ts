import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { parseCsvLine, readCsv, readCsvHeader } from '../../src/formats/csv.js';
import type { SourceRecord } from '../../src/formats/records.js';
import { InputError } from '../../src/spec/errors.js';
import { byteRange, collect, randomCuts, rangesFromCuts, rng, tempDir, type TempDir } from './helpers.js';

function offsetOf(content: string, needle: string): number {
  const at = content.indexOf(needle);
  if (at < 0) throw new Error(`fixture has no ${needle}`);
  return Buffer.byteLength(content.slice(0, at));
}

describe('parseCsvLine', () => {
  it('splits plain and quoted fields; "" is a quote; commas inside quotes stay', () => {
    expect(parseCsvLine('a,b,c')).toEqual({ fields: ['a', 'b', 'c'] });
    expect(parseCsvLine('"a,b","say ""hi""",c')).toEqual({ fields: ['a,b', 'say "hi"', 'c'] });
    expect(parseCsvLine('"",x,""')).toEqual({ fields: ['', 'x', ''] });
    expect(parseCsvLine('""""')).toEqual({ fields: ['"'] });
    expect(parseCsvLine('x,"é, 🚀",y')).toEqual({ fields: ['x', 'é, 🚀', 'y'] });
  });

  it('an empty unquoted field is null, an empty quoted field is the empty string', () => {
    expect(parseCsvLine(',a,,')).toEqual({ fields: [null, 'a', null, null] });
    expect(parseCsvLine('"",,"x"')).toEqual({ fields: ['', null, 'x'] });
    expect(parseCsvLine(' , ')).toEqual({ fields: [' ', ' '] });
  });

  it('rejects broken quoting with the field number', () => {
    expect(parseCsvLine('a,"unterminated').error).toMatch(/^field 2: quoted field not closed/);
    expect(parseCsvLine('a,"x"y,b').error).toMatch(/^field 2: unexpected character after closing quote/);
    expect(parseCsvLine('a,b"c').error).toMatch(/^field 2: quote inside an unquoted field/);
    expect(parseCsvLine('"a" ,b').error).toMatch(/^field 1: unexpected character/);
  });
});

describe('readCsv', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await tempDir();
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  const TABLE =
    'id,name,score\r\n' +
    '00123,"Smith, John",1.5\r\n' +
    '00124,"say ""hi""",\r\n' +
    '00125,,2\n' +
    '\n' +
    '00126,"",3\n' +
    '00127,Zoë 🚀,4';

  it('keeps values as strings (leading zeros survive), nulls for empty unquoted fields', async () => {
    const { uri, size } = await tmp.write('table.csv', TABLE);
    const records = await collect(readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 2 }));
    expect(records.map((r) => r.values)).toEqual([
      { id: '00123', name: 'Smith, John', score: '1.5' },
      { id: '00124', name: 'say "hi"', score: null },
      { id: '00125', name: null, score: '2' },
      { id: '00126', name: '', score: '3' },
      { id: '00127', name: 'Zoë 🚀', score: '4' },
    ]);
    expect(records.map((r) => r.offset)).toEqual(
      ['00123', '00124', '00125', '00126', '00127'].map((id) => offsetOf(TABLE, id)),
    );
    expect(await readCsvHeader(tmp.store, uri)).toEqual(['id', 'name', 'score']);
  });

  it('a range that starts mid-file still names fields from the header at byte 0', async () => {
    const { uri, size } = await tmp.write('mid.csv', TABLE);
    const start = offsetOf(TABLE, '00125');
    tmp.store.reset();
    const records = await collect(readCsv(tmp.store, byteRange(uri, size, start, size), { batchSize: 10 }));
    expect(records.map((r) => r.values)).toEqual([
      { id: '00125', name: null, score: '2' },
      { id: '00126', name: '', score: '3' },
      { id: '00127', name: 'Zoë 🚀', score: '4' },
    ]);
    // The header came from a small read at the start of the object, not by streaming the object.
    expect(tmp.store.gets[0]?.range?.start).toBe(0);
    expect(tmp.store.streams.map((s) => s.range)).toEqual([{ start: start - 1, end: size }]);
  });

  it('every two-way cut and random cuts: the union is the whole-file read, header never a record', async () => {
    const { uri, size } = await tmp.write('cuts.csv', `\uFEFF${TABLE}\nbad,"row"x\n1,2\n`);
    const whole = await collect(readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 3 }));
    expect(whole).toHaveLength(7);
    expect(whole.filter((r) => r.error)).toHaveLength(2);
    for (let cut = 1; cut < size; cut++) {
      const parts: SourceRecord[] = [];
      for (const range of rangesFromCuts(uri, size, [cut]))
        parts.push(...(await collect(readCsv(tmp.store, range, { batchSize: 2 }))));
      expectIn(parts, `cut ${cut}`).toEqual(whole);
    }
    const random = rng(11);
    for (let trial = 0; trial < 40; trial++) {
      const cuts = randomCuts(random, size, 2 + Math.floor(random() * 6));
      const parts: SourceRecord[] = [];
      for (const range of rangesFromCuts(uri, size, cuts))
        parts.push(...(await collect(readCsv(tmp.store, range, { batchSize: 1 }))));
      expectIn(parts, `cuts ${cuts.join(',')}`).toEqual(whole);
    }
  });

  it('rows with the wrong field count or broken quoting are DECODE_ERRORs; the others come through', async () => {
    const content =
      'a,b,c\n' + '1,2,3\n' + '1,2\n' + '1,2,3,4\n' + '1,2"x,3\n' + '4,5,6\n' + '7,8"9\n' + '1,"2,3\n';
    const { uri, size } = await tmp.write('bad.csv', content);
    const records = await collect(readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 100 }));
    expect(records.map((r) => (r.error ? r.error.reason : r.values))).toEqual([
      { a: '1', b: '2', c: '3' },
      'DECODE_ERROR',
      'DECODE_ERROR',
      'DECODE_ERROR',
      { a: '4', b: '5', c: '6' },
      'DECODE_ERROR',
      'DECODE_ERROR',
    ]);
    expect(records[1]?.error?.message).toMatch(
      /^expected 3 fields \(as in the header\), got 2; line starts "1,2"/,
    );
    expect(records[2]?.error?.message).toMatch(/^expected 3 fields \(as in the header\), got 4/);
    expect(records[3]?.error?.message).toMatch(/^bad CSV quoting: field 2: quote inside an unquoted field/);
    // A stray quote inside an unquoted field opens nothing: the next line is still its own record.
    expect(records[5]?.error?.message).toMatch(/^bad CSV quoting: field 2: quote inside an unquoted field/);
    // A quote left open runs to the end of the object (a quoted line break is part of the field).
    expect(records[6]?.error?.message).toMatch(
      /^bad CSV quoting: field 2: quoted field not closed before the end of the file/,
    );
    expect(records[1]?.offset).toBe(offsetOf(content, '1,2\n'));
    expect(records[6]?.offset).toBe(offsetOf(content, '1,"2,3'));
  });

  it('decodes only the requested columns; a missing column is an InputError naming the file and its columns', async () => {
    const { uri, size } = await tmp.write('cols.csv', TABLE);
    const records = await collect(
      readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 10, columns: ['score', 'id'] }),
    );
    expect(records[0]?.values).toEqual({ id: '00123', score: '1.5' });
    expect(Object.keys(records[0]!.values!)).toEqual(['score', 'id']);
    const failing = collect(
      readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 10, columns: ['id', 'age'] }),
    );
    await expect(failing).rejects.toThrow(InputError);
    await expect(failing).rejects.toThrow(`${uri} has no column "age"; its header has: id, name, score`);
  });

  it('header problems are InputErrors; an empty object has no records', async () => {
    const empty = await tmp.write('empty.csv', '');
    await expect(readCsvHeader(tmp.store, empty.uri)).rejects.toThrow(/has no header line/);
    expect(await collect(readCsv(tmp.store, byteRange(empty.uri, 0, 0, 0), { batchSize: 1 }))).toEqual([]);
    const dup = await tmp.write('dup.csv', 'a,b,a\n1,2,3\n');
    await expect(readCsvHeader(tmp.store, dup.uri)).rejects.toThrow(/names column "a" twice/);
    await expect(
      collect(readCsv(tmp.store, byteRange(dup.uri, dup.size, 0, dup.size), { batchSize: 1 })),
    ).rejects.toThrow(InputError);
    const blank = await tmp.write('blankname.csv', 'a,,c\n');
    await expect(readCsvHeader(tmp.store, blank.uri)).rejects.toThrow(/empty column name \(column 2\)/);
    const quoted = await tmp.write('quotedheader.csv', '"x,1","y ""2"""\n"a",b\n');
    expect(await readCsvHeader(tmp.store, quoted.uri)).toEqual(['x,1', 'y "2"']);
    const headerOnly = await tmp.write('headeronly.csv', 'a,b\n');
    expect(
      await collect(
        readCsv(tmp.store, byteRange(headerOnly.uri, headerOnly.size, 0, headerOnly.size), { batchSize: 1 }),
      ),
    ).toEqual([]);
  });

  it('a column named __proto__ is an ordinary value', async () => {
    const { uri, size } = await tmp.write('proto.csv', '__proto__,x\nevil,1\n');
    const [record] = await collect(readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 1 }));
    expect(Object.getPrototypeOf(record!.values)).toBe(Object.prototype);
    expect(Object.entries(record!.values!)).toEqual([
      ['__proto__', 'evil'],
      ['x', '1'],
    ]);
  });
});

describe('readCsv with a 10 MB header (issue 17)', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await tempDir();
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  it('names the missing column without repeating the whole header', async () => {
    const header = `${'h'.repeat(10 << 20)}\n1\n`;
    const { uri, size } = await tmp.write('huge-header.csv', header);
    const failing = collect(
      readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 10, columns: ['id'] }),
    );
    await expect(failing).rejects.toThrow(
      /has no column "id"; its header has: h+ …\[\d+ characters omitted\]/,
    );
    const message = await failing.then(
      () => '',
      (err: Error) => err.message,
    );
    expect(message.length).toBeLessThanOrEqual(2000);
  });
});
