/**
 * The columnar stream (src/worker/columnar-stream.ts) against the record path it replaces, batch by batch: the same
 * records in the same order (identity columns, `_source`, `_offset`), the same error rows with the same reasons and
 * messages, bit-identical tensors, whether decoded on this thread or on three threads over blocks of a few lines
 * (blocks cut after quoted line breaks included), across several ranges, and resumed inside a range.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ColumnarPlan } from '../../src/formats/csv-columnar.js';
import type { CsvReadOptions } from '../../src/formats/csv.js';
import { QuotedBreakAtBoundaryError } from '../../src/formats/lines.js';
import { createFeatureBuilder } from '../../src/inference/features.js';
import type { InputRange } from '../../src/runs/types.js';
import type { TabularInputSpec } from '../../src/spec/model-io.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import {
  ColumnarStream,
  defaultDecodeThreads,
  type ColumnarShardBatch,
} from '../../src/worker/columnar-stream.js';
import { RecordStream, type StreamRange } from '../../src/worker/record-stream.js';
import { expectIn } from '../support/expect-in.js';
import { ERROR_HAZARDS, hazardOf, hazardousCsv } from './columnar-hazards.js';
import { breastCancerColumns, tempDir } from './helpers.js';

const ROWS = 300;
const BATCH = 32;
const store = new LocalObjectStore();
let tmp: { dir: string; cleanup: () => void };
let uri: string;
let size: number;

const entries: TabularInputSpec[] = [
  { tensor: 'features', dtype: 'float32', missing: 'error', from: { columns: breastCancerColumns() } },
  {
    tensor: 'extra',
    dtype: 'float64',
    missing: { fill: -1 },
    from: { columns: ['mean_texture', 'mean_area'] },
  },
  // A typed identity column used as a feature too: its value is the typed one.
  { tensor: 'visits', dtype: 'int32', missing: { fill: 0 }, from: { columns: ['visits'] } },
];
const plan: ColumnarPlan = {
  entries,
  identity: ['patient_id', 'diagnosis', 'visits'],
  types: { visits: 'int' },
};
const features = createFeatureBuilder(entries, [
  { name: 'features', type: 'float32', shape: ['batch', 30] },
  { name: 'extra', type: 'float64', shape: ['batch', 2] },
  { name: 'visits', type: 'int32', shape: ['batch', 1] },
]);

beforeAll(() => {
  tmp = tempDir('columnar-stream-');
  mkdirSync(tmp.dir, { recursive: true });
  const file = path.join(tmp.dir, 'hazards.csv');
  const bytes = hazardousCsv(ROWS);
  writeFileSync(file, bytes);
  uri = pathToFileURL(file).href;
  size = bytes.length;
});
afterAll(() => tmp.cleanup());

interface Row {
  readonly source: string;
  readonly offset: number;
  readonly range: number;
  readonly error?: string;
  readonly values?: Record<string, unknown>;
}

/** The record path: RecordStream, then the feature builder; rows and the tensors' bytes per batch. */
async function reference(ranges: StreamRange[]): Promise<{ rows: Row[]; tensors: string[] }> {
  const options: CsvReadOptions = {
    batchSize: 1024,
    columns: [...new Set([...plan.identity, ...entries.flatMap((e) => e.from.columns)])],
    numeric: breastCancerColumns(),
    types: { visits: 'int' },
  };
  const stream = new RecordStream(store, 'csv', ranges, options);
  const rows: Row[] = [];
  const tensors: string[] = [];
  for (let batch = await stream.take(BATCH); batch; batch = await stream.take(BATCH)) {
    const decoded = batch.records.flatMap((r, i) => (r.error ? [] : [{ r, i }]));
    const built = await features.build(decoded.map((d) => d.r));
    const issues = new Map(built.issues.map((issue) => [decoded[issue.index]!.i, issue]));
    batch.records.forEach((r, i) => {
      const issue = r.error ?? issues.get(i);
      const identity = Object.fromEntries(plan.identity.map((c) => [c, r.values?.[c]]));
      rows.push({
        source: r.source,
        offset: r.offset,
        range: batch.ranges[i]!,
        ...(issue ? { error: `${issue.reason}: ${issue.message}` } : { values: identity }),
      });
    });
    tensors.push(tensorBytes(built.feeds));
  }
  await stream.close();
  return { rows, tensors };
}

async function columnar(
  ranges: StreamRange[],
  threads: number,
  blockBytes: number,
): Promise<{ rows: Row[]; tensors: string[]; errorRowsByThread: number[]; restarts: number }> {
  const stream = new ColumnarStream(store, ranges, plan, { threads, blockBytes });
  const rows: Row[] = [];
  const tensors: string[] = [];
  try {
    for (let batch = await stream.take(BATCH); batch; batch = await stream.take(BATCH)) {
      rows.push(...rowsOf(batch));
      tensors.push(tensorBytes(stream.prepare(batch).feeds));
    }
    return {
      rows,
      tensors,
      errorRowsByThread: stream.stats.errorRowsByThread,
      restarts: stream.stats.restarts,
    };
  } finally {
    await stream.close();
  }
}

/**
 * The rows of a columnar batch, identity values from the batch's columns (what the writer appends); each record's
 * `values`, built from those columns when read, must say the same.
 */
function rowsOf(batch: ColumnarShardBatch): Row[] {
  return batch.records.map((r, i) => {
    if (r.error) {
      return {
        source: r.source,
        offset: r.offset,
        range: batch.ranges[i]!,
        error: `${r.error.reason}: ${r.error.message}`,
      };
    }
    const values = Object.fromEntries(plan.identity.map((c) => [c, batch.columnar.identity.get(c)![i]]));
    expectIn(r.values, { record: r.offset, values: 'built from the columns' }).toEqual(values);
    return { source: r.source, offset: r.offset, range: batch.ranges[i]!, values };
  });
}

/** Every tensor's type, dims and bytes, as one comparable text. */
function tensorBytes(
  feeds: Record<string, { type: string; dims: readonly number[]; data: unknown }>,
): string {
  return Object.keys(feeds)
    .sort()
    .map((name) => {
      const t = feeds[name]!;
      const data = t.data as Float32Array;
      return `${name}:${t.type}:${t.dims.join('x')}:${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64')}`;
    })
    .join('|');
}

const whole = (): StreamRange[] => [{ index: 0, range: { uri, start: 0, end: size, size } as InputRange }];

describe('the columnar stream', () => {
  it('the input has every hazard, and error rows from both kinds of source', async () => {
    const { rows } = await reference(whole());
    expect(rows).toHaveLength(ROWS);
    expect(rows.map((r) => r.error !== undefined)).toEqual(
      rows.map((_, i) => ERROR_HAZARDS.has(hazardOf(i)!)),
    );
    const errors = rows.filter((r) => r.error !== undefined);
    expect(new Set(errors.map((e) => e.error!.split(':')[0]))).toEqual(
      new Set(['INVALID_VALUE', 'MISSING_VALUE', 'DECODE_ERROR']),
    );
  });

  it.each([
    ['on this thread', 0, 1024 * 1024],
    ['on three threads, blocks of a few lines', 3, 700],
    ['on two threads, blocks of one line', 2, 1],
  ])(
    'makes exactly the records, error rows and tensors of the record path: %s',
    async (_, threads, block) => {
      const expected = await reference(whole());
      const got = await columnar(whole(), threads, block);
      expect(got.rows).toHaveLength(expected.rows.length);
      got.rows.forEach((row, i) =>
        expectIn(row, { record: i, hazard: hazardOf(i) }).toEqual(expected.rows[i]),
      );
      expect(got.tensors).toEqual(expected.tensors);
      // Blocks of one line: every quoted line break ends a block inside its record, and decoding goes on from it.
      if (block === 1) expectIn(got.restarts, 'restarts after a quoted line break').toBeGreaterThan(0);
    },
  );

  it('brings error rows back from every thread, in input order', async () => {
    // Every third record is unusual and a block holds several lines: each thread decodes error rows.
    const got = await columnar(whole(), 3, 2000);
    expect(got.errorRowsByThread).toHaveLength(3);
    for (const count of got.errorRowsByThread) expect(count).toBeGreaterThan(0);
    const offsets = got.rows.map((r) => r.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
  });

  it('reads several ranges of one object in order, each line once, and resumes after an offset', async () => {
    // Plain lines only (no quoted line break to cross a range boundary): the first 40% of the records.
    const plainEnd = (await reference(whole())).rows[Math.floor(ROWS * 0.4)]!.offset;
    const cuts = [0, 1500, 1501, 4999, plainEnd];
    const ranges = (after?: number): StreamRange[] =>
      cuts.slice(1).map((end, k) => ({
        index: k,
        range: { uri, start: cuts[k]!, end, size } as InputRange,
        ...(k === 2 && after !== undefined ? { after } : {}),
      }));
    const expected = await reference(ranges());
    expect(expected.rows.length).toBeGreaterThan(100);
    expect((await columnar(ranges(), 3, 300)).rows).toEqual(expected.rows);
    // Resuming inside range 2 after a record in the middle of a block: the records after it, as the record path.
    const inRange2 = expected.rows.filter((r) => r.range === 2);
    const after = inRange2[Math.floor(inRange2.length / 2)]!.offset;
    const resumed = await reference(ranges(after));
    expect(resumed.rows.length).toBeLessThan(expected.rows.length);
    expect((await columnar(ranges(after), 3, 300)).rows).toEqual(resumed.rows);
  });

  it('fails a record with a quoted line break across the range end as the record path does', async () => {
    const rows = (await reference(whole())).rows;
    const quoted = rows.findIndex((_, i) => hazardOf(i) === 'quoted-break');
    // The range ends just after the quoted line break, inside the record.
    const line = hazardousCsv(ROWS).indexOf('"B\nline two', rows[quoted]!.offset);
    const range: StreamRange[] = [{ index: 0, range: { uri, start: 0, end: line + 3, size } as InputRange }];
    await expect(reference(range)).rejects.toBeInstanceOf(QuotedBreakAtBoundaryError);
    await expect(columnar(range, 2, 500)).rejects.toBeInstanceOf(QuotedBreakAtBoundaryError);
    await expect(columnar(range, 0, 500)).rejects.toBeInstanceOf(QuotedBreakAtBoundaryError);
  });
});

describe('the default number of decode threads', () => {
  const ranges = (...lengths: number[]): StreamRange[] =>
    lengths.map((n, index) => ({ index, range: { uri, start: 100, end: 100 + n, size: 1e9 } as InputRange }));

  it('is none for a shard of one block (decoded on the main thread), else one per core, at most one per block', () => {
    expect(defaultDecodeThreads(ranges(400, 600), 1000)).toBe(0);
    expect(defaultDecodeThreads(ranges(400, 601), 1000)).toBe(Math.min(2, os.availableParallelism()));
    expect(defaultDecodeThreads(ranges(50_000), 1000)).toBe(Math.min(8, os.availableParallelism()));
  });

  it('is one per core of the share the process was given (BATCH_INFER_CORES), never none for several blocks', () => {
    expect(defaultDecodeThreads(ranges(50_000), 1000, 3)).toBe(3);
    expect(defaultDecodeThreads(ranges(50_000), 1000, 1)).toBe(1);
    expect(defaultDecodeThreads(ranges(50_000), 1000, 0)).toBe(1);
    expect(defaultDecodeThreads(ranges(2_500), 1000, 6)).toBe(3);
    expect(defaultDecodeThreads(ranges(50_000), 1000, 64)).toBe(8);
    expect(defaultDecodeThreads(ranges(900), 1000, 4)).toBe(0);
  });
});
