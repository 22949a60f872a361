/**
 * The worker's core: one array child of one round runs one shard. It streams the shard's records through the model
 * and writes predictions in chunks with deterministic keys, the error rows, a checkpoint after each chunk, and
 * finally the completion marker. A re-run of the same shard (Batch retry, retry round) resumes after the last
 * checkpointed chunk (checkpoint.ts); a shard whose marker already exists is not run again.
 *
 * The loop is a pipeline (see docs/adr/0005-shard-worker-pipeline-and-checkpoints.md):
 *
 *   main thread:       read + decode batch i+1  | post-process batch i, append to the chunk | ...
 *   inference thread:  session.run(batch i)                                               | run(batch i+1)
 *   DuckDB threads:    encode + compress chunk k-1 (while chunk k fills)
 *
 * so inference, reading and writing overlap; `timings` are the busy time of each stage, which can add up to more
 * than `totalMs`.
 */
import { markerCostFields } from '../cost/marker.js';
import type { ShardInstance } from '../cost/instance.js';
import { createHash } from 'node:crypto';
import os from 'node:os';
import { removeStaleStagingFiles, stagingPath } from './staging.js';
import type * as ort from 'onnxruntime-node';
import type { CsvReadOptions } from '../formats/csv.js';
import { configureParquetWriter, warmParquetWriter } from '../formats/parquet-chunk-writer.js';
import type { DecodedRecord, SourceRecord } from '../formats/records.js';
import { createFeatureBuilder, type FeatureBuilder } from '../inference/features.js';
import { loadModelFiles } from '../inference/model-files.js';
import { createPostprocessor, type Postprocessor } from '../inference/postprocess.js';
import type { ExecutionProvider } from '../inference/session.js';
import { readShardLine } from '../results/shard-list.js';
import { runLayout, type RunLayout } from '../runs/layout.js';
import {
  planSchema,
  roundSchema,
  shardMarkerSchema,
  type BatchSizeProbe,
  type ErrorReason,
  type Plan,
  type Shard,
  type ShardMarker,
} from '../runs/types.js';
import { ExecutionProviderError, ModelError, RunStateError } from '../spec/errors.js';
import { isTabularInput, isTextInput } from '../spec/model-io.js';
import type { JobSpec } from '../spec/schema.js';
import { getJson, putJson, type ObjectStore } from '../storage/object-store.js';
import { pinObjects } from '../storage/pinned.js';
import { joinUri } from '../storage/uri.js';
import { defaultMemoryBudget, feedBytes, probeBatchSize, MAX_BATCH, type ProbeSample } from './batch-size.js';
import {
  readCheckpoint,
  remainingRanges,
  type Checkpoint,
  type CheckpointClock,
  type StageTimings,
} from './checkpoint.js';
import { InferenceThread, type InferenceResult, type KeptInferenceThreads } from './inference-thread.js';
import { RecordStream, type ShardBatch } from './record-stream.js';
import { columnarPlanOf } from './columnar-plan.js';
import { ColumnarStream, defaultDecodeThreads, isColumnar } from './columnar-stream.js';
import { DecodePool, type DecodePools } from './decode-thread.js';
import { duckdbParquetReader } from '../formats/parquet-native.js';
import type { ColumnarPlan } from '../formats/columnar-rows.js';
import { ChallengerLane, agreeOnResume } from '../challenger/lane.js';
import { challengerPlanOf } from '../challenger/plan.js';
import { ShardWriter, type BatchRows } from './shard-writer.js';
import { assembleBatchRows, gatherWindowRows, placeBatchRows } from './batch-rows.js';

/** Which piece of work this process is: Batch tells it through the environment. */
export interface WorkerTask {
  readonly runUri: string;
  readonly round: number;
  /** AWS_BATCH_JOB_ARRAY_INDEX; 0 for a single (non-array) job. */
  readonly arrayIndex: number;
  /** AWS_BATCH_JOB_ATTEMPT, from 1. */
  readonly attempt: number;
}

export interface WorkerLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/**
 * One stage of the pipeline done for one batch (or window): when it started and ended, in epoch milliseconds with
 * sub-millisecond precision (comparable between the main and the inference thread). `batch` numbers batches in the
 * order they were sent to inference (read and write events carry the first batch of their window). `runs` is how
 * many session.run calls an inference took (more than 1 when the batch was bisected).
 */
export interface StageEvent {
  readonly stage: 'read' | 'decode' | 'infer' | 'write';
  readonly batch: number;
  readonly records: number;
  readonly start: number;
  readonly end: number;
  readonly runs?: number;
}

export interface ShardProgress {
  readonly shardId: number;
  readonly records: number;
  /** The planner's record count for the shard (exact or estimated). */
  readonly expected: number;
}

export interface WorkerDeps {
  readonly store: ObjectStore;
  readonly log: WorkerLog;
  /** @default ['cpu'] */
  readonly providers?: readonly ExecutionProvider[];
  /** ONNX Runtime intra-op threads. */
  readonly threads?: number;
  /**
   * Input records per output chunk and checkpoint (rounded up to whole batches).
   * @default the spec's run.checkpoint.records
   */
  readonly chunkRecords?: number;
  /** The clock run.checkpoint.seconds is measured by (ms, monotonic). @default performance.now */
  readonly checkpointClock?: CheckpointClock;
  /** Seal a chunk early once its rows take about this much memory. @default 256 MiB */
  readonly chunkBytes?: number;
  /** Memory the `auto` batch size may plan for. @default half of the memory available to the process */
  readonly memoryBudgetBytes?: number;
  /** The clock the `auto` batch size probe's time budget is measured by (ms). @default performance.now */
  readonly probeClock?: () => number;
  /**
   * Aborting stops the shard within STOP_DEADLINE_MS: no new batch is started, the batches already inferred are
   * written with a final checkpoint, and the call rejects with WorkerInterruptedError. The next attempt resumes.
   */
  readonly signal?: AbortSignal;
  /**
   * URL of a module exporting `createSession` (a SessionFactory, src/inference/session.ts), loaded in the inference
   * thread to create the session: decides which execution providers are available (tests of the CUDA fallback).
   * @default ONNX Runtime's own
   */
  readonly sessionFactory?: string;
  /** Where Parquet chunks are staged before upload. @default os.tmpdir() */
  readonly tmpDir?: string;
  readonly onProgress?: (progress: ShardProgress) => void;
  /** Called as each stage finishes a batch: the pipeline's own timing, for instrumented runs. */
  readonly onStage?: (event: StageEvent) => void;
  /** The instance the worker runs on, recorded in the marker for the run's cost (src/cost/instance.ts). */
  readonly instance?: ShardInstance;
  /**
   * Columnar decoding (columnar-stream.ts) for the shards that can take it (CSV into tabular inputs): typed arrays
   * per batch instead of a record object per line. @default true
   */
  readonly columnar?: boolean;
  /**
   * Parquet input on the columnar path read by DuckDB (src/formats/parquet-native.ts) where its columns allow: local
   * files in place, an S3 object whose whole file is the range from a copy in `tmpDir`; false reads all of it
   * through hyparquet. @default true
   */
  readonly nativeParquet?: boolean;
  /** Threads decoding columnar blocks; 0 decodes on the main thread. @default one per core, per block at most */
  readonly decodeThreads?: number;
  /** Cores this process may use (the local pool's share of the machine). @default os.availableParallelism() */
  readonly cores?: number;
  /** Bytes per columnar block. @default 1 MiB */
  readonly decodeBlockBytes?: number;
  /**
   * Batch sizes the `auto` probe chose for earlier shards in this process (a local worker host runs several shards
   * of a run in turn), keyed by run and settings; a shard of the same run takes the size without probing again, and
   * its marker's probe names the shard that ran it. Filled as probes run. @default no reuse: every shard probes
   */
  readonly batchSizes?: Map<string, BatchSizeProbe>;
  /**
   * Decode threads kept between the shards this process runs (a local worker host): a shard borrows the pool of
   * the previous one when the plan is the same, and returns it when it succeeds. @default threads of its own
   */
  readonly decodePools?: DecodePools;
  /** The inference thread kept between the shards of a worker host (ADR 0021). @default a thread per shard */
  readonly inferenceThreads?: KeptInferenceThreads;
}

/**
 * GPU or fail: a GPU run (`run.compute: gpu`) whose worker asked for CUDA first and got another provider fails the
 * shard, unless the spec allows the CPU (`run.cpuFallback`). A worker not asked for CUDA (local runs, the CPU queue)
 * is never held to it.
 */
function requireGpu(
  spec: Pick<JobSpec, 'run'>,
  providers: readonly ExecutionProvider[] | undefined,
  thread: Pick<InferenceThread, 'executionProvider'>,
): void {
  if (spec.run.compute !== 'gpu' || spec.run.cpuFallback || providers?.[0] !== 'cuda') return;
  if (thread.executionProvider === 'cuda') return;
  throw new ExecutionProviderError(
    `This GPU run's worker could not load the CUDA execution provider and would run on ` +
      `${thread.executionProvider} (see the "execution provider cuda unavailable" log line for why). Check the ` +
      'instance type (an NVIDIA GPU) and the worker image (CUDA and cuDNN libraries), or set run.cpuFallback: true ' +
      'in the job spec to let the shard run on the CPU.',
  );
}

/** The shard stopped because it was asked to (SIGTERM); its checkpoint is consistent and a retry resumes it. */
export class WorkerInterruptedError extends Error {
  override readonly name = 'WorkerInterrupted';
  constructor(
    message: string,
    readonly shardId: number,
    readonly checkpoint: Checkpoint,
  ) {
    super(message);
  }
}

/**
 * Batches queued to the inference thread at once: one running and two waiting, so the thread does not idle when
 * the main thread is briefly busy (a chunk append, a garbage collection). Measured with small text batches: 2-3%
 * faster end to end than two in flight.
 */
const IN_FLIGHT = 3;
/**
 * With length bucketing, records are read in windows of this many batches and sorted by length within the window:
 * enough records for batches of similar length, few enough to keep memory and the re-ordering small.
 */
export const BUCKET_BATCHES = 16;
/** After an abort, how long batches already in inference may take to come back and be written. */
const DRAIN_MS = 10_000;
/** Records read first to size the probe's sample. */
const PROBE_PILOT = 64;

export async function runWorkerTask(task: WorkerTask, deps: WorkerDeps): Promise<ShardMarker> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const { store, log } = deps;
  // Staging files of workers killed before they could remove theirs (staging.ts).
  const stale = await removeStaleStagingFiles(deps.tmpDir ?? os.tmpdir());
  if (stale.length > 0) log.info('removed staging files of dead workers', { files: stale.length });
  const plan = await readPlan(store, task.runUri);
  const layout = runLayout(plan.spec.output.uri, plan.runId, plan.runDate);
  const shardId = await resolveShardId(store, layout, plan, task);

  const existing = await readMarker(store, layout, shardId);
  if (existing) {
    log.info('shard already complete; nothing to do', { shardId, attempt: existing.attempt });
    return existing;
  }
  // The inference thread boots and loads the model (and DuckDB starts) while the shard and checkpoint are read; a
  // worker host lends the thread of its previous shard when it has this model loaded with these settings.
  const threadKey = inferenceThreadKey(plan, deps);
  const keptThread = deps.inferenceThreads?.take(threadKey);
  keptThread?.logTo((message, fields) => deps.log.warn(message, fields));
  const starting = keptThread ? Promise.resolve(keptThread) : startInference(store, plan, deps);
  // The challenger (docs/adr/0020) loads in a thread of its own, beside the champion.
  const challengerPlan = challengerPlanOf(plan);
  const startingChallenger = challengerPlan ? startInference(store, challengerPlan, deps) : undefined;
  startingChallenger?.catch(() => undefined);
  // DuckDB (the Parquet writer, and reader) on this process's share of the cores, not on every core of the machine:
  // several local workers each with a thread per core only competed for them (docs/adr/0019, 2026-12-07 afternoon).
  if (deps.cores !== undefined) configureParquetWriter({ threads: deps.cores });
  // Settled below; a failure here must not go unhandled while the other reads are awaited.
  starting.catch(() => undefined);
  const setup = await Promise.all([
    readShard(store, layout, shardId),
    readCheckpoint(store, layout, plan.runId, shardId),
  ]).catch(async (err: unknown) => {
    await starting.then((t) => t.terminate()).catch(() => undefined);
    await startingChallenger?.then((t) => t.terminate()).catch(() => undefined);
    throw err;
  });
  const [shard, reading] = setup;
  if (reading.kind === 'unusable') {
    log.warn('checkpoint unusable; the shard starts over', { shardId, reason: reading.reason });
  }
  const resumes = await agreeOnResume(
    store,
    plan,
    shardId,
    reading.kind === 'usable' ? reading.checkpoint : undefined,
    (message, fields) => log.warn(message, fields),
  );
  const resume = resumes.resume;
  log.info('shard started', {
    shardId,
    round: task.round,
    attempt: task.attempt,
    records: shard.records,
    ...(resume ? { resumedChunks: resume.chunks.length, resumedRecords: resume.records } : {}),
  });

  const thread = await starting;
  log.info('model loaded', {
    shardId,
    executionProvider: thread.executionProvider,
    threadReused: keptThread !== undefined,
    setupMs: Math.round(performance.now() - started),
  });
  try {
    requireGpu(plan.spec, deps.providers, thread);
  } catch (err) {
    await thread.terminate().catch(() => undefined);
    throw err;
  }
  let writer: ShardWriter | undefined;
  let stream: RecordStream | ColumnarStream | undefined;
  let lent: LentDecodePool | undefined;
  let succeeded = false;
  let lane: ChallengerLane | undefined;
  try {
    const io = await prepareModelIo(store, plan, thread);
    const format = plan.spec.input.format;
    const readOptions: CsvReadOptions = {
      batchSize: 1024,
      ...(io.readColumns ? { columns: io.readColumns } : {}),
      numeric: io.numericColumns,
      ...(io.identityTypes ? { types: io.identityTypes } : {}),
    };
    // Input objects are read at the ETag (and version) the plan recorded: one replaced since fails the shard with
    // ObjectChangedError instead of being read half old, half new.
    const input = pinObjects(store, shard.ranges);
    const remaining = await remainingRanges(input, format, shard.ranges, resume?.position);
    const opened = openStream(
      input,
      plan,
      shardId,
      io,
      remaining,
      readOptions,
      challengerPlan !== undefined,
      deps,
    );
    stream = opened.stream;
    lent = opened.lent;
    // Which data path reads the shard (docs/adr/0019): typed columns, or a record object per input record.
    log.info('reading', {
      shardId,
      path: stream instanceof ColumnarStream ? 'columnar' : 'records',
      format,
      ...(stream instanceof ColumnarStream
        ? { decodeThreads: stream.threads, summariesOnThread: stream.inputCounter !== undefined }
        : {}),
      ...(lent ? { decodeThreadsReused: lent.reused } : {}),
    });
    // DuckDB loads (a first shard's worker has not loaded it yet: duckdb-library.ts) and starts its database while the
    // decode threads read the first records, which this thread would otherwise only wait for.
    warmParquetWriter();

    const base = resume?.timings ?? { readMs: 0, decodeMs: 0, inferMs: 0, writeMs: 0, totalMs: 0 };
    const spent = { readMs: 0, decodeMs: 0, inferMs: 0, writeMs: 0 };
    // Tenths of a millisecond, and at least one for a stage that took any time: small shards and fast stages (a
    // read served from the prefetched window) still show up as more than zero.
    const ms = (x: number): number => (x > 0 ? Math.max(0.1, Math.round(x * 10) / 10) : 0);
    const timingsNow = (): StageTimings => ({
      readMs: ms(base.readMs + spent.readMs),
      decodeMs: ms(base.decodeMs + spent.decodeMs),
      inferMs: ms(base.inferMs + spent.inferMs),
      writeMs: ms(base.writeMs + spent.writeMs),
      totalMs: ms(base.totalMs + performance.now() - started),
    });

    const { batchSize, probe } = await chooseBatchSize(
      plan.runId,
      shardId,
      plan.spec,
      shard.records,
      resume,
      stream,
      io,
      thread,
      deps,
    );
    const appendUnit = io.lengthOf ? batchSize * BUCKET_BATCHES : batchSize;
    lane = startingChallenger
      ? await ChallengerLane.open({
          store,
          plan,
          thread: await startingChallenger,
          shardId,
          batchSize,
          appendUnit,
          sources: shard.ranges.map((r) => r.uri),
          championColumns: io.post.columns,
          championLabels: io.labelColumns,
          ...(resumes.challenger ? { resume: resumes.challenger } : {}),
          ...(deps.tmpDir ? { tmpDir: deps.tmpDir } : {}),
          timings: timingsNow,
        })
      : undefined;
    const challenger = lane;
    const inputCounter = stream instanceof ColumnarStream ? stream.inputCounter : undefined;
    writer = new ShardWriter({
      store,
      layout,
      runId: plan.runId,
      shardId,
      spec: plan.spec,
      predictionColumns: io.post.columns.map((c) => ({ name: c.name, type: c.type })),
      labelColumns: io.labelColumns,
      sources: shard.ranges.map((r) => r.uri),
      batchSize,
      // Chunks end on window boundaries, so a resumed shard forms the same windows (and batches) again.
      appendUnit,
      ...(challenger ? { onSeal: () => challenger.championSealed() } : {}),
      ...(probe ? { batchSizeProbe: probe } : {}),
      ...(deps.chunkRecords ? { chunkRecords: deps.chunkRecords } : {}),
      ...(deps.chunkBytes ? { chunkBytes: deps.chunkBytes } : {}),
      ...(deps.checkpointClock ? { clock: deps.checkpointClock } : {}),
      tmpDir: deps.tmpDir ?? os.tmpdir(),
      timings: timingsNow,
      ...(resume ? { resume } : {}),
      ...(inputCounter ? { inputCounter } : {}),
    });

    const interrupted = await runPipeline({
      stream,
      writer,
      thread,
      io,
      batchSize,
      spent,
      ...(lane ? { lane } : {}),
      deps,
      shardId,
      expected: shard.records,
    });
    if (interrupted) {
      await writer.sealCurrent();
      await writer.flush();
      await lane?.interrupt();
      const checkpoint = writer.checkpoint;
      log.warn('shard interrupted; a retry resumes after the last checkpoint', {
        shardId,
        chunks: checkpoint.chunks.length,
        records: checkpoint.records,
      });
      throw new WorkerInterruptedError(
        `shard ${shardId} interrupted after ${checkpoint.records} records (${checkpoint.chunks.length} chunks)`,
        shardId,
        checkpoint,
      );
    }

    const finishing = performance.now();
    const finished = await writer.finish();
    spent.writeMs += performance.now() - finishing;
    const done = finished.checkpoint;
    const marker: ShardMarker = {
      version: 1,
      runId: plan.runId,
      shardId,
      round: task.round,
      attempt: task.attempt,
      records: done.records,
      predictions: done.predictions,
      errors: done.errors,
      errorsByReason: done.errorsByReason,
      outputs: finished.outputs,
      ...(finished.errorsFile ? { errorsFile: finished.errorsFile } : {}),
      columns: done.chunks.length > 0 ? done.columns : writer.columnTypes(),
      timings: timingsNow(),
      executionProvider: thread.executionProvider,
      batchSize,
      startedAt,
      finishedAt: new Date().toISOString(),
      summaries: done.summaries,
      ...(done.inputSummaries ? { inputSummaries: done.inputSummaries } : {}),
      ...(done.batchSizeProbe ? { batchSizeProbe: done.batchSizeProbe } : {}),
      ...(deps.threads ? { threads: deps.threads } : {}),
      resume: {
        attempts: Math.max(1, done.attempts),
        resumedChunks: resume?.chunks.length ?? 0,
        resumedRecords: resume?.records ?? 0,
      },
    };
    Object.assign(marker, markerCostFields(deps.instance, marker.timings));
    // The challenger's marker first: the champion's then proves both tables' shard complete (docs/adr/0020).
    await lane?.finish(marker);
    // The marker is written last: its presence is the only proof that the shard's outputs are complete.
    await putJson(store, layout.markerUri(shardId), marker);
    await lane?.cleanUp().catch((err: unknown) =>
      log.warn('could not delete the challenger checkpoint after the marker', {
        shardId,
        error: String(err),
      }),
    );
    await writer
      .cleanUp()
      .catch((err: unknown) =>
        log.warn('could not delete the checkpoint after the marker', { shardId, error: String(err) }),
      );
    succeeded = true;
    log.info('shard complete', {
      shardId,
      records: marker.records,
      predictions: marker.predictions,
      errors: marker.errors,
      ms: marker.timings.totalMs,
      timings: marker.timings,
      batchSize,
      ...(stream instanceof ColumnarStream && plan.spec.input.format === 'parquet'
        ? { parquetRanges: stream.stats.parquetRanges }
        : {}),
    });
    return marker;
  } catch (err) {
    if (!(err instanceof WorkerInterruptedError)) {
      await writer?.abort();
      await lane?.abort();
    }
    throw err;
  } finally {
    await stream?.close().catch(() => undefined);
    // Lent decode threads go back to the host after a shard that succeeded; otherwise they end with the shard.
    if (lent && succeeded && deps.decodePools) deps.decodePools.keep(lent.threads, lent.plan, lent.pool);
    else await lent?.pool.close();
    // Interrupted: a run may still be going in the thread, and the deadline is close; end the thread at once.
    if (deps.signal?.aborted) await thread.terminate();
    else if (succeeded && deps.inferenceThreads) deps.inferenceThreads.keep(threadKey, thread);
    else await thread.close();
    const aborted = deps.signal?.aborted === true;
    await startingChallenger?.then((t) => (aborted ? t.terminate() : t.close())).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The pipeline

interface ModelIo {
  readonly features: FeatureBuilder;
  readonly post: Postprocessor;
  /** Columns the readers decode; undefined: all (a processor may read any). */
  readonly readColumns?: readonly string[];
  /** Columns only used as tabular tensor values: CSV may hand them over as numbers. */
  readonly numericColumns: readonly string[];
  /**
   * CSV: the id and passthrough columns output.schema gives a scalar type other than string, converted from their
   * text as they are read (a value not of the type makes its record an INVALID_VALUE error row).
   */
  readonly identityTypes?: Readonly<Record<string, string>>;
  readonly labelColumns: ReadonlySet<string>;
  /**
   * For models with text inputs: a record's length (characters of its text columns), to bucket records of similar
   * length into a batch. Undefined: batches are formed in input order.
   */
  readonly lengthOf?: (record: DecodedRecord) => number;
}

/** output.schema types a CSV field is converted to (csv.ts parseTyped); string needs no conversion. */
const SCALAR_TYPES: ReadonlySet<string> = new Set(['int', 'bigint', 'float', 'double', 'boolean']);

/** Everything between records and tensors, and tensors and columns, built once per worker from the plan. */
async function prepareModelIo(store: ObjectStore, plan: Plan, thread: InferenceThread): Promise<ModelIo> {
  const { spec } = plan;
  const files = await loadModelFiles(store, plan);
  const features = createFeatureBuilder(spec.model.inputs, thread.inputs, { files, store });
  const post = createPostprocessor(spec.model.outputs, thread.outputs, files);
  const identity = [...(spec.input.id ? [spec.input.id] : []), ...spec.output.passthrough];
  const readColumns =
    features.columns.length === 0 ? undefined : [...new Set([...identity, ...features.columns])];
  const keepText = new Set(identity);
  const declared = spec.output.schema ?? {};
  const typedIdentity = identity.flatMap((c) => {
    const type = declared[c];
    return type && SCALAR_TYPES.has(type) ? [[c, type] as const] : [];
  });
  const identityTypes =
    spec.input.format === 'csv' && typedIdentity.length > 0 ? Object.fromEntries(typedIdentity) : undefined;
  const numericColumns = [
    ...new Set(spec.model.inputs.flatMap((input) => (isTabularInput(input) ? input.from.columns : []))),
  ].filter((c) => !keepText.has(c));
  const labelColumns = new Set(
    spec.model.outputs.flatMap((o) => (o.postprocess?.argmax ? [o.postprocess.argmax.as] : [])),
  );
  const textColumns = spec.model.inputs.flatMap((input) => (isTextInput(input) ? [input.from.text] : []));
  const lengthOf =
    textColumns.length === 0
      ? undefined
      : (record: DecodedRecord): number => {
          let length = 0;
          for (const column of textColumns) {
            const v = record.values[column];
            if (typeof v === 'string') length += v.length;
            else if (v instanceof Uint8Array) length += v.byteLength;
          }
          return length;
        };
  return {
    features,
    post,
    ...(readColumns ? { readColumns } : {}),
    numericColumns,
    ...(identityTypes ? { identityTypes } : {}),
    labelColumns,
    ...(lengthOf ? { lengthOf } : {}),
  };
}

interface Prepared {
  readonly batch: ShardBatch;
  readonly feeds: Record<string, ort.Tensor>;
  /** Batch indexes of the records in the tensors, row by row. */
  readonly included: readonly number[];
  readonly errors: Map<number, { reason: ErrorReason; message: string }>;
  readonly result?: Promise<InferenceResult>;
  /** The challenger's run of the same feeds. */
  readonly challenger?: Promise<InferenceResult>;
}

interface PipelineArgs {
  readonly stream: RecordStream | ColumnarStream;
  readonly writer: ShardWriter;
  readonly thread: InferenceThread;
  readonly io: ModelIo;
  readonly batchSize: number;
  readonly spent: { readMs: number; decodeMs: number; inferMs: number; writeMs: number };
  readonly deps: WorkerDeps;
  readonly shardId: number;
  readonly expected: number;
  /** The challenger's side of the shard (docs/adr/0020). */
  readonly lane?: ChallengerLane;
}

/**
 * A window of records read together: one batch, or with length bucketing several batches of records of similar
 * length. Its results are gathered back into input order and written together once every batch is done.
 */
interface Window {
  readonly batch: ShardBatch;
  /** Number of its first batch. */
  readonly first: number;
  /** Batches not yet completed. */
  pending: number;
  /** Per record of the window: its prediction values (one per column), when it has one. */
  readonly values: (unknown[] | undefined)[];
  readonly errors: Map<number, { reason: ErrorReason; message: string }>;
  /** Set when the window is a single batch in input order: its rows need no re-ordering. */
  direct?: BatchRows;
}

interface InFlight extends Prepared {
  /** Number of the batch, in the order batches were sent to inference. */
  readonly number: number;
  readonly window: Window;
  /** Window index of each record of this batch. */
  readonly order: readonly number[] | undefined;
}

/** Runs the shard's records through the pipeline; returns true when it stopped because of the abort signal. */
async function runPipeline(args: PipelineArgs): Promise<boolean> {
  const { stream, writer, thread, io, batchSize, spent, deps, lane } = args;
  const inFlight: InFlight[] = [];
  const unit = io.lengthOf ? batchSize * BUCKET_BATCHES : batchSize;

  const onStage = deps.onStage;
  // performance.now() -> epoch milliseconds, as the inference thread reports its times.
  const epoch = (t: number): number => performance.timeOrigin + t;
  let batches = 0;

  const complete = async (item: InFlight): Promise<void> => {
    const result = item.result ? await item.result : undefined;
    spent.inferMs += result?.inferMs ?? 0;
    if (result && onStage) {
      onStage({
        stage: 'infer',
        batch: item.number,
        records: item.included.length,
        start: result.startedAt,
        end: result.endedAt,
        runs: result.runs,
      });
    }
    let t = performance.now();
    // The challenger's rows first: the champion's assemble adds its own errors to item.errors.
    if (lane) {
      const challengerRows = await lane.assemble(item, item.challenger, result?.feeds ?? item.feeds);
      lane.place(item.window, item.window.batch.records.length, item.order, challengerRows);
    }
    const rows = await assemble(item, result, io.post);
    const window = item.window;
    if (item.order) {
      // Back to input order: record j of this batch is record order[j] of the window.
      placeBatchRows(window, item.order, rows);
    } else {
      window.direct = rows;
    }
    window.pending--;
    spent.decodeMs += performance.now() - t;
    if (window.pending > 0) return;
    t = performance.now();
    const windowRows = window.direct ?? gather(window, io.post.columns.length);
    await writer.appendBatch(windowRows);
    await lane?.append(window, window.batch, windowRows);
    const written = performance.now();
    spent.writeMs += written - t;
    onStage?.({
      stage: 'write',
      batch: window.first,
      records: window.batch.records.length,
      start: epoch(t),
      end: epoch(written),
    });
    deps.onProgress?.({ shardId: args.shardId, records: writer.records, expected: args.expected });
  };

  for (;;) {
    if (deps.signal?.aborted) break;
    let t = performance.now();
    const batch = await stream.take(unit);
    const read = performance.now();
    spent.readMs += read - t;
    if (!batch) break;
    onStage?.({
      stage: 'read',
      batch: batches,
      records: batch.records.length,
      start: epoch(t),
      end: epoch(read),
    });
    t = performance.now();
    const n = batch.records.length;
    // Bucketing: records sorted by length (stably), so a batch pads its texts to a similar length.
    const order = io.lengthOf ? sortedByLength(batch.records, io.lengthOf) : undefined;
    const window: Window = {
      batch,
      first: batches,
      pending: Math.ceil(n / batchSize),
      values: order ? new Array<unknown[] | undefined>(n) : [],
      errors: new Map(),
    };
    spent.decodeMs += performance.now() - t;
    for (let from = 0; from < n; from += batchSize) {
      t = performance.now();
      const part = order ? order.slice(from, from + batchSize) : undefined;
      const sub: ShardBatch = part
        ? { records: part.map((i) => batch.records[i]!), ranges: part.map((i) => batch.ranges[i]!) }
        : batch;
      const item =
        stream instanceof ColumnarStream && isColumnar(sub)
          ? { batch: sub, ...stream.prepare(sub) }
          : await prepare(sub, io.features);
      const decoded = performance.now();
      spent.decodeMs += decoded - t;
      const number = batches++;
      onStage?.({
        stage: 'decode',
        batch: number,
        records: sub.records.length,
        start: epoch(t),
        end: epoch(decoded),
      });
      let result: Promise<InferenceResult> | undefined;
      let challenger: Promise<InferenceResult> | undefined;
      if (item.included.length > 0) {
        // Before the champion's run moves the feeds: the challenger gets a copy.
        challenger = lane?.dispatch(item.feeds, item.included.length);
        // Moved to the thread and back: post-processing may read the feeds (pooling by attention mask), and
        // neither direction copies them.
        result = thread.run(item.feeds, item.included.length, { transfer: true, returnFeeds: true });
        // Settled by `complete`, or dropped on interruption: never an unhandled rejection.
        result.catch(() => undefined);
      }
      inFlight.push({
        ...item,
        ...(result ? { result } : {}),
        ...(challenger ? { challenger } : {}),
        number,
        window,
        order: part,
      });
      while (inFlight.length >= IN_FLIGHT) await complete(inFlight.shift()!);
    }
  }

  if (!deps.signal?.aborted) {
    while (inFlight.length > 0) await complete(inFlight.shift()!);
    return false;
  }
  // Interrupted: write what comes back in time, in order; what does not is read again by the next attempt (a
  // window is written whole or not at all).
  const deadline = performance.now() + DRAIN_MS;
  while (inFlight.length > 0) {
    const item = inFlight[0]!;
    if (item.result && !(await settlesBefore(item.result, deadline))) break;
    inFlight.shift();
    await complete(item);
  }
  return true;
}

/** Window indexes sorted by record length (stable: ties keep input order). Undecodable records sort first. */
function sortedByLength(
  records: readonly SourceRecord[],
  lengthOf: (rec: DecodedRecord) => number,
): number[] {
  const keys = records.map((rec) => (rec.error ? -1 : lengthOf(rec)));
  return records.map((_, i) => i).sort((a, b) => keys[a]! - keys[b]! || a - b);
}

/** A bucketed window's results in input order. */
function gather(window: Window, columns: number): BatchRows {
  return gatherWindowRows(window.batch, window, columns);
}

async function prepare(batch: ShardBatch, features: FeatureBuilder): Promise<Prepared> {
  const errors = new Map<number, { reason: ErrorReason; message: string }>();
  const decoded: DecodedRecord[] = [];
  const decodedIndex: number[] = [];
  batch.records.forEach((rec, i) => {
    if (rec.error) errors.set(i, { reason: rec.error.reason, message: rec.error.message });
    else {
      decoded.push(rec);
      decodedIndex.push(i);
    }
  });
  if (decoded.length === 0) return { batch, feeds: {}, included: [], errors };
  const built = await features.build(decoded);
  for (const issue of built.issues) {
    errors.set(decodedIndex[issue.index]!, { reason: issue.reason, message: issue.message });
  }
  return { batch, feeds: built.feeds, included: built.included.map((j) => decodedIndex[j]!), errors };
}

/** Outputs -> prediction values in record order, and the error rows of the batch (batch-rows.ts). */
async function assemble(
  item: Prepared,
  result: InferenceResult | undefined,
  post: Postprocessor,
): Promise<BatchRows> {
  // The feeds came back with the result (they were moved to the thread for the run).
  const rows = await assembleBatchRows(item, result, post, {
    errors: item.errors,
    feeds: result?.feeds ?? item.feeds,
    model: 'model',
  });
  // Columnar batches carry their model inputs and identity values as columns: the writer takes them from there.
  return isColumnar(item.batch)
    ? { ...rows, inputs: item.batch.columnar.inputs, identity: item.batch.columnar.identity }
    : rows;
}

/** Whether `promise` settles before `deadline` (performance.now() time). */
async function settlesBefore(promise: Promise<unknown>, deadline: number): Promise<boolean> {
  const wait = deadline - performance.now();
  if (wait <= 0) return false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), wait);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The shard's records: columnar batches where the shard can take them (columnar-stream.ts), else records. */
/** Decode threads lent to a shard by the worker host (WorkerDeps.decodePools), kept again if it succeeds. */
interface LentDecodePool {
  readonly threads: number;
  readonly plan: ColumnarPlan;
  readonly pool: DecodePool;
  readonly reused: boolean;
}

function openStream(
  input: ObjectStore,
  plan: Plan,
  shardId: number,
  io: ModelIo,
  ranges: Awaited<ReturnType<typeof remainingRanges>>,
  readOptions: CsvReadOptions,
  challenger: boolean,
  deps: WorkerDeps,
): { stream: RecordStream | ColumnarStream; lent?: LentDecodePool } {
  const columnar =
    deps.columnar === false ? undefined : columnarPlanOf(plan.spec, io.identityTypes, challenger);
  if (!columnar) return { stream: new RecordStream(input, plan.spec.input.format, ranges, readOptions) };
  if (columnar.format === 'parquet') {
    // Parquet is read column by column on this thread. With another core, one decode thread counts the input
    // summaries (ColumnarStreamOptions.counting), as the first decode thread of a CSV shard does.
    const cores = deps.cores ?? os.availableParallelism();
    const counting =
      cores > 1 && deps.decodeThreads !== 0
        ? (deps.decodePools?.take(1, columnar) ?? { pool: DecodePool.start(1, columnar), reused: false })
        : undefined;
    const stream = new ColumnarStream(input, ranges, columnar, {
      threads: 0,
      ...(counting ? { counting: counting.pool } : {}),
      ...(deps.nativeParquet !== false
        ? {
            nativeParquet: {
              reader: duckdbParquetReader,
              // Named as the shard's staging files: a killed worker's copy is removed by the next (staging.ts).
              stagePath: () => stagingPath(deps.tmpDir ?? os.tmpdir(), shardId, 0),
            },
          }
        : {}),
    });
    return { stream, ...(counting ? { lent: { threads: 1, plan: columnar, ...counting } } : {}) };
  }
  const threads = deps.decodeThreads ?? defaultDecodeThreads(ranges, deps.decodeBlockBytes, deps.cores);
  const taken = threads > 0 ? deps.decodePools?.take(threads, columnar) : undefined;
  const stream = new ColumnarStream(input, ranges, columnar, {
    threads,
    ...(taken ? { pool: taken.pool } : {}),
    ...(deps.decodeBlockBytes ? { blockBytes: deps.decodeBlockBytes } : {}),
  });
  return { stream, ...(taken ? { lent: { threads, plan: columnar, ...taken } } : {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// Batch size

async function chooseBatchSize(
  runId: string,
  shardId: number,
  spec: JobSpec,
  shardRecords: number,
  resume: Checkpoint | undefined,
  stream: RecordStream | ColumnarStream,
  io: ModelIo,
  thread: InferenceThread,
  deps: WorkerDeps,
): Promise<{ batchSize: number; probe?: BatchSizeProbe }> {
  // A resumed shard keeps its batch size: its remaining batches must be the ones an uninterrupted run forms.
  if (resume) return { batchSize: resume.batchSize };
  if (spec.run.batchSize !== 'auto') return { batchSize: spec.run.batchSize };
  const budget = deps.memoryBudgetBytes ?? (await defaultMemoryBudget(os.totalmem()));
  // The same run, model and settings on the same machine: the probe would measure the same thing again.
  const key = JSON.stringify([runId, deps.providers ?? null, deps.threads ?? null, budget]);
  const earlier = deps.batchSizes?.get(key);
  if (earlier) {
    deps.log.info('batch size reused', { batchSize: earlier.chosen, probedBy: earlier.probedBy });
    return { batchSize: earlier.chosen, probe: earlier };
  }
  // A pilot sizes the sample: enough records for the largest batch, unless that would not fit the budget anyway.
  const pilot = await sampleOf(stream, io, PROBE_PILOT);
  const first = pilot.rows > 0 ? await pilot.build(0, pilot.rows) : undefined;
  const perRecord = first && first.rows > 0 ? feedBytes(first.feeds) / first.rows : 0;
  const sampleSize =
    perRecord > 0
      ? Math.max(PROBE_PILOT, Math.min(MAX_BATCH, Math.floor(budget / 8 / perRecord)))
      : MAX_BATCH;
  const sample = sampleSize > PROBE_PILOT ? await sampleOf(stream, io, sampleSize) : pilot;
  const probe = await probeBatchSize(thread, sample, {
    memoryBudgetBytes: budget,
    inFlight: IN_FLIGHT + 1,
    shardRecords,
    ...(deps.signal ? { signal: deps.signal } : {}),
    ...(deps.probeClock ? { now: deps.probeClock } : {}),
  });
  deps.batchSizes?.set(key, { ...probe, probedBy: shardId });
  deps.log.info('batch size chosen', {
    batchSize: probe.chosen,
    memoryBudgetBytes: budget,
    sampleRecords: probe.sampleRecords,
    probeMs: probe.probeMs,
    trials: probe.trials.map(
      (t) => `${t.batchSize}: ${t.recordsPerSecond}/s${t.stoppedBecause ? ` (${t.stoppedBecause})` : ''}`,
    ),
  });
  return { batchSize: probe.chosen, probe };
}

/** The first `n` records of the stream (which stay in the stream), ordered as the pipeline orders a window. */
async function sampleOf(stream: RecordStream | ColumnarStream, io: ModelIo, n: number): Promise<ProbeSample> {
  if (stream instanceof ColumnarStream) return stream.sample(await stream.peek(n));
  const decoded = (await stream.peek(n)).filter((r): r is DecodedRecord => !r.error);
  const ordered = io.lengthOf ? sortedByLength(decoded, io.lengthOf).map((i) => decoded[i]!) : decoded;
  return {
    rows: ordered.length,
    build: async (start, count) => {
      const built = await io.features.build(ordered.slice(start, start + count));
      return { feeds: built.feeds, rows: built.included.length };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Run state

/** The run and the shard a task runs (plan.json and the round file), for a failure record. */
export async function shardOfTask(
  store: ObjectStore,
  task: WorkerTask,
): Promise<{ runId: string; shardId: number }> {
  const plan = await readPlan(store, task.runUri);
  const layout = runLayout(plan.spec.output.uri, plan.runId, plan.runDate);
  return { runId: plan.runId, shardId: await resolveShardId(store, layout, plan, task) };
}

async function readPlan(store: ObjectStore, runUri: string): Promise<Plan> {
  const uri = joinUri(runUri, 'plan.json');
  const parsed = planSchema.safeParse(await getJson(store, uri));
  if (!parsed.success) throw new RunStateError(`${uri} is not a valid plan: ${parsed.error.message}`);
  return parsed.data;
}

async function resolveShardId(
  store: ObjectStore,
  layout: RunLayout,
  plan: Plan,
  task: WorkerTask,
): Promise<number> {
  let shardId = task.arrayIndex;
  if (task.round > 0) {
    const uri = layout.roundUri(task.round);
    const parsed = roundSchema.safeParse(await getJson(store, uri));
    if (!parsed.success) throw new RunStateError(`${uri} is not a valid round file: ${parsed.error.message}`);
    const id = parsed.data.shardIds[task.arrayIndex];
    if (id === undefined) {
      throw new RunStateError(
        `array index ${task.arrayIndex} is beyond round ${task.round}'s ${parsed.data.shardIds.length} shards`,
      );
    }
    shardId = id;
  }
  if (shardId >= plan.shardCount) {
    throw new RunStateError(`shard ${shardId} does not exist: the plan has ${plan.shardCount} shards`);
  }
  return shardId;
}

async function readMarker(
  store: ObjectStore,
  layout: RunLayout,
  shardId: number,
): Promise<ShardMarker | undefined> {
  const uri = layout.markerUri(shardId);
  if (!(await store.tryHead(uri))) return undefined;
  const parsed = shardMarkerSchema.safeParse(await getJson(store, uri).catch(() => undefined));
  // A corrupt marker is treated as absent: the shard runs again and overwrites it.
  return parsed.success && parsed.data.shardId === shardId ? parsed.data : undefined;
}

/**
 * This shard's line of shards.jsonl: located through shards.index.json and fetched with one ranged GET of exactly
 * its bytes (shards.jsonl is ~126 MiB for a million input objects). A run planned without an index is streamed up
 * to the line.
 */
async function readShard(store: ObjectStore, layout: RunLayout, shardId: number): Promise<Shard> {
  return readShardLine(store, layout, shardId);
}

/** What an inference thread was started with: a kept thread serves a shard with the same key only. */
function inferenceThreadKey(plan: Plan, deps: WorkerDeps): string {
  return JSON.stringify([
    plan.model.sha256,
    deps.providers ?? null,
    deps.threads ?? null,
    deps.sessionFactory ?? null,
  ]);
}

/** Loads the model once for this worker process, in the inference thread, after checking it is the planned one. */
async function startInference(store: ObjectStore, plan: Plan, deps: WorkerDeps): Promise<InferenceThread> {
  const verified = (async () => {
    const bytes = await store.get(plan.model.artifactUri);
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest !== plan.model.sha256) {
      // The artifact changed after planning: running it would attribute predictions to the wrong model.
      throw new ModelError(
        `${plan.model.artifactUri} changed since the run was planned (sha256 ${digest}, planned ${plan.model.sha256})`,
      );
    }
    return bytes;
  })();
  return InferenceThread.start(verified, {
    ...(deps.providers ? { providers: deps.providers } : {}),
    ...(deps.threads ? { threads: deps.threads } : {}),
    ...(deps.sessionFactory ? { sessionFactory: deps.sessionFactory } : {}),
    log: (message, fields) => deps.log.warn(message, fields),
  });
}
