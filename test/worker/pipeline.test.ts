/**
 * Properties of the worker's pipeline that a correct output alone would not show: decoding of the next batch runs
 * while the model runs the current one (the order of the worker's own stage events, WorkerDeps.onStage), the model
 * is loaded once per worker process even when batches are bisected and the shard has many chunks, and a chunk is
 * sealed early on its size in memory (chunkBytes) when rows are wide. Real models, planned runs, LocalObjectStore.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { encodeParquet } from '../../src/formats/parquet-write.js';
import type { JobSpecInput } from '../../src/spec/schema.js';
import { WorkerInterruptedError, type StageEvent } from '../../src/worker/run-shard.js';
import {
  captureLog,
  errorLines,
  expectSameOutput,
  fixtureModel,
  planWorkerRun,
  readCheckpointFile,
  runShard,
  sql,
  parquetOf,
  tempDir,
} from './helpers.js';
import { sessionFactoryUrl } from './session-factory.js';

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = tempDir('pipeline-');
});
afterAll(() => tmp.cleanup());

const dirUri = (dir: string): string => `${pathToFileURL(dir).href}/`;

describe('decoding overlapped with inference', () => {
  it('decodes batches n+1 and n+2 and hands them to the inference thread before waiting for batch n', async () => {
    const dir = path.join(tmp.dir, 'overlap');
    mkdirSync(path.join(dir, 'in'), { recursive: true });
    const words = ['the', 'garden', 'movie', 'table', 'quick', 'family', 'room', 'dog', 'cat', 'alpha'];
    const lines: string[] = [];
    for (let i = 0; i < 256; i++) {
      const text = Array.from({ length: 20 + ((i * 13) % 40) }, (_, k) => words[(i + k * 7) % words.length]);
      lines.push(JSON.stringify({ id: `t${i}`, text: text.join(' ') }));
    }
    writeFileSync(path.join(dir, 'in', 'part.jsonl'), `${lines.join('\n')}\n`);
    const planned = await planWorkerRun({
      name: 'overlap',
      input: { uri: dirUri(path.join(dir, 'in')), format: 'jsonl', id: 'id' },
      model: {
        uri: pathToFileURL(fixtureModel('text/encoder.onnx')).href,
        inputs: [{ from: { text: 'text', tokenizer: 'tokenizer.json', maxLength: 128 } }],
        outputs: [
          { tensor: 'last_hidden_state', as: 'embedding', postprocess: { pool: 'mean', normalize: true } },
        ],
      },
      output: { uri: dirUri(path.join(dir, 'out')) },
      run: { batchSize: 8 },
    });
    const events: StageEvent[] = [];
    const marker = await runShard(planned, { onStage: (e) => events.push(e) });
    expect(marker.predictions).toBe(256);

    const decode = events.filter((e) => e.stage === 'decode');
    const infer = events.filter((e) => e.stage === 'infer');
    expect(decode.map((e) => e.batch)).toEqual([...Array(32).keys()]);
    expect(infer.map((e) => e.batch)).toEqual([...Array(32).keys()]);
    for (const e of events) expect(e.end).toBeGreaterThanOrEqual(e.start);
    // The order the main thread reports its stages in, not their clock times (a loaded machine, and two threads'
    // clocks, make times say little): batch n is decoded before it is inferred, and batch n + 1 (and n + 2: three
    // batches are queued to the inference thread) is decoded and handed to the thread before the worker waits for
    // batch n's result. A serial loop (decode n, wait for infer n, decode n + 1) reports infer n first, for every n.
    const position = (stage: StageEvent['stage'], batch: number): number =>
      events.findIndex((e) => e.stage === stage && e.batch === batch);
    const order = events
      .filter((e) => e.stage === 'decode' || e.stage === 'infer')
      .map((e) => `${e.stage}${e.batch}`)
      .join(' ');
    for (let n = 0; n < infer.length; n++) {
      expectIn(position('decode', n), `batch ${n}: ${order}`).toBeLessThan(position('infer', n));
      for (const ahead of [n + 1, n + 2].filter((m) => m < infer.length)) {
        expectIn(position('decode', ahead), `batch ${ahead} before infer ${n}: ${order}`).toBeLessThan(
          position('infer', n),
        );
      }
    }
    // The marker's inference time is the time inside session.run, part of each batch's span in the thread (both
    // measured by the thread's clock; the allowance is for the epoch conversion's rounding, 32 batches of < 1 us).
    const inferMs = infer.reduce((sum, e) => sum + (e.end - e.start), 0);
    expect(marker.timings.inferMs).toBeGreaterThan(0);
    expect(marker.timings.inferMs).toBeLessThanOrEqual(inferMs + 0.05);
  });
});

describe('the model, loaded once per worker process', () => {
  it('creates one session for a shard with many chunks whose batches are bisected', async () => {
    const dir = path.join(tmp.dir, 'once');
    mkdirSync(path.join(dir, 'in'), { recursive: true });
    // nan_guard.onnx fails a whole run when any x >= 1000: the batches holding those records are bisected.
    const bad = new Set([5, 77, 140, 141, 399, 512, 733]);
    const lines = Array.from({ length: 800 }, (_, i) =>
      JSON.stringify({ id: `r${i}`, x: bad.has(i) ? 5000 + i : i / 8 }),
    );
    writeFileSync(path.join(dir, 'in', 'part.jsonl'), `${lines.join('\n')}\n`);
    const planned = await planWorkerRun({
      name: 'once',
      input: { uri: dirUri(path.join(dir, 'in')), format: 'jsonl', id: 'id' },
      model: {
        uri: pathToFileURL(fixtureModel('nan_guard.onnx')).href,
        inputs: [{ tensor: 'x', from: { columns: ['x'] } }],
        outputs: [{ tensor: 'y' }],
      },
      output: { uri: dirUri(path.join(dir, 'out')) },
      run: { batchSize: 32 },
    });
    const sessions = path.join(dir, 'sessions.txt');
    const log = captureLog();
    const events: StageEvent[] = [];
    const marker = await runShard(planned, {
      log: log.log,
      chunkRecords: 100,
      sessionFactory: sessionFactoryUrl({ count: sessions }),
      onStage: (e) => events.push(e),
    });

    expect(marker.records).toBe(800);
    expect(marker.errorsByReason).toEqual({ INFERENCE_ERROR: bad.size });
    expect(marker.outputs.length).toBe(Math.ceil(800 / 128)); // chunks of 4 batches of 32
    // Bisection happened: batches took several runs each, in the one session.
    const bisected = events.filter((e) => e.stage === 'infer' && e.runs! > 1);
    expect(bisected.length).toBeGreaterThanOrEqual(5);
    expect(readFileSync(sessions, 'utf8')).toBe('cpu\n');
    expect(log.lines.filter((l) => l.message === 'model loaded')).toHaveLength(1);
  });
});

describe('chunks sealed early on their size in memory (chunkBytes)', () => {
  /** float32 values of one output row: [64, 2] from padded_identity.onnx, as a list column. */
  const WIDTH = 128;
  const RECORDS = 600;
  const BATCH = 10;
  const CHUNK_BYTES = 64 * 1024;
  let spec: (out: string) => JobSpecInput;

  beforeAll(() => {
    const dir = path.join(tmp.dir, 'wide');
    mkdirSync(path.join(dir, 'in'), { recursive: true });
    const ids: string[] = [];
    const seqs: number[][] = [];
    for (let i = 0; i < RECORDS; i++) {
      ids.push(`w${i}`);
      seqs.push(Array.from({ length: WIDTH }, (_, k) => Math.fround(Math.sin(i * 131 + k) * 1000)));
    }
    writeFileSync(
      path.join(dir, 'in', 'part.parquet'),
      encodeParquet(
        [
          { name: 'id', type: 'string', values: ids },
          { name: 'seq', type: 'array<float>', values: seqs },
        ],
        { rowGroupSize: 250 },
      ),
    );
    spec = (out) => ({
      name: 'wide',
      input: { uri: dirUri(path.join(dir, 'in')), format: 'parquet', id: 'id' },
      model: {
        uri: pathToFileURL(fixtureModel('tensor/padded_identity.onnx')).href,
        // A flat list of 128 values fills [64, 2] per record.
        inputs: [{ tensor: 'seq', from: { array: 'seq' }, shape: [-1, WIDTH / 2, 2] }],
        outputs: [{ tensor: 'seq_out', as: 'values' }],
      },
      output: { uri: dirUri(path.join(dir, out)) },
      run: { batchSize: BATCH },
    });
  });

  it('seals chunks of wide rows by bytes long before the record count, with the same rows as one chunk', async () => {
    const whole = await runShard(await planWorkerRun(spec('whole')), { chunkRecords: 1_000_000 });
    expect(whole.outputs).toHaveLength(1);

    const planned = await planWorkerRun(spec('bounded'));
    const bounded = await runShard(planned, { chunkRecords: 1_000_000, chunkBytes: CHUNK_BYTES });
    expect(bounded.records).toBe(RECORDS);
    const rows = bounded.outputs.map((o) => o.rows);
    // Each row holds at least its 128 values (8 bytes each as JavaScript numbers): a chunk is sealed within one
    // batch of reaching the budget, so it holds at most budget / row + one batch of rows.
    const most = Math.ceil(CHUNK_BYTES / (WIDTH * 8)) + BATCH;
    for (const n of rows) expect(n).toBeLessThanOrEqual(most);
    expect(rows.length).toBeGreaterThanOrEqual(Math.ceil(RECORDS / most));
    // Whole batches per chunk, all the same size but the last.
    for (const n of rows.slice(0, -1)) expect(n).toBe(rows[0]);
    expect(rows[0]! % BATCH).toBe(0);
    expect(rows.reduce((a, b) => a + b, 0)).toBe(RECORDS);
    expect(await expectSameOutput(whole, bounded)).toEqual({ rows: RECORDS, differences: 0 });
    const [first] = await sql<{ values: number[] }>(
      `SELECT "values" FROM ${parquetOf(bounded)} WHERE id = 'w7'`,
    );
    expect(first!.values).toHaveLength(WIDTH);
    // Chunks are checkpoints too: a shard interrupted between byte-sealed chunks resumes exactly.
    const resumedRun = await planWorkerRun(spec('resumed'));
    const stop = new AbortController();
    await expect(
      runShard(resumedRun, {
        chunkRecords: 1_000_000,
        chunkBytes: CHUNK_BYTES,
        signal: stop.signal,
        onProgress: (p) => {
          if (p.records >= RECORDS / 2) stop.abort();
        },
      }),
    ).rejects.toBeInstanceOf(WorkerInterruptedError);
    expect((await readCheckpointFile(resumedRun))!.chunks.length).toBeGreaterThan(1);
    const resumed = await runShard(resumedRun, { chunkRecords: 1_000_000, chunkBytes: CHUNK_BYTES });
    expect(resumed.resume?.resumedChunks).toBeGreaterThan(1);
    expect(await expectSameOutput(whole, resumed)).toEqual({ rows: RECORDS, differences: 0 });
    expect(errorLines(resumed)).toEqual([]);
  });
});
