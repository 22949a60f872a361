/** The worker's tuning variables, as `batch-infer run` checks them before starting workers that inherit them. */
import { describe, expect, it } from '@jest/globals';
import {
  CHECKPOINT_CLOCK_ENV,
  CHUNK_RECORDS_ENV,
  CORES_ENV,
  DECODE_THREADS_ENV,
  MEMORY_BUDGET_ENV,
  PARQUET_READER_ENV,
  workerTuningIssues,
  workerTuningSchema,
} from '../../src/worker/env.js';

describe('workerTuningIssues', () => {
  it('accepts valid values and no values; an empty variable counts as unset, not as 0', () => {
    expect(workerTuningIssues({})).toEqual([]);
    expect(
      workerTuningIssues({
        [DECODE_THREADS_ENV]: '0',
        [CHUNK_RECORDS_ENV]: '1000',
        [MEMORY_BUDGET_ENV]: '512.5',
        [CHECKPOINT_CLOCK_ENV]: 'file:///clock.mjs',
        [CORES_ENV]: '2',
        [PARQUET_READER_ENV]: 'hyparquet',
      }),
    ).toEqual([]);
    expect(workerTuningIssues({ [PARQUET_READER_ENV]: 'duckdb' })).toEqual([]);
    expect(workerTuningIssues({ [DECODE_THREADS_ENV]: '' })).toEqual([]);
    expect(workerTuningSchema.parse({ [DECODE_THREADS_ENV]: '' })[DECODE_THREADS_ENV]).toBeUndefined();
    expect(workerTuningSchema.parse({ [DECODE_THREADS_ENV]: '3' })[DECODE_THREADS_ENV]).toBe(3);
  });

  it('names each bad variable, its value and what it must be', () => {
    const threads = 'must be a whole number of threads from 0 to 64 (0 decodes on the main thread)';
    for (const value of ['lots', '2.5', '-1', '65']) {
      expect(workerTuningIssues({ [DECODE_THREADS_ENV]: value })).toEqual([
        `${DECODE_THREADS_ENV}=${JSON.stringify(value)}: ${threads}`,
      ]);
    }
    for (const value of ['0', '1.5', 'two', '1025']) {
      expect(workerTuningIssues({ [CORES_ENV]: value })).toEqual([
        `${CORES_ENV}=${JSON.stringify(value)}: must be a whole number of cores from 1 to 1024`,
      ]);
    }
    expect(
      workerTuningIssues({
        [CHUNK_RECORDS_ENV]: '0',
        [MEMORY_BUDGET_ENV]: 'x',
        [CHECKPOINT_CLOCK_ENV]: 'nope',
        [PARQUET_READER_ENV]: 'arrow',
      }),
    ).toEqual([
      `${MEMORY_BUDGET_ENV}="x": must be a number of MiB`,
      `${CHUNK_RECORDS_ENV}="0": must be a whole number of records above 0`,
      `${CHECKPOINT_CLOCK_ENV}="nope": must be the URL of a module exporting now()`,
      `${PARQUET_READER_ENV}="arrow": must be duckdb or hyparquet`,
    ]);
  });
});
