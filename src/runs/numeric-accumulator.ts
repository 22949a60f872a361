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

/** The bin of a magnitude (>= BIN_MIN_MAGNITUDE, finite), by its definition: ⌈log_γ(magnitude)⌉. */
export function binIndexByDefinition(magnitude: number): number {
  return Math.ceil(Math.log(magnitude) / LOG_GAMMA);
}

// The bin of a magnitude without a logarithm per value (the input summaries bin every feature of every record, and
// the logarithm was 40% of that time). A double's high 32 bits hold its exponent and the top 20 bits of its
// mantissa; SLOT_BITS of those split each power of two into slots so narrow (a ratio of 1 + 2^-10 from start to end)
// that a slot holds at most one bin edge, since bins are 2% wide. For each slot, a table keeps the bin of its
// smallest double and the smallest double of the next bin within it (Infinity if none), both found with
// binIndexByDefinition itself: as that function never decreases as the magnitude grows, the bin of any double of
// the slot is then one comparison away, and is binIndexByDefinition's integer (its -0, for magnitudes in (1/γ, 1],
// comes out as 0: the same bin).
const SLOT_BITS = 10;
const SLOTS = 1 << SLOT_BITS;
/** The mantissa bits below a slot's: a slot spans 2^42 consecutive doubles. */
const SLOT_SPAN_BITS = 52 - SLOT_BITS;
const word = new Float64Array(1);
const words = new Uint32Array(word.buffer);
/** Index in `words` of a double's high word: 1 on a little-endian machine. */
const HIGH = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
const LOW = 1 - HIGH;
/** Biased exponents (0-2047) whose slots are built: when a value of that power of two first comes. */
const built = new Uint8Array(2048);
/**
 * Per slot of every exponent (index exponent * SLOTS + slot): its first bin, and its smallest double in the next bin
 * (Infinity when the slot lies in one bin). Zero-filled and untouched until an exponent is built: 12 KiB of memory
 * per power of two the values span, of the 24 MiB reserved (which `process.memoryUsage().arrayBuffers` counts and
 * resident memory does not). Flat arrays: a lookup per exponent in an array of tables measured 20-30% slower.
 */
const slotBins = new Int32Array(2048 * SLOTS);
const slotEdges = new Float64Array(2048 * SLOTS);

/** The double whose high word is `high` and whose low word is `low`. */
function doubleOf(high: number, low: number): number {
  words[HIGH] = high;
  words[LOW] = low;
  return word[0]!;
}

/** The double `offset` (0 to 2^42 - 1) places after the first of the slot whose high word starts at `slotHigh`. */
function doubleInSlot(slotHigh: number, offset: number): number {
  return doubleOf(slotHigh + Math.floor(offset / 2 ** 32), offset % 2 ** 32);
}

function buildSlots(exponent: number): void {
  const bins = slotBins.subarray(exponent * SLOTS, (exponent + 1) * SLOTS);
  const edges = slotEdges.subarray(exponent * SLOTS, (exponent + 1) * SLOTS);
  for (let slot = 0; slot < SLOTS; slot++) {
    const slotHigh = ((exponent << 20) | (slot << (SLOT_SPAN_BITS - 32))) >>> 0;
    const first = binIndexByDefinition(doubleInSlot(slotHigh, 0));
    const last = binIndexByDefinition(doubleInSlot(slotHigh, 2 ** SLOT_SPAN_BITS - 1));
    bins[slot] = first;
    if (last === first) {
      edges[slot] = Infinity;
      continue;
    }
    // One edge in the slot (last === first + 1): the first double of bin `last`, by bisection over the slot.
    let below = 0;
    let at = 2 ** SLOT_SPAN_BITS - 1;
    while (at - below > 1) {
      const middle = below + Math.floor((at - below) / 2);
      if (binIndexByDefinition(doubleInSlot(slotHigh, middle)) === first) below = middle;
      else at = middle;
    }
    edges[slot] = doubleInSlot(slotHigh, at);
  }
  built[exponent] = 1;
}

/** binIndexByDefinition(magnitude) from the slot tables: the same integer (0 where the definition gives -0). */
export function binIndex(magnitude: number): number {
  word[0] = magnitude;
  const high = words[HIGH]!;
  // The sign bit is 0 (a magnitude): the high word's top bits are the exponent, then the slot.
  const exponent = high >>> 20;
  if (built[exponent] === 0) buildSlots(exponent);
  const at = high >>> (SLOT_SPAN_BITS - 32);
  return magnitude < slotEdges[at]! ? slotBins[at]! : slotBins[at]! + 1;
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
