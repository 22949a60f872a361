/**
 * History checks: this run's duration, throughput, error rate and record count against the last succeeded runs of
 * the same job (the history drift uses, drift.ts). Robust to an odd run in the history: each metric is compared with
 * the history's median, in units of its median absolute deviation (MAD, scaled by 1.4826 to read like a standard
 * deviation), and flagged only when it is also far in relative terms (a history of identical runs has MAD 0).
 */
import type { RunLayout } from '../runs/layout.js';
import type { ObjectStore } from '../storage/object-store.js';
import { joinUri } from '../storage/uri.js';
import { readHistory } from './drift.js';
import { type HistoryCheck, type HistoryComparison, type ManifestHistory } from './history-schema.js';
import { manifestSchema, type Manifest } from './manifest.js';

export {
  historyCheckSchema,
  historyComparisonSchema,
  manifestHistorySchema,
  type HistoryCheck,
  type HistoryComparison,
  type ManifestHistory,
} from './history-schema.js';

/** Succeeded runs compared with, at most. */
export const HISTORY_RUNS = 10;
/** Runs the history needs before any metric is judged. */
export const MIN_HISTORY = 3;
/** Robust z-score above which a metric differs. */
export const MAX_ROBUST_Z = 3.5;
/** ...and relative change (|value - median| / median) it must also exceed. */
export const MIN_RELATIVE_CHANGE = 0.2;

export type RunMetrics = Record<HistoryCheck['metric'], number | undefined>;

/** The metrics of a run, from its manifest. */
export function runMetrics(m: Pick<Manifest, 'counts' | 'timings'>): RunMetrics {
  const first = m.timings.firstShardStartedAt ? Date.parse(m.timings.firstShardStartedAt) : NaN;
  const last = m.timings.lastShardFinishedAt ? Date.parse(m.timings.lastShardFinishedAt) : NaN;
  const span = (last - first) / 1000;
  return {
    durationMs: m.timings.wallMs,
    recordsPerSecond: Number.isFinite(span) && span > 0 ? m.counts.records / span : undefined,
    errorRate: m.counts.errorRate,
    records: m.counts.records,
  };
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Compares `current` with `history` metric by metric; undefined with fewer than MIN_HISTORY runs. */
export function compareWithHistory(
  current: RunMetrics,
  history: readonly { readonly runId: string; readonly metrics: RunMetrics }[],
): HistoryComparison | undefined {
  if (history.length < MIN_HISTORY) return undefined;
  const checks: HistoryCheck[] = [];
  for (const metric of ['durationMs', 'recordsPerSecond', 'errorRate', 'records'] as const) {
    const value = current[metric];
    const past = history.map((h) => h.metrics[metric]).filter((v): v is number => v !== undefined);
    if (value === undefined || past.length < MIN_HISTORY) continue;
    const med = median(past);
    const mad = median(past.map((v) => Math.abs(v - med)));
    const robustZ = mad > 0 ? (value - med) / (1.4826 * mad) : undefined;
    const relativeChange = med !== 0 ? (value - med) / Math.abs(med) : undefined;
    // Far in both senses; with MAD 0 (identical history) relative change alone decides; with a median of 0 (an
    // error rate that was always 0) any value over it differs by the z-score alone.
    const farZ = robustZ === undefined ? value !== med : Math.abs(robustZ) > MAX_ROBUST_Z;
    const farRel =
      relativeChange === undefined ? value !== med : Math.abs(relativeChange) > MIN_RELATIVE_CHANGE;
    const round = (v: number): number => Number(v.toPrecision(6));
    checks.push({
      metric,
      value: round(value),
      median: round(med),
      mad: round(mad),
      ...(robustZ !== undefined && { robustZ: round(robustZ) }),
      ...(relativeChange !== undefined && { relativeChange: round(relativeChange) }),
      differs: farZ && farRel,
    });
  }
  return { runIds: history.map((h) => h.runId), checks, differs: checks.some((c) => c.differs) };
}

/**
 * The comparison for a run: the last HISTORY_RUNS succeeded runs of the job planned before it, read from their
 * manifests (a run whose manifest is gone is skipped). Undefined with too little history.
 */
export async function historyComparisonOf(
  store: ObjectStore,
  layout: RunLayout,
  run: Pick<Manifest, 'runId' | 'counts' | 'timings'> & { readonly name: string },
): Promise<HistoryComparison | undefined> {
  return compareWithHistory(runMetrics(run), await pastRunMetrics(store, layout, run));
}

/**
 * What Finalize writes into `manifest.history`: the comparison, or "not enough history" (with how many runs were
 * found) for a job's first runs. Throws only when the job's history file cannot be read.
 */
export async function manifestHistoryOf(
  store: ObjectStore,
  layout: RunLayout,
  run: Pick<Manifest, 'runId' | 'counts' | 'timings'> & { readonly name: string },
): Promise<ManifestHistory> {
  const past = await pastRunMetrics(store, layout, run);
  const comparison = compareWithHistory(runMetrics(run), past);
  if (comparison) return { status: 'compared', ...comparison };
  return {
    status: 'notEnoughHistory',
    runs: past.length,
    required: MIN_HISTORY,
    message:
      `not enough history: ${past.length} succeeded run(s) of job ${run.name} before this one, ` +
      `${MIN_HISTORY} needed to compare duration, records/s, error rate and record count`,
  };
}

/** The metrics of the last HISTORY_RUNS succeeded runs of the job planned before `run`, oldest first. */
async function pastRunMetrics(
  store: ObjectStore,
  layout: RunLayout,
  run: Pick<Manifest, 'runId' | 'timings'> & { readonly name: string },
): Promise<{ runId: string; metrics: RunMetrics }[]> {
  const history = await readHistory(store, layout);
  const candidates = history.runs
    .filter((r) => r.runId !== run.runId && r.name === run.name && r.plannedAt < run.timings.plannedAt)
    .slice(-HISTORY_RUNS);
  const past: { runId: string; metrics: RunMetrics }[] = [];
  for (const c of candidates) {
    try {
      const uri = joinUri(layout.outputUri, '_runs', c.runId, 'manifest.json');
      const parsed = manifestSchema.safeParse(JSON.parse(new TextDecoder().decode(await store.get(uri))));
      if (parsed.success && parsed.data.status === 'SUCCEEDED') {
        past.push({ runId: c.runId, metrics: runMetrics(parsed.data) });
      }
    } catch {
      // A missing or unreadable manifest only shortens the history.
    }
  }
  return past;
}
