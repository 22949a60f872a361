/**
 * Worker settings beyond Batch's standard environment (src/runs/tasks.ts WORKER_ENV), and the stop deadline. Kept
 * apart from main.ts, which runs the worker when imported.
 */
import { z } from 'zod';

/** Memory the `auto` batch size may plan for, in MiB; default half of what the process may use. */
export const MEMORY_BUDGET_ENV = 'BATCH_INFER_MEMORY_BUDGET_MB';
/** Input records per output chunk (and checkpoint); overrides the spec's run.checkpoint.records (default 250,000). */
export const CHUNK_RECORDS_ENV = 'BATCH_INFER_CHUNK_RECORDS';
/**
 * Threads decoding CSV for tabular models (src/worker/columnar-stream.ts); 0 decodes on the main thread. Default: one
 * per core the process may use.
 */
export const DECODE_THREADS_ENV = 'BATCH_INFER_DECODE_THREADS';
/**
 * Cores the worker process may use: its default decode threads are one per core of these. The local pool sets each
 * worker's share of the machine; unset in Batch, where the container's vCPUs are the process's own.
 */
export const CORES_ENV = 'BATCH_INFER_CORES';
/**
 * Which reader takes Parquet input for tabular models: `duckdb` (the default) where it can (local files, whole S3
 * objects, plain column types: src/formats/parquet-native.ts), `hyparquet` for all of it. The way back should a
 * file read by DuckDB fail where hyparquet reads it (a string column that is not valid UTF-8 is one).
 */
export const PARQUET_READER_ENV = 'BATCH_INFER_PARQUET_READER';
/**
 * URL of a module exporting `now(): number` (milliseconds, monotonic) that run.checkpoint.seconds is measured by
 * instead of performance.now: how a test decides, from outside the worker process, when "a minute" of work has
 * passed (test/worker/manual-clock.ts). Unset in Batch.
 */
export const CHECKPOINT_CLOCK_ENV = 'BATCH_INFER_CHECKPOINT_CLOCK';
/**
 * After SIGTERM the process is gone within this long, whatever is still running: inside the 30 s ECS waits before
 * SIGKILL (the job definition's stop timeout), with room to spare.
 */
export const STOP_DEADLINE_MS = 20_000;
/**
 * The exit status of a worker stopped by SIGTERM (128 + 15, what a shell shows for a death by SIGTERM), after it
 * wrote its checkpoint, and of the backstop after STOP_DEADLINE_MS. Set explicitly rather than by re-raising the
 * signal: in a container node is PID 1, and Linux ignores a signal PID 1 sends itself when its action is the
 * default, so a re-raise would do nothing and the attempt would end with 0, as if it had succeeded.
 */
export const INTERRUPTED_EXIT_CODE = 143;

/**
 * Where the attempt's log is, recorded in a failure record (src/runs/failures.ts): the local pool sets it to the
 * attempt's log file. In Batch it is unset, and the record names the job id instead (AWS_BATCH_JOB_ID).
 */
export const WORKER_LOG_ENV = 'BATCH_INFER_LOG';

/**
 * The tuning variables above as the worker reads them. A local run's workers inherit the CLI's environment, so
 * `batch-infer run` checks them before it starts anything (`workerTuningIssues`): a mistyped value would otherwise
 * fail every worker of every round, the reason only in their logs.
 */
const THREADS_RULE = 'must be a whole number of threads from 0 to 64 (0 decodes on the main thread)';
const RECORDS_RULE = 'must be a whole number of records above 0';
const CORES_RULE = 'must be a whole number of cores from 1 to 1024';
/** An optional variable: set but empty counts as unset (not as 0, which `Number('')` would give). */
const unlessEmpty = <T extends z.ZodType>(schema: T) =>
  z.preprocess((value) => (value === '' ? undefined : value), schema.optional());
export const workerTuningSchema = z.object({
  [MEMORY_BUDGET_ENV]: unlessEmpty(
    z.coerce.number('must be a number of MiB').positive('must be a number of MiB above 0'),
  ),
  [CHUNK_RECORDS_ENV]: unlessEmpty(z.coerce.number(RECORDS_RULE).int(RECORDS_RULE).positive(RECORDS_RULE)),
  [DECODE_THREADS_ENV]: unlessEmpty(
    z.coerce.number(THREADS_RULE).int(THREADS_RULE).min(0, THREADS_RULE).max(64, THREADS_RULE),
  ),
  [CORES_ENV]: unlessEmpty(
    z.coerce.number(CORES_RULE).int(CORES_RULE).min(1, CORES_RULE).max(1024, CORES_RULE),
  ),
  [CHECKPOINT_CLOCK_ENV]: unlessEmpty(z.url('must be the URL of a module exporting now()')),
  [PARQUET_READER_ENV]: unlessEmpty(z.enum(['duckdb', 'hyparquet'], 'must be duckdb or hyparquet')),
});

/** One line per invalid tuning variable in `env`: `NAME="value": what it must be`; empty when all are valid. */
export function workerTuningIssues(env: Readonly<Record<string, string | undefined>>): string[] {
  const parsed = workerTuningSchema.safeParse(env);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => {
    const name = String(issue.path[0]);
    return `${name}=${JSON.stringify(env[name] ?? '')}: ${issue.message}`;
  });
}
