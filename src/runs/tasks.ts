/**
 * The payloads that travel between the states of the workflow. Kept small (keys and counts): everything large
 * lives in storage, because a Step Functions state is limited to 256 KiB.
 *
 *   Plan(PlanRequest) -> RunState -> Infer(round) -> Reconcile(RunState) -> RunState ... -> Finalize -> RunResult
 */
import { z } from 'zod';
import { runErrorSchema } from './failures.js';

/** Execution input: what a trigger, the CLI or a user sends to start a run. */
export const planRequestSchema = z.strictObject({
  /** Filled by the state machine from `$$.Execution.Name`. */
  runId: z.string(),
  /** The job spec, inline. */
  spec: z.record(z.string(), z.unknown()).optional(),
  /** Or where to read it from (a pipeline's spec stored at deploy time). */
  specUri: z.string().optional(),
  /** Overrides `spec.input.uri`: an S3 trigger's object, a schedule's dated prefix. */
  inputUri: z.string().optional(),
  /**
   * When the schedule that started the run was due (EventBridge Scheduler's `<aws.scheduler.scheduled-time>`), ISO
   * 8601. Absent for runs not started by a schedule. Carried in RunState to Finalize, which records it.
   */
  scheduledTime: z.iso.datetime({ offset: true }).optional(),
});
export type PlanRequest = z.infer<typeof planRequestSchema>;

/** The state carried through the run after Plan. */
export const runStateSchema = z.object({
  runId: z.string(),
  /** `<output.uri>/_runs/<runId>/`: workers and later states find everything from here. */
  runUri: z.string(),
  shardCount: z.number().int().nonnegative(),
  /** The round about to run (Infer) or just run (Reconcile input). Round 0 is every shard. */
  round: z.number().int().nonnegative(),
  maxRounds: z.number().int().nonnegative(),
  /** Shards to run in `round`: the array size of the Batch job. */
  pending: z.number().int().nonnegative(),
  /** Which queue the run's jobs go to. */
  compute: z.enum(['gpu', 'cpu']),
  /** Set by Reconcile: run another round, or go to Finalize. */
  next: z.enum(['infer', 'finalize']),
  /** The run's PlanRequest.scheduledTime, for the manifest. */
  scheduledTime: z.iso.datetime({ offset: true }).optional(),
  /**
   * `run.canary.records`, set by Plan and dropped by the canary check: while present, the state machine runs the
   * canary (shard 0's first records as a job of one) before any round, and Reconcile checks it (issue 10).
   */
  canary: z.number().int().positive().optional(),
});
export type RunState = z.infer<typeof runStateSchema>;

/** What a run carries from its request to Finalize, beside what the stages compute. */
export type RunContext = Pick<PlanRequest, 'scheduledTime'>;

/**
 * `state` with the run context of `from` (a PlanRequest, or the RunState a stage received): for stages that build
 * a fresh RunState, so that the context reaches Finalize whatever they copy.
 */
export function withRunContext(state: RunState, from: RunContext): RunState {
  return from.scheduledTime === undefined ? state : { ...state, scheduledTime: from.scheduledTime };
}

/** What Finalize returns; the execution's output. */
export const runResultSchema = z.object({
  runId: z.string(),
  status: z.enum(['SUCCEEDED', 'FAILED']),
  /** Fail-state error name when FAILED. */
  reason: z.enum(['ValidationFailed', 'ShardsFailed']).optional(),
  message: z.string(),
  /** The first failed shard's reason (its failure record), when the run failed and a worker left one. */
  error: runErrorSchema.optional(),
  records: z.number().int().nonnegative(),
  predictions: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  failedShards: z.number().int().nonnegative(),
  outputUri: z.string(),
  manifestUri: z.string(),
});
export type RunResult = z.infer<typeof runResultSchema>;

/**
 * Environment of a worker container. Batch sets the AWS_BATCH_* variables; the state machine sets the rest through
 * container overrides; the local orchestrator sets all of them the same way.
 */
export const WORKER_ENV = {
  runUri: 'BATCH_INFER_RUN_URI',
  round: 'BATCH_INFER_ROUND',
  arrayIndex: 'AWS_BATCH_JOB_ARRAY_INDEX',
  attempt: 'AWS_BATCH_JOB_ATTEMPT',
  s3Endpoint: 'BATCH_INFER_S3_ENDPOINT',
  executionProviders: 'BATCH_INFER_EXECUTION_PROVIDERS',
  threads: 'BATCH_INFER_THREADS',
  /** Set on the canary job only: run this many records of shard 0 as the run's canary (src/worker/canary.ts). */
  canaryRecords: 'BATCH_INFER_CANARY_RECORDS',
} as const;
