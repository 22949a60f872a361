/**
 * Worker process entry: the container's command in AWS Batch, and the child process of the local worker pool.
 * Reads the environment Batch provides, runs one shard, exits 0 on success and non-zero on failure so Batch's
 * retry strategy and the workflow's retry rounds can act.
 *
 * SIGTERM (Spot reclaim notice, job timeout, the local pool stopping): the shard stops taking batches, writes what
 * is done with a final checkpoint (well within the 30 s ECS gives before SIGKILL; see STOP_DEADLINE_MS) and the
 * process exits with INTERRUPTED_EXIT_CODE (143 = 128 + SIGTERM); whatever hangs, a backstop exits with it at the
 * deadline. Not 0: Batch (and the local pool, which mirrors it) must count the attempt as interrupted, not as a
 * success, and retry it; the retry resumes after the checkpoint.
 *
 * The status is set explicitly instead of re-raising SIGTERM with its default action (the usual idiom): where node
 * is PID 1 (a container whose ENTRYPOINT is node, without an init process), Linux ignores a signal that PID 1 sends
 * itself with the default action, so the re-raise did nothing and the worker exited 0.
 *
 * The local pool forks it as a worker host (host-protocol.ts): one process runs several tasks of a run in turn,
 * so the process start, the module loading and the batch-size probe are paid once per process instead of once per
 * shard.
 *
 * The worker's threads have entries of their own (spawn-thread.ts); should one ever load this module, it does
 * nothing there.
 */
import os from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { z } from 'zod';
import { detectInstance } from '../cost/instance.js';
import { WORKER_ENV } from '../runs/tasks.js';
import { boundText } from '../runtime/bounded-text.js';
import { createLogger } from '../runtime/log.js';
import { createObjectStore } from '../storage/index.js';
import {
  CHECKPOINT_CLOCK_ENV,
  CHUNK_RECORDS_ENV,
  CORES_ENV,
  PARQUET_READER_ENV,
  DECODE_THREADS_ENV,
  INTERRUPTED_EXIT_CODE,
  MEMORY_BUDGET_ENV,
  STOP_DEADLINE_MS,
  WORKER_LOG_ENV,
  workerTuningSchema,
} from './env.js';
import {
  runWorkerTask,
  shardOfTask,
  WorkerInterruptedError,
  type ShardProgress,
  type WorkerDeps,
} from './run-shard.js';
import { runCanary } from './canary.js';
import { isDeterministicError, writeFailureRecord } from '../runs/failures.js';
import { DETERMINISTIC_EXIT_CODE } from '../runs/worker-retry.js';
import type { Logger } from '../runtime/log.js';
import type { CheckpointClock } from './checkpoint.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { BatchSizeProbe } from '../runs/types.js';
import { DecodePools } from './decode-thread.js';
import { KeptInferenceThreads } from './inference-thread.js';
import { isRunTaskMessage, taskEndLine, WORKER_HOST_ENV, type TaskEndedMessage } from './host-protocol.js';

const envSchema = workerTuningSchema.extend({
  [WORKER_ENV.runUri]: z.string().min(1, 'must be the run URI (<output.uri>/_runs/<runId>/)'),
  [WORKER_ENV.round]: z.coerce.number().int().nonnegative().default(0),
  [WORKER_ENV.arrayIndex]: z.coerce.number().int().nonnegative().default(0),
  [WORKER_ENV.attempt]: z.coerce.number().int().positive().default(1),
  [WORKER_ENV.executionProviders]: z
    .string()
    .default('cuda,cpu')
    .transform((s) => s.split(',').map((p) => p.trim()))
    .pipe(z.array(z.enum(['cuda', 'cpu']))),
  [WORKER_ENV.threads]: z.coerce.number().int().positive().optional(),
  [WORKER_ENV.canaryRecords]: z.coerce.number().int().positive().optional(),
});

/** The signal every task of this process stops on: SIGTERM, or the local run that started it going away. */
const stop = new AbortController();
/** The log of the task running now, for the stop messages. */
let currentLog: Logger = createLogger({ component: 'worker' });
/** Whether a task is running (a host waiting for its next task has nothing to stop). */
let busy = false;

function onTerm(why = 'SIGTERM'): void {
  if (stop.signal.aborted) return;
  if (!busy) {
    // A worker host between tasks: no shard to stop, no checkpoint to write.
    currentLog.warn(`${why}: no task running; exiting as interrupted`);
    process.exit(INTERRUPTED_EXIT_CODE);
  }
  currentLog.warn(`${why}: stopping after the batches in flight`, { deadlineMs: STOP_DEADLINE_MS });
  stop.abort();
  const termAt = performance.now();
  // The backstop: whatever hangs, the process ends as interrupted before the platform's SIGKILL would. Every
  // write is atomic and the checkpoint goes last, so the checkpoint is consistent whenever this fires.
  setTimeout(() => {
    // elapsedMs: how long after SIGTERM it fired, by this process's clock (a timer fires late under load, never
    // early), so a test can check the deadline without timing the process from outside.
    currentLog.warn('stop deadline reached: exiting as interrupted', {
      deadlineMs: STOP_DEADLINE_MS,
      elapsedMs: Math.round(performance.now() - termAt),
    });
    process.exit(INTERRUPTED_EXIT_CODE);
  }, STOP_DEADLINE_MS).unref();
}

/**
 * Progress goes to the local orchestrator over IPC when there is one (in Batch there is none). Nothing is sent once
 * the channel is closed (sending would throw ERR_IPC_CHANNEL_CLOSED), and a message the closing channel fails to
 * take (EPIPE) is dropped: with a callback the failure is reported there, not thrown.
 */
const send = process.send
  ? (message: unknown): void => {
      if (process.connected) process.send!(message, undefined, undefined, () => undefined);
    }
  : undefined;

/** Batch sizes chosen by the probe, kept for the later tasks of the same run in a worker host. */
const batchSizes = new Map<string, BatchSizeProbe>();
/** Decode threads kept for the later tasks of a worker host. */
const decodePools = new DecodePools();
/** The inference thread kept for the later tasks of a worker host. */
const inferenceThreads = new KeptInferenceThreads();

/** Runs the task `rawEnv` names; the exit status it ends with. */
async function runTask(rawEnv: NodeJS.ProcessEnv): Promise<number | 'interrupted'> {
  const parsed = envSchema.safeParse(rawEnv);
  const log = createLogger({ component: 'worker' });
  currentLog = log;
  if (!parsed.success) {
    log.error('invalid worker environment', {
      issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    });
    return 2;
  }
  const env = parsed.data;
  const task = {
    runUri: env[WORKER_ENV.runUri],
    round: env[WORKER_ENV.round],
    arrayIndex: env[WORKER_ENV.arrayIndex],
    attempt: env[WORKER_ENV.attempt],
  };
  // runId on every line: `batch-infer logs <runId>` finds a run's worker lines by it (FilterLogEvents).
  const runId = /_runs\/([^/]+)\/?$/.exec(task.runUri)?.[1];
  const taskLog = log.child({
    ...(runId ? { runId } : {}),
    round: task.round,
    arrayIndex: task.arrayIndex,
    attempt: task.attempt,
  });
  currentLog = taskLog;

  let lastSent = 0;
  const onProgress = send
    ? (p: ShardProgress): void => {
        const now = Date.now();
        if (now - lastSent < 250) return;
        lastSent = now;
        send({ type: 'progress', ...p });
      }
    : undefined;
  const budgetMiB = env[MEMORY_BUDGET_ENV];
  const chunkRecords = env[CHUNK_RECORDS_ENV];
  const decodeThreads = env[DECODE_THREADS_ENV];
  const cores = env[CORES_ENV];
  const parquetReader = env[PARQUET_READER_ENV];
  const clockModule = env[CHECKPOINT_CLOCK_ENV];
  const store = createObjectStore();
  try {
    const checkpointClock = clockModule ? await importCheckpointClock(clockModule) : undefined;
    const canaryRecords = env[WORKER_ENV.canaryRecords];
    // The canary job (run.canary) runs shard 0's first records as a run of their own (canary.ts).
    const run = canaryRecords
      ? (deps: WorkerDeps) => runCanary(task, canaryRecords, deps)
      : (deps: WorkerDeps) => runWorkerTask(task, deps);
    const marker = await run({
      store,
      log: taskLog,
      providers: env[WORKER_ENV.executionProviders],
      threads: env[WORKER_ENV.threads] ?? defaultThreads(),
      signal: stop.signal,
      ...(budgetMiB ? { memoryBudgetBytes: budgetMiB * 2 ** 20 } : {}),
      ...(chunkRecords ? { chunkRecords } : {}),
      ...(decodeThreads !== undefined ? { decodeThreads } : {}),
      ...(cores !== undefined ? { cores } : {}),
      ...(parquetReader === 'hyparquet' ? { nativeParquet: false } : {}),
      ...(checkpointClock ? { checkpointClock } : {}),
      instance: await detectInstance(rawEnv),
      batchSizes,
      decodePools,
      inferenceThreads,
      onProgress,
    });
    send?.({ type: 'done', shardId: marker.shardId, records: marker.records });
    return 0;
  } catch (err) {
    if (err instanceof WorkerInterruptedError) return 'interrupted';
    const e = err instanceof Error ? err : new Error(String(err));
    const deterministic = isDeterministicError(e);
    taskLog.error('shard failed', { error: e.name, reason: boundText(e.message), deterministic });
    // Every failure leaves its reason; only a deterministic one stops the retries (exit status and record).
    await recordFailure(store, task, e, deterministic, taskLog);
    return deterministic ? DETERMINISTIC_EXIT_CODE : 1;
  }
}

/**
 * A worker host (host-protocol.ts): runs the tasks the local pool sends, one at a time, in this process. The
 * environment of each task replaces the process's, so everything that reads process.env (the object store's
 * endpoint, the instance detection) sees the task's.
 */
function serveTasks(): void {
  process.on('message', (message) => {
    if (!isRunTaskMessage(message) || busy) return;
    busy = true;
    for (const name of Object.keys(process.env)) if (!(name in message.env)) delete process.env[name];
    Object.assign(process.env, message.env);
    void runTask(process.env).then((outcome) => {
      busy = false;
      if (outcome === 'interrupted') process.exit(INTERRUPTED_EXIT_CODE);
      process.stdout.write(`${taskEndLine(message.seq)}\n`);
      const ended: TaskEndedMessage = { type: 'ended', seq: message.seq, code: outcome };
      // A failed task ends the host: what it left behind must not reach the next task; so does a stop asked for as
      // the task succeeded. The channel is closed once the answer is out (the send's callback), and the process
      // ends with the task's status.
      if (outcome === 0 && !stop.signal.aborted) send?.(ended);
      else {
        process.exitCode = outcome;
        if (process.connected) process.send!(ended, undefined, undefined, () => process.disconnect());
      }
    });
  });
}

/**
 * Writes failures/<shard>.json, so the reason reaches the run's result and, for a deterministic failure, Reconcile
 * stops retrying the shard. Best effort: when the shard cannot be named (no plan), the exit status still says it.
 */
async function recordFailure(
  store: ObjectStore,
  task: { runUri: string; round: number; arrayIndex: number; attempt: number },
  err: Error,
  deterministic: boolean,
  log: Logger,
): Promise<void> {
  try {
    const { runId, shardId } = await shardOfTask(store, task);
    const logAt = process.env[WORKER_LOG_ENV] ?? process.env.AWS_BATCH_JOB_ID;
    await writeFailureRecord(store, task.runUri, {
      runId,
      shardId,
      round: task.round,
      arrayIndex: task.arrayIndex,
      attempt: task.attempt,
      errorClass: err.name,
      message: boundText(err.message),
      deterministic,
      ...(logAt !== undefined && {
        log: process.env[WORKER_LOG_ENV] !== undefined ? logAt : `Batch job ${logAt}`,
      }),
      failedAt: new Date().toISOString(),
    });
  } catch (recordErr) {
    log.warn('could not write the failure record', { reason: String(recordErr) });
  }
}

/** The `now` export of a checkpoint clock module (CHECKPOINT_CLOCK_ENV). */
async function importCheckpointClock(url: string): Promise<CheckpointClock> {
  const module = (await import(url)) as { now?: unknown };
  if (typeof module.now !== 'function') {
    throw new Error(`${CHECKPOINT_CLOCK_ENV}: ${url} does not export a now() function`);
  }
  const now = module.now as () => unknown;
  return () => Number(now());
}

/**
 * ONNX Runtime's intra-op threads when the environment does not say: one core is left to the main thread, which
 * reads, decodes and writes while the model runs. Measured on 2 busy cores with the text encoder: a second intra-op
 * thread competing with the main thread (ONNX Runtime's threads spin while they wait) made inference 2-3x slower.
 */
function defaultThreads(): number {
  return Math.max(1, os.availableParallelism() - 1);
}

if (isMainThread) {
  process.on('SIGTERM', () => onTerm());
  const host = process.env[WORKER_HOST_ENV] === '1' && process.send !== undefined;
  // Forked by the local pool, with an IPC channel: the channel closes when the run that started this worker is gone
  // (the CLI killed with SIGKILL). Nobody will take this task's result any more, and a rerun may start at once: stop
  // as on SIGTERM (a consistent checkpoint the rerun resumes from, exit 143) instead of running on until a progress
  // message to the dead parent fails, seconds later. A host waiting for its next task just ends.
  if (process.send) {
    process.once('disconnect', () => {
      if (busy || !host) onTerm('the local run is gone (IPC channel closed)');
    });
    // A 'disconnect' listener refs the channel, which would keep a finished single-task worker from exiting: unref
    // it again. A host keeps it referenced: it waits on the channel for its next task.
    if (!host) process.channel?.unref();
  }
  if (host) serveTasks();
  else {
    busy = true;
    const outcome = await runTask(process.env);
    // Interrupted: exit now (nothing left to wait for; the inference thread was terminated) with the status that
    // says so. Log lines are already out: writes to pipes and files are synchronous on Linux.
    if (outcome === 'interrupted') process.exit(INTERRUPTED_EXIT_CODE);
    else process.exitCode = outcome;
  }
}
