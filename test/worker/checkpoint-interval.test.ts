/**
 * Time-based checkpoints (issue 11 item 4): a chunk closes after run.checkpoint.seconds of work as well as after
 * run.checkpoint.records records. The clock is injected (WorkerDeps.checkpointClock) and moved by the test from the
 * worker's progress callback, so "a minute has passed" happens at a record count the test chooses; chunk sizes are
 * read from the part files (the input has no broken records, so every record is a prediction row).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ShardMarker } from '../../src/runs/types.js';
import { DEFAULT_CHECKPOINT_SECONDS, jobSpecSchema } from '../../src/spec/schema.js';
import { chunkCloseReason } from '../../src/worker/checkpoint.js';
import { BUCKET_BATCHES, type StageEvent } from '../../src/worker/run-shard.js';
import { expectIn } from '../support/expect-in.js';
import {
  breastCancerInput,
  breastCancerSpec,
  expectSameOutput,
  fixtureModel,
  planWorkerRun,
  readCheckpointFile,
  runShard,
  tempDir,
} from './helpers.js';

const RECORDS = 5_000;
const BATCH = 250;
const MINUTE = 60_000;

let tmp: { dir: string; cleanup: () => void };
let inputDir: string;
let runs = 0;

beforeAll(async () => {
  tmp = tempDir('checkpoint-interval-');
  inputDir = path.join(tmp.dir, 'in');
  await breastCancerInput(inputDir, RECORDS, 1, 0);
});
afterAll(() => tmp.cleanup());

/**
 * Runs the shard with a clock that starts at 0 and moves only when `advance` says so: after each batch appended to
 * the chunk the worker reports a write stage event, and `advance(records appended so far)` returns the milliseconds
 * to add then. Returns the marker and the records of each chunk (rows of its part file).
 */
async function runWithClock(
  advance: (records: number) => number,
  options: { checkpoint?: Record<string, number>; chunkRecords?: number } = {},
): Promise<{ marker: ShardMarker; chunks: number[] }> {
  const out = path.join(tmp.dir, `out-${runs++}`);
  const planned = await planWorkerRun(
    breastCancerSpec(inputDir, out, {
      batchSize: BATCH,
      ...(options.checkpoint ? { checkpoint: options.checkpoint } : {}),
    }),
  );
  let now = 0;
  let appended = 0;
  const marker = await runShard(planned, {
    checkpointClock: () => now,
    onStage: (event: StageEvent) => {
      if (event.stage !== 'write') return;
      appended += event.records;
      now += advance(appended);
    },
    ...(options.chunkRecords ? { chunkRecords: options.chunkRecords } : {}),
  });
  expect(marker.records).toBe(RECORDS);
  expect(marker.errors).toBe(0);
  return { marker, chunks: marker.outputs.map((o) => o.rows) };
}

describe('chunkCloseReason', () => {
  const limits = { records: 1_000, bytes: 1_000_000, intervalMs: MINUTE };

  it('closes on records, bytes or time, whichever comes first, and never an empty chunk', () => {
    expect(chunkCloseReason({ records: 999, bytes: 10 }, MINUTE - 1, limits)).toBeUndefined();
    expect(chunkCloseReason({ records: 250, bytes: 10 }, MINUTE, limits)).toBe('interval');
    expect(chunkCloseReason({ records: 1_000, bytes: 10 }, 0, limits)).toBe('records');
    expect(chunkCloseReason({ records: 1_000, bytes: 10 }, MINUTE, limits)).toBe('records');
    expect(chunkCloseReason({ records: 10, bytes: 1_000_000 }, 0, limits)).toBe('bytes');
    expect(chunkCloseReason({ records: 0, bytes: 0 }, 10 * MINUTE, limits)).toBeUndefined();
  });
});

describe('a shard worker with an injected checkpoint clock', () => {
  it('control: with the clock standing still, the shard is one chunk (fewer records than run.checkpoint.records)', async () => {
    const { chunks } = await runWithClock(() => 0);
    expect(chunks).toEqual([RECORDS]);
  });

  it('closes a chunk when a minute (the default) passes before the record count, on a whole batch', async () => {
    expect(DEFAULT_CHECKPOINT_SECONDS).toBe(60);
    // The minute passes right after the batch that reaches 1,000 records: the next batch is the chunk's last.
    const { marker, chunks } = await runWithClock((records) => (records === 1_000 ? MINUTE : 0));
    expect(chunks).toEqual([1_000 + BATCH, RECORDS - 1_000 - BATCH]);
    chunks.forEach((n) => expectIn(n % BATCH, `chunk of ${n} records`).toBe(0));
    expect(marker.resume).toMatchObject({ resumedChunks: 0, resumedRecords: 0 });
  });

  it("uses the spec's run.checkpoint.seconds: 4.999 s of 5 keep the chunk open, the next millisecond closes it", async () => {
    const { chunks } = await runWithClock(
      (records) => (records === 1_000 ? 4_999 : records === 2_000 ? 1 : 0),
      { checkpoint: { seconds: 5 } },
    );
    expect(chunks).toEqual([2_000 + BATCH, RECORDS - 2_000 - BATCH]);
  });

  it('counts the interval from the previous close, whatever closed it', async () => {
    // 59 s by 750 records, then the record count closes the chunk at 1,000; 2 more seconds at 1,250 make 61 s since
    // the start but 2 s since that close, so every chunk is closed by its record count.
    const { chunks } = await runWithClock(
      (records) => (records === 750 ? 59_000 : records === 1_250 ? 2_000 : 0),
      {
        chunkRecords: 1_000,
      },
    );
    expect(chunks).toEqual([1_000, 1_000, 1_000, 1_000, 1_000]);
  });

  it("uses the spec's run.checkpoint.records", async () => {
    const { chunks } = await runWithClock(() => 0, { checkpoint: { records: 2_000 } });
    expect(chunks).toEqual([2_000, 2_000, 1_000]);
  });
});

describe('a text model (records bucketed by length in windows of batches)', () => {
  const TEXT_BATCH = 8;
  const WINDOW = TEXT_BATCH * BUCKET_BATCHES;
  const SENTENCES = 4 * WINDOW;

  it('closes a time chunk on a window boundary, and a crash after it resumes to exactly the same output', async () => {
    const dir = path.join(tmp.dir, 'text');
    mkdirSync(path.join(dir, 'in'), { recursive: true });
    const words = ['the', 'garden', 'movie', 'table', 'quick', 'family', 'room', 'dog', 'cat', 'alpha'];
    const lines = Array.from({ length: SENTENCES }, (_, i) => {
      const text = Array.from({ length: 3 + ((i * 13) % 40) }, (_, k) => words[(i + k * 7) % words.length]);
      return JSON.stringify({ id: `t${i}`, text: text.join(' ') });
    });
    writeFileSync(path.join(dir, 'in', 'part.jsonl'), `${lines.join('\n')}\n`);
    const spec = (out: string) => ({
      name: 'text_interval',
      input: { uri: `${pathToFileURL(path.join(dir, 'in')).href}/`, format: 'jsonl' as const, id: 'id' },
      model: {
        uri: pathToFileURL(fixtureModel('text/encoder.onnx')).href,
        inputs: [{ from: { text: 'text', tokenizer: 'tokenizer.json', maxLength: 128 } }],
        outputs: [
          {
            tensor: 'last_hidden_state',
            as: 'embedding',
            postprocess: { pool: 'mean' as const, normalize: true },
          },
        ],
      },
      output: { uri: `${pathToFileURL(path.join(dir, out)).href}/` },
      run: { batchSize: TEXT_BATCH },
    });
    const uninterrupted = await runShard(await planWorkerRun(spec('whole')), { checkpointClock: () => 0 });
    expect(uninterrupted.outputs.map((o) => o.rows)).toEqual([SENTENCES]);

    // A minute passes after the first window; the crash (an error thrown where the worker reports a written window)
    // comes a window after the time chunk closed.
    const planned = await planWorkerRun(spec('crashed'));
    let now = 0;
    let appended = 0;
    const crash = runShard(planned, {
      checkpointClock: () => now,
      onStage: (event: StageEvent) => {
        if (event.stage !== 'write') return;
        expectIn(event.records, 'records appended at once: a whole window').toBe(WINDOW);
        appended += event.records;
        if (appended === WINDOW) now += MINUTE;
        if (appended === 3 * WINDOW) throw new Error('host lost');
      },
    });
    await expect(crash).rejects.toThrow('host lost');
    const checkpoint = await readCheckpointFile(planned);
    expect(checkpoint?.chunks.map((c) => c.records)).toEqual([2 * WINDOW]);

    let reread = 0;
    const resumed = await runShard(planned, {
      checkpointClock: () => 0,
      onStage: (event: StageEvent) => {
        if (event.stage === 'read') reread += event.records;
      },
    });
    expect(resumed.resume).toMatchObject({ resumedChunks: 1, resumedRecords: 2 * WINDOW });
    expect(reread).toBe(SENTENCES - 2 * WINDOW);
    // Same windows, so the same batches: every embedding is bit for bit the uninterrupted run's.
    expect(await expectSameOutput(uninterrupted, resumed)).toEqual({ rows: SENTENCES, differences: 0 });
  }, 180_000);
});

describe('run.checkpoint in the job spec', () => {
  const spec = (checkpoint: unknown) =>
    jobSpecSchema.safeParse({ ...breastCancerSpec('/in', '/out'), run: { checkpoint } });

  it('defaults to 250,000 records and 60 seconds', () => {
    const parsed = jobSpecSchema.parse(breastCancerSpec('/in', '/out'));
    expect(parsed.run.checkpoint).toEqual({ records: 250_000, seconds: 60 });
  });

  it.each([
    [{ seconds: 0 }, 'run.checkpoint.seconds', 'at least 1 second'],
    [{ seconds: 1.5 }, 'run.checkpoint.seconds', 'whole number of seconds'],
    [{ seconds: 86_401 }, 'run.checkpoint.seconds', 'at most 86400 seconds'],
    [{ records: 0 }, 'run.checkpoint.records', 'at least 1 record'],
    [{ minutes: 1 }, 'run.checkpoint', 'minutes'],
  ])('rejects %j at %s', (checkpoint, at, message) => {
    const result = spec(checkpoint);
    expect(result.success).toBe(false);
    const issues = result.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];
    expectIn(issues.join('\n'), JSON.stringify(issues)).toContain(at);
    expectIn(issues.join('\n'), JSON.stringify(issues)).toContain(message);
  });
});
