/**
 * The job spec: what a user writes to describe a batch job. One schema serves the CLI (`batch-infer validate`,
 * `run`), the Plan Lambda and the worker, so a spec that validates locally behaves the same in the account.
 *
 * Every field carries its default here, so downstream code reads a fully resolved `JobSpec` and never re-applies
 * defaults of its own.
 */
import { z } from 'zod';
import { priceOverridesSchema } from '../cost/prices.js';
import {
  inputTensorSpec,
  modelSectionIssues,
  outputColumnType,
  outputTensorSpec,
  processorSpec,
} from './model-io.js';
import { challengerModelSpec, challengerValidationSpec } from './challenger.js';

/** Largest array job AWS Batch accepts; the planner never makes more shards than this. */
export const MAX_SHARDS = 10_000;
/** The most records `run.canary` may run before the fan-out. */
export const MAX_CANARY_RECORDS = 10_000;

const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** Parses `1GiB`, `512 MB`, `1e6` or a plain number of bytes. Returns undefined when it is not a size. */
export function parseByteSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
  const match = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (!match) return undefined;
  const unit = SIZE_UNITS[(match[2] || 'B').toUpperCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.floor(Number(match[1]) * unit);
  return bytes > 0 ? bytes : undefined;
}

const byteSize = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bytes = parseByteSize(value);
  if (bytes === undefined) {
    ctx.addIssue({
      code: 'custom',
      message:
        'must be a positive size such as 1073741824, "512MiB" or "1GiB" (units B, KB, MB, GB, KiB, MiB, GiB)',
    });
    return z.NEVER;
  }
  return bytes;
});

/** Checkpoint every minute of work unless the spec says otherwise (issue 11: a reclaimed host loses at most that). */
export const DEFAULT_CHECKPOINT_SECONDS = 60;
/** Input records per chunk and checkpoint unless the spec says otherwise. */
export const DEFAULT_CHECKPOINT_RECORDS = 250_000;

/**
 * `run.checkpoint`: when a shard worker closes its current output chunk and writes a checkpoint, whichever comes
 * first (src/worker/checkpoint.ts). A chunk always ends on a whole batch, so a resumed shard is exact.
 */
const checkpointSettings = z
  .strictObject({
    /** Input records per chunk (rounded up to whole batches). */
    records: z
      .number()
      .int()
      .min(1, 'must be at least 1 record')
      .max(10_000_000, 'must be at most 10000000 records (a chunk is held in memory until it is written)')
      .default(DEFAULT_CHECKPOINT_RECORDS),
    /**
     * Seconds of work after which the chunk is closed even if it has fewer records: the most work a reclaimed host
     * (Spot reclaims send no SIGTERM to Batch jobs) or a crash can lose. 86400 effectively turns it off.
     */
    seconds: z
      .number()
      .int('must be a whole number of seconds')
      .min(1, 'must be at least 1 second (each checkpoint writes a part file and the checkpoint)')
      .max(86_400, 'must be at most 86400 seconds (a day)')
      .default(DEFAULT_CHECKPOINT_SECONDS),
  })
  .prefault({});

const identifier = z
  .string()
  .regex(
    /^[a-z][a-z0-9_]*$/,
    'must start with a lowercase letter and contain only lowercase letters, digits and underscores (it becomes a table name)',
  )
  .max(128, 'must be at most 128 characters (Glue table name limit)');

const columnName = z.string().min(1, 'must be a non-empty column name');

const uri = z.string().min(1, 'must be a URI: s3://bucket/prefix/, file:///abs/path or a relative path');

// The model section's inputs, outputs and processor are defined in model-io.ts.
export { TABULAR_DTYPES, type TabularDtype } from './model-io.js';

const registryRef = z.strictObject({
  /** Model package group (SageMaker Model Registry in AWS; a folder of the local registry offline). */
  group: z.string().min(1, 'must name a model package group'),
  /** `latest-approved` (default), `latest`, or a version number. */
  version: z
    .union([z.literal('latest-approved'), z.literal('latest'), z.number().int().positive()], {
      message: 'must be "latest-approved", "latest" or a positive version number',
    })
    .default('latest-approved'),
});

const jobSpecObject = z.strictObject({
  name: identifier,
  input: z.strictObject({
    uri,
    /**
     * How to read `uri`: a prefix to list, a list manifest (JSONL or CSV of URIs, or a SageMaker manifest), or an
     * S3 Inventory report's manifest.json. `auto` decides by name and, for a `manifest.json`, by content.
     */
    manifest: z
      .enum(['auto', 'prefix', 'list', 's3-inventory'], {
        message: 'must be one of auto, prefix, list, s3-inventory',
      })
      .default('auto'),
    /** `files`: every object is one record (`{ uri, name, size, content }`, content its bytes). */
    format: z.enum(['parquet', 'jsonl', 'csv', 'files'], {
      message: 'must be one of parquet, jsonl, csv, files',
    }),
    /** Record key carried to every output and error row. */
    id: columnName.optional(),
  }),
  model: z
    .strictObject({
      registry: registryRef.optional(),
      /** A direct artifact: an .onnx file (URI or path relative to the spec). */
      uri: uri.optional(),
      /** Records -> tensors: tabular columns, array columns, tokenized text, decoded images. */
      inputs: z
        .array(inputTensorSpec, { message: 'must be a list of input entries (- tensor: ..., from: ...)' })
        .default([]),
      /** Tensors -> columns: raw values, activations, argmax, top-k, pooled embeddings. */
      outputs: z
        .array(outputTensorSpec, { message: 'must be a list of output entries (- tensor: ...)' })
        .default([]),
      /** A user module (relative to the model artifact) exporting preprocess and/or postprocess. */
      processor: processorSpec.optional(),
      /**
       * A second model scored on the same decoded batches (docs/adr/0020): its predictions go to the sibling table
       * `<name>_challenger`, compared with the champion's at Finalize.
       */
      challenger: challengerModelSpec(registryRef, uri, outputTensorSpec).optional(),
    })
    .superRefine((model, ctx) => {
      if (Boolean(model.registry) === Boolean(model.uri)) {
        ctx.addIssue({
          code: 'custom',
          message:
            'must set exactly one of model.registry ({ group, version }) or model.uri (an .onnx artifact)',
        });
      }
      modelSectionIssues(model, (path, message) => ctx.addIssue({ code: 'custom', path, message }));
    }),
  output: z
    .strictObject({
      uri,
      format: z
        .enum(['parquet', 'jsonl', 'csv'], { message: 'must be one of parquet, jsonl, csv' })
        .default('parquet'),
      /**
       * Also assemble the run's predictions into one file (`<output.uri>/_single/<runId>.<jsonl|csv>`) at Finalize,
       * in shard order. Only for jsonl and csv: a Parquet file cannot be concatenated.
       */
      singleFile: z.boolean().default(false),
      /** Input columns copied unchanged next to the predictions. */
      passthrough: z.array(columnName).default([]),
      /** Declared output columns and their types, checked when the run is finalized. */
      schema: z.record(columnName, outputColumnType).optional(),
    })
    .superRefine((output, ctx) => {
      if (output.singleFile && output.format === 'parquet') {
        ctx.addIssue({
          code: 'custom',
          path: ['singleFile'],
          message:
            'only applies to jsonl and csv outputs (Parquet files cannot be concatenated); set output.format to ' +
            'jsonl or csv, or remove singleFile',
        });
      }
    }),
  run: z
    .strictObject({
      /** Records per inference call, or `auto` to let the worker choose. */
      batchSize: z
        .union([z.literal('auto'), z.number().int().min(1).max(1_000_000)], {
          message: 'must be "auto" or an integer from 1 to 1000000',
        })
        .default('auto'),
      checkpoint: checkpointSettings,
      shards: z
        .strictObject({
          /** Aim for about this many records per shard (estimated from sizes where not known). */
          targetRecords: z.number().int().min(1).default(1_000_000),
          /** Aim for about this many input bytes per shard. */
          targetBytes: byteSize.default(1024 ** 3),
          /** Never make more shards than this; shards grow instead. */
          max: z
            .number()
            .int()
            .min(1)
            .max(MAX_SHARDS, `must be at most ${MAX_SHARDS} (the largest AWS Batch array job)`)
            .default(MAX_SHARDS),
        })
        .prefault({}),
      compute: z.enum(['gpu', 'cpu'], { message: 'must be gpu or cpu' }).default('gpu'),
      /**
       * With `compute: gpu`: a worker whose CUDA provider cannot load runs its shard on the CPU instead of failing it.
       * Off by default: a GPU run on CPU is many times slower, at GPU prices.
       */
      cpuFallback: z.boolean().default(false),
      /** Retry rounds for shards that did not complete, after the first attempt. */
      maxRounds: z.number().int().min(0).max(10).default(2),
      /**
       * Spend cap, in the currency of the price table (USD by default): no retry round starts once what the run has
       * spent plus the estimate of what is left would pass it, and the run fails saying so (src/cost/spend-cap.ts).
       */
      maxCost: z
        .number()
        .positive("must be a positive amount in the price table's currency, e.g. 25")
        .optional(),
      /** Hourly prices by instance type, over the default price table (src/cost/prices.ts). */
      prices: priceOverridesSchema.optional(),
      /**
       * Before the array job fans out, run the first `records` records of shard 0 as a job of one; if they fail (the
       * worker fails, or their error rate is above validation.maxErrorRate), the run stops with their reason.
       */
      canary: z
        .strictObject({
          records: z
            .number()
            .int()
            .min(1, 'must be at least 1 record')
            .max(
              MAX_CANARY_RECORDS,
              `must be at most ${MAX_CANARY_RECORDS} records (a canary is a quick look)`,
            ),
        })
        .optional(),
    })
    .prefault({}),
  validation: z
    .strictObject({
      /** Largest acceptable share of input records that failed. */
      maxErrorRate: z.number().min(0).max(1, 'must be a fraction between 0 and 1').default(0.001),
      /** Largest acceptable number of shards without a completion marker after all rounds. */
      maxFailedShards: z.number().int().min(0).default(0),
      /**
       * Stop submitting retry rounds once the completed shards' error rate is surely above maxErrorRate (see
       * src/results/early-stop.ts for the rule); the run fails with that reason.
       */
      stopEarly: z.boolean().optional(),
      /**
       * Drift against the previous succeeded run (largest PSI over the prediction columns, vector norms and values
       * included): the threshold the report and the drift alarm read, and with `gate: true` a check that fails the
       * run before it is published.
       */
      drift: z
        .strictObject({
          maxPsi: z.number().positive('must be a positive PSI, e.g. 0.25 (a major shift)').default(0.25),
          gate: z.boolean().default(false),
        })
        .optional(),
      /** Champion vs challenger thresholds that gate publication (needs model.challenger; docs/adr/0020). */
      challenger: challengerValidationSpec.optional(),
    })
    .prefault({}),
  /** Deployment-only; accepted and ignored by local runs. */
  triggers: z.array(z.record(z.string(), z.unknown())).optional(),
});

export const jobSpecSchema = jobSpecObject;

/** A validated job spec with every default applied. */
export type JobSpec = z.output<typeof jobSpecSchema>;
/** What a user may write: defaults optional. */
export type JobSpecInput = z.input<typeof jobSpecSchema>;
export type InputTensorSpec = JobSpec['model']['inputs'][number];
export type OutputTensorSpec = JobSpec['model']['outputs'][number];
export type InputFormat = JobSpec['input']['format'];
