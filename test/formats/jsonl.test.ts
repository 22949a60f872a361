import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { decodeJsonLine, readJsonl, readableMembers } from '../../src/formats/jsonl.js';
import type { SourceRecord } from '../../src/formats/records.js';
import {
  byteRange,
  collect,
  collectBatches,
  randomCuts,
  rangesFromCuts,
  rng,
  tempDir,
  type TempDir,
} from './helpers.js';

function offsetOf(content: string, needle: string): number {
  const at = content.indexOf(needle);
  if (at < 0) throw new Error(`fixture has no ${needle}`);
  return Buffer.byteLength(content.slice(0, at));
}

describe('readJsonl', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await tempDir();
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  it('decodes objects; bad lines become DECODE_ERROR at their own offsets, good lines around them survive', async () => {
    const content =
      '{"id":1,"x":0.5}\n' +
      '{"id":2,"x":\n' + // truncated
      '{"id":3,"name":"naïve 🚀"}\r\n' +
      '[1,2,3]\n' +
      '   \n' + // whitespace only: not a record
      '42\n' +
      'null\n' +
      '"a string"\n' +
      `{"id":4,"blob":"${'q'.repeat(500)}" oops}\n` +
      '{"id":5,"nested":{"a":[1,{"b":null}]}}';
    const { uri, size } = await tmp.write('mixed.jsonl', content);
    const records = await collect(readJsonl(tmp.store, byteRange(uri, size, 0, size), { batchSize: 100 }));

    expect(records.map((r) => r.offset)).toEqual([
      0,
      offsetOf(content, '{"id":2'),
      offsetOf(content, '{"id":3'),
      offsetOf(content, '[1,2,3]'),
      offsetOf(content, '42'),
      offsetOf(content, 'null'),
      offsetOf(content, '"a string"'),
      offsetOf(content, '{"id":4'),
      offsetOf(content, '{"id":5'),
    ]);
    expect(records.every((r) => r.source === uri)).toBe(true);
    const [r1, r2, r3, r4, r5, r6, r7, r8, r9] = records as [SourceRecord, ...SourceRecord[]];
    expect(r1.values).toEqual({ id: 1, x: 0.5 });
    expect(r3?.values).toEqual({ id: 3, name: 'naïve 🚀' });
    expect(r9?.values).toEqual({ id: 5, nested: { a: [1, { b: null }] } });

    expect(r2?.error?.reason).toBe('DECODE_ERROR');
    expect(r2?.error?.message).toMatch(/^invalid JSON: /);
    expect(r2?.error?.message).toContain('{\\"id\\":2,\\"x\\":');
    expect(r4?.error?.reason).toBe('DECODE_ERROR');
    expect(r4?.error?.message).toBe('line is an array, not a JSON object; line starts "[1,2,3]"');
    expect(r5?.error?.message).toContain('a number, not a JSON object');
    expect(r6?.error?.message).toContain('null, not a JSON object');
    expect(r7?.error?.message).toContain('a string, not a JSON object');
    // Long bad lines are quoted only in part.
    expect(r8?.error?.message).toMatch(/^invalid JSON: /);
    expect(r8!.error!.message.length).toBeLessThan(250);
    expect(r8?.values).toBeUndefined();
  });

  it('yields batches of batchSize records, the last one shorter', async () => {
    const lines = Array.from({ length: 23 }, (_, i) => JSON.stringify({ i }));
    const { uri, size } = await tmp.write('batches.jsonl', `${lines.join('\n')}\n`);
    const batches = await collectBatches(
      readJsonl(tmp.store, byteRange(uri, size, 0, size), { batchSize: 5 }),
    );
    expect(batches.map((b) => b.length)).toEqual([5, 5, 5, 5, 3]);
    expect(batches.flat().map((r) => r.values?.i)).toEqual(lines.map((_, i) => i));
  });

  it('a BOM before the first object is not part of it', async () => {
    const { uri, size } = await tmp.write('bom.jsonl', '\uFEFF{"a":1}\r\n{"a":2}\r\n');
    const records = await collect(readJsonl(tmp.store, byteRange(uri, size, 0, size), { batchSize: 10 }));
    expect(records.map((r) => r.values)).toEqual([{ a: 1 }, { a: 2 }]);
  });

  it('split at every cut and at random cuts: same records, same order, no duplicates', async () => {
    const content =
      '{"id":"a","v":"é"}\r\n{"id":"b","v":"日本"}\nnot json\n\n{"id":"c","v":"🚀"}\r\n[0]\n{"id":"d"}';
    const { uri, size } = await tmp.write('cuts.jsonl', content);
    const whole = await collect(readJsonl(tmp.store, byteRange(uri, size, 0, size), { batchSize: 3 }));
    expect(whole).toHaveLength(6);
    for (let cut = 0; cut <= size; cut++) {
      const parts: SourceRecord[] = [];
      for (const range of rangesFromCuts(uri, size, cut === 0 || cut === size ? [] : [cut])) {
        parts.push(...(await collect(readJsonl(tmp.store, range, { batchSize: 2 }))));
      }
      expectIn(parts, `cut ${cut}`).toEqual(whole);
    }
    const random = rng(7);
    for (let trial = 0; trial < 40; trial++) {
      const cuts = randomCuts(random, size, 2 + Math.floor(random() * 6));
      const parts: SourceRecord[] = [];
      for (const range of rangesFromCuts(uri, size, cuts)) {
        parts.push(...(await collect(readJsonl(tmp.store, range, { batchSize: 1 }))));
      }
      expectIn(parts, `cuts ${cuts.join(',')}`).toEqual(whole);
    }
  });
});

describe('DECODE_ERROR rows keep what was readable (issue 17)', () => {
  it('a broken line keeps its complete top-level scalar members, so the error row has the id', () => {
    const broken = decodeJsonLine('s', {
      offset: 0,
      text: '{"id": "r7", "n": 2, "v": [1, {"a": "}"}], "x": tru',
    });
    expect(broken?.error?.reason).toBe('DECODE_ERROR');
    expect(broken?.error ? broken.partial : undefined).toEqual({ id: 'r7', n: 2 });
  });

  it('readableMembers stops at the first break and never guesses', () => {
    expect(readableMembers('{"id": 12, "a": "x"')).toEqual({ id: 12 });
    expect(readableMembers('{"id": "a\\"b", "t": null,}')).toEqual({ id: 'a"b', t: null });
    expect(readableMembers('{"id" "r1"}')).toBeUndefined();
    expect(readableMembers('{"nested": {"id": "inner"}')).toBeUndefined();
    expect(readableMembers('[1, 2')).toBeUndefined();
    expect(readableMembers('{"id": 0x10, "b": 1}')).toBeUndefined();
    // A "__proto__" key is an own member, not the prototype.
    expect(Object.getPrototypeOf(readableMembers('{"__proto__": "p", "id": 1,'))).toBe(Object.prototype);
  });
});
