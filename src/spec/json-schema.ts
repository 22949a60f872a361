/**
 * JSON Schemas of job specs and of deployed pipelines, generated from the zod schemas (zod 4's `toJSONSchema`), for
 * editors (`# yaml-language-server: $schema=...`) and other tools. They describe what a user may write (the
 * schemas' input side: defaults optional). The parts zod decides in code (cross-field rules, the kind of a
 * `model.inputs` entry chosen by its `from` key) are rendered as the forms they accept; rules no JSON Schema can
 * state (exactly one of model.registry and model.uri, cron syntax) are left to `batch-infer validate`.
 *
 * scripts/generate-schemas.ts writes them to schemas/; test/spec/json-schema.test.ts checks the files are current.
 */
import { z } from 'zod';
import { INPUT_TENSOR_FORMS, PROCESSOR_FORMS, inputTensorSpec, processorSpec } from './model-io.js';
import { jobSpecSchema } from './schema.js';
import { TRIGGER_KINDS, s3TriggerSchema, scheduleTriggerSchema, volumeTriggerSchema } from './triggers.js';

type JsonSchema = Record<string, unknown>;

/** Where the schemas are written, relative to the package root (shipped in the package). */
export const JOB_SPEC_SCHEMA_FILE = 'schemas/job-spec.schema.json';
export const PIPELINE_SCHEMA_FILE = 'schemas/pipeline.schema.json';

const DRAFT = 'https://json-schema.org/draft/2020-12/schema';

/** A zod schema's input side as JSON Schema, with the parts decided in code filled in. */
function render(schema: z.ZodType): JsonSchema {
  const fills = new Map<z.ZodType, () => JsonSchema>([
    [inputTensorSpec, () => ({ anyOf: INPUT_TENSOR_FORMS.map(render) })],
    [processorSpec, () => ({ anyOf: PROCESSOR_FORMS.map(render) })],
  ]);
  const json = z.toJSONSchema(schema, {
    io: 'input',
    target: 'draft-2020-12',
    unrepresentable: 'throw',
    reused: 'inline',
    override: (ctx) => {
      const fill = fills.get(ctx.zodSchema as unknown as z.ZodType);
      if (fill) Object.assign(ctx.jsonSchema, fill());
    },
  }) as JsonSchema;
  delete json.$schema;
  return json;
}

/** The `triggers` list of a pipeline: each entry has exactly one key, its kind (see src/spec/triggers.ts). */
function triggersSchema(): JsonSchema {
  const bodies: Record<(typeof TRIGGER_KINDS)[number], z.ZodType> = {
    s3: s3TriggerSchema,
    schedule: scheduleTriggerSchema,
    volume: volumeTriggerSchema,
  };
  return {
    type: 'array',
    description: 'How runs start in the deployment: S3 arrivals, a schedule, or a volume of new data',
    items: {
      anyOf: TRIGGER_KINDS.map((kind) => ({
        type: 'object',
        properties: { [kind]: render(bodies[kind]) },
        required: [kind],
        additionalProperties: false,
      })),
    },
  };
}

/** The JSON Schema of a job spec (`batch-infer validate|run <spec>`). */
export function jobSpecJsonSchema(): JsonSchema {
  const spec = render(jobSpecSchema);
  const properties = spec.properties as Record<string, JsonSchema>;
  // Deployment-only and ignored by local runs, but checked as in a pipeline when present.
  properties.triggers = triggersSchema();
  return {
    $schema: DRAFT,
    title: 'batch-infer job spec',
    ...spec,
  };
}

/** The JSON Schema of a deployed pipeline (pipelines/*.yaml): a job spec with its triggers and manifestObjects. */
export function pipelineJsonSchema(): JsonSchema {
  const spec = jobSpecJsonSchema();
  const properties = { ...(spec.properties as Record<string, JsonSchema>) };
  properties.manifestObjects = {
    type: 'array',
    description:
      'Where the objects named by a manifest input live: s3:// prefixes ending in "/" ' +
      '(the data bucket is s3://${dataBucket}/)',
    minItems: 1,
    items: { type: 'string', pattern: '^s3://[^/]+/(.+/)?$' },
  };
  return { ...spec, title: 'batch-infer pipeline', properties };
}

/** A schema as its file holds it: two-space JSON and a final newline (what Prettier leaves alone). */
export function schemaFileText(schema: JsonSchema): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}
