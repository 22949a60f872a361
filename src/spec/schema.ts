/**
 * The job spec: what a user writes to describe a batch job. One schema serves the CLI (`batch-infer validate`,
 * `run`), the Plan Lambda and the worker, so a spec that validates locally behaves the same in the account.
 *
 * Every field carries its default here, so downstream code reads a fully resolved `JobSpec` and never re-applies
 * defaults of its own.
 */
import { z } from 'zod';

/** Largest array job AWS Batch accepts; the planner never makes more shards than this. */
export const MAX_SHARDS = 10_000;

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

const identifier = z
  .string()
  .regex(
    /^[a-z][a-z0-9_]*$/,
    'must start with a lowercase letter and contain only lowercase letters, digits and underscores (it becomes a table name)',
  )
  .max(128, 'must be at most 128 characters (Glue table name limit)');

const columnName = z.string().min(1, 'must be a non-empty column name');

const uri = z.string().min(1, 'must be a URI: s3://bucket/prefix/, file:///abs/path or a relative path');

/** Element types a tensor can be built from tabular columns. */
export const TABULAR_DTYPES = ['float32', 'float64', 'int32', 'int64'] as const;
export type TabularDtype = (typeof TABULAR_DTYPES)[number];

const inputTensor = z.strictObject({
  /** Name of the ONNX graph input this tensor feeds. */
  tensor: z.string().min(1, 'must name an input of the ONNX graph'),
  /** Where the values come from: the listed columns, in order, become the last dimension. */
  from: z.strictObject({
    columns: z.array(columnName).min(1, 'must list at least one column'),
  }),
  dtype: z
    .enum(TABULAR_DTYPES, { message: `must be one of ${TABULAR_DTYPES.join(', ')}` })
    .default('float32'),
  /** What to do with a missing or null value: make the record an error row, or fill with a number. */
  missing: z
    .union([z.literal('error'), z.strictObject({ fill: z.number() })], {
      message: 'must be "error" or { fill: <number> }',
    })
    .default('error'),
});

const keepValue = z.enum(['score', 'probabilities'], {
  message: 'must be "score" (the winning probability) or "probabilities" (the whole vector)',
});

const outputTensor = z
  .strictObject({
    /** Name of the ONNX graph output to read. */
    tensor: z.string().min(1, 'must name an output of the ONNX graph'),
    /** Column name for the raw tensor when no post-processing is declared. @default the tensor name */
    as: columnName.optional(),
    postprocess: z
      .strictObject({
        /** Apply softmax over the last dimension first (for models that output logits). */
        softmax: z.boolean().default(false),
        /** Turn the last dimension into a class label: the argmax index, or its line in the labels file. */
        argmax: z
          .strictObject({
            /** A text file with one label per line, relative to the model artifact (or a URI). */
            labels: z.string().min(1).optional(),
            /** Output column for the label. */
            as: columnName.default('label'),
          })
          .optional(),
        /** Extra columns to keep next to the label. */
        keep: z
          .union([keepValue, z.array(keepValue)])
          .transform((v) => (Array.isArray(v) ? v : [v]))
          .default([]),
      })
      .optional(),
  })
  .superRefine((out, ctx) => {
    if (out.postprocess && out.postprocess.keep.length > 0 && !out.postprocess.argmax) {
      ctx.addIssue({
        code: 'custom',
        path: ['postprocess', 'keep'],
        message: 'only applies together with argmax; add postprocess.argmax or remove keep',
      });
    }
  });

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
    /** How to read `uri`: a prefix to list, or a list manifest (JSONL or CSV of URIs). `auto` decides by suffix. */
    manifest: z
      .enum(['auto', 'prefix', 'list'], { message: 'must be one of auto, prefix, list' })
      .default('auto'),
    format: z.enum(['parquet', 'jsonl', 'csv'], { message: 'must be one of parquet, jsonl, csv' }),
    /** Record key carried to every output and error row. */
    id: columnName.optional(),
  }),
  model: z
    .strictObject({
      registry: registryRef.optional(),
      /** A direct artifact: an .onnx file (URI or path relative to the spec). */
      uri: uri.optional(),
      inputs: z.array(inputTensor).min(1, 'must declare at least one input tensor'),
      outputs: z.array(outputTensor).min(1, 'must declare at least one output tensor'),
    })
    .superRefine((model, ctx) => {
      if (Boolean(model.registry) === Boolean(model.uri)) {
        ctx.addIssue({
          code: 'custom',
          message:
            'must set exactly one of model.registry ({ group, version }) or model.uri (an .onnx artifact)',
        });
      }
    }),
  output: z.strictObject({
    uri,
    format: z
      .literal('parquet', { message: 'must be parquet (jsonl and csv outputs come later)' })
      .default('parquet'),
    /** Input columns copied unchanged next to the predictions. */
    passthrough: z.array(columnName).default([]),
    /** Declared output columns and their types, checked when the run is finalized. */
    schema: z
      .record(
        columnName,
        z.enum(['string', 'float', 'double', 'int', 'bigint', 'boolean', 'array<float>'], {
          message: 'must be one of string, float, double, int, bigint, boolean, array<float>',
        }),
      )
      .optional(),
  }),
  run: z
    .strictObject({
      /** Records per inference call, or `auto` to let the worker choose. */
      batchSize: z
        .union([z.literal('auto'), z.number().int().min(1).max(1_000_000)], {
          message: 'must be "auto" or an integer from 1 to 1000000',
        })
        .default('auto'),
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
      /** Retry rounds for shards that did not complete, after the first attempt. */
      maxRounds: z.number().int().min(0).max(10).default(2),
    })
    .prefault({}),
  validation: z
    .strictObject({
      /** Largest acceptable share of input records that failed. */
      maxErrorRate: z.number().min(0).max(1, 'must be a fraction between 0 and 1').default(0.001),
      /** Largest acceptable number of shards without a completion marker after all rounds. */
      maxFailedShards: z.number().int().min(0).default(0),
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
