/**
 * Distribution summaries of prediction columns: what a worker records per shard (in its completion marker) and
 * what Finalize merges per run, so that a later drift check can compare runs without reading predictions again.
 *
 * Every summary is mergeable exactly: merging the summaries of two sets of rows gives the summary of their union
 * (up to floating-point rounding of `sum`), whatever the split. That is what lets a shard be summarised chunk by
 * chunk across retries, and a run shard by shard.
 *
 * - categorical (labels, strings, booleans): a count per value.
 * - numeric: count, min, max, sum, sum of squares, a histogram over FIXED bins and quantiles read from it. The bins
 *   depend on nothing but BIN_GAMMA (numeric-accumulator.ts; log-spaced, DDSketch-style: bin i covers
 *   (γ^(i-1), γ^i], mirrored for negative values, plus one bin for zero), so histograms of different shards and runs
 *   line up bin for bin, and quantiles have a relative error of at most 1% whatever the range of the values.
 * - vector (array<float> columns: probability vectors, embeddings): lengths, a numeric summary of all elements and,
 *   for short vectors (class probabilities), one numeric summary per position.
 */
import { z } from 'zod';
import {
  BIN_GAMMA,
  BIN_MIN_MAGNITUDE,
  BIN_RELATIVE_ACCURACY,
  NumericAccumulator,
  QUANTILES,
  quantileOf,
  withQuantiles,
} from './numeric-accumulator.js';

export { BIN_GAMMA, BIN_MIN_MAGNITUDE, BIN_RELATIVE_ACCURACY, NumericAccumulator, QUANTILES, quantileOf };

/** Distinct values a categorical summary keeps; further values are counted in `other`. */
export const MAX_CATEGORIES = 1000;
/** Vectors up to this long also get one summary per position (class probabilities, not embeddings). */
export const MAX_POSITION_SUMMARIES = 16;
/** Vectors up to this long also keep a sum per position (their mean vector), for drift of embeddings. */
export const MAX_MEAN_DIMENSIONS = 4096;

/** Sparse bin counts: `[binIndex, count]`, ascending by index. */
const binCountsSchema = z.custom<[number, number][]>(
  (value) =>
    Array.isArray(value) &&
    value.every(
      (pair) =>
        Array.isArray(pair) &&
        pair.length === 2 &&
        Number.isInteger(pair[0]) &&
        Number.isInteger(pair[1]) &&
        (pair[1] as number) > 0,
    ),
  { message: 'expected [bin index, count] pairs of integers, each count positive' },
);

export const numericSummarySchema = z.strictObject({
  kind: z.literal('numeric'),
  /** Finite values summarised. */
  count: z.number().int().nonnegative(),
  /** Rows without a value (null) or with a non-finite one (NaN, ±Infinity). */
  missing: z.number().int().nonnegative(),
  /** Undefined when count is 0. */
  min: z.number().optional(),
  max: z.number().optional(),
  sum: z.number(),
  sumSquares: z.number(),
  bins: z.strictObject({
    /** γ of the bins, so a reader can check it compares like with like. */
    gamma: z.number(),
    zero: z.number().int().nonnegative(),
    positive: binCountsSchema,
    negative: binCountsSchema,
  }),
  /** Quantile estimates by name (`p1`, `p5`, ..., `p99`); absent when count is 0. */
  quantiles: z.record(z.string(), z.number()).optional(),
});
export type NumericSummary = z.infer<typeof numericSummarySchema>;

export const categoricalSummarySchema = z.strictObject({
  kind: z.literal('categorical'),
  count: z.number().int().nonnegative(),
  missing: z.number().int().nonnegative(),
  /** Rows per value (booleans and numbers as their text). */
  counts: z.record(z.string(), z.number().int().nonnegative()),
  /** Rows whose value was not kept because MAX_CATEGORIES distinct values were already counted. */
  other: z.number().int().nonnegative(),
});
export type CategoricalSummary = z.infer<typeof categoricalSummarySchema>;

export const vectorSummarySchema = z.strictObject({
  kind: z.literal('vector'),
  count: z.number().int().nonnegative(),
  missing: z.number().int().nonnegative(),
  /** Shortest and longest vector; undefined when count is 0. */
  minLength: z.number().int().nonnegative().optional(),
  maxLength: z.number().int().nonnegative().optional(),
  elements: numericSummarySchema,
  /** One summary per position, for vectors no longer than MAX_POSITION_SUMMARIES. */
  positions: z.array(numericSummarySchema).optional(),
  /** The distribution of the vectors' Euclidean norms (absent in markers written before it was recorded). */
  norms: numericSummarySchema.optional(),
  /**
   * Per position, the sum of the values there over the vectors that reach it, and how many did: the mean vector,
   * for vectors no longer than MAX_MEAN_DIMENSIONS (absent in markers written before it was recorded).
   */
  positionSums: z.array(z.number()).optional(),
  positionCounts: z.array(z.number().int().nonnegative()).optional(),
});
export type VectorSummary = z.infer<typeof vectorSummarySchema>;

export const columnSummarySchema = z.discriminatedUnion('kind', [
  numericSummarySchema,
  categoricalSummarySchema,
  vectorSummarySchema,
]);
export type ColumnSummary = z.infer<typeof columnSummarySchema>;

/** Summaries by output column name. */
export const outputSummariesSchema = z.record(z.string(), columnSummarySchema);
export type OutputSummaries = z.infer<typeof outputSummariesSchema>;

export type SummaryKind = ColumnSummary['kind'];

export class SummaryMergeError extends Error {
  override readonly name = 'SummaryMergeError';
}

// ---------------------------------------------------------------------------------------------------------------
// Merging (pure)

/**
 * Merges per-shard (or per-run) summaries column by column: the result summarises the union of the rows. A column
 * present on one side only is kept as it is. Inputs are not modified.
 *
 * Throws SummaryMergeError when one column has summaries of different kinds, or bins of a different γ: those came
 * from different code or a different output declaration and cannot be added up.
 */
export function mergeSummaries(a: OutputSummaries, b: OutputSummaries): OutputSummaries {
  const out: OutputSummaries = { ...a };
  for (const [name, right] of Object.entries(b)) {
    const left = out[name];
    out[name] = left === undefined ? right : mergeColumn(name, left, right);
  }
  return out;
}

/** Merges any number of summaries; the empty list gives `{}`. */
export function mergeAllSummaries(list: readonly OutputSummaries[]): OutputSummaries {
  return list.reduce<OutputSummaries>((acc, s) => mergeSummaries(acc, s), {});
}

function mergeColumn(name: string, a: ColumnSummary, b: ColumnSummary): ColumnSummary {
  if (a.kind === 'numeric' && b.kind === 'numeric') return mergeNumeric(name, a, b);
  if (a.kind === 'categorical' && b.kind === 'categorical') return mergeCategorical(a, b);
  if (a.kind === 'vector' && b.kind === 'vector') return mergeVector(name, a, b);
  throw new SummaryMergeError(
    `column "${name}" is summarised as ${a.kind} on one side and ${b.kind} on the other`,
  );
}

function mergeNumeric(name: string, a: NumericSummary, b: NumericSummary): NumericSummary {
  if (a.bins.gamma !== b.bins.gamma) {
    throw new SummaryMergeError(
      `column "${name}": bins with γ ${a.bins.gamma} and ${b.bins.gamma} do not line up`,
    );
  }
  const bins = {
    gamma: a.bins.gamma,
    zero: a.bins.zero + b.bins.zero,
    positive: mergeBinCounts(a.bins.positive, b.bins.positive),
    negative: mergeBinCounts(a.bins.negative, b.bins.negative),
  };
  const count = a.count + b.count;
  const min = a.min === undefined ? b.min : b.min === undefined ? a.min : Math.min(a.min, b.min);
  const max = a.max === undefined ? b.max : b.max === undefined ? a.max : Math.max(a.max, b.max);
  return withQuantiles({
    kind: 'numeric',
    count,
    missing: a.missing + b.missing,
    ...(min === undefined ? {} : { min }),
    ...(max === undefined ? {} : { max }),
    sum: a.sum + b.sum,
    sumSquares: a.sumSquares + b.sumSquares,
    bins,
  });
}

function mergeBinCounts(
  a: readonly (readonly [number, number])[],
  b: readonly (readonly [number, number])[],
): [number, number][] {
  const out: [number, number][] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && x[0] < y[0])) {
      out.push([x![0], x![1]]);
      i++;
    } else if (x === undefined || y[0] < x[0]) {
      out.push([y[0], y[1]]);
      j++;
    } else {
      out.push([x[0], x[1] + y[1]]);
      i++;
      j++;
    }
  }
  return out;
}

function mergeCategorical(a: CategoricalSummary, b: CategoricalSummary): CategoricalSummary {
  // A Map, not an object: a label such as "__proto__" must stay an ordinary key.
  const counts = new Map<string, number>();
  let other = a.other + b.other;
  // Keys in a stable order (a's, then b's new ones) so the result does not depend on object internals.
  for (const source of [a.counts, b.counts]) {
    for (const [value, n] of Object.entries(source)) {
      const seen = counts.get(value);
      if (seen !== undefined) counts.set(value, seen + n);
      else if (counts.size < MAX_CATEGORIES) counts.set(value, n);
      else other += n;
    }
  }
  return {
    kind: 'categorical',
    count: a.count + b.count,
    missing: a.missing + b.missing,
    counts: Object.fromEntries(counts),
    other,
  };
}

function mergeVector(name: string, a: VectorSummary, b: VectorSummary): VectorSummary {
  const minLength =
    a.minLength === undefined
      ? b.minLength
      : b.minLength === undefined
        ? a.minLength
        : Math.min(a.minLength, b.minLength);
  const maxLength =
    a.maxLength === undefined
      ? b.maxLength
      : b.maxLength === undefined
        ? a.maxLength
        : Math.max(a.maxLength, b.maxLength);
  let positions: NumericSummary[] | undefined;
  if (a.positions && b.positions) {
    const n = Math.max(a.positions.length, b.positions.length);
    positions = [];
    for (let k = 0; k < n; k++) {
      const x = a.positions[k];
      const y = b.positions[k];
      positions.push(x && y ? mergeNumeric(`${name}[${k}]`, x, y) : (x ?? y)!);
    }
    if (positions.length > MAX_POSITION_SUMMARIES) positions = undefined;
  } else if (a.count === 0 || b.count === 0) {
    // An empty side has no positions to contribute: keep the other side's.
    positions = a.count === 0 ? b.positions : a.positions;
  }
  // Norms and the mean vector: merged when both sides have them; an empty side contributes nothing, and a side
  // from before they were recorded makes them unknown for the union.
  const either = <T>(x: T | undefined, y: T | undefined, merge: (x: T, y: T) => T): T | undefined =>
    x !== undefined && y !== undefined ? merge(x, y) : a.count === 0 ? y : b.count === 0 ? x : undefined;
  const norms = either(a.norms, b.norms, (x, y) => mergeNumeric(`${name} norms`, x, y));
  const sums = either(
    a.positionSums && a.positionCounts ? { s: a.positionSums, c: a.positionCounts } : undefined,
    b.positionSums && b.positionCounts ? { s: b.positionSums, c: b.positionCounts } : undefined,
    (x, y) => ({ s: addArrays(x.s, y.s), c: addArrays(x.c, y.c) }),
  );
  return {
    kind: 'vector',
    count: a.count + b.count,
    missing: a.missing + b.missing,
    ...(minLength === undefined ? {} : { minLength }),
    ...(maxLength === undefined ? {} : { maxLength }),
    elements: mergeNumeric(`${name}[*]`, a.elements, b.elements),
    ...(positions ? { positions } : {}),
    ...(norms ? { norms } : {}),
    ...(sums && sums.s.length <= MAX_MEAN_DIMENSIONS ? { positionSums: sums.s, positionCounts: sums.c } : {}),
  };
}

function addArrays(x: readonly number[], y: readonly number[]): number[] {
  return Array.from({ length: Math.max(x.length, y.length) }, (_, k) => (x[k] ?? 0) + (y[k] ?? 0));
}

/** Collects one categorical column. */
export class CategoricalAccumulator {
  private count = 0;
  private missing = 0;
  private other = 0;
  private readonly counts = new Map<string, number>();

  add(value: unknown): void {
    if (value === null || value === undefined) {
      this.missing++;
      return;
    }
    this.count++;
    const key =
      typeof value === 'string'
        ? value
        : typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean'
          ? String(value)
          : JSON.stringify(value);
    const n = this.counts.get(key);
    if (n !== undefined) this.counts.set(key, n + 1);
    else if (this.counts.size < MAX_CATEGORIES) this.counts.set(key, 1);
    else this.other++;
  }

  addMissing(): void {
    this.missing++;
  }

  summary(): CategoricalSummary {
    // Most frequent first (then by value), so a truncated reading of the marker still shows what matters.
    const sorted = [...this.counts].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    // fromEntries defines own properties, so a value such as "__proto__" is kept as a key.
    const counts = Object.fromEntries(sorted);
    return { kind: 'categorical', count: this.count, missing: this.missing, counts, other: this.other };
  }
}

/** Collects one vector column (arrays or typed arrays of numbers). */
export class VectorAccumulator {
  private count = 0;
  private missing = 0;
  private minLength = Infinity;
  private maxLength = 0;
  private readonly elements = new NumericAccumulator();
  private positions: NumericAccumulator[] | undefined = [];
  private readonly norms = new NumericAccumulator();
  private sums: number[] | undefined = [];
  private counts: number[] = [];

  add(value: unknown): void {
    if (!Array.isArray(value) && !(value instanceof Float32Array) && !(value instanceof Float64Array)) {
      this.missing++;
      return;
    }
    const v = value as ArrayLike<unknown>;
    this.count++;
    if (v.length < this.minLength) this.minLength = v.length;
    if (v.length > this.maxLength) this.maxLength = v.length;
    if (this.positions && v.length > MAX_POSITION_SUMMARIES) this.positions = undefined;
    if (this.sums && v.length > MAX_MEAN_DIMENSIONS) this.sums = undefined;
    let squares = 0;
    for (let k = 0; k < v.length; k++) {
      const x = v[k];
      this.elements.add(x);
      if (this.positions) (this.positions[k] ??= new NumericAccumulator()).add(x);
      const n = typeof x === 'number' ? x : NaN;
      if (Number.isFinite(n)) {
        squares += n * n;
        if (this.sums) {
          this.sums[k] = (this.sums[k] ?? 0) + n;
          this.counts[k] = (this.counts[k] ?? 0) + 1;
        }
      }
    }
    this.norms.add(Math.sqrt(squares));
  }

  addMissing(): void {
    this.missing++;
  }

  summary(): VectorSummary {
    return {
      kind: 'vector',
      count: this.count,
      missing: this.missing,
      ...(this.count > 0 ? { minLength: this.minLength, maxLength: this.maxLength } : {}),
      elements: this.elements.summary(),
      ...(this.positions && this.count > 0 ? { positions: this.positions.map((p) => p.summary()) } : {}),
      norms: this.norms.summary(),
      ...(this.sums && this.count > 0
        ? {
            positionSums: Array.from({ length: this.sums.length }, (_, k) => this.sums![k] ?? 0),
            positionCounts: Array.from({ length: this.sums.length }, (_, k) => this.counts[k] ?? 0),
          }
        : {}),
    };
  }
}

export type ColumnAccumulator = NumericAccumulator | CategoricalAccumulator | VectorAccumulator;

export function createAccumulator(kind: SummaryKind): ColumnAccumulator {
  switch (kind) {
    case 'numeric':
      return new NumericAccumulator();
    case 'categorical':
      return new CategoricalAccumulator();
    case 'vector':
      return new VectorAccumulator();
  }
}

/**
 * Which summary an output column gets, from its type as written (`string`, `float`, `array<float>`...) and
 * whether it is a class label (argmax output: categorical even when it is an index). Undefined: not summarised.
 */
export function summaryKindFor(type: string, isLabel: boolean): SummaryKind | undefined {
  if (isLabel) return 'categorical';
  switch (type) {
    case 'string':
    case 'boolean':
      return 'categorical';
    case 'float':
    case 'double':
    case 'int':
    case 'bigint':
      return 'numeric';
    case 'array<float>':
      return 'vector';
    default:
      return undefined;
  }
}
