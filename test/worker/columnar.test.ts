/**
 * The worker on the columnar path (CSV into a tabular model, decoded on threads) against the record path, on a CSV
 * whose every third record is unusual (columnar-hazards.ts): the same prediction rows (every column, lineage
 * included), the same error rows, the same counts and input summaries; and a shard interrupted between two
 * checkpoints in the middle of a decode block resumes to exactly the uninterrupted record path's output.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ShardMarker } from '../../src/runs/types.js';
import { WorkerInterruptedError, type WorkerDeps } from '../../src/worker/run-shard.js';
import { expectIn } from '../support/expect-in.js';
import { hazardousCsv } from './columnar-hazards.js';
import {
  breastCancerSpec,
  comparableMarker,
  errorLines,
  expectSameOutput,
  planWorkerRun,
  readCheckpointFile,
  roundedSums,
  runShard,
  tempDir,
} from './helpers.js';

const ROWS = 600;
let tmp: { dir: string; cleanup: () => void };
let input: string;
let recordPath: ShardMarker;

const spec = (out: string): ReturnType<typeof breastCancerSpec> => {
  const base = breastCancerSpec(input, path.join(tmp.dir, out), { batchSize: 32 });
  return {
    ...base,
    output: {
      ...base.output,
      passthrough: ['diagnosis', 'visits'],
      schema: { ...base.output.schema, visits: 'int' },
    },
  };
};

/** Small chunks, so that checkpoints fall inside decode blocks. */
const CHUNK = 96;

async function run(out: string, deps: Partial<WorkerDeps>): Promise<ShardMarker> {
  return runShard(await planWorkerRun(spec(out)), { chunkRecords: CHUNK, ...deps });
}

beforeAll(async () => {
  tmp = tempDir('columnar-worker-');
  input = path.join(tmp.dir, 'in');
  mkdirSync(input, { recursive: true });
  writeFileSync(path.join(input, 'hazards.csv'), hazardousCsv(ROWS));
  recordPath = await run('records', { columnar: false });
});
afterAll(() => tmp.cleanup());

describe('the worker on the columnar path', () => {
  it('the record path scores the input with error rows of each kind', () => {
    expect(recordPath.records).toBe(ROWS);
    expect(Object.keys(recordPath.errorsByReason).sort()).toEqual([
      'DECODE_ERROR',
      'INVALID_VALUE',
      'MISSING_VALUE',
    ]);
    expect(recordPath.inputSummaries).toBeDefined();
  });

  it.each([
    ['on the main thread', { decodeThreads: 0 }],
    ['on three threads, blocks of a few lines', { decodeThreads: 3, decodeBlockBytes: 900 }],
  ])('writes exactly what the record path writes: %s', async (name, deps) => {
    const marker = await run(`columnar-${deps.decodeThreads}`, deps);
    expectIn(comparableMarker(marker), name).toEqual(comparableMarker(recordPath));
    expect(await expectSameOutput(recordPath, marker)).toEqual({
      rows: recordPath.predictions,
      differences: 0,
    });
    expect(errorLines(marker)).toEqual(errorLines(recordPath));
  });

  it('resumes from a checkpoint taken inside a decode block exactly', async () => {
    // Blocks of at least 40,000 bytes hold ~160 records of ~245 bytes each; chunks (and checkpoints) end every 96
    // records, so the checkpoint the stop leaves (after 96, 192 or 288 records) lies inside a block, and the
    // resumed range starts in the middle of one.
    const deps = { decodeThreads: 3, decodeBlockBytes: 40_000 };
    const planned = await planWorkerRun(spec('resumed'));
    const stop = new AbortController();
    await expect(
      runShard(planned, {
        ...deps,
        chunkRecords: CHUNK,
        signal: stop.signal,
        onProgress: (p) => {
          if (p.records >= 250) stop.abort();
        },
      }),
    ).rejects.toBeInstanceOf(WorkerInterruptedError);
    const checkpoint = await readCheckpointFile(planned);
    expect(checkpoint?.records).toBeGreaterThanOrEqual(CHUNK);
    expect(checkpoint!.records).toBeLessThan(ROWS);
    const resumed = await runShard(planned, { ...deps, chunkRecords: CHUNK });
    expect(resumed.resume?.resumedChunks).toBeGreaterThan(0);
    expect(resumed.resume?.attempts).toBe(2);
    // The interruption seals a shorter chunk, so the summaries' sums are added in another grouping: equal up to
    // the last bits of a double. Everything else is exact.
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
