/**
 * Drift of vector outputs (embeddings, lists) with known distributions: no change, a shift of the norms, and a
 * rotated embedding whose norms and values are unchanged but whose direction is not.
 */
import { describe, expect, it } from '@jest/globals';
import { computeDrift, vectorDrift } from '../../src/results/drift.js';
import { MAX_POSITION_SUMMARIES, mergeSummaries, VectorAccumulator } from '../../src/runs/stats.js';

/** A deterministic cloud of `n` vectors of `dims` dimensions around `centre`, scaled by `scale`. */
function embeddings(n: number, dims: number, centre: (k: number) => number, scale = 1): VectorAccumulator {
  const acc = new VectorAccumulator();
  for (let i = 0; i < n; i++) {
    acc.add(Array.from({ length: dims }, (_, k) => scale * (centre(k) + 0.1 * Math.sin(i * 7.3 + k * 1.7))));
  }
  return acc;
}

/** Rotation of the plane of dimensions 0 and 1 by 90°, applied to the same cloud: norms and values unchanged. */
function rotated(n: number, dims: number, centre: (k: number) => number): VectorAccumulator {
  const acc = new VectorAccumulator();
  for (let i = 0; i < n; i++) {
    const v = Array.from({ length: dims }, (_, k) => centre(k) + 0.1 * Math.sin(i * 7.3 + k * 1.7));
    [v[0], v[1]] = [-v[1]!, v[0]!];
    acc.add(v);
  }
  return acc;
}

const CENTRE = (k: number): number => (k === 0 ? 1 : k === 1 ? 0 : 0.02);

describe('vector drift', () => {
  it('is zero for the same embeddings, short or long', () => {
    for (const dims of [8, 384]) {
      const a = embeddings(500, dims, CENTRE).summary();
      const drift = vectorDrift(a, a);
      expect(drift).toMatchObject({
        normPsi: 0,
        elementsPsi: 0,
        meanCosineDistance: 0,
        meanRelativeShift: 0,
      });
      // Per-position PSI only for short vectors.
      if (dims <= MAX_POSITION_SUMMARIES) expect(drift.dimensionsPsiMax).toBe(0);
      else expect(drift.dimensionsPsiMax).toBeUndefined();
    }
  });

  it('sees norms that grew, through the norm PSI', () => {
    const before = embeddings(500, 384, CENTRE).summary();
    const after = embeddings(500, 384, CENTRE, 1.5).summary();
    const drift = vectorDrift(before, after);
    expect(drift.normPsi).toBeGreaterThan(1);
    // Same direction: the mean vector only got longer.
    expect(drift.meanCosineDistance).toBeLessThan(1e-9);
    expect(drift.meanRelativeShift).toBeCloseTo(0.5, 6);
  });

  it('sees a rotated embedding whose norms did not change, through the mean vector and per-dimension PSI', () => {
    for (const dims of [8, 384]) {
      const before = embeddings(500, dims, CENTRE).summary();
      const after = rotated(500, dims, CENTRE).summary();
      const drift = vectorDrift(before, after);
      expect(drift.normPsi).toBeLessThan(0.01);
      // The mean moved by 90° in one plane: a large cosine distance.
      expect(drift.meanCosineDistance).toBeGreaterThan(0.3);
      if (dims <= MAX_POSITION_SUMMARIES) expect(drift.dimensionsPsiMax).toBeGreaterThan(1);
      const run = computeDrift('run-a', { emb: before }, { emb: after });
      expect(run?.vectors?.emb?.meanCosineDistance).toBe(drift.meanCosineDistance);
      expect(Object.keys(run?.columns ?? {})).toEqual(
        dims <= MAX_POSITION_SUMMARIES
          ? ['emb.norm', 'emb.elements', 'emb.dimensions']
          : ['emb.norm', 'emb.elements'],
      );
    }
  });

  it('merges norms and mean vectors exactly across shards', () => {
    const a = embeddings(100, 16, CENTRE);
    const b = embeddings(300, 16, CENTRE, 2);
    const both = new VectorAccumulator();
    for (let i = 0; i < 100; i++)
      both.add(Array.from({ length: 16 }, (_, k) => CENTRE(k) + 0.1 * Math.sin(i * 7.3 + k * 1.7)));
    for (let i = 0; i < 300; i++)
      both.add(Array.from({ length: 16 }, (_, k) => 2 * (CENTRE(k) + 0.1 * Math.sin(i * 7.3 + k * 1.7))));
    const merged = mergeSummaries({ v: a.summary() }, { v: b.summary() }).v;
    const whole = both.summary();
    expect(merged?.kind).toBe('vector');
    if (merged?.kind !== 'vector') return;
    expect(merged.norms?.count).toBe(400);
    expect(merged.norms?.bins).toEqual(whole.norms?.bins);
    expect(merged.positionCounts).toEqual(whole.positionCounts);
    merged.positionSums!.forEach((s, k) => expect(s).toBeCloseTo(whole.positionSums![k]!, 9));
  });

  it('leaves norms out of a merge with a summary from before they were recorded', () => {
    const a = embeddings(10, 4, CENTRE).summary();
    const { norms: _n, positionSums: _s, positionCounts: _c, ...old } = a;
    const merged = mergeSummaries({ v: a }, { v: old }).v;
    expect(merged).toMatchObject({ kind: 'vector', count: 20 });
    expect(merged && 'norms' in merged).toBe(false);
    expect(merged && 'positionSums' in merged).toBe(false);
  });
});
