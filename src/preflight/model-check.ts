/**
 * The job spec's model section against the model's declared signature (onnx-signature.ts): tensor names, element
 * types, ranks, the number of columns against the last dimension, label counts against the output width, pooling
 * against the output's rank. Pure: the signature and the label counts come in.
 *
 * The worker checks the same things when it opens its session (inference/features.ts, postprocess.ts); this runs
 * before any worker starts, and reports every mismatch at once with the fix.
 */
import {
  DEFAULT_TEXT_TENSORS,
  isArrayInput,
  isImageInput,
  isTabularInput,
  isTextInput,
  type InputTensorSpec,
  type OutputTensorSpec,
} from '../spec/model-io.js';
import { outputTensorColumnNames } from '../spec/load.js';
import type { JobSpec } from '../spec/schema.js';
import { outputColumnTypes } from '../inference/output-column-types.js';
import type { GraphTensor, ModelSignature } from './onnx-signature.js';
import { didYouMean, listNames, type Problem } from './problems.js';

/** Label counts by the spec's reference to the labels file (as written in argmax.labels / topK.labels). */
export type LabelCounts = ReadonlyMap<string, number>;

const NUMERIC = new Set([
  'float32',
  'float64',
  'float16',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
]);

const shapeText = (t: GraphTensor): string =>
  t.shape ? `[${t.shape.map((d) => (d === -1 ? '?' : String(d))).join(', ')}]` : '(shape not declared)';
const describe = (t: GraphTensor): string => `${t.type ?? 'untyped'} ${shapeText(t)}`;

/** `the model's inputs are "x" (float32 [N, 3]), "y" (...)` */
function listTensors(tensors: readonly GraphTensor[]): string {
  return tensors.map((t) => `"${t.name}" (${describe(t)})`).join(', ') || '(none)';
}

/** The fixed size of the last dimension, when the model declares one. */
function lastFixed(t: GraphTensor): number | undefined {
  const last = t.shape?.[t.shape.length - 1];
  return typeof last === 'number' && last > 0 && (t.shape?.length ?? 0) > 1 ? last : undefined;
}

export function checkModel(
  spec: JobSpec,
  signature: ModelSignature,
  labels: LabelCounts = new Map(),
): Problem[] {
  const problems: Problem[] = [];
  const inputs = new Map(signature.inputs.map((t) => [t.name, t]));
  const outputs = new Map(signature.outputs.map((t) => [t.name, t]));
  const inputNames = signature.inputs.map((t) => t.name);
  const outputNames = signature.outputs.map((t) => t.name);

  const unknown = (field: string, name: string, kind: 'input' | 'output'): Problem => {
    const names = kind === 'input' ? inputNames : outputNames;
    const near = didYouMean(name, names);
    return {
      code: 'UnknownTensor',
      field,
      value: JSON.stringify(name),
      found: `the model has no ${kind} by that name; its ${kind}s are ${listTensors(kind === 'input' ? signature.inputs : signature.outputs)}`,
      fix: near
        ? `did you mean "${near}"? set ${field}: ${near}`
        : `set ${field} to one of ${listNames(names)}`,
    };
  };

  const fed = new Set<string>();
  spec.model.inputs.forEach((input, i) => {
    for (const p of checkInput(input, `model.inputs[${i}]`, inputs, unknown, fed)) problems.push(p);
  });
  // A processor's preprocess may feed graph inputs itself; without one, every graph input must be fed.
  if (!spec.model.processor) {
    for (const t of signature.inputs) {
      if (fed.has(t.name)) continue;
      problems.push({
        code: 'UnfedTensor',
        field: 'model.inputs',
        value: `(${spec.model.inputs.length} entr${spec.model.inputs.length === 1 ? 'y' : 'ies'})`,
        found: `the model input "${t.name}" (${describe(t)}) is fed by no entry`,
        fix: `add an entry with tensor: ${t.name}`,
      });
    }
  }

  spec.model.outputs.forEach((output, i) => {
    for (const p of checkOutput(output, `model.outputs[${i}]`, outputs, unknown, labels)) problems.push(p);
  });
  return problems;
}

function dtypeProblem(field: string, declared: string, model: GraphTensor): Problem | undefined {
  if (model.type === undefined || model.type === declared) return undefined;
  return {
    code: 'DtypeMismatch',
    field: `${field}.dtype`,
    value: declared,
    found: `the model's input "${model.name}" is ${model.type}`,
    fix: `set ${field}.dtype: ${model.type}`,
  };
}

function checkInput(
  input: InputTensorSpec,
  field: string,
  inputs: ReadonlyMap<string, GraphTensor>,
  unknown: (field: string, name: string, kind: 'input' | 'output') => Problem,
  fed: Set<string>,
): Problem[] {
  const problems: Problem[] = [];
  if (isTextInput(input)) {
    const t = input.tensors;
    const names: [string, string | undefined, boolean][] = t
      ? [
          ['inputIds', t.inputIds, true],
          ['attentionMask', t.attentionMask, true],
          ['tokenTypeIds', t.tokenTypeIds, true],
        ]
      : [
          ['inputIds', DEFAULT_TEXT_TENSORS.inputIds, true],
          ['attentionMask', DEFAULT_TEXT_TENSORS.attentionMask, false],
          ['tokenTypeIds', DEFAULT_TEXT_TENSORS.tokenTypeIds, false],
        ];
    for (const [key, name, required] of names) {
      if (name === undefined) continue;
      if (inputs.has(name)) fed.add(name);
      else if (required)
        problems.push(
          t
            ? unknown(`${field}.tensors.${key}`, name, 'input')
            : {
                ...unknown(`${field}.tensors.inputIds`, name, 'input'),
                value: `${JSON.stringify(name)} (the default)`,
                fix: `name the model's inputs in ${field}.tensors: { inputIds, attentionMask, tokenTypeIds }`,
              },
        );
    }
    return problems;
  }
  const model = inputs.get(input.tensor);
  if (!model) return [unknown(`${field}.tensor`, input.tensor, 'input')];
  fed.add(input.tensor);
  if (isTabularInput(input)) {
    const dtype = dtypeProblem(field, input.dtype, model);
    if (dtype) problems.push(dtype);
    if (model.shape && model.shape.length !== 2) {
      problems.push({
        code: 'RankMismatch',
        field: `${field}.from.columns`,
        value: `(${input.from.columns.length} columns)`,
        found: `the model's input "${model.name}" is ${shapeText(model)}, rank ${model.shape.length}; columns make [batch, columns]`,
        fix: `use from: { array: <column> } for a tensor of any shape, or a model taking [batch, features]`,
      });
    } else {
      const width = lastFixed(model);
      if (width !== undefined && width !== input.from.columns.length) {
        problems.push({
          code: 'ColumnCount',
          field: `${field}.from.columns`,
          value: `(${input.from.columns.length} columns)`,
          found: `the model's input "${model.name}" is ${shapeText(model)}: it takes ${width} values per record`,
          fix: `list exactly ${width} columns, in the order the model was trained on`,
        });
      }
    }
  } else if (isArrayInput(input)) {
    const dtype = dtypeProblem(field, input.dtype, model);
    if (dtype) problems.push(dtype);
    if (input.shape && model.shape && input.shape.length !== model.shape.length) {
      problems.push({
        code: 'RankMismatch',
        field: `${field}.shape`,
        value: `[${input.shape.join(', ')}]`,
        found: `the model's input "${model.name}" is ${shapeText(model)}, rank ${model.shape.length}`,
        fix: `give ${model.shape.length} dimensions, or remove shape to use the model's`,
      });
    }
  } else if (isImageInput(input)) {
    const dtype = dtypeProblem(field, input.dtype, model);
    if (dtype) problems.push(dtype);
    if (model.shape && model.shape.length !== 4) {
      problems.push({
        code: 'RankMismatch',
        field: `${field}.tensor`,
        value: JSON.stringify(input.tensor),
        found: `the model's input "${model.name}" is ${shapeText(model)}, rank ${model.shape.length}; an image is [batch, channels, height, width] or [batch, height, width, channels]`,
        fix: 'feed this input with from: { array } or from: { columns }, or name the model input that takes images',
      });
    }
  }
  return problems;
}

function checkOutput(
  output: OutputTensorSpec,
  field: string,
  outputs: ReadonlyMap<string, GraphTensor>,
  unknown: (field: string, name: string, kind: 'input' | 'output') => Problem,
  labels: LabelCounts,
): Problem[] {
  const model = outputs.get(output.tensor);
  if (!model) return [unknown(`${field}.tensor`, output.tensor, 'output')];
  const problems: Problem[] = [];
  const pp = output.postprocess;
  if (!pp) return problems;
  if (pp.pool && model.shape && model.shape.length !== 3) {
    problems.push({
      code: 'PoolingRank',
      field: `${field}.postprocess.pool`,
      value: pp.pool,
      found: `the model's output "${model.name}" is ${shapeText(model)}, rank ${model.shape.length}; pooling needs [batch, tokens, hidden]`,
      fix:
        model.shape.length === 2
          ? 'remove pool: the output is already one vector per record'
          : `pool an output of rank 3`,
    });
  }
  const numericNeeded = pp.softmax || pp.sigmoid || pp.argmax || pp.topK || pp.pool || pp.normalize;
  if (numericNeeded && model.type !== undefined && !NUMERIC.has(model.type)) {
    problems.push({
      code: 'NotNumeric',
      field: `${field}.postprocess`,
      value: `(${Object.keys(pp).join(', ')})`,
      found: `the model's output "${model.name}" is ${model.type}`,
      fix: 'remove the postprocess (keep the raw values), or read a numeric output',
    });
  }
  const width = lastFixed(model);
  const labelChecks: [string, string | undefined][] = [
    [`${field}.postprocess.argmax.labels`, pp.argmax?.labels],
    [
      `${field}.postprocess.topK.labels`,
      pp.topK && pp.topK.labels !== pp.argmax?.labels ? pp.topK.labels : undefined,
    ],
  ];
  for (const [labelField, ref] of labelChecks) {
    if (ref === undefined || width === undefined) continue;
    const count = labels.get(ref);
    if (count === undefined || count === width) continue;
    problems.push({
      code: 'LabelCount',
      field: labelField,
      value: JSON.stringify(ref),
      found: `the file has ${count} label${count === 1 ? '' : 's'} but the model's output "${model.name}" is ${shapeText(model)}: ${width} classes`,
      fix: `give the labels file exactly ${width} lines, one per class in class order`,
    });
  }
  if (pp.topK && width !== undefined && pp.topK.k > width) {
    problems.push({
      code: 'LabelCount',
      field: `${field}.postprocess.topK.k`,
      value: String(pp.topK.k),
      found: `the model's output "${model.name}" has ${width} classes`,
      fix: `set k to at most ${width}`,
    });
  }
  return problems;
}

/** Column types the declared outputs write (as postprocess.ts computes them), for the output.schema check. */
export function modelOutputColumnTypes(spec: JobSpec, signature: ModelSignature): Map<string, string> {
  const byName = new Map(signature.outputs.map((t) => [t.name, t]));
  const types = new Map<string, string>();
  for (const out of spec.model.outputs) {
    const info = byName.get(out.tensor);
    if (!info) continue;
    const columnTypes = outputColumnTypes(out, info);
    outputTensorColumnNames(out).forEach((name, i) => types.set(name, columnTypes[i]!));
  }
  return types;
}
