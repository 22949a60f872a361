/**
 * Parquet input on the columnar path (src/formats/parquet-columnar.ts: column chunks into typed arrays, no record
 * objects) against the record path, on two files of several row groups whose feature columns hold the values a
 * Parquet input can bring: nulls, NaN and infinities, an INT64 column (bigint values), a VARCHAR column with numbers,
 * text and empty strings; identity columns with nulls and an INTEGER passthrough. The same prediction rows (every
 * column, lineage included), error rows, counts and input summaries; and a shard interrupted between two
 * checkpoints resumes to exactly the record path's output.
 */
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DuckDBInstance } from '@duckdb/node-api';
import type { ShardMarker } from '../../src/runs/types.js';
import { WorkerInterruptedError, type WorkerDeps } from '../../src/worker/run-shard.js';
import { expectIn } from '../support/expect-in.js';
import {
  breastCancerColumns,
  breastCancerSpec,
  comparableMarker,
  captureLog,
  errorLines,
  expectSameOutput,
  planWorkerRun,
  readCheckpointFile,
  roundedSums,
  runShard,
  startWorker,
  tempDir,
} from './helpers.js';
import { PARQUET_READER_ENV } from '../../src/worker/env.js';

/** Rows per file; DuckDB cuts row groups of 2,048 rows, so each file has three. */
const ROWS = 5_000;
const CHUNK = 1_500;
let tmp: { dir: string; cleanup: () => void };
let input: string;
let recordPath: ShardMarker;

const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/**
 * A feature column's SQL over row number `i` (and the file number `f`). `numeric`: every column DOUBLE (nulls, NaN
 * and infinities among the numbers), the case where most rows go from the columns straight into the block.
 */
function feature(k: number, numeric: boolean): string {
  if (numeric && k === 1) return 'CASE WHEN i % 53 = 2 THEN NULL ELSE ((i + f) % 13)::DOUBLE END';
  if (numeric && k === 2) return "CASE WHEN i % 59 = 4 THEN '-inf'::DOUBLE ELSE (i * 0.5)::DOUBLE END";
  switch (k) {
    case 0:
      return 'CASE WHEN i % 37 = 3 THEN NULL ELSE (i * 0.37) % 20 END::DOUBLE';
    case 1:
      return '((i + f) % 13)::BIGINT';
    case 2:
      return "CASE WHEN i % 41 = 5 THEN 'abc' WHEN i % 43 = 6 THEN '' WHEN i % 47 = 8 THEN ' 2.5 ' ELSE (i * 0.5)::VARCHAR END";
    case 3:
      return "CASE WHEN i % 61 = 9 THEN 'nan'::DOUBLE WHEN i % 67 = 10 THEN 'inf'::DOUBLE ELSE i * 1.25 END";
    default:
      return `((i * ${k} + f) * 0.013)::DOUBLE`;
  }
}

async function writeInput(dir: string, numeric = false): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  try {
    const features = breastCancerColumns().map((c, k) => `${feature(k, numeric)} AS ${c}`);
    for (const f of [0, 1]) {
      await connection.run(
        `COPY (SELECT CASE WHEN i % 50 = 7 THEN NULL ELSE 'P' || (i + ${f * ROWS}) END AS patient_id, ` +
          `CASE WHEN i % 2 = 0 THEN 'M' WHEN i % 97 = 1 THEN NULL ELSE 'B' END AS diagnosis, ` +
          `(i % 9)::INTEGER AS visits, ${features.join(', ')} ` +
          `FROM (SELECT range AS i, ${f} AS f FROM range(${ROWS}))) ` +
          `TO ${q(path.join(dir, `part-${f}.parquet`))} (FORMAT parquet, ROW_GROUP_SIZE 2048)`,
      );
    }
  } finally {
    connection.closeSync();
    db.closeSync();
  }
}

const spec = (out: string, from = input): ReturnType<typeof breastCancerSpec> => {
  const base = breastCancerSpec(from, path.join(tmp.dir, out), { batchSize: 500 });
  return {
    ...base,
    input: { ...base.input, format: 'parquet' },
    output: {
      ...base.output,
      passthrough: ['diagnosis', 'visits'],
      schema: { ...base.output.schema, visits: 'int' },
    },
  };
};

async function run(out: string, deps: Partial<WorkerDeps>, from = input): Promise<ShardMarker> {
  return runShard(await planWorkerRun(spec(out, from)), { chunkRecords: CHUNK, ...deps });
}

beforeAll(async () => {
  tmp = tempDir('parquet-columnar-');
  input = path.join(tmp.dir, 'in');
  await writeInput(input);
  const captured = captureLog();
  recordPath = await run('records', { columnar: false, log: captured.log });
  expect(captured.lines.find((l) => l.message === 'reading')?.fields).toMatchObject({ path: 'records' });
});
afterAll(() => tmp.cleanup());

describe('Parquet input on the columnar path', () => {
  it('the record path scores both files, with error rows for missing and invalid values', () => {
    expect(recordPath.records).toBe(2 * ROWS);
    expect(Object.keys(recordPath.errorsByReason).sort()).toEqual(['INVALID_VALUE', 'MISSING_VALUE']);
    expect(recordPath.predictions).toBeGreaterThan(ROWS);
    expect(recordPath.inputSummaries).toBeDefined();
  });

  it.each([
    ['DuckDB (local files, the default)', {}, { duckdb: 2, hyparquet: 0 }],
    ['hyparquet (nativeParquet: false)', { nativeParquet: false }, { duckdb: 0, hyparquet: 2 }],
  ] as const)('writes exactly what the record path writes, read by %s', async (name, deps, ranges) => {
    const captured = captureLog();
    const marker = await run(`columnar-${ranges.duckdb}`, { ...deps, log: captured.log });
    const reading = captured.lines.find((l) => l.message === 'reading');
    // Decoded on the main thread; with another core, a decode thread counts the input summaries.
    expect(reading?.fields).toMatchObject({
      path: 'columnar',
      format: 'parquet',
      decodeThreads: 0,
      summariesOnThread: os.availableParallelism() > 1,
    });
    const complete = captured.lines.find((l) => l.message === 'shard complete');
    expect(complete?.fields).toMatchObject({ parquetRanges: ranges });
    expectIn(comparableMarker(marker), name).toEqual(comparableMarker(recordPath));
    expect(await expectSameOutput(recordPath, marker)).toEqual({
      rows: recordPath.predictions,
      differences: 0,
    });
    expect(errorLines(marker)).toEqual(errorLines(recordPath));
  });

  it('BATCH_INFER_PARQUET_READER=hyparquet makes the worker process read through hyparquet', async () => {
    for (const [reader, ranges] of [
      ['hyparquet', { duckdb: 0, hyparquet: 2 }],
      ['', { duckdb: 2, hyparquet: 0 }],
    ] as const) {
      const planned = await planWorkerRun(spec(`env-${reader || 'default'}`));
      const worker = startWorker(planned.runUri, { [PARQUET_READER_ENV]: reader });
      const exit = await worker.exited;
      expectIn(exit.code, worker.output()).toBe(0);
      const complete = worker
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .find((line) => line.message === 'shard complete');
      expectIn(complete?.parquetRanges, reader || 'unset').toEqual(ranges);
    }
  });

  it('resumes from a checkpoint inside a row group exactly', async () => {
    const planned = await planWorkerRun(spec('resumed'));
    const stop = new AbortController();
    await expect(
      runShard(planned, {
        chunkRecords: CHUNK,
        signal: stop.signal,
        onProgress: (p) => {
          if (p.records >= 2_500) stop.abort();
        },
      }),
    ).rejects.toBeInstanceOf(WorkerInterruptedError);
    const checkpoint = await readCheckpointFile(planned);
    // The checkpoint lies inside a row group (groups start at 0, 2,048 and 4,096 of each file).
    expect(checkpoint?.records).toBeGreaterThanOrEqual(CHUNK);
    expect(checkpoint!.records % 2_048).not.toBe(0);
    const resumed = await runShard(planned, { chunkRecords: CHUNK });
    expect(resumed.resume?.resumedChunks).toBeGreaterThan(0);
    expectIn(roundedSums(comparableMarker(resumed)), 'resumed').toEqual(
      roundedSums(comparableMarker(recordPath)),
    );
    expect(await expectSameOutput(recordPath, resumed)).toEqual({
      rows: recordPath.predictions,
      differences: 0,
    });
    expect(errorLines(resumed)).toEqual(errorLines(recordPath));
  });
});

describe('Parquet input whose feature columns are all numbers', () => {
  let numeric: string;
  let records: ShardMarker;
  beforeAll(async () => {
    numeric = path.join(tmp.dir, 'in-numeric');
    await writeInput(numeric, true);
    records = await run('numeric-records', { columnar: false }, numeric);
  });

  it('takes the rows of plain numbers from the columns, the others as before: exactly the record path', async () => {
    expect(records.records).toBe(2 * ROWS);
    expect(Object.keys(records.errorsByReason).sort()).toEqual(['INVALID_VALUE', 'MISSING_VALUE']);
    // Summaries counted on a decode thread (the default with two cores), and on this thread (no decode threads).
    for (const [name, deps] of [
      ['thread', { cores: 2 }],
      ['main', { decodeThreads: 0 }],
    ] as const) {
      const captured = captureLog();
      const marker = await run(`numeric-columnar-${name}`, { ...deps, log: captured.log }, numeric);
      const reading = captured.lines.find((l) => l.message === 'reading');
      expect(reading?.fields).toMatchObject({ summariesOnThread: name === 'thread' });
      expectIn(comparableMarker(marker), deps).toEqual(comparableMarker(records));
      expect(await expectSameOutput(records, marker)).toEqual({ rows: records.predictions, differences: 0 });
      expect(errorLines(marker)).toEqual(errorLines(records));
    }
  });
});
