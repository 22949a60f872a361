/**
 * The shard worker in-process, with real parts: planned runs on disk, ONNX Runtime in its thread, DuckDB's Parquet
 * writer, LocalObjectStore. Outputs are read back with DuckDB.
 */
import { copyFileSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { encodeParquet } from '../../src/formats/parquet-write.js';
import { quantileOf } from '../../src/runs/stats.js';
import type { ShardMarker } from '../../src/runs/types.js';
import type { JobSpecInput } from '../../src/spec/schema.js';
import { FAST_ENOUGH_RECORDS_PER_SECOND } from '../../src/worker/batch-size.js';
import { WorkerInterruptedError } from '../../src/worker/run-shard.js';
import {
  breastCancerColumns,
  breastCancerInput,
  captureLog,
  runShard,
  type CapturedLog,
  breastCancerSpec,
  errorLines,
  expectSameOutput,
  fixtureModel,
  parquetOf,
  planWorkerRun,
  readCheckpointFile,
  repo,
  sql,
  tempDir,
  type PlannedRun,
} from './helpers.js';
import { sessionFactoryUrl } from './session-factory.js';

type Captured = CapturedLog;
const run = runShard;

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = tempDir('run-shard-');
});
afterAll(() => tmp.cleanup());

describe('a batch whose run fails', () => {
  it('is bisected: only the records the model fails on become error rows, with their source and offset', async () => {
    const dir = path.join(tmp.dir, 'bisect');
    mkdirSync(path.join(dir, 'in'), { recursive: true });
    // nan_guard.onnx returns x, but a run fails as a whole when any x >= 1000 (test/fixtures/models/README.md).
    const bad = new Set([3, 17, 18, 64, 199]);
    const lines: string[] = [];
    for (let i = 0; i < 200; i++)
      lines.push(JSON.stringify({ id: `r${i}`, x: bad.has(i) ? 1000 + i : i / 4 }));
    lines[40] = '{"id": "r40", "x": "not a number"}';
    lines[41] = '{broken json';
    const text = `${lines.join('\n')}\n`;
    writeFileSync(path.join(dir, 'in', 'part.jsonl'), text);
    const offsets: number[] = [];
    let at = 0;
    for (const l of lines) {
      offsets.push(at);
      at += Buffer.byteLength(l) + 1;
    }
    const planned = await planWorkerRun({
      name: 'bisect',
      input: { uri: `${pathToFileURL(path.join(dir, 'in')).href}/`, format: 'jsonl', id: 'id' },
      model: {
        uri: pathToFileURL(fixtureModel('nan_guard.onnx')).href,
        inputs: [{ tensor: 'x', from: { columns: ['x'] } }],
        outputs: [{ tensor: 'y' }],
      },
      output: { uri: `${pathToFileURL(path.join(dir, 'out')).href}/` },
      run: { batchSize: 32 },
    });
    const marker = await run(planned);

    expect(marker.records).toBe(200);
    expect(marker.errorsByReason).toEqual({ INFERENCE_ERROR: 5, INVALID_VALUE: 1, DECODE_ERROR: 1 });
    expect(marker.predictions).toBe(193);
    const errors = errorLines(marker).map((l) => JSON.parse(l) as Record<string, unknown>);
    // Input order, every failure with the object and byte offset it came from.
    expect(errors.map((e) => e._offset)).toEqual([3, 17, 18, 40, 41, 64, 199].map((i) => offsets[i]));
    const source = pathToFileURL(path.join(dir, 'in', 'part.jsonl')).href;
    for (const e of errors) expect(e._source).toBe(source);
    const inference = errors.filter((e) => e.reason === 'INFERENCE_ERROR');
    expect(inference.map((e) => e.id)).toEqual(['r3', 'r17', 'r18', 'r64', 'r199']);
    for (const e of inference) {
      expect(e.message).toMatch(/^the model failed on this record: .*Reshape/);
    }
    // Every other record got its prediction, computed in a batch (y = x).
    const rows = await sql<{ id: string; y: number; _offset: bigint }>(
      `SELECT id, y, _offset FROM ${parquetOf(marker)} ORDER BY _offset`,
    );
    const expected = [...Array(200).keys()].filter((i) => !bad.has(i) && i !== 40 && i !== 41);
    expect(rows.map((r) => r.id)).toEqual(expected.map((i) => `r${i}`));
    expect(rows.map((r) => r.y)).toEqual(expected.map((i) => i / 4));
    expect(rows.map((r) => Number(r._offset))).toEqual(expected.map((i) => offsets[i]));
    // The tabular input column the model reads is summarised over the same rows as the predictions (input drift).
    const x = marker.inputSummaries?.x;
    expect(x?.kind).toBe('numeric');
    if (x?.kind !== 'numeric') return;
    expect(x.count).toBe(193);
    expect([x.min, x.max]).toEqual([0, 198 / 4]);
    expect(x.sum).toBeCloseTo(
      expected.reduce((n, i) => n + i / 4, 0),
      6,
    );
  });
});

describe('statistics in the completion marker', () => {
  let planned: PlannedRun;
  let marker: ShardMarker;
  let log: Captured;
  beforeAll(async () => {
    const dir = path.join(tmp.dir, 'stats');
    await breastCancerInput(path.join(dir, 'in'), 3000, 2, 700);
    // cpuFallback: this machine may have no GPU, and these tests are about the marker whichever provider ran.
    planned = await planWorkerRun(
      breastCancerSpec(path.join(dir, 'in'), path.join(dir, 'out'), { cpuFallback: true }),
    );
    log = captureLog();
    marker = await run(planned, {
      log: log.log,
      providers: ['cuda', 'cpu'],
      // A stopped clock: the probe's time budget never runs out, so which sizes it tries depends on the model, the
      // sample and the memory budget, not on how loaded the machine is (test/worker/batch-size.test.ts covers the
      // budget with a clock that moves).
      probeClock: () => 0,
    });
  });

  it('counts records, errors by reason, stage times, the provider and the threads', () => {
    expect(marker.records).toBe(3000);
    expect(marker.predictions + marker.errors).toBe(3000);
    expect(marker.errors).toBeGreaterThan(0);
    expect(Object.values(marker.errorsByReason).reduce((a, b) => a + b, 0)).toBe(marker.errors);
    // CUDA is asked for first: a GPU host runs on it, any other falls back (the next test checks the two agree).
    expect(['cuda', 'cpu']).toContain(marker.executionProvider);
    expect(marker.threads).toBe(1);
    // Busy time of each stage, in (tenths of) milliseconds.
    for (const stage of ['readMs', 'decodeMs', 'inferMs', 'writeMs'] as const) {
      expect(marker.timings[stage]).toBeGreaterThan(0);
    }
    expect(marker.timings.totalMs).toBeGreaterThan(marker.timings.readMs);
    expect(marker.resume).toEqual({ attempts: 1, resumedChunks: 0, resumedRecords: 0 });
  });

  it('with real ONNX Runtime, logs a CUDA fallback exactly when the shard ran on the CPU', () => {
    // Whatever this machine has: CUDA asked for first, the marker names the provider that ran, and a CPU run after
    // asking for CUDA always says why (see 'execution providers' below for the fallback made to happen).
    const fellBack = log.lines.some((l) =>
      /execution provider cuda unavailable, falling back to cpu/.test(l.message),
    );
    expect(['cuda', 'cpu']).toContain(marker.executionProvider);
    expect(fellBack).toBe(marker.executionProvider === 'cpu');
  });

  it('summarises each prediction column: class counts for the label, bins and quantiles for the score', async () => {
    const labels = await sql<{ label: string; n: bigint }>(
      `SELECT label, count(*) AS n FROM ${parquetOf(marker)} GROUP BY label`,
    );
    const label = marker.summaries?.label;
    expect(label?.kind).toBe('categorical');
    if (label?.kind !== 'categorical') return;
    expect(label.count).toBe(marker.predictions);
    expect(label.counts).toEqual(Object.fromEntries(labels.map((r) => [r.label, Number(r.n)])));

    const score = marker.summaries?.score;
    expect(score?.kind).toBe('numeric');
    if (score?.kind !== 'numeric') return;
    const [truth] = await sql<{ lo: number; hi: number; med: number; n: bigint }>(
      `SELECT min(score) AS lo, max(score) AS hi, quantile_disc(score, 0.5) AS med, count(*) AS n FROM ${parquetOf(marker)}`,
    );
    expect(score.count).toBe(Number(truth!.n));
    expect(score.min).toBe(truth!.lo);
    expect(score.max).toBe(truth!.hi);
    // The bins promise 1% relative accuracy for quantiles.
    expect(Math.abs(quantileOf(score, 0.5)! - truth!.med) / truth!.med).toBeLessThan(0.011);
    const q = score.quantiles!;
    expect(q.p1! <= q.p50! && q.p50! <= q.p99!).toBe(true);
    const binned =
      score.bins.zero + [...score.bins.positive, ...score.bins.negative].reduce((n, [, c]) => n + c, 0);
    expect(binned).toBe(score.count);
  });

  it('chooses the batch size with a probe on the first records, logs it and records it', () => {
    const probe = marker.batchSizeProbe;
    expect(probe).toBeDefined();
    expect(marker.batchSize).toBe(probe!.chosen);
    expect(probe!.trials.map((t) => t.batchSize)).toContain(probe!.chosen);
    expect(probe!.trials.length).toBeGreaterThan(1);
    // Sizes double from the smallest; throughput is measured for each.
    probe!.trials.forEach((t, i) => {
      if (i > 0) expect(t.batchSize).toBe(probe!.trials[i - 1]!.batchSize * 2);
      expect(t.recordsPerSecond).toBeGreaterThan(0);
    });
    // The largest size within 5% of the best throughput, or fast enough never to limit the shard.
    const best = Math.max(...probe!.trials.map((t) => t.recordsPerSecond));
    const asFast = Math.min(0.95 * best, FAST_ENOUGH_RECORDS_PER_SECOND);
    const chosen = probe!.trials.find((t) => t.batchSize === probe!.chosen)!;
    expect(chosen.recordsPerSecond).toBeGreaterThanOrEqual(asFast);
    for (const t of probe!.trials.filter((x) => x.batchSize > probe!.chosen)) {
      expect(t.recordsPerSecond).toBeLessThan(asFast);
    }
    expect(
      log.lines.some((l) => l.message === 'batch size chosen' && l.fields?.batchSize === probe!.chosen),
    ).toBe(true);
  });
});

describe('execution providers', () => {
  /** A planned breast-cancer shard of `records` records in `<tmp>/<name>`, batches of 64. */
  async function planShard(
    name: string,
    records: number,
    run: Record<string, unknown> = {},
  ): Promise<{ dir: string; planned: PlannedRun }> {
    const dir = path.join(tmp.dir, name);
    await breastCancerInput(path.join(dir, 'in'), records, 1, 0);
    const spec = breastCancerSpec(path.join(dir, 'in'), path.join(dir, 'out'), { batchSize: 64, ...run });
    return { dir, planned: await planWorkerRun(spec) };
  }

  it("fails a GPU run's shard with ExecutionProviderError when CUDA cannot be loaded and cpuFallback is off", async () => {
    const { dir, planned } = await planShard('providers-gpu-or-fail', 100);
    const sessions = path.join(dir, 'sessions.txt');
    const error = await run(planned, {
      providers: ['cuda', 'cpu'],
      sessionFactory: sessionFactoryUrl({ unavailable: ['cuda'], count: sessions }),
    }).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    expect(error?.name).toBe('ExecutionProviderError');
    expect(error?.message).toMatch(
      /could not load the CUDA execution provider and would run on cpu.*run\.cpuFallback: true/,
    );
    expect(readFileSync(sessions, 'utf8').split('\n').filter(Boolean)).toEqual(['cuda', 'cpu']);
    // Nothing was scored: no marker, no output.
    expect(await planned.store.tryHead(planned.layout.markerUri(0))).toBeUndefined();
  });

  it('does not hold a CPU run to the GPU, whatever the providers', async () => {
    const { planned } = await planShard('providers-cpu-run', 50, { compute: 'cpu' });
    const marker = await run(planned, {
      providers: ['cuda', 'cpu'],
      sessionFactory: sessionFactoryUrl({ unavailable: ['cuda'] }),
    });
    expect(marker.executionProvider).toBe('cpu');
  });

  it('falls back to CPU when CUDA cannot be loaded and cpuFallback allows it, with an explicit log line, and the marker says cpu', async () => {
    const { dir, planned } = await planShard('providers', 300, { cpuFallback: true });
    const log = captureLog();
    const sessions = path.join(dir, 'sessions.txt');
    const marker = await run(planned, {
      log: log.log,
      providers: ['cuda', 'cpu'],
      // CUDA fails to load as it does on a machine without it, whether or not this one has a GPU.
      sessionFactory: sessionFactoryUrl({ unavailable: ['cuda'], count: sessions }),
    });
    expect(readFileSync(sessions, 'utf8').split('\n').filter(Boolean)).toEqual(['cuda', 'cpu']);
    expect(marker.executionProvider).toBe('cpu');
    expect(marker.records).toBe(300);
    const warnings = log.lines.filter((l) => l.level === 'warn').map((l) => l.message);
    expect(warnings).toContain(
      'execution provider cuda unavailable, falling back to cpu: cuda is not available on this machine (test session factory)',
    );
    expect(warnings).toContain('execution provider fallback: running on cpu');
    const loaded = log.lines.find((l) => l.message === 'model loaded');
    expect(loaded?.fields?.executionProvider).toBe('cpu');
  });

  it('runs on the first provider that loads, without a fallback line', async () => {
    const { dir, planned } = await planShard('providers-cpu', 100);
    const log = captureLog();
    const sessions = path.join(dir, 'sessions.txt');
    const marker = await run(planned, {
      log: log.log,
      providers: ['cpu'],
      sessionFactory: sessionFactoryUrl({ count: sessions }),
    });
    expect(readFileSync(sessions, 'utf8')).toBe('cpu\n');
    expect(marker.executionProvider).toBe('cpu');
    expect(log.lines.some((l) => /execution provider/.test(l.message))).toBe(false);
  });

  it('fails the shard with a ModelError naming every provider when none loads', async () => {
    const { planned } = await planShard('providers-none', 50);
    await expect(
      run(planned, {
        providers: ['cuda', 'cpu'],
        sessionFactory: sessionFactoryUrl({ unavailable: ['cuda', 'cpu'] }),
      }),
    ).rejects.toThrow(
      /No execution provider could run the model \(cuda: cuda is not available.*; cpu: cpu is not/,
    );
    expect(await planned.store.tryHead(planned.layout.markerUri(0))).toBeUndefined();
  });
});

describe('auto batch size under a memory budget', () => {
  it('stops at the first size over the budget and takes the smallest measured', async () => {
    const dir = path.join(tmp.dir, 'budget');
    await breastCancerInput(path.join(dir, 'in'), 500, 1, 0);
    const planned = await planWorkerRun(breastCancerSpec(path.join(dir, 'in'), path.join(dir, 'out')));
    const marker = await run(planned, { memoryBudgetBytes: 1024 });
    const probe = marker.batchSizeProbe!;
    expect(probe.memoryBudgetBytes).toBe(1024);
    expect(probe.trials).toHaveLength(1);
    expect(probe.trials[0]!.stoppedBecause).toBe('over the memory budget');
    expect(marker.batchSize).toBe(probe.trials[0]!.batchSize);
    expect(marker.records).toBe(500);
  });
});

describe('resuming an interrupted shard in-process', () => {
  async function interruptedThenResumed(planned: PlannedRun, stopAfter: number): Promise<ShardMarker> {
    const stop = new AbortController();
    const first = run(planned, {
      chunkRecords: 400,
      signal: stop.signal,
      onProgress: (p) => {
        if (p.records >= stopAfter) stop.abort();
      },
    });
    await expect(first).rejects.toBeInstanceOf(WorkerInterruptedError);
    const checkpoint = await readCheckpointFile(planned);
    expect(checkpoint?.chunks.length).toBeGreaterThan(0);
    expect(checkpoint!.records).toBe(checkpoint!.chunks.reduce((n, c) => n + c.records, 0));
    return run(planned, { chunkRecords: 400 });
  }

  it('csv: the resumed shard writes exactly the rows of an uninterrupted one', async () => {
    const dir = path.join(tmp.dir, 'resume-csv');
    await breastCancerInput(path.join(dir, 'in'), 4000, 2, 300);
    const spec = (out: string) =>
      breastCancerSpec(path.join(dir, 'in'), path.join(dir, out), { batchSize: 100 });
    const whole = await run(await planWorkerRun(spec('whole')), { chunkRecords: 400 });
    const planned = await planWorkerRun(spec('resumed'));
    const resumed = await interruptedThenResumed(planned, 1500);

    expect(resumed.resume?.resumedChunks).toBeGreaterThan(0);
    expect(resumed.resume?.attempts).toBe(2);
    expect(resumed.records).toBe(4000);
    expect(resumed.predictions).toBe(whole.predictions);
    expect(resumed.errorsByReason).toEqual(whole.errorsByReason);
    const cmp = await expectSameOutput(whole, resumed);
    expect(cmp).toEqual({ rows: whole.predictions, differences: 0 });
    expect(errorLines(resumed)).toEqual(errorLines(whole));
    expect(resumed.summaries).toEqual(whole.summaries);
    // Input features are decimals: their sums may round differently when chunks split differently (stats.ts), the
    // rest of each summary is exact.
    const exact = (s: ShardMarker['inputSummaries']) =>
      Object.fromEntries(
        Object.entries(s ?? {}).map(([k, v]) => [
          k,
          v.kind === 'numeric' ? { ...v, sum: 0, sumSquares: 0 } : v,
        ]),
      );
    expect(Object.keys(resumed.inputSummaries ?? {})).toEqual(breastCancerColumns());
    expect(exact(resumed.inputSummaries)).toEqual(exact(whole.inputSummaries));
    // Done means clean: no checkpoint left behind.
    expect(await readCheckpointFile(planned)).toBeUndefined();
  });

  it('parquet: resumes inside a row group without re-reading rows into a chunk', async () => {
    const dir = path.join(tmp.dir, 'resume-parquet');
    mkdirSync(path.join(dir, 'in'), { recursive: true });
    const n = 3000;
    const ids: string[] = [];
    const xs: (number | null)[] = [];
    for (let i = 0; i < n; i++) {
      ids.push(`p${i}`);
      xs.push(i % 97 === 5 ? null : (i % 50) / 2);
    }
    // Row groups of 700: chunk and batch boundaries fall inside groups.
    writeFileSync(
      path.join(dir, 'in', 'part.parquet'),
      encodeParquet(
        [
          { name: 'id', type: 'string', values: ids },
          { name: 'x', type: 'double', values: xs },
        ],
        { rowGroupSize: 700 },
      ),
    );
    const spec = (out: string): JobSpecInput => ({
      name: 'resume_parquet',
      input: { uri: `${pathToFileURL(path.join(dir, 'in')).href}/`, format: 'parquet', id: 'id' },
      model: {
        uri: pathToFileURL(fixtureModel('nan_guard.onnx')).href,
        inputs: [{ tensor: 'x', from: { columns: ['x'] } }],
        outputs: [{ tensor: 'y' }],
      },
      output: { uri: `${pathToFileURL(path.join(dir, out)).href}/` },
      run: { batchSize: 150 },
    });
    const whole = await run(await planWorkerRun(spec('whole')), { chunkRecords: 400 });
    const resumed = await interruptedThenResumed(await planWorkerRun(spec('resumed')), 1000);
    expect(resumed.resume?.resumedChunks).toBeGreaterThan(0);
    expect(resumed.records).toBe(n);
    expect(resumed.errorsByReason).toEqual({ MISSING_VALUE: 31 });
    expect(await expectSameOutput(whole, resumed)).toEqual({ rows: whole.predictions, differences: 0 });
    expect(errorLines(resumed)).toEqual(errorLines(whole));
  });
});

describe('a text model', () => {
  const textDir = () => path.join(tmp.dir, 'text');
  const expected = JSON.parse(
    readFileSync(path.join(repo, 'test/fixtures/models/text/expected.json'), 'utf8'),
  ) as { sentences: { text: string; meanNormalized: number[] }[] };
  const known = expected.sentences.filter((s) => s.text !== '');
  const n = 320;

  const spec = (out: string): JobSpecInput => ({
    name: 'text_bucketing',
    input: { uri: `${pathToFileURL(path.join(textDir(), 'in')).href}/`, format: 'jsonl', id: 'id' },
    model: {
      uri: pathToFileURL(path.join(repo, 'test/fixtures/models/text/encoder.onnx')).href,
      inputs: [{ from: { text: 'text', tokenizer: 'tokenizer.json', maxLength: 128 } }],
      outputs: [
        { tensor: 'last_hidden_state', as: 'embedding', postprocess: { pool: 'mean', normalize: true } },
      ],
    },
    output: { uri: `${pathToFileURL(path.join(textDir(), out)).href}/` },
    run: { batchSize: 8 },
  });

  beforeAll(() => {
    mkdirSync(path.join(textDir(), 'in'), { recursive: true });
    const words = ['alpha', 'the', 'cat', 'movie', 'garden', 'quick', 'room', 'table', 'family', 'dog'];
    const lines: string[] = [];
    for (let i = 0; i < n; i++) {
      // Lengths that vary from record to record, and the reference sentences spread among them.
      const text =
        i % 50 === 7
          ? known[((i / 50) % known.length) | 0]!.text
          : Array.from({ length: 1 + ((i * 37) % 30) }, (_, k) => words[(i + k * 3) % words.length]).join(
              ' ',
            );
      lines.push(JSON.stringify({ id: `t${i}`, text }));
    }
    writeFileSync(path.join(textDir(), 'in', 'part.jsonl'), `${lines.join('\n')}\n`);
  });

  it('batches records of similar length, and every record gets its own embedding, in input order', async () => {
    const marker = await run(await planWorkerRun(spec('whole')), { chunkRecords: 100 });
    expect(marker.records).toBe(n);
    expect(marker.predictions).toBe(n);
    // Within each file, rows are in input order; files follow each other in input order.
    const rows = await sql<{ id: string; off: bigint; embedding: number[]; text?: string }>(
      `SELECT id, _offset AS off, embedding FROM ${parquetOf(marker)}`,
    );
    const offsets = rows.map((r) => Number(r.off));
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(rows.map((r) => r.id)).toEqual([...Array(n).keys()].map((i) => `t${i}`));
    // The reference sentences, batched with texts of other lengths, match the numpy reference of the encoder.
    for (let i = 7; i < n; i += 50) {
      const want = known[((i / 50) % known.length) | 0]!.meanNormalized;
      const got = rows[i]!.embedding;
      expect(got).toHaveLength(want.length);
      expect(Math.max(...got.map((v, k) => Math.abs(v - want[k]!)))).toBeLessThan(1e-4);
    }
  });

  it('resumes exactly: windows of sorted batches are formed again from the checkpoint', async () => {
    const whole = await run(await planWorkerRun(spec('whole-2')), { chunkRecords: 100 });
    const planned = await planWorkerRun(spec('resumed'));
    const stop = new AbortController();
    await expect(
      run(planned, {
        chunkRecords: 100,
        signal: stop.signal,
        onProgress: (p) => {
          if (p.records >= 100) stop.abort();
        },
      }),
    ).rejects.toBeInstanceOf(WorkerInterruptedError);
    const resumed = await run(planned, { chunkRecords: 100 });
    expect(resumed.resume?.resumedChunks).toBeGreaterThan(0);
    expect(await expectSameOutput(whole, resumed)).toEqual({ rows: n, differences: 0 });
  });
});

describe('a processor module shipped next to the model', () => {
  /** The affine model's processor module, shipped next to the model (test/fixtures/processors/affine.mjs). */
  const PROCESSOR = readFileSync(new URL('../fixtures/processors/affine.mjs', import.meta.url), 'utf8');

  it('is planned with the model and run by the worker: its columns, its error rows, every record once', async () => {
    const dir = path.join(tmp.dir, 'processor');
    const modelDir = path.join(dir, 'models', 'affine');
    mkdirSync(path.join(modelDir, 'processors'), { recursive: true });
    copyFileSync(fixtureModel('affine.onnx'), path.join(modelDir, 'model.onnx'));
    writeFileSync(path.join(modelDir, 'processors', 'affine.mjs'), PROCESSOR);
    mkdirSync(path.join(dir, 'in'), { recursive: true });
    const n = 300;
    const inputs: { id: string; csv: string; fail?: boolean; kind?: string }[] = [];
    for (let i = 0; i < n; i++) {
      const x = [i % 7, (i * 3) % 11, (i % 5) - 2];
      inputs.push({
        id: `q${i}`,
        csv: i % 37 === 3 ? 'oops' : x.join(','),
        ...(i % 50 === 10 ? { fail: true } : {}),
        ...(i % 20 === 0 ? { kind: `k${i}` } : {}),
      });
    }
    writeFileSync(path.join(dir, 'in', 'rows.jsonl'), `${inputs.map((r) => JSON.stringify(r)).join('\n')}\n`);

    const planned = await planWorkerRun({
      name: 'processed',
      input: { uri: `${pathToFileURL(path.join(dir, 'in')).href}/`, format: 'jsonl', id: 'id' },
      model: {
        uri: pathToFileURL(path.join(modelDir, 'model.onnx')).href,
        // Relative to the model artifact, like every companion file.
        processor: {
          module: 'processors/affine.mjs',
          columns: { total: 'double', parts: 'array<float>', kind: 'string' },
        },
        outputs: [{ tensor: 'y', as: 'raw' }],
      },
      output: { uri: `${pathToFileURL(path.join(dir, 'out')).href}/` },
      run: { batchSize: 32 },
    });
    expect(planned.plan.model.files).toEqual({
      'processors/affine.mjs': pathToFileURL(path.join(modelDir, 'processors', 'affine.mjs')).href,
    });
    const marker = await run(planned, { chunkRecords: 100 });

    const bad = inputs.filter((r) => r.csv === 'oops');
    const failed = inputs.filter((r) => r.fail && r.csv !== 'oops');
    expect(marker.records).toBe(n);
    expect(marker.errorsByReason).toEqual({ INVALID_VALUE: bad.length, POSTPROCESS_ERROR: failed.length });
    expect(marker.predictions).toBe(n - bad.length - failed.length);
    expect(marker.columns).toMatchObject({
      raw: 'array<float>',
      total: 'double',
      parts: 'array<float>',
      kind: 'string',
    });

    const rows = await sql<{ id: string; raw: number[]; total: number; parts: number[]; kind: string }>(
      `SELECT id, raw, total, parts, kind FROM ${parquetOf(marker)} ORDER BY _offset`,
    );
    const scored = inputs.filter((r) => r.csv !== 'oops' && !r.fail);
    expect(rows.map((r) => r.id)).toEqual(scored.map((r) => r.id));
    rows.forEach((row, k) => {
      const [x0, x1, x2] = scored[k]!.csv.split(',').map(Number) as [number, number, number];
      // affine.onnx: y = [x0 + 3 x2 + 10, 2 x0 - x1 + x2 - 5]
      const y = [x0 + 3 * x2 + 10, 2 * x0 - x1 + x2 - 5];
      expect(row.raw).toEqual(y);
      expect(row.parts).toEqual(y);
      expect(row.total).toBe(y[0]! + y[1]!);
      expect(row.kind).toBe(scored[k]!.kind ?? (y[0]! + y[1]! > 0 ? 'pos' : 'neg'));
    });
    const errors = errorLines(marker).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(errors.filter((e) => e.reason === 'INVALID_VALUE').map((e) => [e.id, e.message])).toEqual(
      bad.map((r) => [r.id, 'need three numbers']),
    );
    expect(errors.filter((e) => e.reason === 'POSTPROCESS_ERROR').map((e) => [e.id, e.message])).toEqual(
      failed.map((r) => [r.id, 'asked to fail']),
    );
  });
});

describe('text output formats', () => {
  it.each(['jsonl', 'csv'] as const)(
    'writes %s chunks with the same rows a Parquet run writes',
    async (format) => {
      const dir = path.join(tmp.dir, `format-${format}`);
      await breastCancerInput(path.join(dir, 'in'), 1200, 1, 500);
      const base = breastCancerSpec(path.join(dir, 'in'), path.join(dir, 'parquet'), { batchSize: 100 });
      const parquet = await run(await planWorkerRun(base), { chunkRecords: 500 });
      const text = await run(
        await planWorkerRun({
          ...base,
          output: { ...base.output, uri: `${pathToFileURL(path.join(dir, format)).href}/`, format },
        }),
        { chunkRecords: 500 },
      );
      // Staged as part-*.<format>.staged until Finalize publishes them (docs/adr/0014 §9).
      expect(text.outputs.map((o) => o.uri.split('.').slice(-2).join('.'))).toEqual(
        parquet.outputs.map(() => `${format}.staged`),
      );
      expect(text.outputs.map((o) => o.rows)).toEqual(parquet.outputs.map((o) => o.rows));
      const files = text.outputs.map((o) => `'${fileURLToPath(o.uri)}'`).join(', ');
      const reader =
        format === 'jsonl' ? `read_json_auto([${files}])` : `read_csv([${files}], header = true)`;
      const [diff] = await sql<{ n: bigint; missing: bigint }>(`
      WITH t AS (SELECT patient_id, label, _offset::BIGINT AS off FROM ${reader}),
           p AS (SELECT patient_id, label, _offset AS off FROM ${parquetOf(parquet)})
      SELECT (SELECT count(*) FROM t) AS n,
             (SELECT count(*) FROM (SELECT * FROM p EXCEPT ALL SELECT * FROM t)) AS missing`);
      expect(Number(diff!.n)).toBe(parquet.predictions);
      expect(Number(diff!.missing)).toBe(0);
    },
  );
});

describe('an input object replaced after planning', () => {
  it.each(['jsonl', 'parquet'] as const)(
    'fails the %s shard with ObjectChangedError and writes no marker, rather than reading the new bytes',
    async (format) => {
      const dir = path.join(tmp.dir, `changed-${format}`);
      mkdirSync(path.join(dir, 'in'), { recursive: true });
      const file = path.join(dir, 'in', `part.${format}`);
      const write = (xs: number[]): void => {
        if (format === 'jsonl') writeFileSync(file, xs.map((x, i) => `{"id":"r${i}","x":${x}}\n`).join(''));
        else
          writeFileSync(
            file,
            encodeParquet([
              { name: 'id', type: 'string', values: xs.map((_, i) => `r${i}`) },
              { name: 'x', type: 'double', values: xs },
            ]),
          );
      };
      write([1, 2, 3, 4]);
      const planned = await planWorkerRun({
        name: `changed_${format}`,
        input: { uri: `${pathToFileURL(path.join(dir, 'in')).href}/`, format, id: 'id' },
        model: {
          uri: pathToFileURL(fixtureModel('nan_guard.onnx')).href,
          inputs: [{ tensor: 'x', from: { columns: ['x'] } }],
          outputs: [{ tensor: 'y' }],
        },
        output: { uri: `${pathToFileURL(path.join(dir, 'out')).href}/` },
      });
      // Same size, other content, a later modification time: another object than the one planned.
      write([5, 6, 7, 8]);
      utimesSync(file, new Date(), new Date(Date.now() + 60_000));

      await expect(run(planned)).rejects.toMatchObject({
        name: 'ObjectChangedError',
        message: expect.stringContaining(pathToFileURL(file).href) as unknown,
      });
      expect(await planned.store.tryHead(planned.layout.markerUri(0))).toBeUndefined();
    },
  );
});
