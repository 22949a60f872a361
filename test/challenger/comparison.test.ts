/**
 * The champion/challenger comparison (src/challenger/comparison.ts, sketch.ts) against values computed here
 * directly: agreement and confusion, score differences, cosine similarity, the most-disagreeing sample, merging
 * partials in any grouping, and the threshold checks that gate publication.
 */
import { describe, expect, it } from '@jest/globals';
import {
  ComparisonAccumulator,
  compareColumnsOf,
  mergePartials,
  summarizeComparison,
  type ComparedSide,
} from '../../src/challenger/comparison.js';
import { thresholdChecks } from '../../src/challenger/finalize.js';
import { MAX_CENTROIDS, NumericSketch } from '../../src/challenger/sketch.js';
import type { SourceRecord } from '../../src/formats/records.js';

const records = (n: number, from = 0): SourceRecord[] =>
  Array.from({ length: n }, (_, i) => ({
    source: 'file:///in.csv',
    offset: from + i,
    values: { id: `r${from + i}` },
  }));

function side(labels: string[], scores: number[], vectors: number[][], failed: number[] = []): ComparedSide {
  const rowOf = new Int32Array(labels.length).fill(-1);
  const cols: unknown[][] = [[], [], []];
  let row = 0;
  labels.forEach((l, i) => {
    if (failed.includes(i)) return;
    rowOf[i] = row++;
    cols[0]!.push(l);
    cols[1]!.push(scores[i]);
    cols[2]!.push(vectors[i]);
  });
  return { rowOf, columns: ['label', 'score', 'embedding'], predictions: cols };
}

const columns = compareColumnsOf(
  [
    { name: 'label', type: 'string' },
    { name: 'score', type: 'float' },
    { name: 'embedding', type: 'array<float>' },
  ],
  [
    { name: 'label', type: 'string' },
    { name: 'score', type: 'double' },
    { name: 'embedding', type: 'array<float>' },
  ],
  { champion: new Set(['label']), challenger: new Set(['label']) },
);

describe('ComparisonAccumulator', () => {
  it('picks the compared columns by kind from the columns both models write', () => {
    expect(columns).toEqual({ labels: ['label'], scores: ['score'], vectors: ['embedding'] });
    expect(
      compareColumnsOf([{ name: 'label', type: 'string' }], [{ name: 'other', type: 'string' }], {
        champion: new Set(['label']),
        challenger: new Set(),
      }),
    ).toEqual({ labels: [], scores: [], vectors: [] });
  });

  it('counts agreement, the confusion matrix, score differences and cosines like a direct computation', () => {
    const acc = new ComparisonAccumulator(columns, 'id');
    const a = side(
      ['x', 'x', 'y', 'y', 'z'],
      [0.9, 0.8, 0.7, 0.6, 0.5],
      [
        [1, 0],
        [1, 0],
        [0, 1],
        [1, 1],
        [2, 0],
      ],
    );
    const b = side(
      ['x', 'y', 'y', 'z', 'z'],
      [0.85, 0.3, 0.7, 0.65, 0.1],
      [
        [1, 0],
        [0, 1],
        [0, 2],
        [1, 0],
        [1, 0],
      ],
      [4],
    );
    acc.add(records(5), a, b);
    const c = summarizeComparison(acc.toPartial());
    expect(c.compared).toBe(4);
    expect(c.championOnly).toBe(1);
    expect(c.labels.label).toEqual({
      agreement: 2 / 4,
      agreeing: 2,
      confusion: { x: { x: 1, y: 1 }, y: { y: 1, z: 1 } },
    });
    const diffs = [0.85 - 0.9, 0.3 - 0.8, 0.7 - 0.7, 0.65 - 0.6];
    expect(c.scores.score!.mean).toBeCloseTo(diffs.reduce((s, d) => s + d, 0) / 4, 12);
    expect(c.scores.score!.meanAbs).toBeCloseTo(diffs.reduce((s, d) => s + Math.abs(d), 0) / 4, 12);
    expect(c.scores.score!.quantiles.p0).toBeCloseTo(Math.min(...diffs), 12);
    expect(c.scores.score!.quantiles.p100).toBeCloseTo(Math.max(...diffs), 12);
    const cosines = [1, 0, 1, 1 / Math.SQRT2];
    expect(c.cosine.embedding!.mean).toBeCloseTo(cosines.reduce((s, d) => s + d, 0) / 4, 12);
    // Most disagreeing first: record 1 (label differs, |diff| 0.5, cosine 0), record 3, then record 0 (|diff| 0.05);
    // record 2 (same label, same score, parallel vectors) does not disagree at all.
    expect(c.disagreements.map((d) => d.id)).toEqual(['r1', 'r3', 'r0']);
    expect(c.disagreements[0]).toMatchObject({
      _source: 'file:///in.csv',
      _offset: 1,
      champion: { label: 'x', score: 0.8 },
      challenger: { label: 'y', score: 0.3 },
      cosine: { embedding: 0 },
    });
    expect(c.disagreements[0]!.magnitude).toBeCloseTo(1 + 0.5 + 1, 12);
  });

  it('gives the same comparison whether the records come in one partial or several merged', () => {
    const labelsA = Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? 'p' : 'q'));
    const labelsB = Array.from({ length: 300 }, (_, i) => (i % 5 === 0 ? 'p' : 'q'));
    const scoresA = Array.from({ length: 300 }, (_, i) => ((i * 37) % 101) / 100);
    const scoresB = Array.from({ length: 300 }, (_, i) => ((i * 53) % 97) / 100);
    const vec = (i: number) => [Math.sin(i), Math.cos(i)];
    const whole = new ComparisonAccumulator(columns, 'id');
    whole.add(
      records(300),
      side(
        labelsA,
        scoresA,
        scoresA.map((_, i) => vec(i)),
      ),
      side(
        labelsB,
        scoresB,
        scoresB.map((_, i) => vec(i + 1)),
      ),
    );
    const parts = [0, 100, 200].map((from) => {
      const acc = new ComparisonAccumulator(columns, 'id');
      const s = (arr: number[]) => arr.slice(from, from + 100);
      acc.add(
        records(100, from),
        side(
          labelsA.slice(from, from + 100),
          s(scoresA),
          s(scoresA).map((_, i) => vec(from + i)),
        ),
        side(
          labelsB.slice(from, from + 100),
          s(scoresB),
          s(scoresB).map((_, i) => vec(from + i + 1)),
        ),
      );
      return acc.toPartial();
    });
    const merged = summarizeComparison(mergePartials(parts)!);
    const direct = summarizeComparison(whole.toPartial());
    expect(merged.labels).toEqual(direct.labels);
    expect(merged.disagreements).toEqual(direct.disagreements);
    expect(merged.scores.score!.mean).toBeCloseTo(direct.scores.score!.mean!, 12);
    expect(merged.scores.score!.quantiles).toEqual(direct.scores.score!.quantiles);
    expect(merged.cosine.embedding!.mean).toBeCloseTo(direct.cosine.embedding!.mean!, 12);
  });
});

describe('NumericSketch', () => {
  it('is exact up to MAX_CENTROIDS values and close to the true quantiles beyond', () => {
    const small = new NumericSketch();
    for (let i = 1; i <= 100; i++) small.add(i);
    expect(small.quantile(0.5)).toBe(50);
    expect(small.quantile(0.95)).toBe(95);
    const big = new NumericSketch();
    const n = 100_000;
    for (let i = 0; i < n; i++) big.add((i * 7919) % n); // every value 0..n-1 once, shuffled
    for (const p of [0.01, 0.25, 0.5, 0.75, 0.99]) {
      expect(Math.abs(big.quantile(p)! - p * n)).toBeLessThanOrEqual((2 * n) / MAX_CENTROIDS);
    }
    expect(big.quantile(0)).toBe(0);
    expect(big.quantile(1)).toBe(n - 1);
    expect(big.mean()).toBeCloseTo((n - 1) / 2, 6);
  });
});

describe('validation.challenger thresholds', () => {
  const acc = new ComparisonAccumulator(columns, 'id');
  acc.add(
    records(4),
    side(['x', 'x', 'x', 'x'], [1, 1, 1, 1], [[1], [1], [1], [1]]),
    side(['x', 'x', 'x', 'y'], [1, 1, 1, 0], [[1], [1], [1], [-1]]),
  );
  const comparison = summarizeComparison(acc.toPartial());

  it('passes at or under the measured agreement and fails above it, saying by how much', () => {
    expect(thresholdChecks({ minAgreement: 0.75 }, comparison, undefined)).toEqual([
      expect.objectContaining({ name: 'challenger.minAgreement.label', passed: true, actual: 0.75 }),
    ]);
    const [failed] = thresholdChecks({ minAgreement: 0.8 }, comparison, undefined);
    expect(failed).toMatchObject({ passed: false, threshold: 0.8, actual: 0.75 });
    expect(failed!.message).toContain(
      'agree on 75.00% of label labels (3 of 4 records), below validation.challenger.minAgreement 80.00%',
    );
  });

  it('checks score differences and cosines, and fails a threshold nothing can measure', () => {
    const checks = thresholdChecks({ maxMeanAbsScoreDiff: 0.2, minMeanCosine: 0.6 }, comparison, undefined);
    expect(checks.map((c) => [c.name, c.passed])).toEqual([
      ['challenger.maxMeanAbsScoreDiff.score', false],
      ['challenger.minMeanCosine.embedding', false],
    ]);
    const none = thresholdChecks({ minAgreement: 0.5 }, undefined, 'a shard comparison is missing');
    expect(none).toEqual([expect.objectContaining({ name: 'challenger.minAgreement', passed: false })]);
    expect(none[0]!.message).toContain('a shard comparison is missing');
  });
});
