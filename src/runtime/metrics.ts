/**
 * The metrics batch-infer publishes, as the code that emits them and the alarms and dashboard that read them agree:
 * the namespace, the names (`RUN_METRICS`, `QUEUE_METRICS`) and their dimensions, and the small `Metrics` interface
 * the emitting code takes. In Lambda it is Powertools Metrics (lambdas/shared/powertools.ts): Embedded Metric
 * Format lines on stdout that CloudWatch Logs turns into metrics on ingestion, with no SDK call and no
 * `cloudwatch:PutMetricData` permission.
 */

/** CloudWatch units this project emits. */
export type MetricUnit = 'Count' | 'Count/Second' | 'Seconds' | 'Milliseconds' | 'Bytes' | 'Percent' | 'None';

/** The namespace every batch-infer metric is published in (`POWERTOOLS_METRICS_NAMESPACE` overrides it). */
export const METRICS_NAMESPACE = 'BatchInfer';

/** Metrics Finalize emits once per run, with the dimension `Pipeline` (the job spec's name). */
export const RUN_METRICS = {
  dimension: 'Pipeline',
  records: 'Records',
  predictions: 'Predictions',
  errors: 'Errors',
  /** errors / records of the run, 0..1. */
  errorRate: 'ErrorRate',
  /** Shards without a valid completion marker after every round. */
  failedShards: 'FailedShards',
  /** records / wall seconds from planning to finalizing: the throughput a user experiences. */
  recordsPerSecond: 'RecordsPerSecond',
  /** Planning to finalizing, in seconds. */
  wallSeconds: 'RunWallSeconds',
  /** What the run's completed shards cost, in the price table's currency (manifest.cost.total, src/cost). */
  cost: 'RunCost',
  /**
   * Distribution drift of the run's predictions against its baseline run: the largest population stability index
   * over the prediction columns (the manifest's `drift.maxPsi`). Emitted by Finalize when the manifest has `drift`
   * (not for a pipeline's first run, which has no baseline); the drift alarm stays OK while nothing is emitted.
   */
  drift: 'Drift',
  /**
   * Completed shards by the execution provider that ran them (the markers' `executionProvider`, the manifest's
   * `execution.providers`): every shard's provider is counted in one of the two. The GPU-on-CPU alarm reads
   * `ShardsOnCpu` of GPU pipelines.
   */
  shardsOnCpu: 'ShardsOnCpu',
  shardsOnCuda: 'ShardsOnCuda',
  /**
   * 1 when the run's duration, records/s, error rate or record count differs from the job's last succeeded runs
   * (the manifest's `history.differs`, history-checks.ts), else 0. Not emitted while the job has too little history
   * ("not enough history"); the "run differs from history" alarm stays OK while nothing is emitted.
   */
  historyDiffers: 'HistoryDiffers',
} as const;

/**
 * The prediction distribution of a run, per numeric prediction column: quantiles of the manifest's `summaries`,
 * emitted by Finalize with the dimensions `Pipeline` and `Column` (one EMF blob per column). The dashboard shows
 * the last run's.
 */
export const PREDICTION_METRICS = {
  dimension: 'Column',
  p10: 'PredictionP10',
  p50: 'PredictionP50',
  p90: 'PredictionP90',
} as const;

/** Metrics the queue-depth function emits every minute, with the dimension `JobQueue` (the queue's name). */
export const QUEUE_METRICS = {
  dimension: 'JobQueue',
  /** Jobs (array children counted one by one) waiting for capacity. */
  runnable: 'JobsRunnable',
  /** Jobs submitted or pending on dependencies, not yet RUNNABLE. */
  pending: 'JobsPending',
  /** Jobs placed on an instance and starting (image pull). */
  starting: 'JobsStarting',
  running: 'JobsRunning',
} as const;

export interface Metrics {
  /** Records a value; several values of one name in one flush become one EMF array. */
  add(name: string, value: number, unit: MetricUnit): void;
  /** Writes everything added so far as one EMF blob, then forgets it. Nothing is written when nothing was added. */
  flush(): void;
}
