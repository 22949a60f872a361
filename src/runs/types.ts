/**
 * What the stages of a run hand each other through storage: the plan, the shard list, round files and completion
 * markers. Each is parsed with a schema when read, because it crosses a process (and often a machine) boundary.
 */
import { z } from 'zod';
import { jobSpecSchema } from '../spec/schema.js';

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
  etag: z.string(),
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

/** One row of an errors file. Carries the same identity as a prediction row. */
export interface ErrorRow {
  readonly id?: string | number | null;
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
});
export type ShardMarker = z.infer<typeof shardMarkerSchema>;
