/**
 * A shard with a challenger (docs/adr/0020) in a worker process interrupted mid-shard, then retried: SIGTERM (an
 * orderly stop with both checkpoints written in step) and SIGKILL right after a checkpoint. The retry resumes where
 * both tables' checkpoints agree and ends with both tables exactly as an uninterrupted run writes them (no record
 * lost, none twice), the same error rows, and the same comparison, whose counts match the two tables joined.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import {
  chunkComparisonUri,
  readComparisonPartial,
  shardComparisonUri,
} from '../../src/challenger/comparison-files.js';
import { summarizeComparison, type ComparisonPartial } from '../../src/challenger/comparison.js';
import { challengerLayoutOf } from '../../src/challenger/plan.js';
import type { ShardMarker } from '../../src/runs/types.js';
import { CHECKPOINT_CLOCK_ENV, CHUNK_RECORDS_ENV, INTERRUPTED_EXIT_CODE } from '../../src/worker/env.js';
import {
  breastCancerInput,
  breastCancerSpec,
  errorLines,
  expectSameOutput,
  parquetOf,
  planWorkerRun,
  readCheckpointFile,
  readMarker,
  sql,
  startWorker,
  tempDir,
  waitFor,
  type PlannedRun,
} from '../worker/helpers.js';
import { HOLD_UNTIL_KILLED_MS, HOLD_UNTIL_STOPPED_MS, manualClockUrl } from '../worker/manual-clock.js';

const RECORDS = 12_000;
/** Small chunks: several checkpoints, so the interruption lands between two of them. */
const WORKER_ENV = { [CHUNK_RECORDS_ENV]: '1000' };

let tmp: { dir: string; cleanup: () => void };
let inputDir: string;
let reference: Tables;

/** Both tables' markers and the shard's comparison. */
interface Tables {
  readonly champion: ShardMarker;
  readonly challenger: ShardMarker;
  readonly comparison: ComparisonPartial;
}

function spec(out: string) {
  const base = breastCancerSpec(inputDir, path.join(tmp.dir, out), { batchSize: 250 });
  return {
    ...base,
    model: { ...base.model, challenger: { registry: { group: 'breast-cancer-mlp', version: 2 } } },
  };
}

/** The planned run as the challenger's table sees it (its own layout under `_challenger/`). */
function challengerRun(planned: PlannedRun): PlannedRun {
  const layout = challengerLayoutOf(planned.plan);
  if (!layout) throw new Error('the plan has no challenger');
  return { ...planned, layout };
}

async function tablesOf(planned: PlannedRun): Promise<Tables> {
  const challenger = challengerRun(planned);
  return {
    champion: await readMarker(planned),
    challenger: await readMarker(challenger),
    comparison: await readComparisonPartial(planned.store, shardComparisonUri(challenger.layout, 0)),
  };
}

async function finish(planned: PlannedRun, attempt: number): Promise<Tables> {
  const worker = startWorker(planned.runUri, WORKER_ENV, attempt);
  const exit = await worker.exited;
  expectIn(exit, worker.output()).toMatchObject({ code: 0, signal: null });
  return tablesOf(planned);
}

/**
 * Starts a worker and waits until both tables have checkpointed at least `chunks` chunks. From then on each of the
 * worker's checkpoint-clock reads (one per batch) holds it for `holdMs` (test/worker/manual-clock.ts): on a fast
 * machine it could otherwise finish the shard between the test seeing the checkpoints and the signal.
 */
async function startAndWaitForChunks(planned: PlannedRun, chunks: number, holdMs: number) {
  const checkpoints = [planned, challengerRun(planned)].map((run) =>
    fileURLToPath(run.layout.checkpointUri(0)),
  );
  // Never written: the clock shows 0, so no chunk closes by time; only the hold matters.
  const clock = {
    file: path.join(tmp.dir, 'clock-never-set.txt'),
    hold: { checkpoints, chunks, ms: holdMs },
  };
  const env = { ...WORKER_ENV, [CHECKPOINT_CLOCK_ENV]: manualClockUrl(clock) };
  const worker = startWorker(planned.runUri, env, 1);
  const both = await waitFor(
    async () => {
      const champion = await readCheckpointFile(planned);
      const challenger = await readCheckpointFile(challengerRun(planned));
      return champion && challenger && champion.chunks.length >= chunks && challenger.chunks.length >= chunks
        ? true
        : undefined;
    },
    { timeoutMs: 120_000, until: worker.exited },
  );
  expectIn(both, `no checkpoints with ${chunks} chunks while the worker ran:\n${worker.output()}`).toBe(true);
  return worker;
}

/** The retry's tables are the uninterrupted run's: rows, error rows and the comparison. */
async function expectSameTables(resumed: Tables): Promise<void> {
  for (const table of ['champion', 'challenger'] as const) {
    const [a, b] = [reference[table], resumed[table]];
    expectIn(b.records, table).toBe(RECORDS);
    expectIn(b.errorsByReason, table).toEqual(a.errorsByReason);
    // Every column, lineage included; `differences` also counts a (_source, _offset) written twice.
    expectIn(await expectSameOutput(a, b), table).toEqual({ rows: a.predictions, differences: 0 });
    expectIn(errorLines(b), table).toEqual(errorLines(a));
  }
  await expectSameComparison(resumed);
}

/**
 * The retry's comparison is the uninterrupted run's: counts, confusion matrix, the most-disagreeing sample and the
 * score differences' exact statistics are equal; the sum of differences is equal up to the order of additions; and
 * each quantile (from centroids, which depend on where chunks were sealed: SIGTERM seals a short chunk) lies within
 * the sketch's rank bound of the exact quantile of the differences read back from both tables.
 */
async function expectSameComparison(resumed: Tables): Promise<void> {
  const [a, b] = [reference.comparison, resumed.comparison];
  const exact = (p: ComparisonPartial) => ({
    counts: [p.compared, p.championOnly, p.challengerOnly, p.neither],
    confusion: p.confusion,
    disagreements: p.disagreements,
    scores: Object.entries(p.scoreDiffs).map(([c, d]) => [c, d.count, d.min, d.max]),
  });
  expect(exact(b)).toEqual(exact(a));
  const [x, y] = [a.scoreDiffs.score!, b.scoreDiffs.score!];
  expect(y.sum).toBeCloseTo(x.sum, 9);
  expect(y.sumAbs).toBeCloseTo(x.sumAbs, 9);
  const diffs = (
    await sql<{ d: number }>(`
      SELECT b.score::DOUBLE - a.score::DOUBLE AS d
      FROM ${parquetOf(resumed.champion)} a JOIN ${parquetOf(resumed.challenger)} b USING (_source, _offset)
      ORDER BY d`)
  ).map((r) => r.d);
  expect(diffs).toHaveLength(y.count);
  const n = diffs.length;
  // The sketch's bound (1/512 of the rank) with margin, and the Parquet column's float32 rounding.
  const slack = Math.ceil((2 * n) / 512);
  const quantiles = summarizeComparison(b).scores.score!.quantiles;
  for (const [name, value] of Object.entries(quantiles)) {
    const rank = (Number(name.slice(1)) / 100) * (n - 1);
    const low = diffs[Math.max(0, Math.floor(rank) - slack)]! - 1e-6;
    const high = diffs[Math.min(n - 1, Math.ceil(rank) + slack)]! + 1e-6;
    expectIn(value, `${name} of ${n} differences, exact range [${low}, ${high}]`).toBeGreaterThanOrEqual(low);
    expectIn(value, `${name} of ${n} differences, exact range [${low}, ${high}]`).toBeLessThanOrEqual(high);
  }
}

beforeAll(async () => {
  tmp = tempDir('challenger-interrupt-');
  inputDir = path.join(tmp.dir, 'in');
  await breastCancerInput(inputDir, RECORDS, 2, 2_500);
  reference = await finish(await planWorkerRun(spec('whole')), 1);
}, 240_000);
afterAll(() => tmp.cleanup());

describe('the uninterrupted reference shard', () => {
  it('writes both tables over every record, and a comparison whose counts match the two tables joined', async () => {
    const { champion, challenger, comparison } = reference;
    expect(champion.records).toBe(RECORDS);
    expect(challenger.records).toBe(RECORDS);
    expect(champion.outputs.length).toBeGreaterThan(5);
    expect(challenger.outputs.length).toBe(champion.outputs.length);
    // Broken input records are error rows in both tables.
    expect(champion.errors).toBeGreaterThan(0);
    expect(challenger.errorsByReason).toEqual(champion.errorsByReason);
    const [joined] = await sql<{ both: bigint; agree: bigint }>(`
      SELECT count(*) AS both, count(*) FILTER (WHERE a.label = b.label) AS agree
      FROM ${parquetOf(champion)} a JOIN ${parquetOf(challenger)} b USING (_source, _offset)`);
    expect(comparison.compared).toBe(Number(joined!.both));
    expect(comparison.championOnly + comparison.challengerOnly).toBe(0);
    const confusion = comparison.confusion.label!;
    const agreeing = Object.entries(confusion).reduce((n, [x, row]) => n + (row[x] ?? 0), 0);
    expect(agreeing).toBe(Number(joined!.agree));
  });
});

describe('a shard with a challenger sent SIGTERM mid-shard', () => {
  it('stops with both checkpoints in step, and the retry resumes them and writes both tables exactly', async () => {
    const planned = await planWorkerRun(spec('sigterm'));
    const worker = await startAndWaitForChunks(planned, 2, HOLD_UNTIL_STOPPED_MS);
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    expectIn(exit, worker.output()).toMatchObject({ code: INTERRUPTED_EXIT_CODE, signal: null });
    const champion = (await readCheckpointFile(planned))!;
    const challenger = (await readCheckpointFile(challengerRun(planned)))!;
    // In step: the same chunks over the same records, and a comparison partial for each of the challenger's chunks.
    expect(challenger.chunks.map((c) => c.records)).toEqual(champion.chunks.map((c) => c.records));
    expect(champion.records).toBeLessThan(RECORDS);
    for (let k = 0; k < challenger.chunks.length; k++) {
      const partial = await readComparisonPartial(
        planned.store,
        chunkComparisonUri(challengerRun(planned).layout, 0, k),
      );
      expectIn(partial.compared + partial.challengerOnly, `chunk ${k}`).toBe(
        challenger.chunks[k]!.predictions,
      );
      expectIn(partial.compared + partial.championOnly, `chunk ${k}`).toBe(champion.chunks[k]!.predictions);
    }
    expect(await planned.store.tryHead(planned.layout.markerUri(0))).toBeUndefined();
    expect(await planned.store.tryHead(challengerRun(planned).layout.markerUri(0))).toBeUndefined();

    const resumed = await finish(planned, 2);
    expect(resumed.champion.resume).toMatchObject({
      resumedChunks: champion.chunks.length,
      resumedRecords: champion.records,
    });
    await expectSameTables(resumed);
  }, 240_000);
});

describe('a shard with a challenger killed (SIGKILL) after a checkpoint', () => {
  it('is retried from the checkpoints both tables agree on (or from the start), and both tables are exact', async () => {
    const planned = await planWorkerRun(spec('sigkill'));
    const worker = await startAndWaitForChunks(planned, 2, HOLD_UNTIL_KILLED_MS);
    worker.child.kill('SIGKILL');
    expect((await worker.exited).signal).toBe('SIGKILL');
    const champion = (await readCheckpointFile(planned))!;
    const challenger = await readCheckpointFile(challengerRun(planned));
    // Killed between the two tables' checkpoints, they disagree and the retry starts over; else it resumes.
    const agreed =
      challenger?.chunks.length === champion.chunks.length && challenger.records === champion.records;

    const resumed = await finish(planned, 2);
    expect(resumed.champion.resume?.resumedRecords).toBe(agreed ? champion.records : 0);
    await expectSameTables(resumed);
  }, 240_000);
});
