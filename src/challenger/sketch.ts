/**
 * A mergeable summary of a stream of numbers: exact count, sum, sum of absolute values, min and max, and quantiles
 * from at most MAX_CENTROIDS weighted centroids. Exact while it has seen at most MAX_CENTROIDS values; beyond, the
 * sorted values are grouped into centroids of about equal weight, so a quantile is off by at most one centroid's
 * share of the values (1/MAX_CENTROIDS of them). Deterministic: the same values in the same order give the same
 * summary, and merging per-chunk summaries in chunk order gives the same result on every rerun.
 */
import { z } from 'zod';

export const MAX_CENTROIDS = 512;

export const sketchSchema = z.strictObject({
  count: z.number().int().nonnegative(),
  sum: z.number(),
  sumAbs: z.number().nonnegative(),
  min: z.number().nullable(),
  max: z.number().nullable(),
  /** [value, weight], ascending by value. */
  centroids: z.array(z.tuple([z.number(), z.number().positive()])),
});
export type SketchData = z.infer<typeof sketchSchema>;

export class NumericSketch {
  private count = 0;
  private sum = 0;
  private sumAbs = 0;
  private min = Infinity;
  private max = -Infinity;
  private centroids: [number, number][] = [];
  private buffer: number[] = [];

  static from(data: SketchData): NumericSketch {
    const sketch = new NumericSketch();
    sketch.count = data.count;
    sketch.sum = data.sum;
    sketch.sumAbs = data.sumAbs;
    sketch.min = data.min ?? Infinity;
    sketch.max = data.max ?? -Infinity;
    sketch.centroids = data.centroids.map(([v, w]) => [v, w]);
    return sketch;
  }

  get size(): number {
    return this.count;
  }

  add(value: number): void {
    if (!Number.isFinite(value)) return;
    this.count++;
    this.sum += value;
    this.sumAbs += Math.abs(value);
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    this.buffer.push(value);
    if (this.buffer.length >= 4 * MAX_CENTROIDS) this.compact();
  }

  merge(other: NumericSketch): void {
    other.compact();
    this.count += other.count;
    this.sum += other.sum;
    this.sumAbs += other.sumAbs;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    this.compact(other.centroids);
  }

  mean(): number | undefined {
    return this.count > 0 ? this.sum / this.count : undefined;
  }

  meanAbs(): number | undefined {
    return this.count > 0 ? this.sumAbs / this.count : undefined;
  }

  /**
   * The p-quantile (0..1), by the nearest-rank rule over the centroids' weights; exact min and max at 0 and 1.
   * Undefined when nothing was added.
   */
  quantile(p: number): number | undefined {
    this.compact();
    if (this.count === 0) return undefined;
    if (p <= 0) return this.min;
    if (p >= 1) return this.max;
    const total = this.centroids.reduce((s, [, w]) => s + w, 0);
    const rank = p * total;
    let seen = 0;
    for (const [value, weight] of this.centroids) {
      seen += weight;
      if (seen >= rank) return value;
    }
    return this.max;
  }

  toJSON(): SketchData {
    this.compact();
    return {
      count: this.count,
      sum: this.sum,
      sumAbs: this.sumAbs,
      min: this.count > 0 ? this.min : null,
      max: this.count > 0 ? this.max : null,
      centroids: this.centroids.map(([v, w]) => [v, w]),
    };
  }

  /**
   * Folds the buffer (and `extra` centroids) into at most MAX_CENTROIDS centroids of about equal weight. The buffer
   * is sorted as a Float64Array (a numeric sort, no comparator calls, no pair per value) and merged with the sorted
   * centroids; ties keep centroids before buffered values, as a stable sort of both would.
   */
  private compact(extra: readonly (readonly [number, number])[] = []): void {
    if (this.buffer.length === 0 && extra.length === 0) return;
    const held: [number, number][] =
      extra.length === 0
        ? this.centroids
        : [...this.centroids, ...extra.map(([v, w]): [number, number] => [v, w])].sort((a, b) => a[0] - b[0]);
    const values = Float64Array.from(this.buffer).sort();
    this.buffer = [];
    let total = values.length;
    for (const [, w] of held) total += w;
    const fold = held.length + values.length > MAX_CENTROIDS;
    const target = total / MAX_CENTROIDS;
    const out: [number, number][] = [];
    let weight = 0;
    let weighted = 0;
    const take = (value: number, w: number): void => {
      if (!fold) {
        out.push([value, w]);
        return;
      }
      weight += w;
      weighted += value * w;
      if (weight >= target) {
        out.push([weighted / weight, weight]);
        weight = 0;
        weighted = 0;
      }
    };
    let i = 0;
    let j = 0;
    while (i < held.length || j < values.length) {
      if (j >= values.length || (i < held.length && held[i]![0] <= values[j]!)) {
        const [v, w] = held[i++]!;
        take(v, w);
      } else take(values[j++]!, 1);
    }
    if (weight > 0) out.push([weighted / weight, weight]);
    this.centroids = out;
  }
}
