/**
 * Worker settings beyond Batch's standard environment (src/runs/tasks.ts WORKER_ENV), and the stop deadline. Kept
 * apart from main.ts, which runs the worker when imported.
 */

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
