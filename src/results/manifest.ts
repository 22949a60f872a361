/**
 * manifest.json: the audit record of a run, written by Finalize whether the run succeeded or not. It answers
 * "what ran, on what, with which model, what came out, and did it pass" without opening any other file, and it is
 * parsed back with `manifestSchema` by `batch-infer status` / `report`.
 *
 * Everything that shapes a manifest is here (`buildManifest`), so the writer and the readers agree.
 */
import { runErrorSchema } from '../runs/failures.js';
import { z } from 'zod';
import { jobSpecSchema } from '../spec/schema.js';
import type { RunLayout } from '../runs/layout.js';
import { mergeAllSummaries, outputSummariesSchema, type OutputSummaries } from '../runs/stats.js';
import { resolvedModelSchema, type Plan, type ShardMarker } from '../runs/types.js';
import { manifestHistorySchema } from './history-schema.js';
import { runCostSchema } from '../cost/cost.js';
import { challengerManifestSchema } from '../challenger/manifest-schema.js';
import type { ValidationReport } from './validate.js';

export const MANIFEST_VERSION = 1;

/** Failed shards listed with details; ids are always listed in full. Keeps a broken 10,000-shard run readable. */
export const MAX_FAILED_SHARD_DETAILS = 1_000;

const count = z.number().int().nonnegative();

const manifestFileSchema = z.object({
  uri: z.string(),
  shardId: count,
  rows: count,
  bytes: count,
  etag: z.string(),
});
export type ManifestFile = z.infer<typeof manifestFileSchema>;

const checkSchema = z.object({
  name: z.string(),
  description: z.string(),
  threshold: z.union([z.number(), z.string()]),
  actual: z.union([z.number(), z.string()]),
  passed: z.boolean(),
  message: z.string().optional(),
});

const failedShardSchema = z.object({
  shardId: count,
  /** Why the shard does not count at finalize time (missing marker, corrupt counts...). */
  problem: z.string(),
  /** The last round that ran the shard, from the reconcile records. */
  lastRound: count.optional(),
  /** What that round's Batch job reported, when it failed, in one line. */
  lastError: z.string().optional(),
  /** The failed Batch child that ran the shard in that round, when it could be found (see job-inspector.ts). */
  exitCode: z.number().optional(),
  statusReason: z.string().optional(),
  /** The container's reason, e.g. `OutOfMemoryError: Container killed due to memory usage`. */
  reason: z.string().optional(),
  /** CloudWatch Logs stream (or local log file) of its last attempt. */
  logStream: z.string().optional(),
  jobId: z.string().optional(),
});
export type ManifestFailedShard = z.infer<typeof failedShardSchema>;

/** `manifest.drift`: exactly this shape (the Finalize Lambda reads it for the Drift metric). */
export const driftSchema = z.object({
  /** The run compared against: the previous succeeded run of the same job. */
  baselineRunId: z.string(),
  /** The largest column PSI. */
  maxPsi: z.number().nonnegative(),
  /**
   * PSI per prediction column compared. A vector column (embeddings, lists) adds `<column>.norm` (PSI of the
   * vectors' norms), `<column>.elements` (of all their values) and `<column>.dimensions` (the largest PSI of one
   * position, for short vectors); `vectors` has the rest.
   */
  columns: z.record(z.string(), z.number().nonnegative()),
  /** Per vector column: how its vectors moved (see drift.ts `vectorDrift`). */
  vectors: z
    .record(
      z.string(),
      z.object({
        normPsi: z.number().nonnegative().optional(),
        elementsPsi: z.number().nonnegative().optional(),
        /** Per-position PSI summarised, for vectors no longer than MAX_POSITION_SUMMARIES. */
        dimensionsPsiMax: z.number().nonnegative().optional(),
        dimensionsPsiMean: z.number().nonnegative().optional(),
        /** 1 - cosine similarity of the two runs' mean vectors (0: same direction, 1: orthogonal, 2: opposite). */
        meanCosineDistance: z.number().nonnegative().optional(),
        /** |mean - baseline mean| / |baseline mean|. */
        meanRelativeShift: z.number().nonnegative().optional(),
      }),
    )
    .optional(),
});
export type Drift = z.infer<typeof driftSchema>;

const shardTimingsSchema = z.object({
  readMs: z.number().nonnegative(),
  decodeMs: z.number().nonnegative(),
  inferMs: z.number().nonnegative(),
  writeMs: z.number().nonnegative(),
  totalMs: z.number().nonnegative(),
});

export const manifestSchema = z.object({
  version: z.literal(MANIFEST_VERSION),
  runId: z.string(),
  runDate: z.string(),
  status: z.enum(['SUCCEEDED', 'FAILED']),
  /** Why the run failed. `PublishFailed`: validation passed but the catalogue refused the run. */
  reason: z.enum(['ValidationFailed', 'ShardsFailed', 'PublishFailed']).optional(),
  message: z.string(),
  /** The first failed shard's reason, from its failure record (src/runs/failures.ts), when a worker left one. */
  error: runErrorSchema.optional(),
  spec: jobSpecSchema,
  /** The model every shard loaded, as resolved at plan time, and the name the catalogue knows it by. */
  model: resolvedModelSchema.extend({ name: z.string() }),
  input: z.object({
    objects: count,
    bytes: count,
    snapshotSha256: z.string(),
    snapshotUri: z.string(),
  }),
  counts: z.object({
    shards: count,
    completedShards: count,
    /** Over completed shards: failed shards' records are not known. */
    records: count,
    predictions: count,
    errors: count,
    errorsByReason: z.record(z.string(), count),
    errorRate: z.number().nonnegative(),
    failedShards: z.object({
      count,
      ids: z.array(count),
      /** The first MAX_FAILED_SHARD_DETAILS failed shards; `detailsOmitted` counts the rest. */
      details: z.array(failedShardSchema),
      detailsOmitted: count,
    }),
  }),
  timings: z.object({
    plannedAt: z.string(),
    finalizedAt: z.string(),
    /** From planning to finalizing: what the user waited. */
    wallMs: z.number().nonnegative(),
    /** Rounds run: 1 when no shard needed a retry. */
    rounds: count,
    firstShardStartedAt: z.string().optional(),
    lastShardFinishedAt: z.string().optional(),
    /** Summed over completed shards: compute time, not wall time. */
    shards: shardTimingsSchema,
  }),
  /** How the completed shards ran: shards per execution provider and per batch size. */
  execution: z
    .object({
      providers: z.record(z.string(), count),
      batchSizes: z.record(z.string(), count),
    })
    .optional(),
  /**
   * Per prediction column, the distribution over the whole run (completed shards' summaries merged): what a drift
   * check compares across runs. Absent when no shard reported summaries.
   */
  summaries: outputSummariesSchema.optional(),
  /** Why `summaries` is absent although shards reported them (they could not be merged). */
  summariesError: z.string().optional(),
  /**
   * Per tabular input column the model reads (`model.inputs[].from.columns`), the distribution over the whole run:
   * drift compares them as `input.<column>`. Absent when no shard reported them (older workers, no tabular input).
   */
  inputSummaries: outputSummariesSchema.optional(),
  /** Why `inputSummaries` is absent although shards reported them (they could not be merged). */
  inputSummariesError: z.string().optional(),
  /**
   * PSI of each prediction column against the previous succeeded run of the same job (drift.ts). Absent on the
   * job's first run, and when no column could be compared.
   */
  drift: driftSchema.optional(),
  /** Why `drift` is absent although this run has summaries (the baseline could not be read). */
  driftError: z.string().optional(),
  /**
   * Duration, records/s, error rate and record count against the job's last succeeded runs (history-checks.ts),
   * or "not enough history". Written by Finalize after the rest of the manifest; absent in older manifests.
   */
  history: manifestHistorySchema.optional(),
  /** Why `history` is absent (the job's history could not be read). */
  historyError: z.string().optional(),
  /**
   * What the run's completed shards cost (src/cost/cost.ts): shard seconds times the price table's hourly price of
   * the instance each ran on, by Spot / On-Demand, round and instance type. Absent in older manifests.
   */
  cost: runCostSchema.optional(),
  outputs: z.object({
    /** Table location. */
    outputUri: z.string(),
    /** This run's predictions partition. */
    partitionUri: z.string(),
    errorsPrefixUri: z.string(),
    /** Output column -> written (Parquet) type. */
    columns: z.record(z.string(), z.string()),
    /** Prediction files of completed shards: exactly what is published. */
    files: z.array(manifestFileSchema),
    errorsFiles: z.array(manifestFileSchema),
    /** Output format of the prediction files. */
    format: z.enum(['parquet', 'jsonl', 'csv']).optional(),
    /** `output.singleFile`: the predictions assembled into one file, when the run passed. */
    singleFile: z.object({ uri: z.string(), bytes: count, etag: z.string(), rows: count }).optional(),
    /**
     * Files found in the run's partition that no accepted shard claims (left by failed attempts or rejected
     * markers), deleted before publishing so the catalogue's partition holds exactly the validated outputs.
     */
    strayFilesRemoved: z.object({ count, uris: z.array(z.string()) }).optional(),
  }),
  validation: z.object({
    passed: z.boolean(),
    checks: z.array(checkSchema),
  }),
  catalog: z.object({
    table: z.string(),
    published: z.boolean(),
    publishedAt: z.string().optional(),
    error: z.string().optional(),
  }),
  /** The build that finalized the run (see code-version.ts). */
  codeVersion: z.string(),
  /** The worker image the run's Batch jobs used, when the deployment records it. */
  workerImage: z.string().optional(),
  /**
   * When the schedule that started the run was due (EventBridge Scheduler's scheduled time, ISO 8601, from the
   * run's RunState.scheduledTime); absent for runs not started by a schedule.
   */
  scheduledTime: z.iso.datetime({ offset: true }).optional(),
  /** The challenger model, its table and its comparison with the champion (docs/adr/0020). */
  challenger: challengerManifestSchema.optional(),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** Stray files named in the manifest; the count is always complete. */
export const MAX_LISTED_STRAY_FILES = 100;

/** Parses a manifest read back from storage; throws a ZodError naming the bad field. */
export function parseManifest(value: unknown): Manifest {
  return manifestSchema.parse(value);
}

export interface ManifestInput {
  readonly plan: Plan;
  readonly layout: RunLayout;
  readonly report: ValidationReport;
  /** Details of failed shards, in the report's order (problem plus what the reconcile records knew). */
  readonly failedShards: readonly ManifestFailedShard[];
  /** Rounds that ran (state.round + 1). */
  readonly rounds: number;
  readonly finalizedAt: Date;
  readonly catalog: { readonly table: string; readonly publishedAt?: string; readonly error?: string };
  readonly codeVersion: string;
  readonly workerImage?: string;
  readonly singleFile?: Manifest['outputs']['singleFile'];
  /** URIs of the stray files removed from the partition. */
  readonly strayFilesRemoved?: readonly string[];
  /** The accepted shards' summaries merged (`runSummaries`), when the caller has them already. */
  readonly summaries?: ReturnType<typeof runSummaries>;
  /** Drift against the previous succeeded run, or why it could not be computed. */
  readonly drift?: Drift;
  readonly driftError?: string;
}

/** The model's name in the catalogue: the registry group, or the artifact's file name without `.onnx`. */
export function modelName(model: Plan['model']): string {
  if (model.group) return model.group;
  const file = model.artifactUri.split('/').pop() ?? model.artifactUri;
  return file.replace(/\.onnx$/i, '') || model.artifactUri;
}

export function buildManifest(input: ManifestInput): Manifest {
  const { plan, layout, report, catalog } = input;
  const published = report.passed && catalog.publishedAt !== undefined && catalog.error === undefined;
  const status = published ? 'SUCCEEDED' : 'FAILED';
  const reason = report.reason ?? (published ? undefined : 'PublishFailed');
  const message = report.passed
    ? published
      ? `${report.message}; published to table ${catalog.table}`
      : `validation passed but publishing to table ${catalog.table} failed: ${catalog.error ?? 'unknown error'}`
    : report.message;

  const timings = { readMs: 0, decodeMs: 0, inferMs: 0, writeMs: 0, totalMs: 0 };
  let firstStart: string | undefined;
  let lastFinish: string | undefined;
  const files: ManifestFile[] = [];
  const errorsFiles: ManifestFile[] = [];
  for (const m of report.accepted) {
    timings.readMs += m.timings.readMs;
    timings.decodeMs += m.timings.decodeMs;
    timings.inferMs += m.timings.inferMs;
    timings.writeMs += m.timings.writeMs;
    timings.totalMs += m.timings.totalMs;
    // ISO-8601 UTC strings order like the instants they name.
    if (firstStart === undefined || m.startedAt < firstStart) firstStart = m.startedAt;
    if (lastFinish === undefined || m.finishedAt > lastFinish) lastFinish = m.finishedAt;
    for (const f of m.outputs) files.push(fileOf(m, f));
    if (m.errorsFile) errorsFiles.push(fileOf(m, m.errorsFile));
  }

  const providers: Record<string, number> = {};
  const batchSizes: Record<string, number> = {};
  for (const m of report.accepted) {
    providers[m.executionProvider] = (providers[m.executionProvider] ?? 0) + 1;
    batchSizes[String(m.batchSize)] = (batchSizes[String(m.batchSize)] ?? 0) + 1;
  }
  const summaries = input.summaries ?? runSummaries(report.accepted);

  const plannedAtMs = Date.parse(plan.createdAt);
  const errorRate = report.totals.records === 0 ? 0 : report.totals.errors / report.totals.records;
  return {
    version: MANIFEST_VERSION,
    runId: plan.runId,
    runDate: plan.runDate,
    status,
    ...(reason && { reason }),
    message,
    spec: plan.spec,
    model: { ...plan.model, name: modelName(plan.model) },
    input: { ...plan.input },
    counts: {
      shards: plan.shardCount,
      completedShards: report.accepted.length,
      records: report.totals.records,
      predictions: report.totals.predictions,
      errors: report.totals.errors,
      errorsByReason: { ...report.totals.errorsByReason },
      errorRate,
      failedShards: {
        count: report.failedShards.length,
        ids: report.failedShards.map((f) => f.shardId),
        details: input.failedShards.slice(0, MAX_FAILED_SHARD_DETAILS),
        detailsOmitted: Math.max(0, input.failedShards.length - MAX_FAILED_SHARD_DETAILS),
      },
    },
    timings: {
      plannedAt: plan.createdAt,
      finalizedAt: input.finalizedAt.toISOString(),
      wallMs: Number.isFinite(plannedAtMs) ? Math.max(0, input.finalizedAt.getTime() - plannedAtMs) : 0,
      rounds: input.rounds,
      ...(firstStart !== undefined && { firstShardStartedAt: firstStart }),
      ...(lastFinish !== undefined && { lastShardFinishedAt: lastFinish }),
      shards: timings,
    },
    ...(report.accepted.length > 0 && { execution: { providers, batchSizes } }),
    ...summaries,
    ...(input.drift && { drift: input.drift }),
    ...(input.driftError !== undefined && { driftError: input.driftError }),
    outputs: {
      outputUri: layout.outputUri,
      partitionUri: layout.partitionUri,
      errorsPrefixUri: layout.errorsPrefixUri,
      columns: { ...report.columns },
      files,
      errorsFiles,
      format: plan.spec.output.format,
      ...(input.singleFile && { singleFile: input.singleFile }),
      ...(input.strayFilesRemoved &&
        input.strayFilesRemoved.length > 0 && {
          strayFilesRemoved: {
            count: input.strayFilesRemoved.length,
            uris: input.strayFilesRemoved.slice(0, MAX_LISTED_STRAY_FILES),
          },
        }),
    },
    validation: { passed: report.passed, checks: report.checks.map((c) => ({ ...c })) },
    catalog: {
      table: catalog.table,
      published,
      ...(catalog.publishedAt !== undefined && published && { publishedAt: catalog.publishedAt }),
      ...(catalog.error !== undefined && { error: catalog.error }),
    },
    codeVersion: input.codeVersion,
    ...(input.workerImage !== undefined && { workerImage: input.workerImage }),
  };
}

/** The completed shards' output summaries merged into the run's; a merge that fails is reported, not thrown. */
export function runSummaries(accepted: readonly ShardMarker[]): {
  summaries?: OutputSummaries;
  summariesError?: string;
  inputSummaries?: OutputSummaries;
  inputSummariesError?: string;
} {
  return { ...runOutputSummaries(accepted), ...runInputSummaries(accepted) };
}

function runOutputSummaries(accepted: readonly ShardMarker[]): {
  summaries?: OutputSummaries;
  summariesError?: string;
} {
  const reported = accepted.flatMap((m) => (m.summaries ? [m.summaries] : []));
  if (reported.length === 0) return {};
  try {
    return { summaries: mergeAllSummaries(reported) };
  } catch (error) {
    return { summariesError: error instanceof Error ? error.message : String(error) };
  }
}

/** The completed shards' input summaries merged, like the output summaries. */
function runInputSummaries(accepted: readonly ShardMarker[]): {
  inputSummaries?: OutputSummaries;
  inputSummariesError?: string;
} {
  const reported = accepted.flatMap((m) => (m.inputSummaries ? [m.inputSummaries] : []));
  if (reported.length === 0) return {};
  try {
    return { inputSummaries: mergeAllSummaries(reported) };
  } catch (error) {
    return { inputSummariesError: error instanceof Error ? error.message : String(error) };
  }
}

function fileOf(m: ShardMarker, f: ShardMarker['outputs'][number]): ManifestFile {
  return { uri: f.uri, shardId: m.shardId, rows: f.rows, bytes: f.bytes, etag: f.etag };
}
