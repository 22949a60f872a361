/**
 * The benchmark contract. A suite measures its subject and, in the same run, the baseline it is compared with
 * (the build machines are noisy, so only ratios measured side by side mean anything).
 */

export interface BenchContext {
  /** Scratch directory for this suite (deleted afterwards). */
  readonly workDir: string;
  /** Smaller inputs, for a smoke run (`npm run bench -- --quick`). */
  readonly quick: boolean;
  log(message: string): void;
}

export interface BenchResult {
  /** Which comparison this row is, e.g. "tabular MLP: worker vs per-record". */
  readonly name: string;
  /** What was measured, e.g. "records/s", "s", "MiB peak RSS". */
  readonly metric: string;
  readonly value: number;
  /** The same metric for the baseline, measured in the same run. */
  readonly baseline?: { readonly name: string; readonly value: number };
  /** Whether a larger value is better (throughput) or worse (time, memory). */
  readonly higherIsBetter: boolean;
  /**
   * The goal: a minimum ratio against the baseline (`ratio`: subject/baseline for throughput, baseline/subject for
   * time), or an absolute bound (`max`/`min` on the value).
   */
  readonly target?: { readonly ratio?: number; readonly max?: number; readonly min?: number };
  /** Context for the reader: sizes, settings, and the cause of a missed target. */
  readonly notes?: string;
}

export interface BenchSuite {
  readonly name: string;
  /** One sentence: what it measures and against what. */
  readonly description: string;
  run(context: BenchContext): Promise<BenchResult[]>;
}

/** Speed-up of the subject over the baseline: > 1 means the subject is better. */
export function ratioOf(result: BenchResult): number | undefined {
  if (!result.baseline || result.baseline.value === 0 || result.value === 0) return undefined;
  return result.higherIsBetter ? result.value / result.baseline.value : result.baseline.value / result.value;
}

/** Whether the result meets its target; undefined when it has none. */
export function targetMet(result: BenchResult): boolean | undefined {
  const t = result.target;
  if (!t) return undefined;
  const ratio = ratioOf(result);
  if (t.ratio !== undefined && (ratio === undefined || ratio < t.ratio)) return false;
  if (t.max !== undefined && result.value > t.max) return false;
  if (t.min !== undefined && result.value < t.min) return false;
  return true;
}
