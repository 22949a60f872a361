/**
 * Issue 17: a CSV record with a quoted line break is ONE record (one prediction or one error row), in a whole-object
 * read and across byte-range cuts; a cut inside such a record is a clear error, never a silently different read.
 * Bytes that are not UTF-8 make a DECODE_ERROR (never U+FFFD in a passthrough value), and a DECODE_ERROR keeps the
 * values it could read (the id).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { readCsv } from '../../src/formats/csv.js';
import { LineSplitter, QuotedBreakAtBoundaryError } from '../../src/formats/lines.js';
import type { SourceRecord } from '../../src/formats/records.js';
import { remainingRanges } from '../../src/worker/checkpoint.js';
import { RecordStream } from '../../src/worker/record-stream.js';
import { byteRange, collect, randomCuts, rangesFromCuts, rng, tempDir, type TempDir } from './helpers.js';

/** Quoted line breaks (LF and CRLF), escaped quotes next to them, a stray quote, a multi-byte character. */
const QUOTED =
  'id,text,n\n' +
  '1,"first\nsecond",10\n' +
  '2,plain,20\n' +
  '3,"a ""quoted""\r\nline, with comma",30\r\n' +
  '4,5\'11" tall,40\n' +
  '5,"""\n""",50\n' +
  '6,"é\n\n🚀",60\n' +
  '7,last,70\n';

const EXPECTED = [
  { id: '1', text: 'first\nsecond', n: '10' },
  { id: '2', text: 'plain', n: '20' },
  { id: '3', text: 'a "quoted"\r\nline, with comma', n: '30' },
  'DECODE_ERROR', // 4: a quote inside an unquoted field (strict quoting), but only that line
  { id: '5', text: '"\n"', n: '50' },
  { id: '6', text: 'é\n\n🚀', n: '60' },
  { id: '7', text: 'last', n: '70' },
];

function partialOf(record: SourceRecord | undefined): unknown {
  return record?.error ? record.partial : undefined;
}

function shape(records: readonly SourceRecord[]): unknown[] {
  return records.map((r) => (r.error ? r.error.reason : r.values));
}

/** Reads every range in turn; the error of the first range that fails, if any. */
async function readRanges(
  tmp: TempDir,
  uri: string,
  size: number,
  cuts: readonly number[],
): Promise<SourceRecord[] | Error> {
  const parts: SourceRecord[] = [];
  try {
    for (const range of rangesFromCuts(uri, size, cuts)) {
      parts.push(...(await collect(readCsv(tmp.store, range, { batchSize: 2 }))));
    }
  } catch (err) {
    return err as Error;
  }
  return parts;
}

/** Spans [first byte, terminating newline) of the records that hold a quoted line break. */
function quotedSpans(content: Buffer): [number, number][] {
  const spans: [number, number][] = [];
  let start = 0;
  let inQuotes = false;
  let inner = false;
  let prev = 0x0a;
  let closedAt = -2;
  for (let i = 0; i < content.length; i++) {
    const c = content[i]!;
    if (c === 0x22) {
      if (inQuotes) {
        inQuotes = false;
        closedAt = i;
      } else if (prev === 0x2c || prev === 0x0a || closedAt === i - 1) inQuotes = true;
    } else if (c === 0x0a) {
      if (inQuotes) inner = true;
      else {
        if (inner) spans.push([start, i]);
        inner = false;
        start = i + 1;
      }
    }
    prev = c;
  }
  return spans;
}

describe('CSV records with quoted line breaks', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await tempDir();
  });
  afterAll(async () => tmp.cleanup());

  it('a whole-object read gives one record per logical record, line breaks kept in the field', async () => {
    const { uri, size } = await tmp.write('quoted.csv', QUOTED);
    const records = await collect(readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 3 }));
    expect(shape(records)).toEqual(EXPECTED);
    expect(records[3]?.error?.message).toMatch(/quote inside an unquoted field/);
    // Offsets are the records' first bytes.
    expect(records.map((r) => r.offset)).toEqual(
      ['1,"first', '2,plain', '3,"a', '4,5', '5,"""', '6,"é', '7,last'].map((p) =>
        Buffer.byteLength(QUOTED.slice(0, QUOTED.indexOf(p))),
      ),
    );
  });

  it('every two-way cut: exact, or a QuotedBreakAtBoundaryError when the cut makes the next range start inside a record', async () => {
    const { uri, size } = await tmp.write('cuts.csv', QUOTED);
    const bytes = Buffer.from(QUOTED);
    const spans = quotedSpans(bytes);
    expect(spans).toHaveLength(4);
    let failed = 0;
    for (let cut = 1; cut < size; cut++) {
      const result = await readRanges(tmp, uri, size, [cut]);
      // The next range starts after the first '\n' at or after cut - 1: inside a record exactly when that '\n' is a
      // quoted one.
      const firstNewline = bytes.indexOf(0x0a, cut - 1);
      const inside = spans.some(([s, e]) => firstNewline > s && firstNewline < e);
      if (inside) {
        expectIn(result, `cut ${cut}`).toBeInstanceOf(QuotedBreakAtBoundaryError);
        expectIn((result as Error).message, `cut ${cut}`).toMatch(
          /line break inside a quoted field .* across the shard boundary at byte \d+.*Fix: make run\.shards\.targetBytes larger/,
        );
        failed++;
      } else {
        expectIn(result instanceof Error ? result.message : shape(result), `cut ${cut}`).toEqual(EXPECTED);
      }
    }
    // Both kinds of cut happened.
    expect(failed).toBeGreaterThan(0);
    expect(failed).toBeLessThan(size - 1);
  });

  it('random multi-way cuts over many records: never a silently different read', async () => {
    const random = rng(17);
    const rows: string[] = ['id,text'];
    for (let i = 0; i < 300; i++) {
      rows.push(random() < 0.2 ? `${i},"line a\nline b ${i}"` : `${i},plain ${i}`);
    }
    const content = `${rows.join('\n')}\n`;
    const { uri, size } = await tmp.write('many.csv', content);
    const whole = await collect(readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 7 }));
    expect(whole).toHaveLength(300);
    expect(whole.every((r) => r.values !== undefined)).toBe(true);
    let exact = 0;
    for (let trial = 0; trial < 40; trial++) {
      const cuts = randomCuts(random, size, 1 + Math.floor(random() * 4));
      const result = await readRanges(tmp, uri, size, cuts);
      if (result instanceof Error) {
        expectIn(result, `cuts ${cuts.join(',')}`).toBeInstanceOf(QuotedBreakAtBoundaryError);
      } else {
        expectIn(result, `cuts ${cuts.join(',')}`).toEqual(whole);
        exact++;
      }
    }
    expect(exact).toBeGreaterThan(0);
  });

  it('any chunking gives the same lines: quote state carries across chunks ("" and a quote after a comma split)', () => {
    const bytes = Buffer.from(QUOTED);
    const read = (chunk: number): string[] => {
      const splitter = new LineSplitter(0, bytes.length, undefined, { uri: 'x', boundaryFollows: false });
      const out: string[] = [];
      for (let at = 0; at < bytes.length; at += chunk) {
        out.push(...splitter.push(bytes.subarray(at, at + chunk)).map((l) => l.text));
      }
      const last = splitter.finish();
      if (last) out.push(last.text);
      return out;
    };
    const reference = read(bytes.length);
    expect(reference).toHaveLength(8);
    for (let chunk = 1; chunk <= 16; chunk++) expectIn(read(chunk), `chunk ${chunk}`).toEqual(reference);
  });

  it('resuming after a checkpoint at a record with quoted line breaks reads exactly the records after it', async () => {
    const { uri, size } = await tmp.write('checkpoint.csv', QUOTED);
    const whole = await collect(readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 10 }));
    // A checkpoint after each record in turn (the multi-line ones included): the rest of the shard, exactly.
    for (let k = 0; k < whole.length; k++) {
      const position = { range: 0, offset: whole[k]!.offset };
      const remaining = await remainingRanges(tmp.store, 'csv', [byteRange(uri, size, 0, size)], position);
      const stream = new RecordStream(tmp.store, 'csv', remaining, { batchSize: 4 });
      const after: SourceRecord[] = [];
      for (let batch = await stream.take(3); batch; batch = await stream.take(3))
        after.push(...batch.records);
      expectIn(shape(after), `checkpoint after record ${k}`).toEqual(shape(whole.slice(k + 1)));
    }
  });

  it('a resumed range that starts at a record with quoted line breaks reads it whole', async () => {
    const { uri, size } = await tmp.write('resume.csv', QUOTED);
    const at = Buffer.byteLength(QUOTED.slice(0, QUOTED.indexOf('3,"a')));
    const records = await collect(readCsv(tmp.store, byteRange(uri, size, at, size), { batchSize: 10 }));
    expect(shape(records)).toEqual(EXPECTED.slice(2));
  });
});

describe('CSV bytes that are not UTF-8, and what a DECODE_ERROR keeps', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await tempDir();
  });
  afterAll(async () => tmp.cleanup());

  it('a non-UTF-8 byte in a column is a DECODE_ERROR naming the field, with the id kept; never U+FFFD', async () => {
    const content = Buffer.concat([
      Buffer.from('id,city,x\nA1,Zürich,1\nA2,'),
      Buffer.from([0x5a, 0xfc, 0x72, 0x69, 0x63, 0x68]), // "Zürich" in Latin-1
      Buffer.from(',2\nA3,"q'),
      Buffer.from([0xff]),
      Buffer.from('",3\n'),
    ]);
    const { uri, size } = await tmp.write('latin1.csv', content);
    const records = await collect(readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 10 }));
    expect(shape(records)).toEqual([{ id: 'A1', city: 'Zürich', x: '1' }, 'DECODE_ERROR', 'DECODE_ERROR']);
    expect(records[1]?.error?.message).toMatch(
      /^field 2 holds bytes that are not UTF-8 text.*Save the file as UTF-8/,
    );
    expect(partialOf(records[1])).toEqual({ id: 'A2', x: '2' });
    expect(partialOf(records[2])).toEqual({ id: 'A3', x: '3' });
    // The message may show the bad bytes as U+FFFD; no value ever carries it.
    expect(JSON.stringify(records.map((r) => r.values ?? partialOf(r)))).not.toContain('\uFFFD');
  });

  it('DECODE_ERRORs keep the fields read before the problem: the id of a record with bad quoting or missing fields', async () => {
    const content = 'id,a,b\nk1,x"y,1\nk2,2\nk3,"open\n';
    const { uri, size } = await tmp.write('partial.csv', content);
    const records = await collect(
      readCsv(tmp.store, byteRange(uri, size, 0, size), { batchSize: 10, types: { id: 'string', b: 'int' } }),
    );
    expect(records.map((r): unknown[] => [r.error?.reason, partialOf(r)])).toEqual([
      ['DECODE_ERROR', { id: 'k1' }],
      ['DECODE_ERROR', { id: 'k2', a: '2' }],
      ['DECODE_ERROR', { id: 'k3' }],
    ]);
  });
});
