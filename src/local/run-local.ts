/**
 * Local mode: executes the state machine that `cdk synth` produces, in the `aws-local-stepfunctions` interpreter.
 * Only the task resources change: the Lambda tasks call the same cores as the Lambda handlers, in-process, and the
 * Batch tasks run the worker entry in child processes (LocalWorkerPool). Storage, registry and catalogue are the
 * local implementations.
 */
import '../runtime/polyfills.js';
import os from 'node:os';
import path from 'node:path';
import {
  ExecutionError,
  StateMachine,
  type RunOptions,
  type StateMachineDefinition,
} from 'aws-local-stepfunctions';
import { INFER_STATES, planRequestFromEvent, WORKFLOW_STATES } from '../../lib/workflow-contract.js';
import { renderWorkflowDefinition } from '../../lib/workflow-definition.js';
import type { Catalog } from '../catalog/catalog.js';
import { planRun } from '../planning/plan-run.js';
import { preflightResolved } from '../preflight/index.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import { finalizeRun } from '../results/finalize.js';
import { reconcileRun } from '../results/reconcile.js';
import { readShardIndex } from '../results/shard-list.js';
import { newRunId, RUN_ID_PATTERN, runLayout } from '../runs/layout.js';
import { runResultSchema, runStateSchema, WORKER_ENV, type RunResult } from '../runs/tasks.js';
import { planSchema } from '../runs/types.js';
import type { Logger } from '../runtime/log.js';
import type { JobSpec } from '../spec/schema.js';
import { getJson, type ObjectStore } from '../storage/object-store.js';
import { silentProgress, type ProgressSink } from './progress.js';
import { LocalWorkerPool, type JobRequest } from './worker-pool.js';

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
type TaskHandlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;

export interface LocalRunDeps {
  readonly store: ObjectStore;
  readonly registry: ModelRegistry;
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly progress?: ProgressSink;
}

export interface LocalRunOptions {
  /** Execution name; generated (time-sortable) when absent. */
  readonly runId?: string;
  /** Overrides `input.uri` for this run. */
  readonly inputUri?: string;
  /** Worker processes at once. @default the number of cores */
  readonly workers?: number;
  /** Where worker logs go: `<stateDir>/logs/<runId>/`. */
  readonly stateDir: string;
  /** Passed to workers so `s3://` URIs reach an S3-compatible endpoint. */
  readonly s3Endpoint?: string;
  /** Execution providers for workers, in order. @default cpu only: a laptop run must not try CUDA */
  readonly executionProviders?: readonly ('cuda' | 'cpu')[];
  /**
   * The folder of the job spec file (a URI ending in `/`): where model companion files (processor, labels,
   * tokenizer) are looked up when they are neither in the model archive nor next to the artifact.
   * @default none: companion files must sit with the model
   */
  readonly specFolderUri?: string;
}

export interface LocalRunOutcome {
  readonly runId: string;
  readonly status: 'SUCCEEDED' | 'FAILED';
  /** Fail state error (PlanFailed, ValidationFailed, ShardsFailed) or the interpreter's error. */
  readonly error?: string;
  readonly cause?: string;
  /** Finalize's result; absent when the run failed before Finalize. */
  readonly result?: RunResult;
  readonly wallMs: number;
  readonly logDir: string;
}

export async function runLocal(
  spec: JobSpec,
  deps: LocalRunDeps,
  options: LocalRunOptions,
): Promise<LocalRunOutcome> {
  const started = performance.now();
  const runId = options.runId ?? newRunId();
  if (!RUN_ID_PATTERN.test(runId)) {
    throw new Error(
      `run id "${runId}" must be 1-80 letters, digits, "-" or "_" (a Step Functions execution name)`,
    );
  }
  const progress = deps.progress ?? silentProgress;
  const log = deps.log.child({ runId });
  const logDir = path.join(options.stateDir, 'logs', runId);
  const workers = Math.max(1, options.workers ?? os.availableParallelism());
  let finalizeResult: RunResult | undefined;

  const pool = new LocalWorkerPool({
    concurrency: workers,
    logDir,
    environment: {
      // Share the cores between the worker processes instead of letting each one spin up a thread per core.
      [WORKER_ENV.threads]: String(Math.max(1, Math.floor(os.availableParallelism() / workers))),
      [WORKER_ENV.executionProviders]: (options.executionProviders ?? ['cpu']).join(','),
      ...(options.s3Endpoint ? { [WORKER_ENV.s3Endpoint]: options.s3Endpoint } : {}),
    },
    onMessage: (message) => {
      if (message.type === 'done') progress.shardDone(message.shardId, message.records);
      else progress.shardProgress(message.shardId, message.records);
    },
    onAttemptEnd: ({ index, attempt, code, signal }) => {
      if (code !== 0) log.warn('worker attempt failed', { index, attempt, code, signal });
    },
  });

  /** A LambdaInvoke task: the payload goes in, `{ Payload }` comes out, as the lambda:invoke integration does. */
  const lambda =
    (fn: (payload: unknown) => Promise<unknown>) =>
    async (input: unknown): Promise<unknown> => {
      const payload = (input as { Payload?: unknown } | null)?.Payload;
      return { Payload: await fn(payload), StatusCode: 200, ExecutedVersion: '$LATEST' };
    };

  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {
    [WORKFLOW_STATES.plan]: lambda(async (payload) => {
      progress.stage('planning');
      const state = await planRun(planRequestFromEvent(payload), {
        store: deps.store,
        registry: deps.registry,
        preflight: preflightResolved,
        ...(options.specFolderUri !== undefined && { specFolderUri: options.specFolderUri }),
      });
      await reportPlan(deps.store, state.runUri, progress);
      log.info('planned', { shards: state.shardCount, runUri: state.runUri });
      return state;
    }),
    [WORKFLOW_STATES.reconcile]: lambda(async (payload) => {
      const state = await reconcileRun(parseState(payload), { store: deps.store });
      if (state.next === 'infer') progress.roundStarted(state.round, state.pending);
      return state;
    }),
    [WORKFLOW_STATES.finalize]: lambda(async (payload) => {
      progress.stage('finalizing');
      finalizeResult = await finalizeRun(runStateSchema.parse(payload), {
        store: deps.store,
        catalog: deps.catalog,
      });
      return finalizeResult;
    }),
  };
  for (const name of INFER_STATES) {
    handlers[name] = async (input) => {
      const request = toJobRequest(input);
      const result = await pool.runJob(request);
      if (result.failed.length > 0) {
        // The shape of a failed `batch:submitJob.sync` task: States.TaskFailed with the job description as cause.
        const err = new Error(
          JSON.stringify({
            JobName: request.jobName,
            Status: 'FAILED',
            StatusReason:
              request.arraySize === undefined ? result.failed[0]!.statusReason : 'Array Child Job failed',
            ArrayProperties: request.arraySize
              ? { Size: request.arraySize, StatusSummary: { FAILED: result.failed.length } }
              : undefined,
            FailedChildren: result.failed.map((f) => ({
              index: f.index,
              attempts: f.attempts,
              exitCode: f.exitCode,
              statusReason: f.statusReason,
              logFile: f.logFile,
            })),
          }),
        );
        err.name = 'States.TaskFailed';
        throw err;
      }
      return { JobName: request.jobName, Status: 'SUCCEEDED' };
    };
  }

  const machine = new StateMachine(localWorkflowDefinition() as unknown as StateMachineDefinition, {
    validationOptions: { checkArn: false },
  });
  // The spec is plain data (parsed YAML with defaults applied), so it is valid JSON as the interpreter requires.
  const executionInput = {
    spec: spec as unknown as Record<string, JsonValue>,
    ...(options.inputUri ? { inputUri: options.inputUri } : {}),
  };
  const execution = machine.run(executionInput, {
    overrides: { taskResourceLocalHandlers: handlers as TaskHandlers },
    context: { Execution: { Name: runId, Input: executionInput, StartTime: new Date().toISOString() } },
  });

  const onSignal = (): void => {
    pool.killAll('SIGTERM');
    execution.abort();
  };
  process.once('SIGINT', onSignal);
  try {
    const output = runResultSchema.parse(await execution.result);
    return { runId, status: 'SUCCEEDED', result: output, wallMs: performance.now() - started, logDir };
  } catch (err) {
    const { error, cause } = describeFailure(err);
    return {
      runId,
      status: 'FAILED',
      error,
      cause,
      ...(finalizeResult ? { result: finalizeResult } : {}),
      wallMs: performance.now() - started,
      logDir,
    };
  } finally {
    process.off('SIGINT', onSignal);
    progress.close();
  }
}

/** The definition a local run executes: the synthesized one, with AWS's task timeout default made explicit. */
export function localWorkflowDefinition(): Record<string, unknown> {
  return withAwsTaskTimeouts(renderWorkflowDefinition());
}

/**
 * The one adaptation of the definition for the interpreter. A Task without `TimeoutSeconds` runs until the execution
 * times out in AWS (its default is 99999999 s), but the interpreter applies the States Language default of 60 s,
 * which would cut every Batch round short. Such tasks get the execution's own timeout, AWS's effective bound.
 */
export function withAwsTaskTimeouts(definition: Record<string, unknown>): Record<string, unknown> {
  const executionTimeout =
    typeof definition.TimeoutSeconds === 'number' ? definition.TimeoutSeconds : 99_999_999;
  const states = definition.States as Record<string, Record<string, unknown>>;
  const adapted: Record<string, Record<string, unknown>> = {};
  for (const [name, state] of Object.entries(states)) {
    const untimed =
      state.Type === 'Task' && state.TimeoutSeconds === undefined && state.TimeoutSecondsPath === undefined;
    adapted[name] = untimed ? { ...state, TimeoutSeconds: executionTimeout } : state;
  }
  return { ...definition, States: adapted };
}

function parseState(payload: unknown) {
  const inferError = (payload as { inferError?: unknown } | null)?.inferError;
  return { ...runStateSchema.parse(payload), ...(inferError === undefined ? {} : { inferError }) };
}

/** The Batch task's parameters (after the state's Parameters were evaluated) -> a local job. */
function toJobRequest(input: unknown): JobRequest {
  const params = input as {
    JobName?: unknown;
    ArrayProperties?: { Size?: unknown };
    ContainerOverrides?: { Environment?: { Name?: unknown; Value?: unknown }[] };
  };
  const environment: Record<string, string> = {};
  for (const kv of params.ContainerOverrides?.Environment ?? []) {
    if (typeof kv.Name === 'string' && typeof kv.Value === 'string') environment[kv.Name] = kv.Value;
  }
  const size = params.ArrayProperties?.Size;
  return {
    jobName: typeof params.JobName === 'string' ? params.JobName : 'batch-infer',
    ...(typeof size === 'number' ? { arraySize: size } : {}),
    environment,
  };
}

async function reportPlan(store: ObjectStore, runUri: string, progress: ProgressSink): Promise<void> {
  const plan = planSchema.parse(await getJson(store, `${runUri}plan.json`));
  const layout = runLayout(plan.spec.output.uri, plan.runId, plan.runDate);
  let records = 0;
  let exact = true;
  for (const shard of await readShardIndex(store, layout, plan.shardCount)) {
    records += shard.records;
    exact &&= shard.recordsExact;
  }
  progress.planned({ shards: plan.shardCount, records, recordsExact: exact });
}

function describeFailure(err: unknown): { error: string; cause: string } {
  const inner = err instanceof ExecutionError ? (err.cause as Error | undefined) : err;
  // A Fail state surfaces as an error named after the state's Error, with its Cause as the message.
  if (inner instanceof Error) return { error: inner.name, cause: inner.message };
  return { error: 'Error', cause: String(inner) };
}
