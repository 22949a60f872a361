/**
 * Issue 11 item 4, done when: a worker process SIGKILLed (a Spot reclaim sends a Batch job no SIGTERM) after the
 * checkpoint interval has passed is resumed by the retry after its time checkpoint, and nothing before that
 * checkpoint is read or inferred again. The shard has fewer records than run.checkpoint.records (250,000 by
 * default), so without the time checkpoint there would be none until the end and the retry would start over.
 *
 * The worker runs as the local pool starts it, with the test's clock (test/worker/manual-clock.ts through
 * BATCH_INFER_CHECKPOINT_CLOCK): the test moves it a minute forward once the worker has appended a batch, which is
 * "a minute of work" as far as the worker can tell; no test outcome depends on how fast the machine is. Once the
 * checkpoint file exists, each clock read holds the worker (HOLD_UNTIL_KILLED_MS): on a fast machine it would
 * otherwise finish the shard, and delete its checkpoint, between the test seeing the checkpoint and killing it.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ShardMarker } from '../../src/runs/types.js';
import { CHECKPOINT_CLOCK_ENV } from '../../src/worker/env.js';
import { runWorkerTask, type StageEvent } from '../../src/worker/run-shard.js';
import { expectIn } from '../support/expect-in.js';
import {
  breastCancerInput,
  breastCancerSpec,
  captureLog,
  errorLines,
  expectSameOutput,
  planWorkerRun,
  readCheckpointFile,
  runShard,
  startWorker,
  tempDir,
  waitFor,
} from './helpers.js';
import { HOLD_UNTIL_KILLED_MS, manualClockReads, manualClockUrl, setManualClock } from './manual-clock.js';

const RECORDS = 30_000;
const BATCH = 250;
const MINUTE = 60_000;

let tmp: { dir: string; cleanup: () => void };
let inputDir: string;
let uninterrupted: ShardMarker;

const spec = (out: string) => breastCancerSpec(inputDir, path.join(tmp.dir, out), { batchSize: BATCH });

beforeAll(async () => {
  tmp = tempDir('interrupt-interval-');
  inputDir = path.join(tmp.dir, 'in');
  // Two files and a broken record every 3,000: the resumed range and the error rows are both checked.
  await breastCancerInput(inputDir, RECORDS, 2, 3_000);
  uninterrupted = await runShard(await planWorkerRun(spec('whole')));
  expect(uninterrupted.records).toBe(RECORDS);
  expect(uninterrupted.errors).toBeGreaterThan(0);
}, 120_000);
afterAll(() => tmp.cleanup());

describe('a worker SIGKILLed after the checkpoint interval', () => {
  it('is resumed after its time checkpoint: no record before it is read or inferred again, output exact', async () => {
    const planned = await planWorkerRun(spec('sigkill'));
    const clock = {
      file: path.join(tmp.dir, 'clock.txt'),
      reads: path.join(tmp.dir, 'clock-reads.txt'),
      hold: {
        checkpoints: [fileURLToPath(planned.layout.checkpointUri(0))],
        chunks: 1,
        ms: HOLD_UNTIL_KILLED_MS,
      },
    };
    setManualClock(clock.file, 0);
    const worker = startWorker(planned.runUri, { [CHECKPOINT_CLOCK_ENV]: manualClockUrl(clock) });

    // The writer read the clock when it started (0) and again after its first batch: a minute passes now.
    const started = await waitFor(async () => (manualClockReads(clock.reads) >= 2 ? true : undefined), {
      timeoutMs: 120_000,
      until: worker.exited,
    });
    expectIn(started, `the worker never read the checkpoint clock:\n${worker.output()}`).toBe(true);
    setManualClock(clock.file, MINUTE);
    const checkpoint = await waitFor(
      async () => {
        const cp = await readCheckpointFile(planned);
        return cp && cp.chunks.length >= 1 ? cp : undefined;
      },
      { timeoutMs: 120_000, until: worker.exited },
    );
    worker.child.kill('SIGKILL');
    const exit = await worker.exited;
    expectIn(checkpoint, `no checkpoint while the worker ran:\n${worker.output()}`).toBeDefined();
    expectIn(exit.signal, `the worker ended before it was killed:\n${worker.output()}`).toBe('SIGKILL');

    // One chunk, closed by time (far fewer records than run.checkpoint.records), on a whole batch.
    const before = (await readCheckpointFile(planned))!;
    expect(before.chunks).toHaveLength(1);
    expect(before.records).toBeGreaterThanOrEqual(2 * BATCH);
    expect(before.records).toBeLessThan(RECORDS);
    expect(before.records % BATCH).toBe(0);
    expect(before.records).toBe(before.predictions + before.errors);
    for (const file of [before.chunks[0]!.output, before.chunks[0]!.errorsPiece]) {
      if (file) expectIn((await planned.store.tryHead(file.uri))?.etag, file.uri).toBe(file.etag);
    }
    expect(await planned.store.tryHead(planned.layout.markerUri(0))).toBeUndefined();

    // The retry (in this process, to count what it reads and infers; its clock stands still).
    const counted = { read: 0, infer: 0 };
    const marker = await runWorkerTask(
      { runUri: planned.runUri, round: 0, arrayIndex: 0, attempt: 2 },
      {
        store: planned.store,
        log: captureLog().log,
        providers: ['cpu'],
        threads: 1,
        checkpointClock: () => 0,
        onStage: (event: StageEvent) => {
          if (event.stage === 'read' || event.stage === 'infer') counted[event.stage] += event.records;
        },
      },
    );
    expect(marker.attempt).toBe(2);
    expect(marker.resume).toEqual({ attempts: 2, resumedChunks: 1, resumedRecords: before.records });
    // Nothing before the time checkpoint is read or inferred again.
    expect(counted.read).toBe(RECORDS - before.records);
    expect(counted.infer).toBe(uninterrupted.predictions - before.predictions);

    // The output is exactly the uninterrupted run's: no row lost, none twice.
    expect(marker.records).toBe(RECORDS);
    expect(marker.predictions).toBe(uninterrupted.predictions);
    expect(marker.errorsByReason).toEqual(uninterrupted.errorsByReason);
    expect(await expectSameOutput(uninterrupted, marker)).toEqual({
      rows: uninterrupted.predictions,
      differences: 0,
    });
    expect(errorLines(marker)).toEqual(errorLines(uninterrupted));
  }, 300_000);
});
