import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import {
  LineSplitter,
  readFirstLine,
  readLineBatches,
  readLines,
  type Line,
} from '../../src/formats/lines.js';
import { collect, randomCuts, rangesFromCuts, rng, tempDir, type TempDir } from './helpers.js';

/** The lines of a whole text, computed with string operations only: the independent answer. */
function expectedLines(content: string): Line[] {
  const out: Line[] = [];
  let offset = 0;
  for (const part of content.split('\n')) {
    let text = part.endsWith('\r') ? part.slice(0, -1) : part;
    if (offset === 0 && text.startsWith('\uFEFF')) text = text.slice(1);
    if (text !== '') out.push({ offset, text });
    offset += Buffer.byteLength(part) + 1;
  }
  return out;
}

/** Feeds bytes [readStart, ...) to a splitter in fixed-size chunks, the way a stream would. */
function splitInChunks(
  bytes: Buffer,
  start: number,
  end: number,
  chunkSize: number,
  maxLineBytes?: number,
): Line[] {
  const splitter = new LineSplitter(start, end, maxLineBytes);
  const out: Line[] = [];
  for (let at = splitter.readStart; at < bytes.length && !splitter.done; at += chunkSize) {
    out.push(...splitter.push(bytes.subarray(at, Math.min(at + chunkSize, bytes.length))));
  }
  const last = splitter.finish();
  if (last) out.push(last);
  return out;
}

// BOM, CRLF and LF mixed, empty lines (both kinds), 2/3/4-byte characters, a stray '\r' inside a line, and no
// final newline.
const MIXED =
  '\uFEFFfirst line\r\n' +
  'héllo wörld\n' +
  '\n' +
  '日本語のテキスト\r\n' +
  '\r\n' +
  'emoji 🙂🚀 end\n' +
  'a\rb\n' +
  'x\n' +
  'ünïcödé ✓\r\n' +
  '{"k":"v","n":[1,2,3]}\n' +
  '\n\n' +
  'last line, no newline 🚀';

describe('lines', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await tempDir();
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  it('reads a whole object: CRLF, BOM, UTF-8, empty lines, no final newline', async () => {
    const { uri, size } = await tmp.write('mixed.txt', MIXED);
    const lines = await collect(readLineBatches(tmp.store, { uri, start: 0, end: size, size }));
    expect(lines).toEqual(expectedLines(MIXED));
    expect(lines[0]).toEqual({ offset: 0, text: 'first line' });
    expect(lines.at(-1)?.text).toBe('last line, no newline 🚀');
    expect(lines.map((l) => l.text)).toContain('a\rb');
  });

  it('every two-way cut: the ranges together yield each line exactly once, in order', async () => {
    const { uri, size } = await tmp.write('mixed-cuts.txt', MIXED);
    const whole = expectedLines(MIXED);
    for (let cut = 0; cut <= size; cut++) {
      const left = await collect(readLineBatches(tmp.store, { uri, start: 0, end: cut, size }));
      const right = await collect(readLineBatches(tmp.store, { uri, start: cut, end: size, size }));
      expectIn([...left, ...right], `cut at ${cut}`).toEqual(whole);
      // Ownership is by first byte: every line the left range yields starts before the cut.
      for (const line of left) expect(line.offset).toBeLessThan(cut);
      for (const line of right) expect(line.offset).toBeGreaterThanOrEqual(cut);
    }
  });

  it('random multi-way cuts, including cuts inside multi-byte characters and CRLF pairs', async () => {
    const { uri, size } = await tmp.write('mixed-multi.txt', MIXED);
    const whole = expectedLines(MIXED);
    const random = rng(42);
    for (let trial = 0; trial < 150; trial++) {
      const cuts = randomCuts(random, size, 2 + Math.floor(random() * 10));
      const parts: Line[] = [];
      for (const range of rangesFromCuts(uri, size, cuts))
        parts.push(...(await collect(readLineBatches(tmp.store, range))));
      expectIn(parts, `cuts ${cuts.join(',')}`).toEqual(whole);
    }
  });

  it('any chunking of the stream gives the same lines (characters and CRLF split across chunks)', () => {
    const bytes = Buffer.from(MIXED);
    const whole = expectedLines(MIXED);
    for (let chunk = 1; chunk <= 17; chunk++) {
      expectIn(splitInChunks(bytes, 0, bytes.length, chunk), `chunk ${chunk}`).toEqual(whole);
    }
    for (let cut = 0; cut <= bytes.length; cut++) {
      const parts = [
        ...splitInChunks(bytes, 0, cut, 1 + (cut % 6)),
        ...splitInChunks(bytes, cut, bytes.length, 1 + ((cut * 7) % 5)),
      ];
      expectIn(parts, `cut ${cut}`).toEqual(whole);
    }
  });

  it('a range that starts exactly at a line start keeps that line', async () => {
    const content = 'aa\nbb\ncc\n';
    const { uri, size } = await tmp.write('exact.txt', content);
    const lines = await collect(readLineBatches(tmp.store, { uri, start: 3, end: 6, size }));
    expect(lines).toEqual([{ offset: 3, text: 'bb' }]);
    const none = await collect(readLineBatches(tmp.store, { uri, start: 4, end: 6, size }));
    expect(none).toEqual([]);
  });

  it('empty and degenerate ranges yield nothing', async () => {
    const { uri, size } = await tmp.write('small.txt', 'a\nb\n');
    expect(await collect(readLineBatches(tmp.store, { uri, start: 1, end: 1, size }))).toEqual([]);
    expect(await collect(readLineBatches(tmp.store, { uri, start: size, end: size + 10, size }))).toEqual([]);
    const empty = await tmp.write('empty.txt', '');
    expect(await collect(readLineBatches(tmp.store, { uri: empty.uri, start: 0, end: 0, size: 0 }))).toEqual(
      [],
    );
    const blank = await tmp.write('blank.txt', '\n\r\n\n');
    expect(await collect(readLineBatches(tmp.store, { uri: blank.uri, start: 0, end: 4, size: 4 }))).toEqual(
      [],
    );
  });

  it('long lines across many stream chunks, finished past the range end with bounded reads', async () => {
    const long1 = 'é'.repeat(1_500_000); // 3 MB, 2-byte characters straddle the 1 MiB chunk boundaries
    const long2 = '🚀'.repeat(600_000); // 2.4 MB of 4-byte characters, no final newline
    const content = `${long1}\r\nshort\n${long2}`;
    const { uri, size } = await tmp.write('long.txt', content);
    tmp.store.reset();
    const first = await collect(readLineBatches(tmp.store, { uri, start: 0, end: 10, size }));
    expect(first).toHaveLength(1);
    expect(first[0]!.text === long1).toBe(true);
    // The main read stops at the range end; the rest comes from ranged reads that never pass the object's end.
    expect(tmp.store.streams.map((s) => s.range)).toEqual([{ start: 0, end: 10 }]);
    for (const { range } of tmp.store.gets) {
      expect(range!.start).toBeLessThan(size);
      expect(range!.end).toBeLessThanOrEqual(size);
    }
    const rest = await collect(readLineBatches(tmp.store, { uri, start: 10, end: size, size }));
    expect(rest.map((l) => l.offset)).toEqual([Buffer.byteLength(long1) + 2, Buffer.byteLength(long1) + 8]);
    expect(rest[0]!.text).toBe('short');
    expect(rest[1]!.text === long2).toBe(true);
  });

  it('a line over the limit is reported with its length, not buffered; neighbours are unaffected', async () => {
    const big = 'z'.repeat(5000);
    const content = `one\n${big}\ntwo\n${big}`;
    const { uri, size } = await tmp.write('toolong.txt', content);
    const lines = await collect(
      readLineBatches(tmp.store, { uri, start: 0, end: size, size }, { maxLineBytes: 1000 }),
    );
    expect(lines).toEqual([
      { offset: 0, text: 'one' },
      { offset: 4, text: '', tooLong: 5000 },
      { offset: 5005, text: 'two' },
      { offset: 5009, text: '', tooLong: 5000 },
    ]);
    for (const chunk of [1, 7, 999, 1000, 1001, 4096]) {
      expectIn(splitInChunks(Buffer.from(content), 0, size, chunk, 1000), `chunk ${chunk}`).toEqual(lines);
    }
  });

  it('readLines yields the same lines one at a time; readFirstLine finds the first non-empty line', async () => {
    const { uri, size } = await tmp.write('first.txt', '\n\r\n\uFEFFnot a bom here\nsecond\n');
    const all: Line[] = [];
    for await (const line of readLines(tmp.store, { uri, start: 0, end: size, size })) all.push(line);
    expect(all).toEqual([
      { offset: 3, text: '\uFEFFnot a bom here' },
      { offset: 21, text: 'second' },
    ]);
    expect(await readFirstLine(tmp.store, uri, size)).toEqual(all[0]);
    const none = await tmp.write('none.txt', '\n\n');
    expect(await readFirstLine(tmp.store, none.uri, none.size)).toBeUndefined();
  });

  it('splits a million short lines with exact offsets', async () => {
    const parts: string[] = [];
    for (let i = 0; i < 1_000_000; i++) parts.push(`{"id":${i}}`);
    const { uri, size } = await tmp.write('million.jsonl', `${parts.join('\n')}\n`);
    let count = 0;
    let lastOffset = -1;
    for await (const batch of readLineBatches(tmp.store, { uri, start: 0, end: size, size })) {
      count += batch.length;
      lastOffset = batch.at(-1)!.offset;
    }
    expect(count).toBe(1_000_000);
    expect(lastOffset).toBe(size - Buffer.byteLength(parts.at(-1)!) - 1);
  });
});
