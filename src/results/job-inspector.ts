/**
 * Why a round's Batch job failed, per array child: exit code, status reason, the container's reason and where its
 * logs are. Reconcile asks after every failed round, so the manifest can say of a shard that never completed
 * "exit code 137, OutOfMemoryError: Container killed due to memory usage, log stream batch-infer/default/abc".
 *
 * What Step Functions catches from a failed `batch:submitJob.sync` task is `{ Error: "States.TaskFailed", Cause }`,
 * where Cause is the job's description as JSON text (the DescribeJobs shape with PascalCase keys: JobId, JobName,
 * Status, StatusReason, Attempts[].Container.{ExitCode, Reason, LogStreamName}, ArrayProperties.StatusSummary).
 * - A single (non-array) job: the description says it all.
 * - An array job: the parent's description only counts its children. `AwsBatchJobInspector`
 *   (./aws-job-inspector.ts, apart so that local runs do not load the Batch client) lists the failed children
 *   (ListJobs arrayJobId + jobStatus FAILED, paginated) and describes them (DescribeJobs, 100 at a time) for their
 *   log streams.
 * - Locally, the worker pool puts the failed children in the cause itself (`FailedChildren`: index, attempts,
 *   exitCode, statusReason, logFile); `LocalJobInspector` reads them from there.
 */
import { isRecord, num, rec, str } from './loose-json.js';

export interface FailedJob {
  /** The child's array index; undefined for a single (non-array) job. */
  readonly arrayIndex?: number;
  readonly jobId?: string;
  readonly exitCode?: number;
  /** Batch's status reason, e.g. `Essential container in task exited`. */
  readonly statusReason?: string;
  /** The container's reason, e.g. `OutOfMemoryError: Container killed due to memory usage`. */
  readonly reason?: string;
  /** CloudWatch Logs stream (AWS) or log file (local runs) of the last attempt. */
  readonly logStream?: string;
  readonly attempts?: number;
}

export interface BatchJobInspector {
  /**
   * The failed jobs behind a caught Infer error (`{ Error, Cause }`), in array-index order. An error it cannot read
   * gives what could be found (possibly nothing); a failed API call throws, and Reconcile records that and goes on.
   */
  failedJobs(inferError: unknown): Promise<FailedJob[]>;
}

/** Children described at most per failed round: beyond this, the summaries (no log stream) are kept. */
export const MAX_DESCRIBED_CHILDREN = 1_000;

/** Reads the failed jobs from the cause alone: local runs (FailedChildren) and single AWS jobs. */
export class LocalJobInspector implements BatchJobInspector {
  async failedJobs(inferError: unknown): Promise<FailedJob[]> {
    const cause = causeOf(inferError);
    if (!cause) return [];
    const children = cause.FailedChildren ?? cause.failedChildren;
    if (Array.isArray(children)) {
      return sortByIndex(
        children.filter(isRecord).map((c) =>
          compact({
            arrayIndex: num(c, 'index', 'Index'),
            exitCode: num(c, 'exitCode', 'ExitCode'),
            statusReason: str(c, 'statusReason', 'StatusReason'),
            logStream: str(c, 'logFile', 'logStreamName', 'LogStreamName'),
            attempts: num(c, 'attempts', 'Attempts'),
          }),
        ),
      );
    }
    return isArrayParent(cause) ? [] : [fromDescription(cause)];
  }
}

/** A single job's description as Step Functions passes it (PascalCase; camelCase accepted too). */
function fromDescription(cause: Record<string, unknown>): FailedJob {
  const attempts = cause.Attempts ?? cause.attempts;
  const last = Array.isArray(attempts) ? (attempts.at(-1) as unknown) : undefined;
  const container =
    (isRecord(last) ? rec(last, 'Container', 'container') : undefined) ??
    rec(cause, 'Container', 'container');
  return compact({
    jobId: str(cause, 'JobId', 'jobId'),
    exitCode: container ? num(container, 'ExitCode', 'exitCode') : undefined,
    statusReason:
      str(cause, 'StatusReason', 'statusReason') ??
      (isRecord(last) ? str(last, 'StatusReason', 'statusReason') : undefined),
    reason: container ? str(container, 'Reason', 'reason') : undefined,
    logStream: container ? str(container, 'LogStreamName', 'logStreamName') : undefined,
    attempts: Array.isArray(attempts) ? attempts.length : undefined,
  });
}

/** The caught error's Cause, parsed; undefined when it is not a job description. */
export function causeOf(inferError: unknown): Record<string, unknown> | undefined {
  if (!isRecord(inferError)) return undefined;
  let cause = inferError.Cause ?? inferError.cause;
  if (typeof cause === 'string') {
    try {
      cause = JSON.parse(cause) as unknown;
    } catch {
      return undefined;
    }
  }
  return isRecord(cause) ? cause : undefined;
}

export function isArrayParent(cause: Record<string, unknown>): boolean {
  const array = rec(cause, 'ArrayProperties', 'arrayProperties');
  // A child has an Index; the parent has a Size and a StatusSummary.
  return array !== undefined && num(array, 'Index', 'index') === undefined;
}

export function sortByIndex(jobs: FailedJob[]): FailedJob[] {
  return jobs.sort((a, b) => (a.arrayIndex ?? -1) - (b.arrayIndex ?? -1));
}

export function compact(job: { [K in keyof FailedJob]: FailedJob[K] | undefined }): FailedJob {
  return Object.fromEntries(Object.entries(job).filter(([, v]) => v !== undefined && v !== ''));
}
