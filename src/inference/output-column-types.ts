/**
 * The column types a declared model output writes, from the output's spec and the model's declared element type and
 * shape. The worker (postprocess.ts) and preflight (preflight/model-check.ts, in the Plan Lambda) both need them;
 * this module imports no ONNX Runtime so the Plan bundle stays small.
 */
import type { OutputColumnTypeName, OutputTensorSpec } from '../spec/model-io.js';

/** What the model declares of a tensor: element type (`float32`, `int64`...) and shape (strings are symbolic). */
export interface DeclaredTensor {
  readonly type?: string;
  readonly shape?: readonly (number | string)[];
}

/** The per-record size of a tensor when the model declares it (product of all but the batch dimension). */
export function recordWidth(info: DeclaredTensor): number | undefined {
  if (!info.shape || info.shape.length === 0) return undefined;
  let width = 1;
  for (const d of info.shape.slice(1)) {
    if (typeof d !== 'number' || d < 0) return undefined;
    width *= d;
  }
  return width;
}

/** The column type of an output written as the model returns it: a scalar when one value per record, else a list. */
export function rawColumnType(info: DeclaredTensor): OutputColumnTypeName {
  const scalar = recordWidth(info) === 1;
  const element = elementColumnType(info.type);
  return scalar ? element : `array<${element}>`;
}

function elementColumnType(
  type: string | undefined,
): 'float' | 'double' | 'int' | 'bigint' | 'string' | 'boolean' {
  switch (type) {
    case 'float64':
      return 'double';
    case 'int8':
    case 'int16':
    case 'int32':
    case 'uint8':
    case 'uint16':
      return 'int';
    case 'uint32':
    case 'int64':
    case 'uint64':
      return 'bigint';
    case 'bool':
      return 'boolean';
    case 'string':
      return 'string';
    default:
      return 'float';
  }
}

/**
 * The types of an output entry's columns, in the order of `outputTensorColumnNames(spec)` (spec/load.ts): the argmax
 * label, the kept score or vector, the top-k labels and scores, and the (activated or pooled) vector itself.
 */
export function outputColumnTypes(spec: OutputTensorSpec, info: DeclaredTensor): OutputColumnTypeName[] {
  const pp = spec.postprocess;
  if (!pp) return [rawColumnType(info)];
  const types: OutputColumnTypeName[] = [];
  if (pp.argmax) types.push(pp.argmax.labels !== undefined ? 'string' : 'int');
  for (const keep of pp.keep) types.push(keep === 'score' ? 'float' : 'array<float>');
  if (pp.topK) types.push(pp.topK.labels !== undefined ? 'array<string>' : 'array<int>', 'array<float>');
  if (!pp.argmax && !pp.topK) {
    const scalar = !pp.softmax && !pp.pool && !pp.normalize && recordWidth(info) === 1;
    types.push(scalar ? 'float' : 'array<float>');
  }
  return types;
}
