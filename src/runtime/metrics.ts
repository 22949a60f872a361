/**
 * CloudWatch metrics as Embedded Metric Format (EMF) log lines: a JSON object on stdout that CloudWatch Logs turns
 * into metrics on ingestion. No SDK call, no extra latency, no `cloudwatch:PutMetricData` permission, and it works
 * the same in Lambda and in a container whose stdout goes to CloudWatch Logs.
 *
 * Format: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 *
 * The metric names the deployed alarms and dashboard read are defined here (`RUN_METRICS`, `QUEUE_METRICS`), so
 * the code that emits a metric and the alarm that watches it cannot disagree on its name.
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
  /**
   * Distribution drift of the run's predictions against the reference (population stability index). Emitted by
   * Finalize once the manifest carries a drift score; the alarm on it exists already and stays quiet until then.
   */
  drift: 'Drift',
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
  /** Writes everything added so far as one EMF line, then forgets it. Nothing is written when nothing was added. */
  flush(): void;
}

export interface EmfMetricsOptions {
  /** @default POWERTOOLS_METRICS_NAMESPACE, else METRICS_NAMESPACE */
  readonly namespace?: string;
  /** Dimension name -> value, for every metric of this logger. At most 30 (EMF's limit). */
  readonly dimensions?: Readonly<Record<string, string>>;
  /** Extra top-level properties: searchable in Logs Insights, not metrics (e.g. the run id). */
  readonly properties?: Readonly<Record<string, string | number | boolean>>;
  /** Where the line goes. @default stdout */
  readonly write?: (line: string) => void;
  /** @default Date.now */
  readonly now?: () => number;
}

/** EMF allows up to 100 metrics per directive and 30 dimensions per set. */
const MAX_METRICS = 100;
const MAX_DIMENSIONS = 30;

/** Metric and dimension names: 1-255 characters, no leading colon (CloudWatch's rules, simplified). */
const NAME = /^[^:][^\n]{0,254}$/;

/** EMF as `Metrics`. Values must be finite numbers: CloudWatch drops a metric whose value is NaN or Infinity. */
export function createEmfMetrics(options: EmfMetricsOptions = {}): Metrics {
  const namespace = options.namespace ?? process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE;
  const dimensions = { ...options.dimensions };
  const dimensionNames = Object.keys(dimensions);
  if (dimensionNames.length > MAX_DIMENSIONS) {
    throw new Error(`EMF allows at most ${MAX_DIMENSIONS} dimensions, got ${dimensionNames.length}`);
  }
  for (const name of dimensionNames) {
    if (!NAME.test(name)) throw new Error(`Invalid metric dimension name "${name}"`);
  }
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const now = options.now ?? Date.now;
  let pending = new Map<string, { unit: MetricUnit; values: number[] }>();

  return {
    add(name, value, unit) {
      if (!NAME.test(name)) throw new Error(`Invalid metric name "${name}"`);
      if (!Number.isFinite(value)) throw new Error(`Metric ${name} must be a finite number, got ${value}`);
      if (name in dimensions || (options.properties && name in options.properties)) {
        throw new Error(`Metric ${name} has the name of a dimension or property`);
      }
      const entry = pending.get(name);
      if (entry) {
        if (entry.unit !== unit) throw new Error(`Metric ${name} was added as ${entry.unit}, now as ${unit}`);
        entry.values.push(value);
        return;
      }
      if (pending.size >= MAX_METRICS) throw new Error(`EMF allows at most ${MAX_METRICS} metrics per line`);
      pending.set(name, { unit, values: [value] });
    },
    flush() {
      if (pending.size === 0) return;
      const metrics = [...pending.entries()];
      pending = new Map();
      const line: Record<string, unknown> = {
        _aws: {
          Timestamp: now(),
          CloudWatchMetrics: [
            {
              Namespace: namespace,
              Dimensions: [dimensionNames],
              Metrics: metrics.map(([name, { unit }]) => ({ Name: name, Unit: unit })),
            },
          ],
        },
        ...options.properties,
        ...dimensions,
      };
      for (const [name, { values }] of metrics) line[name] = values.length === 1 ? values[0] : values;
      write(JSON.stringify(line));
    },
  };
}
