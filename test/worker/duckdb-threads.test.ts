/**
 * A worker told its share of the cores (BATCH_INFER_CORES, WorkerDeps.cores: the local pool's share) runs DuckDB, its
 * Parquet writer and reader, on that many threads rather than one per core of the machine. Its own file: DuckDB is
 * one instance per process (per test file here), configured before its first use.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { writerDatabase } from '../../src/formats/parquet-chunk-writer.js';
import { breastCancerInput, breastCancerSpec, planWorkerRun, runShard, tempDir } from './helpers.js';

describe('the worker on its share of the cores', () => {
  const tmp = tempDir('duckdb-threads-');
  afterAll(() => tmp.cleanup());

  it('gives DuckDB as many threads as it was given cores', async () => {
    const input = path.join(tmp.dir, 'in');
    await breastCancerInput(input, 2_000);
    const planned = await planWorkerRun(breastCancerSpec(input, path.join(tmp.dir, 'out')));
    const marker = await runShard(planned, { cores: 1 });
    expect(marker.predictions).toBeGreaterThan(0);
    const connection = await (await writerDatabase()).connect();
    try {
      const reader = await connection.runAndReadAll("select current_setting('threads') as threads");
      expect(Number(reader.getRowObjectsJS()[0]?.threads)).toBe(1);
    } finally {
      connection.closeSync();
    }
  });
});
