/**
 * Numeric summaries as the rows are counted: the fixed log-spaced bins, quantiles read from them, and the accumulator
 * that counts a column. Apart from stats.ts (schemas, merging, the other kinds) so that a decode thread can count its
 * input columns without loading zod (src/worker/decode-thread.ts): this module imports nothing at run time.
 */
import type { NumericSummary } from './stats.js';

/** Relative accuracy of the numeric bins: a quantile read from them is within 1% of a true value. */
export const BIN_RELATIVE_ACCURACY = 0.01;
/** γ = (1 + α) / (1 - α): the ratio between consecutive bin edges. */
export const BIN_GAMMA = (1 + BIN_RELATIVE_ACCURACY) / (1 - BIN_RELATIVE_ACCURACY);
const LOG_GAMMA = Math.log(BIN_GAMMA);
/** Magnitudes below this count in the zero bin (a bin index for 1e-300 would be meaningless noise). */
export const BIN_MIN_MAGNITUDE = 1e-12;

/** The quantiles every numeric summary reports. */
export const QUANTILES = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99] as const;

/** The bin a finite value falls in: 0 for the zero bin, else ±(index) with the sign of the value (index >= 1). */
function binIndex(magnitude: number): number {
  return Math.ceil(Math.log(magnitude) / LOG_GAMMA);
}

/** A representative value of positive bin `i`: the point with the same relative distance to both edges. */
function binValue(index: number): number {
  return (2 * BIN_GAMMA ** index) / (BIN_GAMMA + 1);
}

/**
 * The q-quantile (0 <= q <= 1) estimated from the bins, clamped to [min, max]; undefined for an empty summary.
 * Rank convention: the value of the row at rank floor(q * (count - 1)) in ascending order.
 */
export function quantileOf(summary: NumericSummary, q: number): number | undefined {
  if (summary.count === 0 || summary.min === undefined || summary.max === undefined) return undefined;
  const rank = Math.floor(Math.min(1, Math.max(0, q)) * (summary.count - 1));
  let seen = 0;
  const clamp = (v: number): number => Math.min(summary.max!, Math.max(summary.min!, v));
  // Ascending order: most negative first (largest negative bin index), then zero, then positive bins.
  const { negative, positive, zero } = summary.bins;
  for (let k = negative.length - 1; k >= 0; k--) {
    const [index, n] = negative[k]!;
    seen += n;
    if (seen > rank) return clamp(-binValue(index));
  }
  seen += zero;
  if (seen > rank) return clamp(0);
  for (const [index, n] of positive) {
    seen += n;
    if (seen > rank) return clamp(binValue(index));
  }
  return summary.max;
}

function quantileName(q: number): string {
  return `p${Math.round(q * 100)}`;
}

export function withQuantiles(summary: NumericSummary): NumericSummary {
  if (summary.count === 0) {
    const { quantiles: _dropped, ...rest } = summary;
    return rest;
  }
  const quantiles: Record<string, number> = {};
  for (const q of QUANTILES) quantiles[quantileName(q)] = quantileOf(summary, q)!;
  return { ...summary, quantiles };
}

/** Collects one numeric column; cheap per value (a log and a Map update). */
export class NumericAccumulator {
  private count = 0;
  private missing = 0;
  private min = Infinity;
  private max = -Infinity;
  private sum = 0;
  private sumSquares = 0;
  private zero = 0;
  private readonly positive = new BinCounts();
  private readonly negative = new BinCounts();

  add(value: unknown): void {
    // `+ 0` turns -0 into 0: min and max must not depend on which zero came first.
    const v = (typeof value === 'number' ? value : typeof value === 'bigint' ? Number(value) : NaN) + 0;
    if (!Number.isFinite(v)) {
      this.missing++;
      return;
    }
    this.count++;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    this.sum += v;
    this.sumSquares += v * v;
    const magnitude = Math.abs(v);
    if (magnitude < BIN_MIN_MAGNITUDE) {
      this.zero++;
      return;
    }
    (v > 0 ? this.positive : this.negative).add(binIndex(magnitude));
  }

  addMissing(): void {
    this.missing++;
  }

  /**
   * Adds `values[i]` for each `i` whose `rowOf[i]` is not negative, in ascending `i`: exactly what `add` called
   * for each of them in that order does (the same sums, bit for bit), in one loop over the column with the running
   * figures in locals. The writer's input summaries add every feature of every record, column by column.
   */
  addColumn(values: Float64Array, rowOf: Int32Array): void {
    let { count, missing, min, max, sum, sumSquares, zero } = this;
    const { positive, negative } = this;
    const n = Math.min(values.length, rowOf.length);
    for (let i = 0; i < n; i++) {
      if (rowOf[i]! < 0) continue;
      const v = values[i]! + 0;
      if (!Number.isFinite(v)) {
        missing++;
        continue;
      }
      count++;
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
      sumSquares += v * v;
      const magnitude = Math.abs(v);
      if (magnitude < BIN_MIN_MAGNITUDE) zero++;
      else (v > 0 ? positive : negative).add(binIndex(magnitude));
    }
    this.count = count;
    this.missing = missing;
    this.min = min;
    this.max = max;
    this.sum = sum;
    this.sumSquares = sumSquares;
    this.zero = zero;
  }

  summary(): NumericSummary {
    const sorted = (bins: BinCounts): [number, number][] => bins.entries();
    return withQuantiles({
      kind: 'numeric',
      count: this.count,
      missing: this.missing,
      ...(this.count > 0 ? { min: this.min, max: this.max } : {}),
      sum: this.sum,
      sumSquares: this.sumSquares,
      bins: {
        gamma: BIN_GAMMA,
        zero: this.zero,
        positive: sorted(this.positive),
        negative: sorted(this.negative),
      },
    });
  }
}

const PAGE_BITS = 7;
const PAGE_SIZE = 1 << PAGE_BITS;

/**
 * Counts per bin index, in pages of PAGE_SIZE consecutive indexes. A column's values mostly fall in a few
 * neighbouring bins, so the page of the previous value is usually the page of the next: a typed-array increment
 * instead of a hash-map read and write per value (the input summaries count every feature of every record).
 */
class BinCounts {
  private readonly pages = new Map<number, Float64Array>();
  private lastPage = 0;
  private last: Float64Array | undefined;

  add(index: number): void {
    // Arithmetic shift and mask: floor division and remainder for negative indexes too.
    const page = index >> PAGE_BITS;
    let counts = this.last;
    if (counts === undefined || page !== this.lastPage) {
      counts = this.pages.get(page);
      if (!counts) {
        counts = new Float64Array(PAGE_SIZE);
        this.pages.set(page, counts);
      }
      this.last = counts;
      this.lastPage = page;
    }
    counts[index & (PAGE_SIZE - 1)]!++;
  }

  /** `[index, count]` of every bin with a count, ascending by index. */
  entries(): [number, number][] {
    const out: [number, number][] = [];
    for (const page of [...this.pages.keys()].sort((a, b) => a - b)) {
      const counts = this.pages.get(page)!;
      for (let k = 0; k < PAGE_SIZE; k++) if (counts[k]! > 0) out.push([page * PAGE_SIZE + k, counts[k]!]);
    }
    return out;
  }
}
