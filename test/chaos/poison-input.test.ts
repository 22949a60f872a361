/**
 * Poison input at the reader level (issue 17): each kind of hostile text input, read whole, gives every logical
 * record exactly once, either with its values unaltered or as an error with a reason; nothing dropped, nothing
 * changed. (Run level: test/e2e/local-run.test.ts; values the model rejects, such as 0x10 or NaN, are INVALID_VALUE
 * rows in test/inference/inference.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readCsv } from '../../src/formats/csv.js';
import { readJsonl } from '../../src/formats/jsonl.js';
import type { SourceRecord } from '../../src/formats/records.js';
import { byteRange, collect, tempDir, type TempDir } from '../formats/helpers.js';
import { expectIn } from '../support/expect-in.js';

type Expected = Record<string, unknown> | `ERROR ${string}`;

interface PoisonCase {
  readonly name: string;
  readonly format: 'csv' | 'jsonl';
  readonly content: string | Buffer;
  readonly expected: readonly Expected[];
  readonly types?: Readonly<Record<string, string>>;
}

const CASES: readonly PoisonCase[] = [
  {
    name: 'BOM and CRLF',
    format: 'csv',
    content: '\uFEFFid,v\r\n1,a\r\n2,b\r\n',
    expected: [
      { id: '1', v: 'a' },
      { id: '2', v: 'b' },
    ],
  },
  {
    name: 'no final newline',
    format: 'csv',
    content: 'id,v\n1,a\n2,b',
    expected: [
      { id: '1', v: 'a' },
      { id: '2', v: 'b' },
    ],
  },
  {
    name: 'quoted line breaks (LF and CRLF)',
    format: 'csv',
    content: 'id,v\n1,"x\ny"\n2,"p\r\nq"\r\n3,z\n',
    expected: [
      { id: '1', v: 'x\ny' },
      { id: '2', v: 'p\r\nq' },
      { id: '3', v: 'z' },
    ],
  },
  {
    name: 'non-UTF-8 bytes',
    format: 'csv',
    content: Buffer.concat([Buffer.from('id,v\n1,'), Buffer.from([0xe9]), Buffer.from('\n2,ok\n')]),
    expected: ['ERROR DECODE_ERROR', { id: '2', v: 'ok' }],
  },
  {
    name: 'broken quoting and wrong field counts',
    format: 'csv',
    content: 'id,v\n1,a"b\n2\n3,a,b\n4,ok\n',
    expected: ['ERROR DECODE_ERROR', 'ERROR DECODE_ERROR', 'ERROR DECODE_ERROR', { id: '4', v: 'ok' }],
  },
  {
    name: 'wrong types in typed columns, hex and non-finite numbers among them',
    format: 'csv',
    content: 'id,n\n1,0x10\n2,NaN\n3,Infinity\n4,1_000\n5,12\n6,\n',
    types: { n: 'int' },
    expected: [
      'ERROR INVALID_VALUE',
      'ERROR INVALID_VALUE',
      'ERROR INVALID_VALUE',
      'ERROR INVALID_VALUE',
      { id: '5', n: 12 },
      { id: '6', n: null },
    ],
  },
  {
    name: 'nulls: empty fields and an empty quoted field',
    format: 'csv',
    content: 'id,v,w\n1,,""\n',
    expected: [{ id: '1', v: null, w: '' }],
  },
  {
    name: 'header only',
    format: 'csv',
    content: 'id,v\n',
    expected: [],
  },
  {
    name: '0-byte file',
    format: 'csv',
    content: '',
    expected: [],
  },
  {
    name: 'JSON Lines: nested values, nulls, broken lines, non-objects, non-UTF-8',
    format: 'jsonl',
    content: Buffer.concat([
      Buffer.from('{"id":1,"v":{"a":[1,{"b":null}]}}\n{"id":2,"v":null}\n{"id":3,"v":\n[1,2]\n"text"\n'),
      Buffer.from('{"id":4,"v":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}\r\n\n   \n{"id":5}'),
    ]),
    expected: [
      { id: 1, v: { a: [1, { b: null }] } },
      { id: 2, v: null },
      'ERROR DECODE_ERROR',
      'ERROR DECODE_ERROR',
      'ERROR DECODE_ERROR',
      'ERROR DECODE_ERROR',
      { id: 5 },
    ],
  },
];

function shape(records: readonly SourceRecord[]): Expected[] {
  return records.map((r): Expected => (r.error ? `ERROR ${r.error.reason}` : { ...r.values }));
}

describe('poison input corpus (chaos, reader level)', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await tempDir();
  });
  afterAll(async () => tmp.cleanup());

  it.each(CASES.map((c) => [c.name, c] as const))(
    '%s: every record once, unaltered or an error with a reason',
    async (_, c) => {
      const { uri, size } = await tmp.write(`${c.name.replace(/\W+/g, '_')}.${c.format}`, c.content);
      const reader = c.format === 'csv' ? readCsv : readJsonl;
      const records = await collect(
        reader(tmp.store, byteRange(uri, size, 0, size), {
          batchSize: 3,
          ...(c.types && { types: c.types }),
        }),
      );
      expectIn(shape(records), c.name).toEqual(c.expected);
      for (const r of records) {
        if (r.error)
          expectIn(r.error.message.length, `${c.name}: message of ${r.offset}`).toBeGreaterThan(10);
      }
      // No value carries a replacement character: undecodable bytes are errors, not altered text.
      expect(JSON.stringify(records.map((r) => r.values ?? null))).not.toContain('\uFFFD');
    },
  );
});
