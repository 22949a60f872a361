/**
 * What Finalize publishes about a run besides the catalogue: CloudWatch metrics (EMF, see RUN_METRICS) and one
 * audit row in the pipeline's runs table (`<auditRunsUri><pipeline>/run_date=<date>/<runId>.json`, one JSON line,
 * read by the pipeline's runs table, which Finalize creates or updates: `ensureRunsTable`).
 *
 * Both are derived from the run's manifest.json, the authoritative audit record: losing either can be repaired
 * from it, so a failure here is logged and does not fail a run that passed validation.
 */
import { parseManifest, type Manifest } from '../../src/results/manifest.js';
import type { RunResult } from '../../src/runs/tasks.js';
import { PREDICTION_METRICS, RUN_METRICS, type Metrics } from '../../src/runtime/metrics.js';
import { getJson, type ObjectStore } from '../../src/storage/index.js';
import type { RunsTableSpec } from '../../src/catalog/glue.js';
import { RUN_RECORD_COLUMNS, type RunRecord } from './run-record-columns.js';

export { RUN_RECORD_COLUMNS, type RunRecord } from './run-record-columns.js';

export function runRecordOf(manifest: Manifest, result: RunResult): RunRecord {
  const wallSeconds = manifest.timings.wallMs / 1000;
  return {
    run_id: manifest.runId,
    pipeline: manifest.spec.name,
    status: manifest.status,
    reason: manifest.reason ?? null,
    message: manifest.message,
    records: manifest.counts.records,
    predictions: manifest.counts.predictions,
    errors: manifest.counts.errors,
    error_rate: manifest.counts.errorRate,
    failed_shards: manifest.counts.failedShards.count,
    shards: manifest.counts.shards,
    rounds: manifest.timings.rounds,
    model_name: manifest.model.name,
    model_version: manifest.model.version ?? null,
    model_sha256: manifest.model.sha256,
    input_objects: manifest.input.objects,
    input_bytes: manifest.input.bytes,
    input_snapshot_sha256: manifest.input.snapshotSha256,
    planned_at: manifest.timings.plannedAt,
    finalized_at: manifest.timings.finalizedAt,
    wall_seconds: wallSeconds,
    records_per_second: wallSeconds > 0 ? manifest.counts.records / wallSeconds : 0,
    output_uri: result.outputUri,
    manifest_uri: result.manifestUri,
    cost: manifest.cost?.total ?? null,
    cost_currency: manifest.cost?.currency ?? null,
    ...runErrorColumns(manifest.error),
  };
}

/** The first failure's reason as the runs table's error columns (all null on a run without one). */
export function runErrorColumns(
  error: Manifest['error'],
): Pick<RunRecord, 'error_code' | 'error_message' | 'error_shard' | 'error_log'> {
  return {
    error_code: error?.code ?? null,
    error_message: error?.message ?? null,
    error_shard: error?.shard ?? null,
    error_log: error?.log ?? null,
  };
}

/** Where a run's audit row goes. */
export function runRecordUri(
  auditRunsUri: string,
  record: Pick<RunRecord, 'pipeline' | 'run_id'>,
  runDate: string,
): string {
  const base = auditRunsUri.endsWith('/') ? auditRunsUri : `${auditRunsUri}/`;
  return `${base}${record.pipeline}/run_date=${runDate}/${record.run_id}.json`;
}

/**
 * Emits the run's metrics (one EMF blob). Drift is emitted when the manifest carries the run's drift; the shards per
 * execution provider when the manifest has them (a run with completed shards); HistoryDiffers when it carries a
 * history comparison.
 */
export function emitRunMetrics(
  record: RunRecord,
  metrics: Metrics,
  drift?: number,
  providers?: Readonly<Record<string, number>>,
  historyDiffers?: number,
): void {
  metrics.add(RUN_METRICS.records, record.records, 'Count');
  metrics.add(RUN_METRICS.predictions, record.predictions, 'Count');
  metrics.add(RUN_METRICS.errors, record.errors, 'Count');
  metrics.add(RUN_METRICS.errorRate, record.error_rate, 'None');
  metrics.add(RUN_METRICS.failedShards, record.failed_shards, 'Count');
  metrics.add(RUN_METRICS.recordsPerSecond, record.records_per_second, 'Count/Second');
  metrics.add(RUN_METRICS.wallSeconds, record.wall_seconds, 'Seconds');
  if (record.cost !== null) metrics.add(RUN_METRICS.cost, record.cost, 'None');
  if (drift !== undefined && Number.isFinite(drift)) metrics.add(RUN_METRICS.drift, drift, 'None');
  if (providers) {
    metrics.add(RUN_METRICS.shardsOnCpu, providers.cpu ?? 0, 'Count');
    metrics.add(RUN_METRICS.shardsOnCuda, providers.cuda ?? 0, 'Count');
  }
  if (historyDiffers !== undefined) metrics.add(RUN_METRICS.historyDiffers, historyDiffers, 'Count');
  metrics.flush();
}

/**
 * The run's drift metric: the manifest's `drift.maxPsi`, the largest population stability index of the run's
 * prediction columns against its baseline run. Undefined when the manifest has no drift (no baseline yet).
 */
export function driftOf(manifest: Pick<Manifest, 'drift'>): number | undefined {
  return manifest.drift?.maxPsi;
}

/**
 * The run's "differs from history" metric: 1 when the manifest's history comparison flags a metric, 0 when it
 * flags none, undefined without a comparison (not enough history, or an older manifest).
 */
export function historyDiffersOf(manifest: Pick<Manifest, 'history'>): number | undefined {
  return manifest.history?.status === 'compared' ? (manifest.history.differs ? 1 : 0) : undefined;
}

/**
 * Emits the prediction distribution of the run: PredictionP10/P50/P90 per numeric prediction column of the
 * manifest's summaries, one EMF blob per column (`metricsFor` sets the Column dimension). Categorical and vector
 * columns have no quantiles and emit nothing; the run report shows them.
 */
export function emitPredictionMetrics(
  manifest: Pick<Manifest, 'summaries'>,
  metricsFor: (column: string) => Metrics,
): void {
  for (const [column, summary] of Object.entries(manifest.summaries ?? {})) {
    if (summary.kind !== 'numeric' || !summary.quantiles) continue;
    const metrics = metricsFor(column);
    for (const [name, quantile] of [
      [PREDICTION_METRICS.p10, 'p10'],
      [PREDICTION_METRICS.p50, 'p50'],
      [PREDICTION_METRICS.p90, 'p90'],
    ] as const) {
      const value = summary.quantiles[quantile];
      if (value !== undefined && Number.isFinite(value)) metrics.add(name, value, 'None');
    }
    metrics.flush();
  }
}

export interface RunRecordDeps {
  readonly store: ObjectStore;
  readonly metrics: (pipeline: string, runId: string) => Metrics;
  /**
   * Metrics with the dimensions Pipeline and Column, for the prediction distribution (PREDICTION_METRICS).
   *
   * @default - the distribution is not emitted
   */
  readonly columnMetrics?: (pipeline: string, runId: string, column: string) => Metrics;
  /** @default - no audit row is written (local runs) */
  readonly auditRunsUri?: string;
  /**
   * Creates or updates the pipeline's runs table (Finalize owns it, ADR 0017), after the row is written.
   *
   * @default - no table is touched (local runs)
   */
  readonly ensureRunsTable?: (spec: RunsTableSpec) => Promise<void>;
}

/** Where a pipeline's runs table reads its rows: `<auditRunsUri><pipeline>/`. */
export function runsTableLocation(auditRunsUri: string, pipeline: string): string {
  const base = auditRunsUri.endsWith('/') ? auditRunsUri : `${auditRunsUri}/`;
  return `${base}${pipeline}/`;
}

/** Reads the manifest of a finalized run, emits its metrics and writes its audit row. Returns the row. */
export async function publishRunRecord(result: RunResult, deps: RunRecordDeps): Promise<RunRecord> {
  const raw = await getJson(deps.store, result.manifestUri);
  const manifest = parseManifest(raw);
  const record = runRecordOf(manifest, result);
  emitRunMetrics(
    record,
    deps.metrics(record.pipeline, record.run_id),
    driftOf(manifest),
    manifest.execution?.providers,
    historyDiffersOf(manifest),
  );
  const columnMetrics = deps.columnMetrics;
  if (columnMetrics) {
    emitPredictionMetrics(manifest, (column) => columnMetrics(record.pipeline, record.run_id, column));
  }
  if (deps.auditRunsUri !== undefined) {
    // One JSON object on one line: the runs table's JSON SerDe reads a row per line.
    await deps.store.put(
      runRecordUri(deps.auditRunsUri, record, manifest.runDate),
      `${JSON.stringify(record)}\n`,
      {
        contentType: 'application/json',
      },
    );
    await deps.ensureRunsTable?.({
      table: `${record.pipeline}_runs`,
      location: runsTableLocation(deps.auditRunsUri, record.pipeline),
      columns: RUN_RECORD_COLUMNS,
    });
  }
  return record;
}
