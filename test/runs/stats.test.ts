import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import { binIndex, binIndexByDefinition } from '../../src/runs/numeric-accumulator.js';
import {
  BIN_GAMMA,
  BIN_MIN_MAGNITUDE,
  CategoricalAccumulator,
  MAX_CATEGORIES,
  mergeAllSummaries,
  mergeSummaries,
  NumericAccumulator,
  outputSummariesSchema,
  quantileOf,
  SummaryMergeError,
  VectorAccumulator,
  type NumericSummary,
  type OutputSummaries,
} from '../../src/runs/stats.js';

const numeric = (values: readonly unknown[]): NumericSummary => {
  const acc = new NumericAccumulator();
  for (const v of values) acc.add(v);
  return acc.summary();
};

/** What the summary of the union must equal; `sum` compared separately (addition order differs). */
const withoutSums = (s: NumericSummary) => ({ ...s, sum: 0, sumSquares: 0 });

describe('numeric summaries', () => {
  it('merging the summaries of any split equals the summary of the whole', () => {
    const value = fc.oneof(
      fc.double({ min: -1e6, max: 1e6, noNaN: true }),
      fc.constantFrom(0, -0, 1e-15, NaN, Infinity, null),
      fc.integer({ min: -5, max: 5 }),
    );
    fc.assert(
      fc.property(fc.array(value, { maxLength: 200 }), fc.nat(), (values, cut) => {
        const k = values.length === 0 ? 0 : cut % (values.length + 1);
        const merged = mergeSummaries({ x: numeric(values.slice(0, k)) }, { x: numeric(values.slice(k)) });
        const whole = numeric(values);
        const m = merged.x as NumericSummary;
        expect(withoutSums(m)).toEqual(withoutSums(whole));
        expect(m.sum).toBeCloseTo(whole.sum, 3);
      }),
    );
  });

  it('quantiles are within 1% of the exact value, whatever the scale', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 1e-6, max: 1e9, noNaN: true }), { minLength: 1, maxLength: 300 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (values, q) => {
          const s = numeric(values);
          const sorted = [...values].sort((a, b) => a - b);
          const exact = sorted[Math.floor(q * (sorted.length - 1))]!;
          expect(Math.abs(quantileOf(s, q)! - exact) / exact).toBeLessThanOrEqual(0.0100001);
        },
      ),
    );
  });

  it('counts missing and non-finite values apart, and reports the standard quantiles', () => {
    const s = numeric([1, 2, 3, null, undefined, NaN, Infinity, 'x', 2n]);
    expect(s).toMatchObject({ count: 4, missing: 5, min: 1, max: 3, sum: 8, sumSquares: 18 });
    expect(Object.keys(s.quantiles!)).toEqual(['p1', 'p5', 'p10', 'p25', 'p50', 'p75', 'p90', 'p95', 'p99']);
    expect(numeric([]).quantiles).toBeUndefined();
    expect(outputSummariesSchema.parse({ s })).toEqual({ s });
  });

  it('handles negative values and zeros in order', () => {
    const s = numeric([-100, -1, 0, 0, 1, 100]);
    expect(quantileOf(s, 0)).toBe(-100);
    expect(quantileOf(s, 1)).toBe(100);
    expect(quantileOf(s, 0.5)).toBe(0);
    expect(Math.abs(quantileOf(s, 0.2)! + 1)).toBeLessThan(0.011);
  });
});

describe('numeric bins', () => {
  /** The bins as the definition gives them (one hash-map count per index), independent of how they are stored. */
  const referenceBins = (values: readonly number[]) => {
    const positive = new Map<number, number>();
    const negative = new Map<number, number>();
    let zero = 0;
    for (const value of values) {
      const v = value + 0;
      if (!Number.isFinite(v)) continue;
      const magnitude = Math.abs(v);
      if (magnitude < BIN_MIN_MAGNITUDE) {
        zero++;
        continue;
      }
      const index = Math.ceil(Math.log(magnitude) / Math.log(BIN_GAMMA));
      const bins = v > 0 ? positive : negative;
      bins.set(index, (bins.get(index) ?? 0) + 1);
    }
    const sorted = (m: Map<number, number>) => [...m.entries()].sort((x, y) => x[0] - y[0]);
    return { gamma: BIN_GAMMA, zero, positive: sorted(positive), negative: sorted(negative) };
  };

  it('count every value in its bin, across pages of bins and on both sides of index 0', () => {
    // Magnitudes around 1 (bin indexes -1, 0, 1), at the edges of the 128-index pages (γ^±127, γ^±128, γ^±129),
    // tiny and huge ones, interleaved so consecutive values change page.
    const edges = [-129, -128, -127, -1, 0, 1, 127, 128, 129].map((i) => BIN_GAMMA ** i);
    const values = [
      ...edges,
      ...edges.map((e) => -e),
      ...edges.map((e) => e * 1.001),
      1e-11,
      -3e300,
      7,
      1e-13,
      0.5,
      1e9,
      0.5,
      -0.25,
    ];
    const acc = new NumericAccumulator();
    for (const v of values) acc.add(v);
    expect(acc.summary().bins).toEqual(referenceBins(values));
  });

  it('match the definition for any values', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: true }), { maxLength: 300 }), (values) => {
        const acc = new NumericAccumulator();
        for (const v of values) acc.add(v);
        expect(acc.summary().bins).toEqual(referenceBins(values));
      }),
    );
  });
});

describe('binIndex', () => {
  /** The doubles `k` steps away from `x` (positive x), by their bit patterns. */
  const bits = new BigInt64Array(1);
  const asDouble = new Float64Array(bits.buffer);
  const stepped = (x: number, k: number): number => {
    asDouble[0] = x;
    const [pattern = 0n] = bits;
    bits[0] = pattern + BigInt(k);
    const [y = NaN] = asDouble;
    return y;
  };

  it('equals the definition on and around every bin edge, from BIN_MIN_MAGNITUDE to the largest double', () => {
    const lowest = binIndexByDefinition(BIN_MIN_MAGNITUDE);
    const highest = binIndexByDefinition(Number.MAX_VALUE);
    let checked = 0;
    const mismatches: string[] = [];
    for (let i = lowest; i <= highest; i++) {
      const edge = BIN_GAMMA ** i;
      for (let k = -4; k <= 4; k++) {
        const m = stepped(edge, k);
        if (!(m >= BIN_MIN_MAGNITUDE && m <= Number.MAX_VALUE)) continue;
        checked++;
        if (binIndex(m) !== binIndexByDefinition(m))
          mismatches.push(`${m}: ${binIndex(m)} vs ${binIndexByDefinition(m)}`);
      }
    }
    expect(mismatches).toEqual([]);
    expect(checked).toBeGreaterThan(9 * 36_000);
  });

  it('equals the definition for any magnitude', () => {
    fc.assert(
      fc.property(fc.double({ min: BIN_MIN_MAGNITUDE, max: Number.MAX_VALUE, noNaN: true }), (m) => {
        // `+ 0`: the definition gives -0 for magnitudes in (1/γ, 1], which is bin 0 like 0 itself.
        expect(binIndex(m)).toBe(binIndexByDefinition(m) + 0);
      }),
      // 1/γ, the first value a run of the suite found where the definition gives -0.
      { numRuns: 20_000, examples: [[0.9801980198019803]] },
    );
  });
});

describe('outputSummariesSchema', () => {
  const withBins = (positive: unknown) => {
    const summary = numeric([1, 2, 3]);
    return { score: { ...summary, bins: { ...summary.bins, positive } } };
  };

  it('accepts the bins an accumulator writes', () => {
    const summaries = { score: numeric([0.5, 1, 2, -3, 0]) };
    expect(outputSummariesSchema.parse(JSON.parse(JSON.stringify(summaries)))).toEqual(summaries);
  });

  it.each([
    ['a count of 0', [[3, 0]]],
    ['a fractional index', [[0.5, 2]]],
    ['a fractional count', [[3, 1.5]]],
    ['a pair of three', [[3, 1, 1]]],
    ['a pair of strings', [['3', '1']]],
    ['not a list', { 3: 1 }],
  ])('refuses bins with %s, naming the column and the field', (_case, positive) => {
    const parsed = outputSummariesSchema.safeParse(withBins(positive));
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues).toEqual([
      expect.objectContaining({
        path: ['score', 'bins', 'positive'],
        message: 'expected [bin index, count] pairs of integers, each count positive',
      }),
    ]);
  });
});

describe('NumericAccumulator.addColumn', () => {
  it('equals add() of the kept values in order, bit for bit (sums, -0, non-finite values, bins)', () => {
    const value = fc.oneof(
      fc.double(),
      fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 1e-13, -1e-300, 1e300),
      fc.double({ min: -1e6, max: 1e6, noNaN: true }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.record({ v: value, kept: fc.boolean() }), { maxLength: 200 }),
        fc.array(value, { maxLength: 20 }),
        (rows, before) => {
          const one = new NumericAccumulator();
          const bulk = new NumericAccumulator();
          // Running figures from earlier batches are carried on, not restarted.
          for (const v of before) {
            one.add(v);
            bulk.add(v);
          }
          for (const r of rows) if (r.kept) one.add(r.v);
          bulk.addColumn(
            Float64Array.from(rows.map((r) => r.v)),
            Int32Array.from(rows.map((r, i) => (r.kept ? i : -1))),
          );
          expect(bulk.summary()).toEqual(one.summary());
          expect(Object.is(bulk.summary().sum, one.summary().sum)).toBe(true);
        },
      ),
    );
  });
});

describe('categorical summaries', () => {
  it('merges counts, and keeps at most MAX_CATEGORIES values (the rest in other)', () => {
    const a = new CategoricalAccumulator();
    const b = new CategoricalAccumulator();
    for (let i = 0; i < MAX_CATEGORIES; i++) a.add(`v${i}`);
    a.add('v0');
    a.add(null);
    b.add('v0');
    b.add('new');
    b.add(true);
    const merged = mergeSummaries({ c: a.summary() }, { c: b.summary() }).c;
    expect(merged).toMatchObject({ kind: 'categorical', count: MAX_CATEGORIES + 4, missing: 1, other: 2 });
    if (merged?.kind !== 'categorical') throw new Error('kind');
    expect(merged.counts.v0).toBe(3);
    expect(Object.keys(merged.counts)).toHaveLength(MAX_CATEGORIES);
  });

  it('keeps a label called __proto__ as an ordinary value', () => {
    const a = new CategoricalAccumulator();
    a.add('__proto__');
    const s = a.summary();
    expect(Object.keys(s.counts)).toEqual(['__proto__']);
    expect(mergeSummaries({ c: s }, { c: s }).c).toMatchObject({ counts: { ['__proto__']: 2 } });
  });
});

describe('vector summaries', () => {
  it('summarise all elements, and each position for short vectors', () => {
    const acc = new VectorAccumulator();
    acc.add([0.25, 0.75]);
    acc.add(new Float32Array([0.5, 0.5]));
    acc.add(null);
    const s = acc.summary();
    expect(s).toMatchObject({ kind: 'vector', count: 2, missing: 1, minLength: 2, maxLength: 2 });
    expect(s.elements.count).toBe(4);
    expect(s.positions?.map((p) => [p.min, p.max])).toEqual([
      [0.25, 0.5],
      [0.5, 0.75],
    ]);
    const twice = mergeSummaries({ v: s }, { v: s }).v;
    expect(twice).toMatchObject({ count: 4, missing: 2, elements: { count: 8 } });
  });

  it('drop per-position summaries for long vectors (embeddings)', () => {
    const acc = new VectorAccumulator();
    acc.add(Array.from({ length: 64 }, (_, i) => i));
    expect(acc.summary().positions).toBeUndefined();
    expect(acc.summary().elements.count).toBe(64);
  });
});

describe('mergeSummaries', () => {
  it('keeps columns present on one side, and is pure', () => {
    const a: OutputSummaries = { x: numeric([1]) };
    const b: OutputSummaries = { y: numeric([2]) };
    const snapshot = JSON.stringify([a, b]);
    expect(Object.keys(mergeSummaries(a, b))).toEqual(['x', 'y']);
    expect(JSON.stringify([a, b])).toBe(snapshot);
    expect(mergeAllSummaries([])).toEqual({});
    expect(mergeAllSummaries([a, a, a]).x).toMatchObject({ count: 3 });
  });

  it('refuses to add up different kinds or different bins', () => {
    const cat = new CategoricalAccumulator();
    cat.add('a');
    expect(() => mergeSummaries({ x: numeric([1]) }, { x: cat.summary() })).toThrow(SummaryMergeError);
    const other = numeric([1]);
    expect(() =>
      mergeSummaries({ x: numeric([1]) }, { x: { ...other, bins: { ...other.bins, gamma: 1.5 } } }),
    ).toThrow(/do not line up/);
  });
});
