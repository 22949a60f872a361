/**
 * Powertools for AWS Lambda in the handlers: the functions log with the Powertools Logger and emit their metrics with
 * Powertools Metrics (Embedded Metric Format on stdout), one instance of each per execution environment, created
 * at module load as Powertools recommends. The engine code in src/ is shared with the worker and the CLI, so it
 * takes two small interfaces instead (src/runtime/log.ts's Logger, src/runtime/metrics.ts's Metrics): the adapters
 * here hand it the Powertools instances.
 *
 * Settings come from the environment NodeFunction sets: POWERTOOLS_SERVICE_NAME (the `service` of every line),
 * POWERTOOLS_METRICS_NAMESPACE (the namespace of every metric), and POWERTOOLS_LOG_LEVEL or LOG_LEVEL.
 */
import { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import { Metrics as PowertoolsMetrics } from '@aws-lambda-powertools/metrics';
import type { LogFields, Logger } from '../../src/runtime/log.js';
import { METRICS_NAMESPACE, type Metrics, type MetricUnit } from '../../src/runtime/metrics.js';

export type { PowertoolsLogger, PowertoolsMetrics };

/** The service name when POWERTOOLS_SERVICE_NAME is not set (NodeFunction sets it). */
export const DEFAULT_SERVICE_NAME = 'batch-infer';

/**
 * The part of the Lambda context object the handlers use (`@types/aws-lambda` is not a dependency): the request id,
 * and what the Powertools Logger adds to every line (`function_name`, `function_request_id`, `cold_start`...).
 */
export interface LambdaContext {
  readonly awsRequestId: string;
  readonly functionName?: string;
  readonly functionVersion?: string;
  readonly invokedFunctionArn?: string;
  readonly memoryLimitInMB?: string;
}

/** The function's Powertools Logger. */
export function createFunctionLogger(): PowertoolsLogger {
  return new PowertoolsLogger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME || DEFAULT_SERVICE_NAME });
}

/**
 * The function's Powertools Metrics, in POWERTOOLS_METRICS_NAMESPACE (else METRICS_NAMESPACE). Without the `service`
 * dimension Powertools adds by default: the alarms and the dashboard read each metric by its own dimension alone
 * (`Pipeline`, `JobQueue`), and CloudWatch matches dimension sets exactly.
 */
export function createFunctionMetrics(): PowertoolsMetrics {
  const metrics = new PowertoolsMetrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE || METRICS_NAMESPACE,
    serviceName: process.env.POWERTOOLS_SERVICE_NAME || DEFAULT_SERVICE_NAME,
  });
  metrics.clearDefaultDimensions();
  return metrics;
}

/**
 * Starts an invocation's logging, as Powertools' `injectLambdaContext` does for decorated handlers: forgets the
 * previous invocation's keys (appendKeys), then adds the Lambda context to every line.
 */
export function beginInvocation(logger: PowertoolsLogger, context: LambdaContext | undefined): void {
  logger.resetKeys();
  // The Powertools signature names `Context` of `@types/aws-lambda`; LambdaContext has the fields it reads.
  if (context) logger.addContext(context as Parameters<PowertoolsLogger['addContext']>[0]);
}

/** Keys the Powertools Logger owns: a field of that name is renamed `_<key>` instead of being dropped. */
const RESERVED_KEYS = new Set(['level', 'message', 'sampling_rate', 'service', 'timestamp']);

function fieldsFor(fields: LogFields): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) out[RESERVED_KEYS.has(key) ? `_${key}` : key] = value;
  return out;
}

/**
 * The engine's Logger over a Powertools Logger: same levels, fields as extra keys of the line (Errors anywhere in
 * them formatted by Powertools: name, location, message, stack), `child` adding fields to every line.
 */
export function engineLogger(logger: PowertoolsLogger, base: LogFields = {}): Logger {
  const emit =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (message: string, fields?: LogFields): void =>
      logger[level](message, fieldsFor({ ...base, ...fields }));
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (fields) => engineLogger(logger, { ...base, ...fields }),
  };
}

export interface EmfMetricsOptions {
  /** Dimension name -> value of every metric flushed through this adapter. */
  readonly dimensions?: Readonly<Record<string, string>>;
  /** Extra top-level properties (Powertools metadata): searchable in Logs Insights, not metrics. */
  readonly properties?: Readonly<Record<string, string>>;
}

/**
 * The engine's Metrics over Powertools Metrics: `add` stores a metric, `flush` publishes what was added as one EMF
 * blob with these dimensions and properties (Powertools then forgets the dimensions and properties, not the
 * namespace). Values must be finite: CloudWatch drops a metric whose value is NaN or Infinity.
 */
export function emfMetrics(metrics: PowertoolsMetrics, options: EmfMetricsOptions = {}): Metrics {
  return {
    add(name: string, value: number, unit: MetricUnit): void {
      if (!Number.isFinite(value)) throw new Error(`Metric ${name} must be a finite number, got ${value}`);
      metrics.addMetric(name, unit, value);
    },
    flush(): void {
      if (!metrics.hasStoredMetrics()) return;
      if (options.dimensions) metrics.addDimensions({ ...options.dimensions });
      for (const [key, value] of Object.entries(options.properties ?? {})) metrics.addMetadata(key, value);
      metrics.publishStoredMetrics();
    },
  };
}
