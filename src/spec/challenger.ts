/**
 * `model.challenger` and `validation.challenger` (docs/adr/0020-challenger-models-and-letterbox.md): a second model
 * scored on the same decoded batches as the champion, and the thresholds its comparison must meet for the run to
 * be published.
 *
 * Everything downstream (Plan, preflight, worker, Finalize) sees the challenger through `challengerSpecOf`: the
 * job spec as the challenger alone would run it (its own model and outputs, the champion's inputs, the sibling table
 * `<name>_challenger` under `<output.uri>/_challenger/`), so the code that plans, checks, writes, validates and
 * catalogues the champion's table does the same for the challenger's.
 */
import { z } from 'zod';
import { asPrefix, joinUri } from '../storage/uri.js';
import type { JobSpec } from './schema.js';

/** Folder under `output.uri` holding the challenger's table and run files (a `_` folder: hidden from Hive). */
export const CHALLENGER_FOLDER = '_challenger';
/** Suffix of the challenger's catalogue table name. */
export const CHALLENGER_TABLE_SUFFIX = '_challenger';

/**
 * `model.challenger`: built from the same registry reference, URI and output entry schemas as the champion's (passed
 * in, so schema.ts keeps them in one place).
 */
export function challengerModelSpec<R extends z.ZodType, U extends z.ZodType, O extends z.ZodType>(
  registry: R,
  uri: U,
  output: O,
) {
  return z
    .strictObject({
      /** A model package group version, like model.registry. */
      registry: registry.optional(),
      /** Or a direct artifact, like model.uri. */
      uri: uri.optional(),
      /** Its own outputs (tensors -> columns); default: the champion's. */
      outputs: z
        .array(output, { message: 'must be a list of output entries (- tensor: ...)' })
        .min(1, "must declare at least one output entry, or leave outputs out to use the champion's")
        .optional(),
    })
    .superRefine((challenger, ctx) => {
      if ((challenger.registry === undefined) === (challenger.uri === undefined)) {
        ctx.addIssue({
          code: 'custom',
          message:
            'must set exactly one of model.challenger.registry ({ group, version }) or model.challenger.uri ' +
            '(an .onnx artifact)',
        });
      }
    });
}

const fraction = (what: string) =>
  z
    .number()
    .min(0, `must be a fraction from 0 to 1 (${what})`)
    .max(1, `must be a fraction from 0 to 1 (${what})`);

/** `validation.challenger`: each threshold set is a check that fails the run (nothing published) when missed. */
export const challengerValidationSpec = z.strictObject({
  /** Smallest share of records whose label (every argmax column both models write) the two models agree on. */
  minAgreement: fraction('e.g. 0.98: the models agree on 98% of the labels').optional(),
  /** Largest mean absolute difference of a numeric score column both models write. */
  maxMeanAbsScoreDiff: z
    .number()
    .nonnegative('must be a non-negative score difference, e.g. 0.05')
    .optional(),
  /** Smallest mean cosine similarity of a vector column (embeddings, probabilities) both models write. */
  minMeanCosine: z
    .number()
    .min(-1, 'must be a cosine similarity from -1 to 1')
    .max(1, 'must be a cosine similarity from -1 to 1')
    .optional(),
});

export type ChallengerValidation = z.output<typeof challengerValidationSpec>;

/** Where the challenger's table lives: `<output.uri>/_challenger/`. */
export function challengerOutputUri(outputUri: string): string {
  return asPrefix(joinUri(asPrefix(outputUri), CHALLENGER_FOLDER));
}

/**
 * The job spec as the challenger alone would run it: its model and outputs with the champion's inputs and
 * processor, the table `<name>_challenger` under `<output.uri>/_challenger/`, no single file, no drift or challenger
 * checks of its own. `output.schema` keeps only the identity columns when the challenger has outputs of its own
 * (the declared prediction columns are the champion's). Undefined when the spec has no challenger.
 */
export function challengerSpecOf(spec: JobSpec): JobSpec | undefined {
  const challenger = spec.model.challenger;
  if (!challenger) return undefined;
  const { challenger: _challenger, registry: _registry, uri: _uri, ...model } = spec.model;
  const identity = new Set([...(spec.input.id ? [spec.input.id] : []), ...spec.output.passthrough]);
  const schema =
    spec.output.schema && challenger.outputs
      ? Object.fromEntries(Object.entries(spec.output.schema).filter(([name]) => identity.has(name)))
      : spec.output.schema;
  const { challenger: _thresholds, drift: _drift, ...validation } = spec.validation;
  return {
    ...spec,
    name: `${spec.name}${CHALLENGER_TABLE_SUFFIX}`,
    model: {
      ...model,
      ...(challenger.registry ? { registry: challenger.registry } : {}),
      ...(challenger.uri !== undefined ? { uri: challenger.uri } : {}),
      outputs: challenger.outputs ?? spec.model.outputs,
    },
    output: {
      ...spec.output,
      uri: challengerOutputUri(spec.output.uri),
      singleFile: false,
      ...(schema && Object.keys(schema).length > 0 ? { schema } : { schema: undefined }),
    },
    validation,
  };
}

/** Cross-field problems of the challenger sections, as [path, value, message]. */
export function challengerSpecIssues(spec: JobSpec): { path: string; value: string; message: string }[] {
  const issues: { path: string; value: string; message: string }[] = [];
  if (spec.validation.challenger && !spec.model.challenger) {
    issues.push({
      path: 'validation.challenger',
      value: JSON.stringify(spec.validation.challenger),
      message:
        'sets thresholds for a challenger, but model.challenger is not set; add model.challenger or remove it',
    });
  }
  const challenger = spec.model.challenger;
  if (challenger?.registry && spec.model.registry) {
    const same =
      challenger.registry.group === spec.model.registry.group &&
      challenger.registry.version === spec.model.registry.version;
    if (same) {
      issues.push({
        path: 'model.challenger.registry',
        value: JSON.stringify(challenger.registry),
        message: 'is the champion itself (model.registry); name another version, e.g. { version: 2 }',
      });
    }
  }
  if (challenger?.uri !== undefined && challenger.uri === spec.model.uri) {
    issues.push({
      path: 'model.challenger.uri',
      value: JSON.stringify(challenger.uri),
      message: 'is the champion itself (model.uri); point it at the other model',
    });
  }
  return issues;
}
