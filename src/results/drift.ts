/**
 * Drift of a run's predictions against the previous succeeded run of the same job: the population stability index
 * (PSI) of each prediction column, from the distribution summaries Finalize merges into the manifest
 * (runs/stats.ts), so no prediction is read again.
 *
 *   PSI = Σ (a_i - b_i) · ln(a_i / b_i)   over buckets i, with b_i / a_i the baseline's / the run's share of rows
 *
 * 0 for identical distributions; by the usual reading, < 0.1 is stable, 0.1-0.25 a moderate shift, > 0.25 a major
 * one. A share of 0 is counted as PSI_EPSILON, so a bucket only one side has adds a large but finite term.
 *
 * Buckets:
 * - categorical columns: one per value (the union of both runs' values), plus one for the values past
 *   MAX_CATEGORIES (`other`);
 * - numeric columns: the fixed log bins of the summaries (every run's bins line up), grouped into
 *   NUMERIC_PSI_BUCKETS buckets of about equal baseline mass (baseline deciles, cut at bin edges), plus one below
 *   and one above the baseline's range (so a shift out of a concentrated baseline is seen). Grouping matters:
 *   the raw bins are 2% wide, and over hundreds of sparsely filled bins sampling noise alone would read as drift.
 * - vector columns (embeddings, lists): the PSI of their norms, of all their values, and for short vectors of each
 *   position (summarised by the largest and the mean), plus the distance between the runs' mean vectors (cosine
 *   distance and relative shift), which sees a rotated embedding whose norms and values did not change.
 * Missing values (null, NaN) are not part of the distribution compared.
 *
 * The baseline is found through `<output.uri>/_runs/_succeeded.json`, a short history of the job's succeeded runs
 * that Finalize keeps (see `recordSucceededRun`): run ids are not ordered by time (an S3-triggered run is named
 * `s3-<file>-<hash>`), so listing `_runs/` cannot tell which run came last, and reading every run's manifest to
 * find out would not stay bounded. The history is ordered by plan time; the baseline is the latest run planned
 * before this one whose manifest says SUCCEEDED and carries summaries.
 */
import { z } from 'zod';
import type { RunLayout } from '../runs/layout.js';
import {
  BIN_GAMMA,
  type CategoricalSummary,
  type ColumnSummary,
  type NumericSummary,
  type OutputSummaries,
  type VectorSummary,
} from '../runs/stats.js';
import { NotFoundError, putJson, type ObjectStore } from '../storage/object-store.js';
import { joinUri } from '../storage/uri.js';
import { manifestSchema, type Drift, type Manifest } from './manifest.js';
import type { ValidationCheck } from './validate.js';

export { driftSchema, type Drift } from './manifest.js';

/** Share a bucket counts as when one side has no rows in it. */
export const PSI_EPSILON = 1e-4;
/** Buckets a numeric column is compared in (baseline deciles). */
export const NUMERIC_PSI_BUCKETS = 10;
/** Succeeded runs the history keeps, newest last. */
export const MAX_HISTORY = 100;
/** History entries tried as the baseline before giving up (a run's manifest can be gone or unreadable). */
export const MAX_BASELINE_CANDIDATES = 5;

// ---------------------------------------------------------------------------------------------------------------
// PSI (pure)

/**
 * PSI of two histograms over the same buckets (counts, in the same order); undefined when either has no rows.
 */
export function psi(baseline: readonly number[], current: readonly number[]): number | undefined {
  if (baseline.length !== current.length) {
    throw new RangeError(
      `PSI needs the same buckets on both sides (${baseline.length} vs ${current.length})`,
    );
  }
  const b = baseline.reduce((n, c) => n + c, 0);
  const a = current.reduce((n, c) => n + c, 0);
  if (b === 0 || a === 0) return undefined;
  let total = 0;
  for (let i = 0; i < baseline.length; i++) {
    const p = Math.max(baseline[i]! / b, PSI_EPSILON);
    const q = Math.max(current[i]! / a, PSI_EPSILON);
    total += (q - p) * Math.log(q / p);
  }
  // Identical shares give exactly 0; rounding must not make a tiny negative.
  return Math.max(0, total);
}

/** PSI of a categorical column: one bucket per value of either run, plus `other`. */
export function categoricalPsi(
  baseline: CategoricalSummary,
  current: CategoricalSummary,
): number | undefined {
  // Map lookups, not `in`: a value such as "__proto__" or "constructor" is an ordinary category.
  const b = new Map(Object.entries(baseline.counts));
  const a = new Map(Object.entries(current.counts));
  const values = [...new Set([...b.keys(), ...a.keys()])].sort();
  const bs = values.map((v) => b.get(v) ?? 0);
  const as = values.map((v) => a.get(v) ?? 0);
  if (baseline.other > 0 || current.other > 0) {
    bs.push(baseline.other);
    as.push(current.other);
  }
  return psi(bs, as);
}

/**
 * PSI of a numeric column over NUMERIC_PSI_BUCKETS buckets of about equal baseline mass, cut at the fixed bins'
 * edges; undefined when either side has no values or the bins do not line up (a different γ).
 */
export function numericPsi(baseline: NumericSummary, current: NumericSummary): number | undefined {
  if (baseline.bins.gamma !== current.bins.gamma) return undefined;
  const base = orderedBins(baseline);
  const cur = orderedBins(current);
  const total = base.reduce((n, [, c]) => n + c, 0);
  if (total === 0 || cur.length === 0) return undefined;
  // Upper edges (bin positions) of the buckets: a bucket closes once it holds its share of the baseline.
  const edges: number[] = [];
  let seen = 0;
  // The next decile boundary to reach; a bin heavier than a decile closes one bucket and skips the boundaries
  // it covers, so no bucket is left holding a sliver.
  let next = 1;
  for (const [position, count] of base) {
    seen += count;
    if (seen * NUMERIC_PSI_BUCKETS >= total * next) {
      edges.push(position);
      next = Math.floor((seen * NUMERIC_PSI_BUCKETS) / total) + 1;
    }
  }
  // Two more buckets, empty in the baseline: values below its lowest bin and above its highest. Without them a
  // baseline concentrated in one bin has a single bucket, and any shift out of it would read as no drift at all.
  const lowest = base[0]![0];
  const highest = edges[edges.length - 1]!;
  const bucketOf = (position: number): number => {
    if (position < lowest) return 0;
    if (position > highest) return edges.length + 1;
    let lo = 0;
    let hi = edges.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (position <= edges[mid]!) hi = mid;
      else lo = mid + 1;
    }
    return lo + 1;
  };
  const bs = new Array<number>(edges.length + 2).fill(0);
  const as = new Array<number>(edges.length + 2).fill(0);
  for (const [position, count] of base) bs[bucketOf(position)]! += count;
  for (const [position, count] of cur) as[bucketOf(position)]! += count;
  return psi(bs, as);
}

/**
 * The bins of a numeric summary in ascending order of value, each as [position, count]: the position orders bins
 * like the values in them (most negative first, the zero bin, then positive) and is the same for every run.
 */
function orderedBins(summary: NumericSummary): [number, number][] {
  const { negative, positive, zero } = summary.bins;
  const out: [number, number][] = [];
  // Bin i of a sign covers magnitudes (γ^(i-1), γ^i]; i can be negative (magnitudes below 1). Positions: the
  // bin's upper magnitude, signed; the zero bin sits at 0 between the two signs.
  for (let k = negative.length - 1; k >= 0; k--) {
    const [index, count] = negative[k]!;
    out.push([-(BIN_GAMMA ** index), count]);
  }
  if (zero > 0) out.push([0, zero]);
  for (const [index, count] of positive) out.push([BIN_GAMMA ** index, count]);
  return out;
}

/** PSI of one column, when both runs summarised it the same way and have values; vectors: see vectorDrift. */
export function columnPsi(baseline: ColumnSummary, current: ColumnSummary): number | undefined {
  if (baseline.kind === 'categorical' && current.kind === 'categorical')
    return categoricalPsi(baseline, current);
  if (baseline.kind === 'numeric' && current.kind === 'numeric') return numericPsi(baseline, current);
  return undefined;
}

export type VectorDrift = NonNullable<Drift['vectors']>[string];

/** How a vector column moved between two runs; each measure only where both summaries carry what it needs. */
export function vectorDrift(baseline: VectorSummary, current: VectorSummary): VectorDrift {
  const out: { -readonly [K in keyof VectorDrift]: VectorDrift[K] } = {};
  const round = (v: number): number => Number(v.toFixed(6));
  if (baseline.norms && current.norms) {
    const v = numericPsi(baseline.norms, current.norms);
    if (v !== undefined) out.normPsi = round(v);
  }
  const elements = numericPsi(baseline.elements, current.elements);
  if (elements !== undefined) out.elementsPsi = round(elements);
  if (baseline.positions && current.positions && baseline.positions.length === current.positions.length) {
    const each = baseline.positions
      .map((b, k) => numericPsi(b, current.positions![k]!))
      .filter((v): v is number => v !== undefined);
    if (each.length > 0) {
      out.dimensionsPsiMax = round(Math.max(...each));
      out.dimensionsPsiMean = round(each.reduce((n, v) => n + v, 0) / each.length);
    }
  }
  const b = meanVector(baseline);
  const a = meanVector(current);
  if (a && b && a.length === b.length) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    let diff = 0;
    for (let k = 0; k < a.length; k++) {
      dot += a[k]! * b[k]!;
      na += a[k]! * a[k]!;
      nb += b[k]! * b[k]!;
      diff += (a[k]! - b[k]!) ** 2;
    }
    if (na > 0 && nb > 0) {
      out.meanCosineDistance = round(Math.max(0, 1 - dot / Math.sqrt(na * nb)));
      out.meanRelativeShift = round(Math.sqrt(diff) / Math.sqrt(nb));
    }
  }
  return out;
}

function meanVector(s: VectorSummary): number[] | undefined {
  if (!s.positionSums || !s.positionCounts || s.positionSums.length !== s.positionCounts.length)
    return undefined;
  return s.positionSums.map((sum, k) => (s.positionCounts![k]! > 0 ? sum / s.positionCounts![k]! : 0));
}

/**
 * Drift of `current` against `baseline`, column by column, over the columns both have; undefined when no column
 * could be compared.
 */
export function computeDrift(
  baselineRunId: string,
  baseline: OutputSummaries,
  current: OutputSummaries,
): Drift | undefined {
  const columns: Record<string, number> = {};
  const vectors: Record<string, VectorDrift> = {};
  let maxPsi = 0;
  let compared = 0;
  const record = (target: Record<string, unknown>, name: string, value: unknown): void => {
    Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
  };
  const add = (name: string, value: number | undefined): void => {
    if (value === undefined) return;
    // Rounded for the record: PSI is read to two decimals, and a stable manifest diffs cleanly.
    const rounded = Number(value.toFixed(6));
    record(columns, name, rounded);
    maxPsi = Math.max(maxPsi, rounded);
    compared++;
  };
  for (const name of Object.keys(current).sort()) {
    const before = Object.prototype.hasOwnProperty.call(baseline, name) ? baseline[name] : undefined;
    const now = current[name];
    if (!before || !now) continue;
    if (before.kind === 'vector' && now.kind === 'vector') {
      const v = vectorDrift(before, now);
      add(`${name}.norm`, v.normPsi);
      add(`${name}.elements`, v.elementsPsi);
      add(`${name}.dimensions`, v.dimensionsPsiMax);
      if (Object.keys(v).length > 0) {
        record(vectors, name, v);
        if (v.normPsi === undefined && v.elementsPsi === undefined) compared++;
      }
      continue;
    }
    add(name, columnPsi(before, now));
  }
  if (compared === 0) return undefined;
  return { baselineRunId, maxPsi, columns, ...(Object.keys(vectors).length > 0 && { vectors }) };
}

/** Prefix of the input feature columns in `drift.columns` (`input.<column>`), apart from prediction columns. */
export const INPUT_DRIFT_PREFIX = 'input.';

/**
 * Output summaries and input summaries as one set for computeDrift: input columns under `input.<column>`, so their
 * PSI lands in `drift.columns` (and so in maxPsi, the Drift metric and the gate) without clashing with an output
 * column of the same name.
 */
export function withInputSummaries(
  outputs: OutputSummaries,
  inputs: OutputSummaries | undefined,
): OutputSummaries {
  const out: OutputSummaries = { ...outputs };
  for (const [name, summary] of Object.entries(inputs ?? {})) {
    Object.defineProperty(out, `${INPUT_DRIFT_PREFIX}${name}`, {
      value: summary,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/**
 * The drift gate (`validation.drift: { maxPsi, gate: true }`): passes when the largest PSI is within the threshold,
 * and on a job's first run (nothing to compare with).
 */
export function driftGateCheck(maxPsi: number, drift: Drift | undefined): ValidationCheck {
  const description = 'largest PSI of the prediction columns against the previous succeeded run';
  if (!drift)
    return { name: 'drift', description, threshold: maxPsi, actual: 'n/a (no baseline)', passed: true };
  const passed = drift.maxPsi <= maxPsi;
  const worst = Object.entries(drift.columns)
    .filter(([, v]) => v > maxPsi)
    .sort((a, b) => b[1] - a[1])
    .map(([c, v]) => `${c} ${v.toFixed(3)}`);
  return {
    name: 'drift',
    description,
    threshold: maxPsi,
    actual: drift.maxPsi,
    passed,
    ...(!passed && {
      message:
        `predictions drifted from run ${drift.baselineRunId} beyond validation.drift.maxPsi (${maxPsi}): ` +
        `${worst.join(', ')}; the run is not published (raise maxPsi or set gate: false to publish anyway)`,
    }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The job's history of succeeded runs, and the baseline

const historyEntrySchema = z.object({
  runId: z.string(),
  /** The job's name (the table): an output prefix shared by two jobs keeps them apart. */
  name: z.string(),
  plannedAt: z.string(),
  finalizedAt: z.string(),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

/** `<output.uri>/_runs/_succeeded.json` */
export const historySchema = z.object({
  version: z.literal(1),
  /** Ascending by plannedAt (then runId); at most MAX_HISTORY. */
  runs: z.array(historyEntrySchema),
});
export type RunHistory = z.infer<typeof historySchema>;

export function historyUri(layout: RunLayout): string {
  return joinUri(layout.outputUri, '_runs', '_succeeded.json');
}

/** The history, or an empty one when there is none yet or it cannot be read (it is rebuilt as runs succeed). */
export async function readHistory(store: ObjectStore, layout: RunLayout): Promise<RunHistory> {
  let bytes: Uint8Array;
  try {
    bytes = await store.get(historyUri(layout));
  } catch (err) {
    if (err instanceof NotFoundError) return { version: 1, runs: [] };
    throw err;
  }
  try {
    const parsed = historySchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
    if (parsed.success) return parsed.data;
  } catch {
    // A corrupt history costs the drift of the next run, never a verdict.
  }
  return { version: 1, runs: [] };
}

/** Adds (or refreshes) a succeeded run in the job's history, keeping the newest MAX_HISTORY by plan time. */
export async function recordSucceededRun(
  store: ObjectStore,
  layout: RunLayout,
  entry: HistoryEntry,
): Promise<void> {
  const history = await readHistory(store, layout);
  const runs = history.runs.filter((r) => r.runId !== entry.runId);
  runs.push(entry);
  runs.sort((x, y) => compare(x.plannedAt, y.plannedAt) || compare(x.runId, y.runId));
  await putJson(store, historyUri(layout), {
    version: 1,
    runs: runs.slice(-MAX_HISTORY),
  } satisfies RunHistory);
}

/**
 * The previous succeeded run of the job: among the history's runs of the same name planned before `plannedAt`,
 * the latest whose manifest reads back SUCCEEDED with summaries (at most MAX_BASELINE_CANDIDATES manifests read).
 */
export async function findBaseline(
  store: ObjectStore,
  layout: RunLayout,
  job: { readonly runId: string; readonly name: string; readonly plannedAt: string },
): Promise<Manifest | undefined> {
  const history = await readHistory(store, layout);
  const candidates = history.runs
    .filter((r) => r.runId !== job.runId && r.name === job.name && r.plannedAt < job.plannedAt)
    .reverse()
    .slice(0, MAX_BASELINE_CANDIDATES);
  for (const candidate of candidates) {
    const uri = joinUri(layout.outputUri, '_runs', candidate.runId, 'manifest.json');
    let manifest: Manifest;
    try {
      const parsed = manifestSchema.safeParse(JSON.parse(new TextDecoder().decode(await store.get(uri))));
      if (!parsed.success) continue;
      manifest = parsed.data;
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof SyntaxError) continue;
      throw err;
    }
    if (manifest.runId === candidate.runId && manifest.status === 'SUCCEEDED' && manifest.summaries) {
      return manifest;
    }
  }
  return undefined;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
