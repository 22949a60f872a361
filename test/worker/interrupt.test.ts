/**
 * Worker processes interrupted mid-shard, as Spot reclaims and timeouts do: SIGKILL (no chance to clean up) and
 * SIGTERM (stop in time, leave a consistent checkpoint, exit as interrupted). The retry must resume after the last
 * checkpointed chunk and end with exactly the rows of an uninterrupted run: none lost, none twice.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardMarker } from '../../src/runs/types.js';
import { CHUNK_RECORDS_ENV, STOP_DEADLINE_MS } from '../../src/worker/env.js';
import {
  breastCancerInput,
  breastCancerSpec,
  errorLines,
  expectSameOutput,
  filesUnder,
  planWorkerRun,
  readCheckpointFile,
  readMarker,
  startWorker,
  tempDir,
  waitFor,
  type PlannedRun,
} from './helpers.js';

const RECORDS = 30_000;
/** Small chunks and batches: many checkpoints, so the interruption lands between two of them. */
const WORKER_ENV = { [CHUNK_RECORDS_ENV]: '1500' };

let tmp: { dir: string; cleanup: () => void };
let inputDir: string;
let uninterrupted: ShardMarker;

const spec = (out: string) => breastCancerSpec(inputDir, path.join(tmp.dir, out), { batchSize: 250 });

async function finish(planned: PlannedRun, attempt: number): Promise<ShardMarker> {
  const worker = startWorker(planned.runUri, WORKER_ENV, attempt);
  const exit = await worker.exited;
  expect(exit, worker.output()).toMatchObject({ code: 0, signal: null });
  return readMarker(planned);
}

/** Starts a worker and waits until it has checkpointed at least `chunks` chunks (while still running). */
async function startAndWaitForChunks(planned: PlannedRun, chunks: number) {
  const worker = startWorker(planned.runUri, WORKER_ENV, 1);
  const checkpoint = await waitFor(
    async () => {
      const cp = await readCheckpointFile(planned);
      return cp && cp.chunks.length >= chunks ? cp : undefined;
    },
    { timeoutMs: 60_000, until: worker.exited },
  );
  expect(
    checkpoint,
    `no checkpoint with ${chunks} chunks while the worker ran:\n${worker.output()}`,
  ).toBeDefined();
  return worker;
}

/** Every file the checkpoint names exists as recorded, and its counts add up. */
async function expectConsistentCheckpoint(planned: PlannedRun): Promise<void> {
  const cp = await readCheckpointFile(planned);
  expect(cp).toBeDefined();
  expect(cp!.records).toBe(cp!.chunks.reduce((n, c) => n + c.records, 0));
  expect(cp!.predictions).toBe(cp!.chunks.reduce((n, c) => n + c.predictions, 0));
  expect(cp!.errors).toBe(cp!.chunks.reduce((n, c) => n + c.errors, 0));
  cp!.chunks.forEach((c, i) => expect(c.index).toBe(i));
  for (const chunk of cp!.chunks) {
    for (const file of [chunk.output, chunk.errorsPiece]) {
      if (!file) continue;
      const info = await planned.store.tryHead(file.uri);
      expect(info?.etag, file.uri).toBe(file.etag);
    }
  }
}

/** The partition holds exactly the marker's files: no part left over from an interrupted attempt. */
function expectNoStrayParts(planned: PlannedRun, marker: ShardMarker): void {
  const partition = fileURLToPath(planned.layout.partitionUri);
  expect(filesUnder(partition)).toEqual(
    marker.outputs.map((o) => path.relative(partition, fileURLToPath(o.uri))),
  );
}

beforeAll(async () => {
  tmp = tempDir('interrupt-');
  inputDir = path.join(tmp.dir, 'in');
  await breastCancerInput(inputDir, RECORDS, 2, 3_000);
  const planned = await planWorkerRun(spec('whole'));
  uninterrupted = await finish(planned, 1);
  expect(uninterrupted.records).toBe(RECORDS);
  expect(uninterrupted.outputs.length).toBeGreaterThan(5);
});
afterAll(() => tmp.cleanup());

describe('a worker killed with SIGKILL mid-shard', () => {
  it('is resumed by the retry after its last checkpoint, and the output is exact', async () => {
    const planned = await planWorkerRun(spec('sigkill'));
    const worker = await startAndWaitForChunks(planned, 2);
    worker.child.kill('SIGKILL');
    const exit = await worker.exited;
    expect(exit.signal).toBe('SIGKILL');
    await expectConsistentCheckpoint(planned);
    const before = (await readCheckpointFile(planned))!;
    expect(before.records).toBeLessThan(RECORDS);

    const marker = await finish(planned, 2);
    expect(marker.attempt).toBe(2);
    expect(marker.resume?.resumedChunks).toBe(before.chunks.length);
    expect(marker.resume?.resumedRecords).toBe(before.records);
    expect(marker.records).toBe(RECORDS);
    expect(marker.errorsByReason).toEqual(uninterrupted.errorsByReason);
    expect(await expectSameOutput(uninterrupted, marker)).toEqual({
      rows: uninterrupted.predictions,
      differences: 0,
    });
    expect(errorLines(marker)).toEqual(errorLines(uninterrupted));
    expectNoStrayParts(planned, marker);
  });
});

describe('a worker sent SIGTERM mid-shard', () => {
  it('stops within the deadline with a consistent checkpoint, exits as interrupted, and the retry is exact', async () => {
    const planned = await planWorkerRun(spec('sigterm'));
    const worker = await startAndWaitForChunks(planned, 2);
    const sent = performance.now();
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    expect(exit.at - sent).toBeLessThan(STOP_DEADLINE_MS);
    // Ended by the signal it was sent (a shell shows 143), after writing its checkpoint: not a success.
    expect(exit, worker.output()).toMatchObject({ code: null, signal: 'SIGTERM' });
    expect(worker.output()).toMatch(/SIGTERM: stopping after the batches in flight/);
    expect(worker.output()).toMatch(/shard interrupted; a retry resumes after the last checkpoint/);
    await expectConsistentCheckpoint(planned);
    const before = (await readCheckpointFile(planned))!;
    expect(before.records).toBeGreaterThan(0);
    expect(before.records).toBeLessThan(RECORDS);
    expect(await planned.store.tryHead(planned.layout.markerUri(0))).toBeUndefined();

    const marker = await finish(planned, 2);
    expect(marker.resume).toMatchObject({ attempts: 2, resumedRecords: before.records });
    expect(marker.records).toBe(RECORDS);
    expect(await expectSameOutput(uninterrupted, marker)).toEqual({
      rows: uninterrupted.predictions,
      differences: 0,
    });
    expect(errorLines(marker)).toEqual(errorLines(uninterrupted));
    expectNoStrayParts(planned, marker);
  });
});
