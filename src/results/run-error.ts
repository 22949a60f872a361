/**
 * The first failure's reason of a failed run (issue 10, ADR 0009): what Finalize puts in `manifest.error`, the run
 * result, the first line of the run's message (the Fail state's cause, so the run-finished event and the alarm
 * notification carry it), the runs table and `batch-infer runs`.
 *
 * "no completion marker" never stands alone: a failed shard without a failure record is explained by what the
 * reconcile records knew (the round's Batch error, the failed child's exit code and log), and without those by where
 * to look.
 */
import type { FailureRecord, RunError } from '../runs/failures.js';
import { firstRunError } from '../runs/failures.js';
import type { ManifestFailedShard } from './manifest.js';

/** What a failed run is explained from. */
export interface RunErrorSources {
  /** Whether validation passed: a passed run has no error. */
  readonly passed: boolean;
  /** The validation's failure reason and its message (failing checks, one per line). */
  readonly reason?: string;
  readonly message: string;
  /** Failure records of shards without an accepted marker (src/runs/failures.ts). */
  readonly failures: ReadonlyMap<number, FailureRecord>;
  /** The failed shards, explained from the reconcile records (finalize.ts `explainFailures`). */
  readonly failedShards: readonly ManifestFailedShard[];
  /** A run stopped before its shards ran (canary, early stop): its reason wins over everything else. */
  readonly stopped?: RunError;
}

/** Code of a shard that failed without leaving a failure record (killed, out of memory, lost host). */
export const SHARD_FAILED_CODE = 'ShardFailed';

/**
 * The run's first error: the stop reason, else the lowest failed shard's failure record, else the lowest failed
 * shard as the reconcile records explain it, else the first failing check. Undefined when the run passed.
 */
export function runErrorOf(sources: RunErrorSources): RunError | undefined {
  if (sources.stopped) return sources.stopped;
  if (sources.passed) return undefined;
  const recorded = firstRunError(sources.failures);
  if (recorded) return recorded;
  const [shard] = [...sources.failedShards].sort((a, b) => a.shardId - b.shardId);
  if (shard) {
    return {
      code: SHARD_FAILED_CODE,
      message: shard.lastError
        ? `${shard.problem}: ${shard.lastError}`
        : `${shard.problem}: the worker left no failure record and no round recorded why (it may have been ` +
          'killed before it could write one); see its logs with batch-infer logs <runId>',
      shard: shard.shardId,
      ...(shard.logStream !== undefined && { log: shard.logStream }),
    };
  }
  const firstCheck = sources.message.split('\n')[0] ?? sources.message;
  return { code: sources.reason ?? 'ValidationFailed', message: firstCheck };
}

/** One line for a person: `ModelError in shard 3: <message> (log <where>)`. */
export function describeRunError(error: RunError): string {
  const where = error.shard !== undefined ? ` in shard ${error.shard}` : '';
  const log = error.log !== undefined ? ` (log ${error.log})` : '';
  return `${error.code}${where}: ${error.message}${log}`;
}

/**
 * The run's message with its first error as the first line (`first error: ...`), unless the first line already says
 * it (a failing check's message, a failure record quoted in the failed-shards line). The message is the Fail state's
 * cause: the run-finished event and the alarm notification show it.
 */
export function withFirstError(message: string, error: RunError | undefined): string {
  if (!error) return message;
  const firstLine = message.split('\n')[0] ?? '';
  if (firstLine.includes(error.message)) return message;
  return `first error: ${describeRunError(error)}\n${message}`;
}
