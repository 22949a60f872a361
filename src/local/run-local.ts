/**
 * Local mode: executes the state machine that `cdk synth` produces, in the `aws-local-stepfunctions` interpreter.
 * Only the task resources change: the Lambda tasks call the same cores as the Lambda handlers, in-process, and the
 * Batch tasks run the worker entry in child processes (LocalWorkerPool). Storage, registry and catalogue are the
 * local implementations.
 */
import '../runtime/polyfills.js';
import os from 'node:os';
import path from 'node:path';
import type * as Interpreter from 'aws-local-stepfunctions';
import type { RunOptions, StateMachineDefinition } from 'aws-local-stepfunctions';
import {
  CANARY_INFER_STATES,
  INFER_STATES,
  planRequestFromEvent,
  WORKFLOW_STATES,
} from '../../lib/workflow-contract.js';
import type { Catalog } from '../catalog/catalog.js';
import { planRun } from '../planning/plan-run.js';
import { preflightResolved } from '../preflight/index.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import { finalizeRun } from '../results/finalize.js';
import { parseManifest } from '../results/manifest.js';
import { reconcileRun } from '../results/reconcile.js';
import { readShardIndex } from '../results/shard-list.js';
import { newRunId, RUN_ID_PATTERN, RUN_ID_RULE, runLayout } from '../runs/layout.js';
import { runResultSchema, runStateSchema, WORKER_ENV, type RunResult } from '../runs/tasks.js';
import { planSchema } from '../runs/types.js';
import type { Logger } from '../runtime/log.js';
import type { JobSpec } from '../spec/schema.js';
import { getJson, type ObjectStore } from '../storage/object-store.js';
import { preloadChartRenderer } from '../report/charts.js';
import { silentProgress, type ProgressSink } from './progress.js';
import { lockRun } from './run-lock.js';
import { bundleRunsProcessor, bundleWorker, type BundledWorker } from './worker-bundle.js';
import { LocalWorkerPool, type JobRequest, type WorkerEntry } from './worker-pool.js';
import { columnarPlanOf } from '../worker/columnar-plan.js';
import { CORES_ENV } from '../worker/env.js';

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
  /** Worker processes at once. @default defaultLocalWorkers(spec): one per core, one per two on the CSV columnar path */
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
  /** Stops the run like Ctrl-C does: workers get SIGTERM (they checkpoint) and the execution is aborted. */
  readonly signal?: AbortSignal;
  /**
   * Run the workers from a bundle of the current sources built for this run (worker-bundle.ts) rather than through
   * tsx in every worker process; no effect when the code is already JavaScript. @default false
   */
  readonly bundleWorker?: boolean;
  /** Called once the run is planned, before its first Batch round (the CLI prints the cost estimate here). */
  readonly onPlanned?: (runUri: string) => Promise<void>;
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
  /** Each Batch round the run submitted, in order: which task state ran it (so which queue it went to). */
  readonly rounds: readonly LocalRound[];
}

/** One Batch round of a local run. */
export interface LocalRound {
  readonly round: number;
  /** The task state, e.g. `Infer shards` (first round, Spot queue) or `Infer shards on demand` (retry rounds). */
  readonly state: string;
  /** Children of the job (1 for a single job). */
  readonly shards: number;
}

export async function runLocal(
  spec: JobSpec,
  deps: LocalRunDeps,
  options: LocalRunOptions,
): Promise<LocalRunOutcome> {
  const started = performance.now();
  const runId = options.runId ?? newRunId();
  if (!RUN_ID_PATTERN.test(runId)) {
    throw new Error(`run id "${runId}" ${RUN_ID_RULE}`);
  }
  // Before anything is read or written: a second run of the same id fails here, naming the first.
  const lock = await lockRun(options.stateDir, runId);
  try {
    const bundled =
      options.bundleWorker && bundleRunsProcessor(spec.model.processor?.module)
        ? await bundleWorkerOrSource(deps)
        : undefined;
    return await runLocked(spec, deps, options, runId, started, bundled?.entry);
  } finally {
    await lock.release();
  }
}

/**
 * Worker processes a local run starts when `--workers` is not given. A shard on the CSV columnar path keeps about two
 * cores busy by itself (its main thread; decode threads that also count the input summaries: 1.78x on 2 cores vs 1,
 * docs/benchmarks.md), so two such processes per two cores only compete for them: the demo on 2 cores took 9.9-11.3 s
 * and 17 s of CPU with one worker, 10.2-11.7 s and 20.5 s with two (docs/adr/0019, addendum of 2026-12-07 morning).
 * Other runs (records, Parquet read on the main thread, inference-bound models) use one core per process: one each.
 */
export function defaultLocalWorkers(
  spec: Pick<JobSpec, 'input' | 'model' | 'output'>,
  cores: number = os.availableParallelism(),
): number {
  const csvColumnar =
    spec.input.format === 'csv' &&
    columnarPlanOf(spec, undefined, spec.model.challenger !== undefined) !== undefined;
  return Math.max(1, csvColumnar ? Math.floor(cores / 2) : cores);
}

/** The bundled worker, or undefined (workers run from source) when it cannot be built: slower, not wrong. */
async function bundleWorkerOrSource(deps: LocalRunDeps): Promise<BundledWorker | undefined> {
  try {
    return await bundleWorker();
  } catch (err) {
    deps.log.warn('could not bundle the worker; workers run from source', { error: String(err) });
    return undefined;
  }
}

async function runLocked(
  spec: JobSpec,
  deps: LocalRunDeps,
  options: LocalRunOptions,
  runId: string,
  started: number,
  entry: WorkerEntry | undefined,
): Promise<LocalRunOutcome> {
  const progress = deps.progress ?? silentProgress;
  const log = deps.log.child({ runId });
  const logDir = path.join(options.stateDir, 'logs', runId);
  const workers = Math.max(1, options.workers ?? defaultLocalWorkers(spec));
  const cores = Math.max(1, Math.floor(os.availableParallelism() / workers));
  let finalizeResult: RunResult | undefined;
  const rounds: LocalRound[] = [];

  const preloadFinalize = (): void => {
    preloadChartRenderer();
    deps.catalog.preload?.();
  };
  const pool = new LocalWorkerPool({
    ...(entry ? { entry } : {}),
    concurrency: workers,
    logDir,
    environment: {
      // Share the cores between the worker processes instead of letting each one spin up threads for every core.
      [WORKER_ENV.threads]: String(cores),
      [CORES_ENV]: String(cores),
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
    // A core is free for the rest of the round: load what finalizing needs now, not after the last worker. Not
    // sooner: while every core runs a worker, loading would only slow them (measured: a second host started 1 s
    // late when this ran as the round started).
    onSlotFree: preloadFinalize,
    // A single worker's slot frees only when the round ends: load while its last shard runs instead (the demo on
    // 2 cores: 0.95-1.03 s from the last shard to the end of the run instead of 1.27-1.45 s, the shard 0-0.2 s
    // slower).
    ...(workers === 1 ? { onLastChildStarted: preloadFinalize } : {}),
  });
  // The worker processes boot while the run plans (it mostly waits on storage): the demo's first shard started
  // about 0.7 s after the plan was written when they were started for it.
  pool.prestart(workers);

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
      await options.onPlanned?.(state.runUri);
      log.info('planned', { shards: state.shardCount, runUri: state.runUri });
      return state;
    }),
    [WORKFLOW_STATES.reconcile]: lambda(async (payload) => {
      const state = await reconcileRun(parseState(payload), { store: deps.store, local: true });
      if (state.next === 'infer') progress.roundStarted(state.round, state.pending);
      return state;
    }),
    [WORKFLOW_STATES.finalize]: lambda(async (payload) => {
      progress.stage('finalizing');
      // No worker runs after Finalize: the idle worker processes end while it works, not after it (their exit,
      // threads and native libraries torn down, took about 0.2 s at the end of a demo run).
      void pool.close();
      const state = runStateSchema.parse(payload);
      try {
        finalizeResult = await finalizeRun(state, { store: deps.store, catalog: deps.catalog });
      } catch (err) {
        // Finalize throws when publishing fails, after it wrote the manifest: the run's counts are still true.
        finalizeResult = (await countsFromManifest(deps.store, state.runUri, state.runId)) ?? finalizeResult;
        throw err;
      }
      return finalizeResult;
    }),
  };
  // The canary's check is the Reconcile function, as in AWS (it sees `canary` in the state).
  handlers[WORKFLOW_STATES.checkCanary] = handlers[WORKFLOW_STATES.reconcile]!;
  for (const name of [...INFER_STATES, ...CANARY_INFER_STATES]) {
    handlers[name] = async (input) => {
      const request = toJobRequest(input);
      // Every queue runs the same way locally (one pool); only the record says which one Batch would have used.
      rounds.push({
        round: Number(request.environment[WORKER_ENV.round]),
        state: name,
        shards: request.arraySize ?? 1,
      });
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

  // Loaded here, for `run` only: the interpreter, and aws-cdk-lib when the definition is rendered, cost every other
  // command's start about 0.7 s.
  // One after the other: jest's ESM loader fails concurrent imports of graphs that share modules.
  const interpreter = (await import('./interpreter.js')).loadInterpreter();
  const { LOCAL_VALIDATION_OPTIONS, localWorkflowDefinition } = await import('./local-definition.js');
  const machine = new interpreter.StateMachine(
    (await localWorkflowDefinition()) as unknown as StateMachineDefinition,
    {
      validationOptions: LOCAL_VALIDATION_OPTIONS,
    },
  );
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
  if (options.signal?.aborted) onSignal();
  else options.signal?.addEventListener('abort', onSignal, { once: true });
  try {
    const output = runResultSchema.parse(await execution.result);
    return {
      runId,
      status: 'SUCCEEDED',
      result: output,
      wallMs: performance.now() - started,
      logDir,
      rounds,
    };
  } catch (err) {
    const { error, cause } = describeFailure(err, interpreter.ExecutionError);
    return {
      runId,
      status: 'FAILED',
      error,
      cause,
      ...(finalizeResult ? { result: finalizeResult } : {}),
      wallMs: performance.now() - started,
      logDir,
      rounds,
    };
  } finally {
    process.off('SIGINT', onSignal);
    options.signal?.removeEventListener('abort', onSignal);
    await pool.close();
    progress.close();
  }
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

/** The counts of a run whose Finalize wrote its manifest but did not return (a publish failure); else undefined. */
async function countsFromManifest(
  store: ObjectStore,
  runUri: string,
  runId: string,
): Promise<RunResult | undefined> {
  try {
    const manifest = parseManifest(await getJson(store, `${runUri}manifest.json`));
    if (manifest.runId !== runId) return undefined;
    return {
      runId,
      status: 'FAILED',
      message: manifest.message,
      records: manifest.counts.records,
      predictions: manifest.counts.predictions,
      errors: manifest.counts.errors,
      failedShards: manifest.counts.failedShards.count,
      outputUri: manifest.outputs.partitionUri,
      manifestUri: `${runUri}manifest.json`,
    };
  } catch {
    return undefined;
  }
}

function describeFailure(
  err: unknown,
  executionError: typeof Interpreter.ExecutionError,
): { error: string; cause: string } {
  const inner = err instanceof executionError ? (err.cause as Error | undefined) : err;
  // A Fail state surfaces as an error named after the state's Error, with its Cause as the message.
  if (inner instanceof Error) return { error: inner.name, cause: inner.message };
  return { error: 'Error', cause: String(inner) };
}
