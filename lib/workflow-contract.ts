/**
 * What the state machine and the code around it (Lambda handlers, the local orchestrator) agree on: state names and
 * the Plan task's payload. Deliberately free of aws-cdk-lib imports, so the handlers' bundles and the local CLI can
 * import it without loading the CDK.
 */
import { z } from 'zod';
import { planRequestSchema } from '../src/runs/tasks.js';
import type { PlanRequest } from '../src/runs/tasks.js';

/**
 * State names of the workflow. The local orchestrator attaches its task handlers by these names, so they are part
 * of the contract: renaming one is a breaking change for `aws-local-stepfunctions` overrides.
 */
export const WORKFLOW_STATES = {
  plan: 'Plan',
  planFailed: 'PlanFailed',
  routeShards: 'Route shards',
  /** One pending shard: a single (non-array) Batch job, because Batch array jobs need at least 2 children. */
  inferShard: 'Infer shard',
  /** Two or more pending shards: one Batch array job of `pending` children. */
  inferShards: 'Infer shards',
  /** Like `inferShard` on the CPU queue; present only when a CPU queue distinct from the GPU queue is configured. */
  inferShardOnCpu: 'Infer shard on CPU',
  /** Like `inferShards` on the CPU queue; present only when a CPU queue distinct from the GPU queue is configured. */
  inferShardsOnCpu: 'Infer shards on CPU',
  /**
   * Retry rounds: like `routeShards`, to the On-Demand states. Present only when On-Demand queues are configured: a
   * round after the first runs on capacity that arrives, whatever Spot has.
   */
  routeRetryShards: 'Route retry shards',
  /** Like `inferShard` on the GPU On-Demand queue (retry rounds). */
  inferShardOnDemand: 'Infer shard on demand',
  /** Like `inferShards` on the GPU On-Demand queue (retry rounds). */
  inferShardsOnDemand: 'Infer shards on demand',
  /** Like `inferShardOnCpu` on the CPU On-Demand queue (retry rounds). */
  inferShardOnCpuOnDemand: 'Infer shard on CPU on demand',
  /** Like `inferShardsOnCpu` on the CPU On-Demand queue (retry rounds). */
  inferShardsOnCpuOnDemand: 'Infer shards on CPU on demand',
  reconcile: 'Reconcile',
  retryRound: 'Retry round?',
  /** `run.canary`: whether Plan asked for a canary (`$.canary` present) before the first round. */
  canary: 'Canary?',
  /** The canary: a single Batch job running shard 0's first `canary` records (WORKER_ENV.canaryRecords). */
  inferCanary: 'Infer canary',
  /** Like `inferCanary` on the CPU queue; present only with a CPU queue distinct from the GPU queue. */
  inferCanaryOnCpu: 'Infer canary on CPU',
  /** The Reconcile function, given the state with `canary`: passes the run on, or stops it with the reason. */
  checkCanary: 'Check canary',
  canaryPassed: 'Canary passed?',
  finalize: 'Finalize',
  passed: 'Passed?',
  succeeded: 'Succeeded',
  failed: 'Failed',
} as const;

export type WorkflowStateName = (typeof WORKFLOW_STATES)[keyof typeof WORKFLOW_STATES];

/** Every Batch task state: a local orchestrator attaches the same worker-running handler to each of them. */
export const INFER_STATES: readonly WorkflowStateName[] = [
  WORKFLOW_STATES.inferShard,
  WORKFLOW_STATES.inferShards,
  WORKFLOW_STATES.inferShardOnCpu,
  WORKFLOW_STATES.inferShardsOnCpu,
  WORKFLOW_STATES.inferShardOnDemand,
  WORKFLOW_STATES.inferShardsOnDemand,
  WORKFLOW_STATES.inferShardOnCpuOnDemand,
  WORKFLOW_STATES.inferShardsOnCpuOnDemand,
];

/** The canary's Batch task states: the local orchestrator runs them with the same worker pool. */
export const CANARY_INFER_STATES: readonly WorkflowStateName[] = [
  WORKFLOW_STATES.inferCanary,
  WORKFLOW_STATES.inferCanaryOnCpu,
];

/** The Batch task states of retry rounds, on On-Demand queues (see `routeRetryShards`). */
export const ON_DEMAND_INFER_STATES: readonly WorkflowStateName[] = [
  WORKFLOW_STATES.inferShardOnDemand,
  WORKFLOW_STATES.inferShardsOnDemand,
  WORKFLOW_STATES.inferShardOnCpuOnDemand,
  WORKFLOW_STATES.inferShardsOnCpuOnDemand,
];

/** Environment variables the stack sets on the task functions (beyond the NodeFunction defaults). */
export const FUNCTION_ENV = {
  /** Finalize: the Glue database where runs are published. */
  glueDatabase: 'GLUE_DATABASE_NAME',
  /** Finalize: `s3://<bucket>/<prefix>/` under which each run's audit record is written (the runs tables). */
  auditRunsUri: 'AUDIT_RUNS_URI',
  /** Volume trigger: the bucket holding the volume counters. */
  volumeStateBucket: 'VOLUME_STATE_BUCKET',
  /** Volume trigger: the key prefix of the counters, one object per pipeline. */
  volumeStatePrefix: 'VOLUME_STATE_PREFIX',
  /** Batching S3 triggers: the bucket of the window state and of the list manifests runs read. */
  triggerStateBucket: 'TRIGGER_STATE_BUCKET',
  /** Batching S3 triggers: the key prefix of the upload windows' state (objects, claims, timers). */
  windowStatePrefix: 'WINDOW_STATE_PREFIX',
  /** Batching triggers: the key prefix of the list manifests the batched runs read (Plan may read them). */
  triggerManifestPrefix: 'TRIGGER_MANIFEST_PREFIX',
  /** Queue depth: a JSON array of the job queue names to measure. */
  jobQueues: 'JOB_QUEUES',
} as const;

/**
 * Error names (the `name` of the typed errors in src/spec/errors.ts) that no Retry may match: the same input fails
 * the same way, so retrying only delays the failure.
 */
export const NON_RETRYABLE_ERRORS = [
  'SpecError',
  'InputError',
  'ModelError',
  'RunStateError',
  'ValidationFailed',
  'PreflightError',
] as const;

/**
 * The Plan task's payload: `{ "request.$": "$", "runId.$": "$$.Execution.Name" }`.
 *
 * The execution input is passed whole under `request` instead of field by field, because `spec`, `specUri` and
 * `inputUri` are each optional and a JSONPath to a missing field fails the state (`States.Runtime`). The run id is
 * always the execution name, whatever the input says.
 */
export const planEventSchema = z.strictObject({
  runId: z.string().min(1),
  request: z.record(z.string(), z.unknown()),
});
export type PlanEvent = z.infer<typeof planEventSchema>;

/** The field names of the Plan payload, used by the construct that builds it. */
export const PLAN_EVENT_KEYS = { request: 'request', runId: 'runId' } as const satisfies Record<
  string,
  keyof PlanEvent
>;

/**
 * Builds the PlanRequest from a Plan payload: the execution input's fields with `runId` forced to the execution
 * name. Throws a ZodError when the payload or the execution input does not match its schema.
 */
export function planRequestFromEvent(event: unknown): PlanRequest {
  const { runId, request } = planEventSchema.parse(event);
  return planRequestSchema.parse({ ...request, runId });
}
