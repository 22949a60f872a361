/**
 * Drift: PSI per prediction column against the previous succeeded run of the same job. The pure functions are
 * checked against values worked out by hand; Finalize is run on real stored runs (local store, real Parquet,
 * DuckDB catalogue) to check which run is the baseline and what lands in manifest.drift.
 */
import fc from 'fast-check';
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { LocalCatalog } from '../../src/catalog/local.js';
import {
  categoricalPsi,
  columnPsi,
  computeDrift,
  historyUri,
  historySchema,
  numericPsi,
  psi,
  PSI_EPSILON,
} from '../../src/results/drift.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { manifestSchema, type Manifest } from '../../src/results/manifest.js';
import {
  CategoricalAccumulator,
  mergeSummaries,
  NumericAccumulator,
  VectorAccumulator,
  type CategoricalSummary,
  type NumericSummary,
  type OutputSummaries,
} from '../../src/runs/stats.js';
import type { ShardMarker } from '../../src/runs/types.js';
import { getJson } from '../../src/storage/object-store.js';
import { writeScores } from './parquet-fixture.js';
import { makeMarker, makeRun, writeMarker, type RunFixture } from './run-fixture.js';

const numeric = (values: readonly number[]): NumericSummary => {
  const acc = new NumericAccumulator();
  for (const v of values) acc.add(v);
  return acc.summary();
};
const categorical = (values: readonly string[]): CategoricalSummary => {
  const acc = new CategoricalAccumulator();
  for (const v of values) acc.add(v);
  return acc.summary();
};
const repeat = <T>(value: T, n: number): T[] => Array.from({ length: n }, () => value);

/** 50/50 -> 80/20 over two buckets: 0.3·ln(0.8/0.5) + 0.3·ln(0.5/0.2). */
const PSI_50_50_TO_80_20 = 0.3 * Math.log(1.6) + 0.3 * Math.log(2.5);

describe('psi', () => {
  it('is 0 for identical shares, whatever the counts', () => {
    expect(psi([50, 50], [50, 50])).toBe(0);
    expect(psi([1, 2, 7], [10, 20, 70])).toBe(0);
  });

  it('gives the textbook value for a known shift', () => {
    expect(psi([50, 50], [80, 20])).toBeCloseTo(PSI_50_50_TO_80_20, 12);
    expect(PSI_50_50_TO_80_20).toBeCloseTo(0.415888, 6);
  });

  it('counts an empty bucket as PSI_EPSILON, and has no value without rows', () => {
    const q = [0.9, 0.1];
    const p = [1, PSI_EPSILON];
    expect(psi([100, 0], [90, 10])).toBeCloseTo(
      (q[0]! - p[0]!) * Math.log(q[0]! / p[0]!) + (q[1]! - p[1]!) * Math.log(q[1]! / p[1]!),
      12,
    );
    expect(psi([0, 0], [1, 2])).toBeUndefined();
    expect(() => psi([1], [1, 2])).toThrow(RangeError);
  });

  it('is never negative, 0 for equal shares and positive for unequal ones (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(1000), fc.nat(1000)), { minLength: 1, maxLength: 12 }),
        (pairs) => {
          const b = pairs.map(([x]) => x);
          const a = pairs.map(([, y]) => y);
          const value = psi(b, a);
          if (value === undefined) return;
          expect(value).toBeGreaterThanOrEqual(0);
          expect(psi(b, b)).toBe(0);
          // Unequal shares (after the PSI_EPSILON floor both sides get) give a positive PSI; equal ones give 0.
          const shares = (counts: number[]): number[] => {
            const total = counts.reduce((n, c) => n + c, 0);
            return counts.map((c) => Math.max(c / total, PSI_EPSILON));
          };
          const [sb, sa] = [shares(b), shares(a)];
          const unequal = sb.some((share, i) => share !== sa[i]);
          if (unequal) expectIn(value, JSON.stringify({ b, a })).toBeGreaterThan(0);
          else expectIn(value, JSON.stringify({ b, a })).toBe(0);
        },
      ),
    );
  });
});

describe('categoricalPsi', () => {
  it('is 0 for the same label counts in any order, and known for a shift', () => {
    const base = categorical([...repeat('cat', 50), ...repeat('dog', 50)]);
    expect(categoricalPsi(base, categorical([...repeat('dog', 5), ...repeat('cat', 5)]))).toBe(0);
    expect(categoricalPsi(base, categorical([...repeat('cat', 80), ...repeat('dog', 20)]))).toBeCloseTo(
      PSI_50_50_TO_80_20,
      12,
    );
  });

  it('counts a label only one run has, and labels such as __proto__ as ordinary values', () => {
    const base = categorical([...repeat('a', 50), ...repeat('__proto__', 50)]);
    const current = categorical([...repeat('a', 50), ...repeat('__proto__', 40), ...repeat('c', 10)]);
    // Shares (sorted values __proto__, a, c): baseline 0.5, 0.5, ε; current 0.4, 0.5, 0.1.
    const expected = -0.1 * Math.log(0.4 / 0.5) + (0.1 - PSI_EPSILON) * Math.log(0.1 / PSI_EPSILON);
    expect(categoricalPsi(base, current)).toBeCloseTo(expected, 12);
  });
});

describe('numericPsi', () => {
  it('is 0 for the same values however they were split across shards', () => {
    const values = Array.from({ length: 500 }, (_, i) => ((i * 7919) % 1000) / 10 - 20);
    const whole = numeric(values);
    const merged = mergeSummaries({ x: numeric(values.slice(0, 123)) }, { x: numeric(values.slice(123)) })
      .x as NumericSummary;
    expect(numericPsi(whole, merged)).toBe(0);
  });

  it('gives the known value for a shift between two values (two buckets, one bin each)', () => {
    const base = numeric([...repeat(1, 50), ...repeat(100, 50)]);
    expect(numericPsi(base, numeric([...repeat(1, 80), ...repeat(100, 20)]))).toBeCloseTo(
      PSI_50_50_TO_80_20,
      12,
    );
    // Values past either end of the baseline fall in buckets of their own, which the baseline leaves empty: moving
    // every value out of the baseline's range is a major shift, not the 80/20 split it would be inside it.
    expect(numericPsi(base, numeric([...repeat(0.001, 80), ...repeat(1e9, 20)]))).toBeGreaterThan(5);
  });

  it('sees a shift out of a baseline concentrated in one bin (an embedding norm, a constant score)', () => {
    const base = numeric(repeat(0.5, 100));
    expect(numericPsi(base, numeric(repeat(0.5, 100)))).toBe(0);
    expect(numericPsi(base, numeric(repeat(0.9, 100)))).toBeGreaterThan(5);
    expect(numericPsi(base, numeric(repeat(0.1, 100)))).toBeGreaterThan(5);
  });

  it('compares in baseline deciles: a resample of the same distribution reads stable, a shifted one does not', () => {
    const base = numeric(Array.from({ length: 10_000 }, (_, i) => 1 + i / 10));
    const resample = numeric(Array.from({ length: 3_000 }, (_, i) => 1 + (i + 0.5) / 3));
    const shifted = numeric(Array.from({ length: 3_000 }, (_, i) => 400 + (i + 0.5) / 3));
    expect(numericPsi(base, resample)).toBeLessThan(0.01);
    expect(numericPsi(base, shifted)).toBeGreaterThan(1);
    // Negative values, zero and positive ones order as numbers do.
    const mixed = numeric([-5, -5, 0, 0, 3, 3]);
    expect(numericPsi(mixed, numeric([-5, 0, 3]))).toBe(0);
    expect(numericPsi(mixed, numeric([3, 3, 3]))).toBeGreaterThan(1);
  });

  it('has no value for empty summaries or bins that do not line up', () => {
    expect(numericPsi(numeric([]), numeric([1]))).toBeUndefined();
    const other = { ...numeric([1, 2]), bins: { ...numeric([1, 2]).bins, gamma: 1.05 } };
    expect(numericPsi(numeric([1, 2]), other)).toBeUndefined();
  });
});

describe('computeDrift', () => {
  it('compares the columns both runs have, vectors by their norms and values, skips mismatched kinds, and takes the max', () => {
    const vector = new VectorAccumulator();
    vector.add([0.1, 0.9]);
    const baseline: OutputSummaries = {
      label: categorical([...repeat('a', 50), ...repeat('b', 50)]),
      score: numeric([...repeat(0.2, 50), ...repeat(0.9, 50)]),
      probabilities: vector.summary(),
      gone: numeric([1]),
      changed: numeric([1]),
    };
    const current: OutputSummaries = {
      label: categorical([...repeat('a', 50), ...repeat('b', 50)]),
      score: numeric([...repeat(0.2, 80), ...repeat(0.9, 20)]),
      probabilities: vector.summary(),
      added: numeric([1]),
      changed: categorical(['1']),
    };
    const drift = computeDrift('run-a', baseline, current);
    expect(drift).toEqual({
      baselineRunId: 'run-a',
      maxPsi: Number(PSI_50_50_TO_80_20.toFixed(6)),
      columns: {
        label: 0,
        'probabilities.dimensions': 0,
        'probabilities.elements': 0,
        'probabilities.norm': 0,
        score: Number(PSI_50_50_TO_80_20.toFixed(6)),
      },
      vectors: {
        probabilities: {
          normPsi: 0,
          elementsPsi: 0,
          dimensionsPsiMax: 0,
          dimensionsPsiMean: 0,
          meanCosineDistance: 0,
          meanRelativeShift: 0,
        },
      },
    });
    expect(columnPsi(baseline.probabilities!, current.probabilities!)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Finalize with several runs of one job

const NOW = () => new Date('2024-06-01T12:00:00.000Z');

let fixtures: RunFixture[] = [];
afterEach(async () => {
  await Promise.all(fixtures.map((f) => f.cleanup()));
  fixtures = [];
});

/**
 * A run of the same job (same output prefix), planned on `runDate`: each shard wrote real Parquet rows and a
 * marker with the summaries of exactly those rows. `rows` gives each shard's (label, score) rows.
 */
async function finalizedRun(
  dir: string | undefined,
  runId: string,
  runDate: string,
  rows: { label: string; score: number }[][],
  options: { missingShard?: boolean } = {},
): Promise<{ fx: RunFixture; manifest: Manifest }> {
  const fx = await makeRun({
    shardCount: rows.length,
    runId,
    runDate,
    recordsExact: false,
    ...(dir !== undefined && { dir }),
  });
  fixtures.push(fx);
  for (const [id, shardRows] of rows.entries()) {
    if (options.missingShard && id === rows.length - 1) continue;
    const base = makeMarker(fx.layout, id, { records: shardRows.length });
    await writeScores(base.outputs[0]!.uri, shardRows);
    const marker: ShardMarker = {
      ...base,
      summaries: {
        label: categorical(shardRows.map((r) => r.label)),
        score: numeric(shardRows.map((r) => r.score)),
      },
    };
    await writeMarker(fx, marker);
  }
  await finalizeRun(fx.state, {
    store: fx.store,
    catalog: new LocalCatalog({ path: path.join(fx.dir, 'catalog.duckdb') }),
    now: NOW,
    codeVersion: 'test',
  }).catch(() => undefined);
  const manifest = manifestSchema.parse(await getJson(fx.store, fx.layout.manifestUri));
  return { fx, manifest };
}

const rowsOf = (
  labels: Record<string, number>,
  score: (i: number) => number,
): { label: string; score: number }[] => {
  const rows: { label: string; score: number }[] = [];
  for (const [label, n] of Object.entries(labels))
    for (let i = 0; i < n; i++) rows.push({ label, score: score(rows.length) });
  return rows;
};

describe('Finalize: drift against the previous succeeded run of the job', () => {
  it('is absent on the first run, then compares with the run planned before (by time, not by run id)', async () => {
    // An S3-triggered run id: it sorts after the next run's id, which was planned later.
    const first = await finalizedRun(undefined, 's3-day1-csv-5f1c0d', '2024-05-06', [
      rowsOf({ cat: 3, dog: 2 }, () => 0.25),
      rowsOf({ cat: 2, dog: 3 }, () => 0.75),
    ]);
    expect(first.manifest.status).toBe('SUCCEEDED');
    expect(first.manifest.summaries?.label).toMatchObject({ counts: { cat: 5, dog: 5 } });
    expect(first.manifest).not.toHaveProperty('drift');

    // Same shares: no drift.
    const second = await finalizedRun(first.fx.dir, 'manual-20240507', '2024-05-07', [
      rowsOf({ cat: 1, dog: 1 }, () => 0.25),
      rowsOf({ cat: 1, dog: 1 }, () => 0.75),
    ]);
    expect(second.manifest.status).toBe('SUCCEEDED');
    expect(second.manifest.drift).toEqual({
      baselineRunId: 's3-day1-csv-5f1c0d',
      maxPsi: 0,
      columns: { label: 0, score: 0 },
    });

    // 50/50 -> 80/20 in both columns, against the second run (the latest before it).
    const third = await finalizedRun(first.fx.dir, 'a-third', '2024-05-08', [
      rowsOf({ cat: 4, dog: 1 }, () => 0.25),
      rowsOf({ cat: 4, dog: 1 }, (i) => (i < 3 ? 0.25 : 0.75)),
    ]);
    const known = Number(PSI_50_50_TO_80_20.toFixed(6));
    expect(third.manifest.drift).toEqual({
      baselineRunId: 'manual-20240507',
      maxPsi: known,
      columns: { label: known, score: known },
    });

    const history = historySchema.parse(await getJson(first.fx.store, historyUri(first.fx.layout)));
    expect(history.runs.map((r) => r.runId)).toEqual(['s3-day1-csv-5f1c0d', 'manual-20240507', 'a-third']);
  });

  it('never takes a failed run as the baseline, and is idempotent when Finalize runs again', async () => {
    const good = await finalizedRun(undefined, 'run-good', '2024-05-06', [
      rowsOf({ cat: 2, dog: 2 }, () => 0.5),
    ]);
    const failed = await finalizedRun(
      good.fx.dir,
      'run-failed',
      '2024-05-07',
      [rowsOf({ cat: 4 }, () => 0.5), rowsOf({ dog: 4 }, () => 0.5)],
      { missingShard: true },
    );
    expect(failed.manifest.status).toBe('FAILED');
    // A failed run still gets its drift computed (against the last good run), but is not in the history.
    expect(failed.manifest.drift?.baselineRunId).toBe('run-good');
    const later = await finalizedRun(good.fx.dir, 'run-later', '2024-05-08', [
      rowsOf({ cat: 2, dog: 2 }, () => 0.5),
    ]);
    expect(later.manifest.drift).toEqual({
      baselineRunId: 'run-good',
      maxPsi: 0,
      columns: { label: 0, score: 0 },
    });

    // Finalize of the later run again: it must not compare with itself.
    await finalizeRun(later.fx.state, {
      store: later.fx.store,
      catalog: new LocalCatalog({ path: path.join(later.fx.dir, 'catalog.duckdb') }),
      now: NOW,
      codeVersion: 'test',
    });
    const again = manifestSchema.parse(await getJson(later.fx.store, later.fx.layout.manifestUri));
    expect(again.drift?.baselineRunId).toBe('run-good');
    const history = historySchema.parse(await getJson(good.fx.store, historyUri(good.fx.layout)));
    expect(history.runs.map((r) => r.runId)).toEqual(['run-good', 'run-later']);
  });
});
