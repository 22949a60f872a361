/**
 * CSV numeric columns (`numeric` option): fields parsed to numbers straight from the bytes must be exactly the
 * double `Number(text)` gives; anything the fast parser does not take must come back as the text, unchanged.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { readCsv } from '../../src/formats/csv.js';
import type { SourceRecord } from '../../src/formats/records.js';
import { byteRange, collect, tempDir, type TempDir } from './helpers.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(async () => {
  await tmp.cleanup();
});

async function readColumn(fields: readonly string[], numeric = true): Promise<unknown[]> {
  const text = `id,x\n${fields.map((f, i) => `r${i},${f}`).join('\n')}\n`;
  const { uri, size } = await tmp.write(`n-${Math.random().toString(36).slice(2)}.csv`, text);
  const batches = readCsv(tmp.store, byteRange(uri, size, 0, size), {
    batchSize: 1000,
    ...(numeric ? { numeric: ['x'] } : {}),
  });
  const records: SourceRecord[] = await collect(batches);
  return records.map((r) => r.values?.x);
}

const decimal = fc
  .tuple(
    fc.constantFrom('', '-', '+'),
    fc.stringMatching(/^[0-9]{0,20}$/),
    fc.option(fc.stringMatching(/^[0-9]{0,20}$/)),
    fc.option(
      fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '-', '+'), fc.integer({ min: 0, max: 400 })),
    ),
  )
  .map(
    ([sign, int, frac, exp]) =>
      `${sign}${int}${frac === null ? '' : `.${frac}`}${exp ? `${exp[0]}${exp[1]}${exp[2]}` : ''}`,
  );

describe('CSV numeric columns', () => {
  it('a number where the text is a plain decimal, equal to Number(text); the text otherwise', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(decimal, fc.double({ noNaN: true }).map(String)), { minLength: 1, maxLength: 50 }),
        async (fields) => {
          const values = await readColumn(fields);
          values.forEach((v, i) => {
            const text = fields[i]!;
            if (text === '') expect(v).toBeNull();
            else if (typeof v === 'number')
              expectIn(Object.is(v, Number(text)), `${text} -> ${v}`).toBe(true);
            else expect(v).toBe(text);
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('takes the common spellings as numbers, and leaves unusual ones to the tensor builder', async () => {
    const fields = [
      '0',
      '-0',
      '12',
      '-3.25',
      '+7',
      '.5',
      '5.',
      '1e3',
      '1.5E-3',
      '0.000123',
      '123456789012345',
    ];
    const values = await readColumn(fields);
    expect(values.every((v) => typeof v === 'number')).toBe(true);
    expect(Object.is(values[1], -0)).toBe(true);
    expect(values.slice(2)).toEqual([12, -3.25, 7, 0.5, 5, 1000, 0.0015, 0.000123, 123456789012345]);
    const odd = [
      ' 5',
      '0x10',
      'Infinity',
      '1e400',
      '1_000',
      '12345678901234567890',
      '-',
      '.',
      'n/a',
      '1e',
      '"4"',
    ];
    expect(await readColumn(odd)).toEqual([
      ' 5',
      '0x10',
      'Infinity',
      '1e400',
      '1_000',
      '12345678901234567890',
      '-',
      '.',
      'n/a',
      '1e',
      '4',
    ]);
  });

  it('leaves every column as text unless it is listed', async () => {
    expect(await readColumn(['1', '00123', '-2.5'], false)).toEqual(['1', '00123', '-2.5']);
  });
});
