/**
 * Reconcile: after each Infer round, find the shards of the whole run that have no valid completion marker and
 * either schedule another round for exactly those shards or hand over to Finalize.
 *
 * What each round saw is recorded in `rounds/<r>.reconcile.json` (schema below), because the Batch job's error
 * exists only in the state machine's payload: Finalize reads these records to tell why a shard never completed.
 * When the round's job failed, the BatchJobInspector says which children failed and how (exit code, status reason,
 * log stream); each is mapped from its array index to its shard (round 0: index = shard id; later rounds: the
 * round file's list) and recorded for the shards still missing.
 */
import { z } from 'zod';
import { RunStateError } from '../spec/errors.js';
import { runStateSchema, type RunState } from '../runs/tasks.js';
import { roundSchema, type Round } from '../runs/types.js';
import { failureRecordSchema, readFailureRecords, type FailureRecord } from '../runs/failures.js';
import { getJson, NotFoundError, putJson, type ObjectStore } from '../storage/object-store.js';
import { checkSpendCap, historySpeedForCap, spendCapRecordSchema } from '../cost/spend-cap.js';
import { isRecord, rec, str } from './loose-json.js';
import { LocalJobInspector, type BatchJobInspector, type FailedJob } from './job-inspector.js';
import { errorText, readPlan, reconcileRecordUri, scanMarkers, verifyMarkerOutputs } from './run-files.js';
import { readShardIndex } from './shard-list.js';
import { shardIntegrityProblem } from './validate.js';
import type { RunLayout } from '../runs/layout.js';
import { checkCanary } from './canary.js';
import { stopEarlyIfSure } from './early-stop.js';

/** Longest raw text kept from an unparseable error cause: enough to read, small enough for any record. */
const MAX_RAW_CAUSE = 2_000;
/** Unexpected keys kept in a record; the count is kept in full. */
const MAX_UNEXPECTED = 100;

/** What Infer's error (Step Functions' `{ Error, Cause }` of the failed Batch job) boils down to. */
export const inferErrorSummarySchema = z.object({
  /** Step Functions error name, e.g. `States.TaskFailed`. */
  error: z.string(),
  /** Batch job status and its reason, e.g. `FAILED` / `Array Child Job failed`. */
  status: z.string().optional(),
  statusReason: z.string().optional(),
  jobId: z.string().optional(),
  jobName: z.string().optional(),
  /** Child job counts by status, for array jobs. */
  arrayStatusSummary: z.record(z.string(), z.number()).optional(),
  /** The last attempt's container exit code and reason (e.g. `OutOfMemoryError: Container killed ...`). */
  exitCode: z.number().optional(),
  containerReason: z.string().optional(),
  logStreamName: z.string().optional(),
  /** The cause as text when it is not the JSON a Batch integration sends. */
  cause: z.string().optional(),
});
export type InferErrorSummary = z.infer<typeof inferErrorSummarySchema>;

/** One failed Batch child of a round, mapped to the shard it ran. */
export const shardErrorSchema = z.object({
  shardId: z.number().int().nonnegative(),
  arrayIndex: z.number().int().nonnegative().optional(),
  jobId: z.string().optional(),
  exitCode: z.number().optional(),
  statusReason: z.string().optional(),
  /** The container's reason, e.g. `OutOfMemoryError: Container killed due to memory usage`. */
  reason: z.string().optional(),
  /** CloudWatch Logs stream, or the log file of a local run. */
  logStream: z.string().optional(),
  attempts: z.number().int().nonnegative().optional(),
});
export type ShardError = z.infer<typeof shardErrorSchema>;

/** rounds/<r>.reconcile.json */
export const reconcileRecordSchema = z.object({
  version: z.literal(1),
  runId: z.string(),
  round: z.number().int().nonnegative(),
  reconciledAt: z.string(),
  /** Shards the round ran (the Batch array size). */
  attempted: z.number().int().nonnegative(),
  /** Shards of the whole run with a valid marker after the round. */
  completed: z.number().int().nonnegative(),
  /** Shards of the whole run without a valid marker after the round, ascending. */
  missing: z.array(z.number().int().nonnegative()),
  /** Shards among `missing` whose marker exists but does not count, and why. */
  invalid: z.array(z.object({ shardId: z.number().int().nonnegative(), problem: z.string() })),
  /** Keys under the markers prefix that name no shard of this run (first few) and how many there were. */
  unexpected: z.array(z.string()),
  unexpectedCount: z.number().int().nonnegative(),
  inferError: inferErrorSummarySchema.optional(),
  /** The failed children of the round's job whose shards are still missing, by shard id. */
  shardErrors: z.array(shardErrorSchema).optional(),
  /** Why the failed children could not be inspected (e.g. batch:ListJobs denied), when they could not. */
  inspectError: z.string().optional(),
  /**
   * Missing shards whose worker wrote a deterministic failure record (failures/<shard>.json): not retried, since
   * the same spec, model and data fail the same way. Ascending by shard id.
   */
  deterministicFailures: z.array(failureRecordSchema).optional(),
  /** The spend cap's check of the retry round (`run.maxCost`, src/cost/spend-cap.ts), when the spec sets one. */
  spendCap: spendCapRecordSchema.optional(),
  /** Why no further round was submitted although shards were missing: validation.stopEarly's reason. */
  stoppedEarly: z.string().optional(),
  next: z.enum(['infer', 'finalize']),
  /** The round scheduled for the missing shards, when `next` is `infer`. */
  nextRound: z.number().int().positive().optional(),
});
export type ReconcileRecord = z.infer<typeof reconcileRecordSchema>;

export interface ReconcileDeps {
  readonly store: ObjectStore;
  readonly now?: () => Date;
  /** Asks about a failed round's Batch children; reads the error's cause alone (local runs) by default. */
  readonly inspector?: BatchJobInspector;
  /** A local run: the spend cap prices its retry round as the local machine. @default false */
  readonly local?: boolean;
}

/**
 * Reconciles round `state.round`. `inferError` is what the state machine caught from the Batch job, if it failed;
 * it is recorded and then dropped, so the state stays small and matches `runStateSchema`.
 */
export async function reconcileRun(
  state: RunState & { inferError?: unknown },
  deps: ReconcileDeps,
): Promise<RunState> {
  const { inferError, ...rest } = state;
  const parsed = runStateSchema.safeParse(rest);
  if (!parsed.success) throw new RunStateError(`Reconcile got an invalid run state: ${parsed.error.message}`);
  const current = parsed.data;
  // `Check canary` (run.canary): the state still carries the canary; canary.ts decides whether the run goes on.
  if (current.canary !== undefined) {
    const text = inferError === undefined ? undefined : describeInferError(summarizeInferError(inferError));
    return checkCanary({ ...current, canary: current.canary }, text, deps);
  }

  const { plan, layout } = await readPlan(deps.store, current.runUri, current.runId);
  if (plan.shardCount !== current.shardCount) {
    throw new RunStateError(
      `Run ${current.runId}: the state has ${current.shardCount} shards but the plan has ${plan.shardCount}`,
    );
  }

  const [scan, shards] = await Promise.all([
    scanMarkers(deps.store, layout, current.shardCount),
    readShardIndex(deps.store, layout, current.shardCount),
  ]);
  // A marker whose files are missing or were replaced, or whose counts do not add up, does not make its shard
  // done: it is retried (Finalize applies the same checks, so what Reconcile accepts Finalize accepts).
  await verifyMarkerOutputs(deps.store, layout, scan);
  for (const [id, marker] of scan.markers) {
    const problem = shardIntegrityProblem(shards[id]!, marker);
    if (problem === undefined) continue;
    scan.markers.delete(id);
    scan.problems.set(id, `corrupt marker: ${problem}`);
  }
  const missing: number[] = [];
  for (let id = 0; id < current.shardCount; id++) if (!scan.markers.has(id)) missing.push(id);

  let shardErrors: ShardError[] | undefined;
  let inspectError: string | undefined;
  if (inferError !== undefined && missing.length > 0) {
    try {
      const failed = await (deps.inspector ?? new LocalJobInspector()).failedJobs(inferError);
      shardErrors = await shardErrorsOf(deps.store, layout, current, failed, new Set(missing));
    } catch (err) {
      // The explanation is worth having, not worth failing the run for.
      inspectError = errorText(err);
    }
  }

  // Shards whose worker said a retry cannot help are left out of the next round; when none is left, no round.
  const deterministic = await deterministicFailuresOf(deps.store, current.runUri, missing);
  const retryable = missing.filter((id) => !deterministic.has(id));
  const wouldRetry = retryable.length > 0 && current.round < current.maxRounds;
  const spendCap = wouldRetry
    ? checkSpendCap({
        plan,
        markers: [...scan.markers.values()],
        retry: retryable.map((id) => shards[id]!),
        round: current.round,
        local: deps.local ?? false,
        history: await historySpeedForCap(deps.store, plan, scan.markers),
      })
    : undefined;
  // validation.stopEarly: no further round once the error rate is surely above the bar (early-stop.ts).
  const stoppedEarly =
    wouldRetry && !spendCap?.stopped
      ? await stopEarlyIfSure(
          deps.store,
          plan,
          current.runUri,
          current.round,
          scan.markers.values(),
          shards,
          () => deps.now?.() ?? new Date(),
        )
      : undefined;
  const retry = wouldRetry && !spendCap?.stopped && stoppedEarly === undefined;
  const nextRound = current.round + 1;
  const record: ReconcileRecord = {
    version: 1,
    runId: current.runId,
    round: current.round,
    reconciledAt: (deps.now?.() ?? new Date()).toISOString(),
    attempted: current.pending,
    completed: scan.markers.size,
    missing,
    invalid: [...scan.problems].sort(([a], [b]) => a - b).map(([shardId, problem]) => ({ shardId, problem })),
    unexpected: scan.unexpected.slice(0, MAX_UNEXPECTED),
    unexpectedCount: scan.unexpected.length,
    inferError: inferError === undefined ? undefined : summarizeInferError(inferError),
    ...(shardErrors !== undefined && { shardErrors }),
    ...(inspectError !== undefined && { inspectError }),
    ...(deterministic.size > 0 && { deterministicFailures: [...deterministic.values()] }),
    ...(spendCap && { spendCap }),
    ...(stoppedEarly !== undefined && { stoppedEarly }),
    next: retry ? 'infer' : 'finalize',
    nextRound: retry ? nextRound : undefined,
  };

  // The round file first: if writing the record fails the Lambda is retried and both are rewritten identically.
  if (retry) {
    const roundFile: Round = { round: nextRound, shardIds: retryable };
    await putJson(deps.store, layout.roundUri(nextRound), roundFile);
  }
  await putJson(deps.store, reconcileRecordUri(layout, current.round), record);

  const base: RunState = {
    runId: current.runId,
    runUri: current.runUri,
    shardCount: current.shardCount,
    round: current.round,
    maxRounds: current.maxRounds,
    pending: missing.length,
    compute: current.compute,
    ...(current.scheduledTime !== undefined && { scheduledTime: current.scheduledTime }),
    next: 'finalize',
  };
  return retry ? { ...base, round: nextRound, pending: retryable.length, next: 'infer' } : base;
}

/** The deterministic failure records of the missing shards, ascending by shard id. */
async function deterministicFailuresOf(
  store: ObjectStore,
  runUri: string,
  missing: readonly number[],
): Promise<Map<number, FailureRecord>> {
  const records = await readFailureRecords(store, runUri, new Set(missing));
  const deterministic = new Map<number, FailureRecord>();
  for (const id of missing) {
    const record = records.get(id);
    if (record?.deterministic) deterministic.set(id, record);
  }
  return deterministic;
}

/**
 * Maps failed children to the shards they ran: in round 0 the array index is the shard id; in round r it indexes
 * rounds/<r>.json. A single (non-array) job ran the round's only shard. Children whose shard has a marker after all
 * (the shard completed, then the container failed) are left out.
 */
async function shardErrorsOf(
  store: ObjectStore,
  layout: RunLayout,
  state: RunState,
  failed: readonly FailedJob[],
  missing: ReadonlySet<number>,
): Promise<ShardError[]> {
  let shardIds: readonly number[] | undefined;
  if (state.round > 0) {
    try {
      const parsed = roundSchema.safeParse(await getJson(store, layout.roundUri(state.round)));
      if (parsed.success) shardIds = parsed.data.shardIds;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    if (!shardIds) throw new RunStateError(`${layout.roundUri(state.round)} is missing or corrupt`);
  }
  const shardOf = (index: number | undefined): number | undefined => {
    if (index === undefined) {
      // A single job ran exactly one shard.
      if (state.pending !== 1) return undefined;
      return shardIds ? shardIds[0] : missing.size === 1 ? [...missing][0] : undefined;
    }
    return shardIds ? shardIds[index] : index;
  };
  const errors: ShardError[] = [];
  for (const job of failed) {
    const shardId = shardOf(job.arrayIndex);
    if (shardId === undefined || !missing.has(shardId)) continue;
    errors.push({ shardId, ...job });
  }
  return errors.sort((a, b) => a.shardId - b.shardId);
}

/** One line for a shard's Batch failure: `exit code 137 (OutOfMemoryError: ...); Essential container...; log ...`. */
export function describeShardError(error: ShardError): string {
  const parts: string[] = [];
  if (error.exitCode !== undefined) {
    parts.push(`exit code ${error.exitCode}${error.reason ? ` (${error.reason})` : ''}`);
  } else if (error.reason) parts.push(error.reason);
  if (error.statusReason) parts.push(error.statusReason);
  if (error.attempts !== undefined) parts.push(`${error.attempts} attempt${error.attempts === 1 ? '' : 's'}`);
  if (error.logStream) parts.push(`log ${error.logStream}`);
  if (error.jobId) parts.push(`job ${error.jobId}`);
  return parts.join('; ');
}

/**
 * Boils a caught error down to what helps a person: Step Functions passes `{ Error, Cause }` where Cause is the
 * Batch job description as a JSON string (PascalCase keys from the Step Functions integration; camelCase is also
 * accepted, as the Batch API itself uses it). Anything else is kept as truncated text.
 */
export function summarizeInferError(value: unknown): InferErrorSummary {
  if (typeof value === 'string') return { error: truncate(value) };
  if (!isRecord(value)) return { error: truncate(safeStringify(value)) };
  const error = str(value, 'Error', 'error') ?? 'Error';
  const rawCause = value.Cause ?? value.cause;
  if (rawCause === undefined) return { error };
  let cause: unknown = rawCause;
  if (typeof rawCause === 'string') {
    try {
      cause = JSON.parse(rawCause) as unknown;
    } catch {
      return { error, cause: truncate(rawCause) };
    }
  }
  if (!isRecord(cause)) return { error, cause: truncate(safeStringify(cause)) };

  const summary: InferErrorSummary = { error };
  summary.status = str(cause, 'Status', 'status');
  summary.statusReason = str(cause, 'StatusReason', 'statusReason');
  summary.jobId = str(cause, 'JobId', 'jobId');
  summary.jobName = str(cause, 'JobName', 'jobName');
  const array = rec(cause, 'ArrayProperties', 'arrayProperties');
  const statusSummary = array && rec(array, 'StatusSummary', 'statusSummary');
  if (statusSummary) {
    const counts: Record<string, number> = {};
    for (const [k, v] of Object.entries(statusSummary)) if (typeof v === 'number') counts[k] = v;
    summary.arrayStatusSummary = counts;
  }
  // The last attempt says most about why the job ended; fall back to the job's own container.
  const attempts = cause.Attempts ?? cause.attempts;
  const lastAttempt = Array.isArray(attempts) ? (attempts.at(-1) as unknown) : undefined;
  const container =
    (isRecord(lastAttempt) ? rec(lastAttempt, 'Container', 'container') : undefined) ??
    rec(cause, 'Container', 'container');
  if (container) {
    const exitCode = container.ExitCode ?? container.exitCode;
    if (typeof exitCode === 'number') summary.exitCode = exitCode;
    summary.containerReason = str(container, 'Reason', 'reason');
    summary.logStreamName = str(container, 'LogStreamName', 'logStreamName');
  }
  if (!summary.statusReason && isRecord(lastAttempt)) {
    summary.statusReason = str(lastAttempt, 'StatusReason', 'statusReason');
  }
  // Drop absent keys so the record reads cleanly.
  return Object.fromEntries(Object.entries(summary).filter(([, v]) => v !== undefined)) as InferErrorSummary;
}

/** One line for a person: `States.TaskFailed: FAILED (Array Child Job failed), exit 137 OutOfMemoryError`. */
export function describeInferError(summary: InferErrorSummary): string {
  const parts: string[] = [];
  if (summary.status)
    parts.push(summary.statusReason ? `${summary.status} (${summary.statusReason})` : summary.status);
  else if (summary.statusReason) parts.push(summary.statusReason);
  if (summary.exitCode !== undefined) parts.push(`exit code ${summary.exitCode}`);
  if (summary.containerReason) parts.push(summary.containerReason);
  if (summary.arrayStatusSummary) {
    const counts = Object.entries(summary.arrayStatusSummary)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${n} ${k}`);
    if (counts.length) parts.push(`children: ${counts.join(', ')}`);
  }
  if (summary.jobId) parts.push(`job ${summary.jobId}`);
  if (summary.cause) parts.push(summary.cause);
  return parts.length ? `${summary.error}: ${parts.join('; ')}` : summary.error;
}

function truncate(text: string): string {
  return text.length > MAX_RAW_CAUSE ? `${text.slice(0, MAX_RAW_CAUSE)}… (${text.length} characters)` : text;
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
