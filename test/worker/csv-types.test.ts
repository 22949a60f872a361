/**
 * Typed CSV columns through the worker: the shipped breast-cancer CSV with extra id-like and passthrough columns
 * whose types output.schema declares. They are written with those types (not as text), empty fields are null, and
 * a record with a value not of its column's type is an INVALID_VALUE error row naming the column and the value,
 * carrying the record's id; the other records are scored as before.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ShardMarker } from '../../src/runs/types.js';
import {
  breastCancerSpec,
  errorLines,
  example,
  parquetOf,
  planWorkerRun,
  runShard,
  sql,
  tempDir,
} from './helpers.js';

const ROWS = 200;
/** Row index -> the extra fields that make it bad or empty. */
const BAD = new Map<number, { column: string; value: string }>([
  [10, { column: 'age', value: 'unknown' }],
  [20, { column: 'bmi', value: 'n/a' }],
  [30, { column: 'smoker', value: 'maybe' }],
  [45, { column: 'visits', value: '12.5' }],
]);
const EMPTY = new Map<number, string>([
  [40, 'age'],
  [50, 'smoker'],
  [60, 'bmi'],
]);

let tmp: { dir: string; cleanup: () => void };
let marker: ShardMarker;
const extra: { id: string; age: string; visits: string; bmi: string; smoker: string }[] = [];

beforeAll(async () => {
  tmp = tempDir('csv-types-');
  const lines = readFileSync(path.join(example, 'data/breast_cancer.csv'), 'utf8').trim().split('\n');
  const out = [`${lines[0]},age,visits,bmi,smoker`];
  for (let i = 0; i < ROWS; i++) {
    const row = {
      id: lines[i + 1]!.split(',')[0]!,
      age: String(30 + (i % 50)),
      // Beyond 2^53 on some rows: a bigint column keeps every digit.
      visits: i % 7 === 0 ? String(2n ** 60n + BigInt(i)) : String(i * 3),
      bmi: (18 + (i % 17) * 0.75).toFixed(2),
      smoker: ['true', 'false', 'yes', 'no', '1', '0'][i % 6]!,
    };
    const bad = BAD.get(i);
    if (bad) row[bad.column as 'age'] = bad.value;
    const empty = EMPTY.get(i);
    if (empty) row[empty as 'age'] = '';
    extra.push(row);
    out.push(`${lines[i + 1]},${row.age},${row.visits},${row.bmi},"${row.smoker}"`);
  }
  const input = path.join(tmp.dir, 'in');
  mkdirSync(input, { recursive: true });
  writeFileSync(path.join(input, 'patients.csv'), `${out.join('\n')}\n`);

  const spec = breastCancerSpec(input, path.join(tmp.dir, 'out'), { batchSize: 32 });
  const planned = await planWorkerRun({
    ...spec,
    output: {
      ...spec.output,
      passthrough: ['diagnosis', 'age', 'visits', 'bmi', 'smoker'],
      schema: {
        patient_id: 'string',
        diagnosis: 'string',
        age: 'int',
        visits: 'bigint',
        bmi: 'double',
        smoker: 'boolean',
        label: 'string',
        score: 'float',
      },
    },
  });
  marker = await runShard(planned);
});
afterAll(() => tmp.cleanup());

describe('typed CSV passthrough columns', () => {
  it('are written with their declared types, empty fields as null', async () => {
    expect(marker.records).toBe(ROWS);
    expect(marker.predictions).toBe(ROWS - BAD.size);
    const types = await sql<{ column_name: string; column_type: string }>(
      `DESCRIBE SELECT patient_id, diagnosis, age, visits, bmi, smoker FROM ${parquetOf(marker)}`,
    );
    expect(Object.fromEntries(types.map((t) => [t.column_name, t.column_type]))).toEqual({
      patient_id: 'VARCHAR',
      diagnosis: 'VARCHAR',
      age: 'INTEGER',
      visits: 'BIGINT',
      bmi: 'DOUBLE',
      smoker: 'BOOLEAN',
    });
    expect(marker.columns).toMatchObject({ age: 'int', visits: 'bigint', bmi: 'double', smoker: 'boolean' });
    const rows = await sql<{
      patient_id: string;
      age: number | null;
      visits: bigint | null;
      bmi: number | null;
      smoker: boolean | null;
    }>(`SELECT patient_id, age, visits, bmi, smoker FROM ${parquetOf(marker)} ORDER BY _offset`);
    const good = extra.filter((_, i) => !BAD.has(i));
    expect(rows.map((r) => r.patient_id)).toEqual(good.map((e) => e.id));
    rows.forEach((r, k) => {
      const e = good[k]!;
      expect(r.age).toBe(e.age === '' ? null : Number(e.age));
      expect(r.visits === null ? null : BigInt(r.visits)).toBe(e.visits === '' ? null : BigInt(e.visits));
      expect(r.bmi).toBe(e.bmi === '' ? null : Number(e.bmi));
      expect(r.smoker).toBe(e.smoker === '' ? null : ['true', 'yes', '1'].includes(e.smoker));
    });
  });

  it('makes a value not of its type an INVALID_VALUE error row naming column and value, with the id', () => {
    expect(marker.errorsByReason).toEqual({ INVALID_VALUE: BAD.size });
    const errors = errorLines(marker).map((l) => JSON.parse(l) as Record<string, unknown>);
    // The id under the declared input.id name (patient_id), as in the prediction rows; no `id` key (issue 17).
    expect(errors.map((e) => e.patient_id)).toEqual([...BAD.keys()].map((i) => extra[i]!.id));
    expect(errors.every((e) => !('id' in e))).toBe(true);
    errors.forEach((e, k) => {
      const { column, value } = [...BAD.values()][k]!;
      expect(e.reason).toBe('INVALID_VALUE');
      expect(e.message).toContain(`column "${column}" value "${value}" is not`);
    });
  });
});
