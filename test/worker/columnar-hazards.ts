/**
 * A breast-cancer CSV whose every third record is unusual in one of the ways the columnar decoder must hand to the
 * record path or turn into an error row: so every decode block of more than a few lines holds an error row, and
 * blocks cut after a quoted line break happen often. Shared by the columnar stream and worker tests.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { example } from './helpers.js';

/** What record i (0-based) is, when it is unusual; `undefined`: a plain record. */
export type Hazard =
  | 'not-a-number'
  | 'missing'
  | 'spaces'
  | 'quoted-id'
  | 'quoted-break'
  | 'field-count'
  | 'not-utf8'
  | 'long-decimal'
  | 'exponent'
  | 'crlf'
  | 'trailing-comma'
  | 'bad-typed-id';

const HAZARDS: readonly Hazard[] = [
  'not-a-number',
  'missing',
  'spaces',
  'quoted-id',
  'quoted-break',
  'field-count',
  'not-utf8',
  'long-decimal',
  'exponent',
  'crlf',
  'trailing-comma',
  'bad-typed-id',
];

export function hazardOf(i: number): Hazard | undefined {
  return i % 3 === 1 ? HAZARDS[Math.floor(i / 3) % HAZARDS.length] : undefined;
}

/** The CSV bytes: header `patient_id,<30 features>,diagnosis,visits`; `visits` is an int passthrough column. */
export function hazardousCsv(rows: number): Buffer {
  const source = readFileSync(path.join(example, 'data/breast_cancer.csv'), 'utf8').trim().split('\n');
  const header = `${source[0]!},visits`;
  const parts: Buffer[] = [Buffer.from(`${header}\n`)];
  for (let i = 0; i < rows; i++) {
    const fields = source[1 + (i % (source.length - 1))]!.split(',');
    fields[0] = `P${String(i).padStart(5, '0')}`;
    let visits = String(i % 40);
    let end = '\n';
    switch (hazardOf(i)) {
      case 'not-a-number':
        fields[3] = 'abc';
        break;
      case 'missing':
        fields[5] = '';
        break;
      case 'spaces':
        fields[2] = ` ${fields[2]!} `;
        break;
      case 'quoted-id':
        fields[0] = `"P,${i}"`;
        break;
      case 'quoted-break':
        fields[31] = `"B\nline two of ${i}"`;
        break;
      case 'field-count':
        fields.pop();
        break;
      case 'not-utf8':
        fields[31] = 'M\u0000';
        break;
      case 'long-decimal':
        fields[7] = '0.12345678901234567';
        break;
      case 'exponent':
        fields[8] = '1.5e-3';
        break;
      case 'crlf':
        end = '\r\n';
        break;
      case 'trailing-comma':
        visits = '';
        break;
      case 'bad-typed-id':
        visits = 'many';
        break;
      default:
        break;
    }
    const line = Buffer.from(`${[...fields, visits].join(',')}${end}`);
    // Bytes that are not UTF-8 (0xff) where the marker character is.
    if (hazardOf(i) === 'not-utf8') line[line.indexOf(0)] = 0xff;
    parts.push(line);
  }
  return Buffer.concat(parts);
}

/** Records with an error row: those the record path rejects (the tests check the reasons from both paths). */
export const ERROR_HAZARDS: ReadonlySet<Hazard> = new Set([
  'not-a-number',
  'missing',
  'field-count',
  'not-utf8',
  'bad-typed-id',
]);
