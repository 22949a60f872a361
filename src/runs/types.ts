/**
 * What the stages of a run hand each other through storage: the plan, the shard list, round files and completion
 * markers. Each is parsed with a schema when read, because it crosses a process (and often a machine) boundary.
 */
import { z } from 'zod';
import { shardInstanceSchema } from '../cost/instance.js';
import { jobSpecSchema } from '../spec/schema.js';
import { outputSummariesSchema } from './stats.js';

/** One input object as it was when the run was planned. */
export const inputObjectSchema = z.strictObject({
  uri: z.string(),
  size: z.number().int().nonnegative(),
  etag: z.string(),
  versionId: z.string().optional(),
});
export type InputObject = z.infer<typeof inputObjectSchema>;

/**
 * A contiguous piece of one input object.
 * - jsonl/csv: a byte range [start, end). The range owns every line that *starts* inside it; a reader that starts
 *   at `start > 0` skips the partial line it lands in. A CSV header is always read from byte 0.
 * - parquet: row groups [rowGroupStart, rowGroupEnd), with `rowStart` the index of the first row of the first group.
 */
export const inputRangeSchema = z.strictObject({
  uri: z.string(),
  /** The object's ETag at plan time: readers pin their reads to it (`ReadOptions.ifMatch`, `pinObjects`). */
  etag: z.string(),
  /** The object's version at plan time, when the snapshot has one (never from a prefix listing: see ObjectInfo). */
  versionId: z.string().optional(),
  size: z.number().int().nonnegative(),
  start: z.number().int().nonnegative(),
  end: z.number().int().nonnegative(),
  rowGroupStart: z.number().int().nonnegative().optional(),
  rowGroupEnd: z.number().int().nonnegative().optional(),
  rowStart: z.number().int().nonnegative().optional(),
  /** Exact record count where the planner knows it (Parquet metadata), otherwise absent. */
  records: z.number().int().nonnegative().optional(),
});
export type InputRange = z.infer<typeof inputRangeSchema>;

/** One line of shards.jsonl. */
export const shardSchema = z.strictObject({
  id: z.number().int().nonnegative(),
  ranges: z.array(inputRangeSchema).min(1),
  bytes: z.number().int().nonnegative(),
  /** Records if known exactly, otherwise an estimate (see `recordsExact`). */
  records: z.number().int().nonnegative(),
  recordsExact: z.boolean(),
});
export type Shard = z.infer<typeof shardSchema>;

/** One shard in shards.index.json: where its line is in shards.jsonl, and what it was planned to hold. */
export const shardIndexEntrySchema = z.strictObject({
  id: z.number().int().nonnegative(),
  /** Byte offset of the shard's line in shards.jsonl. */
  offset: z.number().int().nonnegative(),
  /** Bytes of the line, its newline included. */
  length: z.number().int().positive(),
  records: z.number().int().nonnegative(),
  recordsExact: z.boolean(),
  /** Input bytes of the shard (`Shard.bytes`). */
  bytes: z.number().int().nonnegative(),
});
export type ShardIndexEntry = z.infer<typeof shardIndexEntrySchema>;

/**
 * shards.index.json: written by Plan right after shards.jsonl (and before plan.json, the commit point). Small: one
 * entry per shard (at most 10,000), whatever the number of input objects.
 */
export const shardIndexSchema = z.strictObject({
  version: z.literal(1),
  runId: z.string(),
  /** Size and sha256 of shards.jsonl as written. */
  shardsBytes: z.number().int().nonnegative(),
  shardsSha256: z.string().regex(/^[0-9a-f]{64}$/),
  shards: z.array(shardIndexEntrySchema),
});
export type ShardIndex = z.infer<typeof shardIndexSchema>;

/** Where Plan found a model companion file (see resolveCompanion in planning/plan-run.ts). */
export const COMPANION_LOCATIONS = ['archive', 'artifact', 'spec', 'uri'] as const;
export type CompanionLocation = (typeof COMPANION_LOCATIONS)[number];

export const resolvedModelSchema = z.strictObject({
  source: z.enum(['registry', 'uri']),
  group: z.string().optional(),
  version: z.number().int().optional(),
  /** Approval status at plan time (registry models). */
  status: z.string().optional(),
  /** The .onnx artifact every shard loads. */
  artifactUri: z.string(),
  etag: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Label files and other companions, resolved to URIs: spec reference -> URI. */
  files: z.record(z.string(), z.string()).default({}),
  /**
   * Where each companion of `files` was found: `archive` (inside the model archive), `artifact` (next to the model
   * artifact), `spec` (next to the job spec) or `uri` (the spec gave a full URI). Absent in plans made before it
   * was recorded.
   */
  fileLocations: z.record(z.string(), z.enum(COMPANION_LOCATIONS)).optional(),
  /**
   * When the model came as an archive (model.tar.gz): the archive as planned. `artifactUri` is then the .onnx that
   * Plan extracted from it into `<runUri>model/`, and `sha256` that file's digest.
   */
  archive: z
    .strictObject({
      uri: z.string(),
      etag: z.string(),
      size: z.number().int().nonnegative(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
    })
    .optional(),
});
export type ResolvedModel = z.infer<typeof resolvedModelSchema>;

/** plan.json: everything a worker and Finalize need, frozen at plan time. */
export const planSchema = z.strictObject({
  version: z.literal(1),
  runId: z.string(),
  runDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  createdAt: z.string(),
  spec: jobSpecSchema,
  model: resolvedModelSchema,
  /** The challenger model (`model.challenger`, docs/adr/0020), resolved like `model`. */
  challenger: resolvedModelSchema.optional(),
  input: z.strictObject({
    objects: z.number().int().nonnegative(),
    bytes: z.number().int().nonnegative(),
    /** sha256 over the sorted snapshot (uri, size, etag, versionId): the input's identity in the audit record. */
    snapshotSha256: z.string(),
    /** Where the full snapshot is stored (one InputObject per line). */
    snapshotUri: z.string(),
  }),
  shardCount: z.number().int().nonnegative(),
  maxRounds: z.number().int().nonnegative(),
});
export type Plan = z.infer<typeof planSchema>;

/** rounds/<r>.json for r >= 1: the shards retried in that round, in array-index order. */
export const roundSchema = z.strictObject({
  round: z.number().int().positive(),
  shardIds: z.array(z.number().int().nonnegative()),
});
export type Round = z.infer<typeof roundSchema>;

export const ERROR_REASONS = [
  'DECODE_ERROR', // the record's bytes could not be parsed (bad JSON, bad CSV quoting)
  'MISSING_VALUE', // a column the model needs is absent or null
  'INVALID_VALUE', // a value has the wrong type or is not a finite number
  'INFERENCE_ERROR', // the model failed on this record
  'POSTPROCESS_ERROR', // the model output could not be turned into columns
] as const;
export type ErrorReason = (typeof ERROR_REASONS)[number];

/**
 * One row of an errors file. Carries the same identity as a prediction row: with an `input.id`, the id under that
 * column's name (src/runs/error-rows.ts adds it).
 */
export interface ErrorRow {
  readonly _shard: number;
  readonly _source: string;
  readonly _offset: number;
  readonly reason: ErrorReason;
  readonly message: string;
}

export const outputFileSchema = z.strictObject({
  uri: z.string(),
  rows: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  etag: z.string(),
});
export type OutputFile = z.infer<typeof outputFileSchema>;

/** One batch size tried by the `auto` probe. */
export const batchSizeTrialSchema = z.strictObject({
  batchSize: z.number().int().positive(),
  /** Inference throughput at this size (session.run only). */
  recordsPerSecond: z.number().nonnegative(),
  /** Estimated worker memory with batches of this size in flight. */
  estimatedBytes: z.number().nonnegative(),
  /** Why this size was not taken further, when it was the last tried. */
  stoppedBecause: z.string().optional(),
});

/** How the worker chose its batch size when the spec says `auto`. */
export const batchSizeProbeSchema = z.strictObject({
  chosen: z.number().int().positive(),
  memoryBudgetBytes: z.number().nonnegative(),
  /** Records the probe ran on (the first records of the shard). */
  sampleRecords: z.number().int().nonnegative(),
  probeMs: z.number().nonnegative(),
  trials: z.array(batchSizeTrialSchema),
  /**
   * Set when this shard did not probe: a local worker host ran the probe for an earlier shard of the same run (this
   * id) with the same settings, and the shard took its choice. Absent: the probe above ran for this shard.
   */
  probedBy: z.number().int().nonnegative().optional(),
});
export type BatchSizeProbe = z.infer<typeof batchSizeProbeSchema>;

/** shards/<id>.json: written last by a worker; a shard counts only once this exists and parses. */
export const shardMarkerSchema = z.strictObject({
  version: z.literal(1),
  runId: z.string(),
  shardId: z.number().int().nonnegative(),
  round: z.number().int().nonnegative(),
  attempt: z.number().int().positive(),
  records: z.number().int().nonnegative(),
  predictions: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  errorsByReason: z.record(z.string(), z.number().int().nonnegative()),
  outputs: z.array(outputFileSchema),
  errorsFile: outputFileSchema.optional(),
  /** Output column name -> parquet logical type, as written. */
  columns: z.record(z.string(), z.string()),
  timings: z.strictObject({
    readMs: z.number().nonnegative(),
    decodeMs: z.number().nonnegative(),
    inferMs: z.number().nonnegative(),
    writeMs: z.number().nonnegative(),
    totalMs: z.number().nonnegative(),
  }),
  executionProvider: z.string(),
  batchSize: z.number().int().positive(),
  startedAt: z.string(),
  finishedAt: z.string(),
  // Optional fields below were added after version 1 markers existed; readers must accept their absence.
  /** Per prediction column: a mergeable distribution summary (src/runs/stats.ts), for drift checks. */
  summaries: outputSummariesSchema.optional(),
  /** Per tabular input column the model reads (`model.inputs[].from.columns`): a numeric summary, for input drift. */
  inputSummaries: outputSummariesSchema.optional(),
  /** How `batchSize: auto` was resolved: the probe's measurements and the choice. */
  batchSizeProbe: batchSizeProbeSchema.optional(),
  /** ONNX Runtime intra-op threads. */
  threads: z.number().int().positive().optional(),
  /**
   * Work done across attempts: a shard interrupted (Spot reclaim, SIGTERM) resumes after its last checkpointed
   * chunk, so its outputs can come from several attempts. `timings` add up every attempt.
   */
  resume: z
    .strictObject({
      /** Attempts that wrote chunks of this shard (1 when it ran uninterrupted). */
      attempts: z.number().int().positive(),
      /** Chunks and records the last attempt found already done. */
      resumedChunks: z.number().int().nonnegative(),
      resumedRecords: z.number().int().nonnegative(),
    })
    .optional(),
  /** The instance the shard's last attempt ran on, for the run's cost (src/cost/instance.ts). */
  instance: shardInstanceSchema.optional(),
  /** Seconds the shard kept its instance busy, every attempt that contributed included (timings.totalMs / 1000). */
  seconds: z.number().nonnegative().optional(),
});
export type ShardMarker = z.infer<typeof shardMarkerSchema>;
