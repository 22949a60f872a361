/**
 * Three finalized runs of one job, through the real Finalize (local store, local catalogue, real Parquet files), for
 * the run report's tests: the job's first run (no history), a second run whose predictions shifted and which has
 * record errors, and a third run that failed (a shard never completed).
 */
import path from 'node:path';
import { LocalCatalog } from '../../src/catalog/local.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { CategoricalAccumulator, NumericAccumulator } from '../../src/runs/stats.js';
import type { ErrorRow, ShardMarker } from '../../src/runs/types.js';
import { writeScores } from '../results/parquet-fixture.js';
import { makeMarker, makeRun, tempDir, writeMarker, type RunFixture } from '../results/run-fixture.js';

export interface ReportRuns {
  readonly dir: string;
  readonly first: RunFixture;
  readonly second: RunFixture;
  readonly failed: RunFixture;
  cleanup(): Promise<void>;
}

const LABELS = ['cat', 'dog', 'bird'] as const;

/**
 * A shard with `rows` predictions: labels drawn in turn from `labels`, scores `offset + i / rows` (so a larger
 * offset shifts the whole distribution), and `errors` error rows written to its errors file.
 */
export async function completeShard(
  fx: RunFixture,
  shardId: number,
  options: { rows: number; errors?: number; labels?: readonly string[]; offset?: number; minutes?: number },
): Promise<ShardMarker> {
  const errors = options.errors ?? 0;
  const labels = options.labels ?? LABELS;
  const marker = makeMarker(fx.layout, shardId, { records: options.rows + errors, errors });
  const rows = Array.from({ length: options.rows }, (_, i) => ({
    label: labels[i % labels.length]!,
    score: (options.offset ?? 0) + i / options.rows,
  }));
  await writeScores(marker.outputs[0]!.uri, rows);
  const label = new CategoricalAccumulator();
  const score = new NumericAccumulator();
  for (const r of rows) {
    label.add(r.label);
    score.add(Math.fround(r.score));
  }
  if (errors > 0) {
    const errorRows: ErrorRow[] = Array.from({ length: errors }, (_, i) => ({
      id: `row-${i}`,
      _shard: shardId,
      _source: `s3://input-bucket/data/part-${shardId}.jsonl`,
      _offset: 100 * i,
      reason: i % 2 === 0 ? 'INVALID_VALUE' : 'MISSING_VALUE',
      message: i % 2 === 0 ? `column "a" is not a number: "<b>x${i}</b>"` : 'column "b" is missing',
    }));
    await fx.store.put(marker.errorsFile!.uri, errorRows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  }
  const minutes = options.minutes ?? 1;
  const written = await writeMarker(fx, {
    ...marker,
    errorsByReason:
      errors > 0
        ? {
            INVALID_VALUE: Math.ceil(errors / 2),
            ...(errors > 1 && { MISSING_VALUE: Math.floor(errors / 2) }),
          }
        : {},
    columns: { label: 'STRING', score: 'FLOAT' },
    summaries: { label: label.summary(), score: score.summary() },
    timings: {
      readMs: 100 * minutes,
      decodeMs: 200 * minutes,
      inferMs: 50_000 * minutes,
      writeMs: 300 * minutes,
      totalMs: 60_000 * minutes,
    },
    startedAt: `${fx.plan.runDate}T10:00:00.000Z`,
    finishedAt: new Date(Date.parse(`${fx.plan.runDate}T10:00:00.000Z`) + 60_000 * minutes).toISOString(),
  });
  return written!;
}

export async function makeReportRuns(): Promise<ReportRuns> {
  const dir = await tempDir();
  const catalog = new LocalCatalog({ path: path.join(dir, 'catalog', 'catalog.duckdb') });
  const lenient = { validation: { maxErrorRate: 0.2 } };
  const now = (day: string) => () => new Date(`${day}T12:00:00.000Z`);

  const first = await makeRun({
    dir,
    shardCount: 3,
    runId: 'run-0001',
    runDate: '2024-05-06',
    spec: lenient,
    recordsPerShard: 40,
  });
  for (const id of [0, 1, 2]) await completeShard(first, id, { rows: 40 });
  await finalizeRun(first.state, {
    store: first.store,
    catalog,
    now: now('2024-05-06'),
    codeVersion: 'v1.2.3',
  });

  const second = await makeRun({
    dir,
    shardCount: 4,
    runId: 'run-0002',
    runDate: '2024-05-07',
    spec: lenient,
    recordsPerShard: 44,
  });
  const shifted = { rows: 40, errors: 4, labels: ['cat', 'cat', 'fish'], offset: 0.5 };
  for (const id of [0, 1, 2]) await completeShard(second, id, shifted);
  // A straggler: three times as slow as the others.
  await completeShard(second, 3, { ...shifted, minutes: 3 });
  await finalizeRun(second.state, {
    store: second.store,
    catalog,
    now: now('2024-05-07'),
    codeVersion: 'v1.2.4',
  });

  const failed = await makeRun({
    dir,
    shardCount: 3,
    runId: 'run-0003',
    runDate: '2024-05-08',
    spec: lenient,
    recordsPerShard: 40,
  });
  for (const id of [0, 1]) await completeShard(failed, id, { rows: 40 });
  await finalizeRun(
    { ...failed.state, round: failed.plan.maxRounds },
    { store: failed.store, catalog, now: now('2024-05-08'), codeVersion: 'v1.2.4' },
  );

  return {
    dir,
    first,
    second,
    failed,
    cleanup: async () => {
      await first.cleanup();
    },
  };
}
