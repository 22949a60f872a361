/**
 * The JSON Schemas of job specs and pipelines (src/spec/json-schema.ts, written to schemas/ by
 * scripts/generate-schemas.ts): the committed files are current, nothing is left as an empty schema, every example
 * and pipeline passes them (and zod), every example names its schema for editors, and a JSON Schema validator (ajv)
 * agrees with zod on a set of valid and invalid specs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { Ajv2020 } from 'ajv/dist/2020.js';
import YAML from 'yaml';
import { fromRepoRoot } from '../../lib/paths.js';
import { parsePipelineText } from '../../lib/pipelines.js';
import {
  JOB_SPEC_SCHEMA_FILE,
  jobSpecJsonSchema,
  PIPELINE_SCHEMA_FILE,
  pipelineJsonSchema,
} from '../../src/spec/json-schema.js';
import { parseJobSpecText } from '../../src/spec/load.js';
import { jobSpecSchema } from '../../src/spec/schema.js';
import { expectIn } from '../support/expect-in.js';

const readJson = (file: string): Record<string, unknown> =>
  JSON.parse(readFileSync(fromRepoRoot(file), 'utf8')) as Record<string, unknown>;

const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
const validateJobSpec = ajv.compile(readJson(JOB_SPEC_SCHEMA_FILE));
const validatePipeline = ajv.compile(readJson(PIPELINE_SCHEMA_FILE));
const schemaErrors = (validate: typeof validateJobSpec, value: unknown): string[] =>
  validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);

const EXAMPLE_SPECS = ['examples/breast-cancer/job.yaml', 'examples/breast-cancer/demo.yaml'].concat(
  readdirSync(fromRepoRoot('examples'))
    .map((dir) => `examples/${dir}/job.yaml`)
    .filter((file) => file !== 'examples/breast-cancer/job.yaml'),
);
const PIPELINE_FILES = readdirSync(fromRepoRoot('pipelines'))
  .filter((f) => /\.ya?ml$/.test(f))
  .map((f) => `pipelines/${f}`);

describe('the schema files', () => {
  it('equal a fresh generation (run `npm run schemas` after changing a zod schema)', () => {
    expect(readJson(JOB_SPEC_SCHEMA_FILE)).toEqual(jobSpecJsonSchema());
    expect(readJson(PIPELINE_SCHEMA_FILE)).toEqual(pipelineJsonSchema());
  });

  it('leave no part as an empty schema (`{}` accepts anything); only default values may be {}', () => {
    const empty: string[] = [];
    const walk = (value: unknown, at: string): void => {
      if (typeof value !== 'object' || value === null) return;
      if (!Array.isArray(value) && Object.keys(value).length === 0 && !at.endsWith('/default'))
        empty.push(at);
      for (const [key, child] of Object.entries(value)) walk(child, `${at}/${key}`);
    };
    walk(pipelineJsonSchema(), '#');
    expect(empty).toEqual([]);
  });
});

describe('examples and pipelines', () => {
  it('finds the files it checks', () => {
    expect(EXAMPLE_SPECS).toEqual(
      expect.arrayContaining(['examples/breast-cancer/demo.yaml', 'examples/text-embeddings/job.yaml']),
    );
    expect(PIPELINE_FILES.length).toBeGreaterThanOrEqual(2);
  });

  it.each(EXAMPLE_SPECS)('%s names the job spec schema and passes it and zod', (file) => {
    const text = readFileSync(fromRepoRoot(file), 'utf8');
    const schemaPath = path.relative(path.dirname(fromRepoRoot(file)), fromRepoRoot(JOB_SPEC_SCHEMA_FILE));
    expect(text.split('\n')[0]).toBe(`# yaml-language-server: $schema=${schemaPath}`);
    expect(schemaErrors(validateJobSpec, YAML.parse(text))).toEqual([]);
    expect(() =>
      parseJobSpecText(text, { source: file, baseDir: path.dirname(fromRepoRoot(file)) }),
    ).not.toThrow();
  });

  it.each(PIPELINE_FILES)('%s names the pipeline schema and passes it and zod', (file) => {
    const text = readFileSync(fromRepoRoot(file), 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=../schemas/pipeline.schema.json');
    expect(schemaErrors(validatePipeline, YAML.parse(text))).toEqual([]);
    expect(() => parsePipelineText(text, file)).not.toThrow();
  });
});

/** A spec under construction: the sections the cases change, loosely typed (the cases write invalid values). */
interface Draft {
  name?: unknown;
  input: Record<string, unknown>;
  model: Record<string, unknown>;
  output: Record<string, unknown>;
  [key: string]: unknown;
}
const base: Draft = {
  name: 'scores',
  input: { uri: 's3://lake/in/', format: 'csv' },
  model: {
    uri: 's3://lake/models/m.onnx',
    inputs: [{ tensor: 'x', from: { columns: ['a', 'b'] } }],
    outputs: [{ tensor: 'y' }],
  },
  output: { uri: 's3://lake/out/' },
};
type Spec = Record<string, unknown>;
const spec = (patch: (s: Draft) => void): Spec => {
  const copy = structuredClone(base);
  patch(copy);
  return copy;
};
const model = (s: Draft): Spec => s.model;

/** Specs both must accept. */
const VALID: readonly [string, Spec][] = [
  ['the minimal tabular spec', spec(() => {})],
  [
    'a registry model, every section given',
    spec((s) => {
      s.model = {
        registry: { group: 'g', version: 3 },
        inputs: [{ tensor: 'x', dtype: 'float64', missing: { fill: 0 }, from: { columns: ['a'] } }],
        outputs: [{ tensor: 'y' }],
      };
      Object.assign(s, {
        output: {
          uri: 's3://lake/out/',
          format: 'jsonl',
          singleFile: true,
          passthrough: ['a'],
          schema: { p: 'float' },
        },
        run: {
          batchSize: 64,
          shards: { targetRecords: 10, targetBytes: '512MiB', max: 4 },
          compute: 'cpu',
          maxRounds: 1,
        },
        validation: { maxErrorRate: 0.5, maxFailedShards: 1 },
      });
    }),
  ],
  [
    'an array input',
    spec((s) => {
      model(s).inputs = [{ tensor: 'x', from: { array: 'v' }, shape: [-1, 3], pad: 0 }];
    }),
  ],
  [
    'a text input',
    spec((s) => {
      model(s).inputs = [{ from: { text: 't', tokenizer: 'tokenizer.json', maxLength: 16 } }];
    }),
  ],
  [
    'an image input',
    spec((s) => {
      model(s).inputs = [{ tensor: 'pixels', from: { image: 'img', resize: { height: 224, width: 224 } } }];
    }),
  ],
  [
    'a processor (short form)',
    spec((s) => {
      model(s).processor = 'processors/p.mjs';
    }),
  ],
  [
    'a processor ({ module, columns })',
    spec((s) => {
      model(s).processor = { module: 'p.mjs', columns: { label: 'string' } };
      model(s).inputs = [];
    }),
  ],
  [
    'triggers of every kind',
    spec((s) => {
      s.triggers = [
        { s3: { suffix: '.csv' } },
        { schedule: { cron: '0 2 * * ? *', timezone: 'UTC' } },
        { volume: { minBytes: '5GiB' } },
      ];
    }),
  ],
];

/** Specs both must refuse (each wrong in a way a JSON Schema can say). */
const INVALID: readonly [string, Spec][] = [
  ['no name', spec((s) => delete s.name)],
  ['a name that is not an identifier', spec((s) => (s.name = 'Bad-Name'))],
  ['an unknown top-level field', spec((s) => (s.extra = 1))],
  ['an unknown input format', spec((s) => (s.input.format = 'xlsx'))],
  [
    'an input entry with an unknown field',
    spec((s) => (model(s).inputs = [{ tensor: 'x', from: { columns: ['a'] }, scale: 2 }])),
  ],
  [
    'an input entry whose from names no source',
    spec((s) => (model(s).inputs = [{ tensor: 'x', from: { cols: ['a'] } }])),
  ],
  [
    'a text input with a tensor field',
    spec(
      (s) => (model(s).inputs = [{ tensor: 'x', from: { text: 't', tokenizer: 'k.json', maxLength: 8 } }]),
    ),
  ],
  [
    'an image input with a bad layout',
    spec((s) => (model(s).inputs = [{ tensor: 'x', from: { image: 'i', layout: 'CHW' } }])),
  ],
  ['a processor that is not a JavaScript module', spec((s) => (model(s).processor = 'p.py'))],
  ['a batch size of 0', spec((s) => (s.run = { batchSize: 0 }))],
  ['an error rate over 1', spec((s) => (s.validation = { maxErrorRate: 2 }))],
  ['more shards than AWS Batch runs', spec((s) => (s.run = { shards: { max: 10_001 } }))],
  [
    'an unknown output column type',
    spec((s) => (s.output = { uri: 's3://lake/out/', schema: { p: 'decimal' } })),
  ],
  ['a trigger with two kinds', spec((s) => (s.triggers = [{ s3: {}, volume: { minBytes: 1 } }]))],
  ['an unknown trigger kind', spec((s) => (s.triggers = [{ webhook: {} }]))],
  ['a volume trigger without minBytes', spec((s) => (s.triggers = [{ volume: {} }]))],
];

/** zod's verdict on a spec, triggers included (the job spec schema takes them as they are; the pipeline loader parses them). */
function zodAccepts(raw: Spec): boolean {
  if (!jobSpecSchema.safeParse(raw).success) return false;
  if (raw.triggers === undefined) return true;
  try {
    parsePipelineText(JSON.stringify(raw), 'case.yaml');
    return true;
  } catch {
    return false;
  }
}

describe('the JSON Schema agrees with zod', () => {
  it.each(VALID)('both accept %s', (name, raw) => {
    expectIn(zodAccepts(raw), `zod on ${name}`).toBe(true);
    expectIn(schemaErrors(validateJobSpec, raw), `the job spec schema on ${name}`).toEqual([]);
    expectIn(schemaErrors(validatePipeline, raw), `the pipeline schema on ${name}`).toEqual([]);
  });

  it.each(INVALID)('both refuse %s', (name, raw) => {
    expectIn(zodAccepts(raw), `zod on ${name}`).toBe(false);
    expectIn(validateJobSpec(raw), `the job spec schema on ${name}`).toBe(false);
    expectIn(validatePipeline(raw), `the pipeline schema on ${name}`).toBe(false);
  });

  it('the pipeline schema checks manifestObjects, which a job spec does not have', () => {
    const withObjects = {
      ...base,
      input: { uri: 's3://lake/in/list.jsonl', format: 'jsonl', manifest: 'list' },
    };
    expect(validatePipeline({ ...withObjects, manifestObjects: ['s3://corp/exports/'] })).toBe(true);
    expect(validatePipeline({ ...withObjects, manifestObjects: ['s3://corp/exports'] })).toBe(false);
    expect(validateJobSpec({ ...withObjects, manifestObjects: ['s3://corp/exports/'] })).toBe(false);
  });
});
