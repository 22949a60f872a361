/**
 * Output tensors -> prediction columns, as declared in `model.outputs`: raw values, softmax, argmax with labels,
 * the winning score or the whole probability vector.
 */
import type * as ort from 'onnxruntime-node';
import type { ErrorReason } from '../runs/types.js';
import { ModelError } from '../spec/errors.js';
import type { OutputTensorSpec } from '../spec/schema.js';
import type { TensorInfo } from './session.js';

/** Column types as the output schema names them. */
export type ColumnType = 'string' | 'float' | 'double' | 'int' | 'bigint' | 'boolean' | 'array<float>';

export interface PredictionColumn {
  readonly name: string;
  readonly type: ColumnType;
}

export interface RowIssue {
  /** Row of the output tensors (= index into FeatureBatch.included). */
  readonly row: number;
  readonly reason: ErrorReason;
  readonly message: string;
}

export interface PostprocessResult {
  /** One array per column of `columns`, `rows` values each; values of rows listed in `issues` are undefined. */
  readonly values: readonly unknown[][];
  readonly issues: readonly RowIssue[];
}

export interface Postprocessor {
  readonly columns: readonly PredictionColumn[];
  apply(outputs: Record<string, ort.Tensor>, rows: number): PostprocessResult;
}

type Reader = (row: number) => unknown;

interface OutputPlan {
  readonly spec: OutputTensorSpec;
  readonly labels?: readonly string[];
  readonly columns: PredictionColumn[];
}

/**
 * @param labels label lists by the spec's `argmax.labels` reference, already loaded.
 */
export function createPostprocessor(
  declared: readonly OutputTensorSpec[],
  modelOutputs: readonly TensorInfo[],
  labels: ReadonlyMap<string, readonly string[]>,
): Postprocessor {
  const byName = new Map(modelOutputs.map((o) => [o.name, o]));
  const plans: OutputPlan[] = declared.map((spec) => {
    const info = byName.get(spec.tensor);
    if (!info) {
      throw new ModelError(
        `model.outputs declares tensor "${spec.tensor}" but the model's outputs are ${[...byName.keys()].join(', ')}`,
      );
    }
    const pp = spec.postprocess;
    const name = spec.as ?? spec.tensor;
    const columns: PredictionColumn[] = [];
    let labelList: readonly string[] | undefined;
    if (pp?.argmax) {
      if (pp.argmax.labels) {
        labelList = labels.get(pp.argmax.labels);
        if (!labelList) throw new ModelError(`labels file "${pp.argmax.labels}" was not loaded`);
      }
      columns.push({ name: pp.argmax.as, type: labelList ? 'string' : 'int' });
      for (const keep of pp.keep) {
        columns.push(keep === 'score' ? { name: 'score', type: 'float' } : { name, type: 'array<float>' });
      }
    } else {
      columns.push({ name, type: rawType(info, pp?.softmax ?? false) });
    }
    return { spec, labels: labelList, columns };
  });

  return {
    columns: plans.flatMap((p) => p.columns),
    apply(outputs, rows) {
      const values: unknown[][] = [];
      const issues: RowIssue[] = [];
      const bad = new Set<number>();
      for (const plan of plans) {
        const tensor = outputs[plan.spec.tensor];
        if (!tensor) throw new ModelError(`the model returned no "${plan.spec.tensor}" output`);
        const readers = planReaders(plan, tensor, rows, (row, reason, message) => {
          if (!bad.has(row)) {
            bad.add(row);
            issues.push({ row, reason, message });
          }
        });
        for (const read of readers) {
          const col = new Array<unknown>(rows);
          for (let r = 0; r < rows; r++) col[r] = read(r);
          values.push(col);
        }
      }
      for (const col of values) for (const r of bad) col[r] = undefined;
      issues.sort((a, b) => a.row - b.row);
      return { values, issues };
    },
  };
}

function rawType(info: TensorInfo, softmax: boolean): ColumnType {
  const width = lastDim(info);
  if (softmax || width === undefined || width > 1) return 'array<float>';
  switch (info.type) {
    case 'float64':
      return 'double';
    case 'int32':
    case 'int16':
    case 'int8':
    case 'uint8':
    case 'uint16':
      return 'int';
    case 'int64':
      return 'bigint';
    case 'bool':
      return 'boolean';
    default:
      return 'float';
  }
}

/** The per-record width of an output when the model declares it (product of all but the batch dimension). */
function lastDim(info: TensorInfo): number | undefined {
  if (!info.shape || info.shape.length === 0) return undefined;
  let width = 1;
  for (const d of info.shape.slice(1)) {
    if (typeof d !== 'number') return undefined;
    width *= d;
  }
  return width;
}

function planReaders(
  plan: OutputPlan,
  tensor: ort.Tensor,
  rows: number,
  fail: (row: number, reason: ErrorReason, message: string) => void,
): Reader[] {
  const width = rows === 0 ? 0 : tensor.size / rows;
  if (!Number.isInteger(width)) {
    throw new ModelError(`output "${plan.spec.tensor}" has ${tensor.size} values for ${rows} records`);
  }
  const data = tensor.data as ArrayLike<number | bigint | string | boolean>;
  const pp = plan.spec.postprocess;

  const slice = (row: number): number[] | undefined => {
    const out = new Array<number>(width);
    for (let k = 0; k < width; k++) {
      const v = Number(data[row * width + k]);
      if (!Number.isFinite(v)) {
        fail(row, 'INFERENCE_ERROR', `output "${plan.spec.tensor}" is not finite (${v}) at position ${k}`);
        return undefined;
      }
      out[k] = v;
    }
    return pp?.softmax ? softmax(out) : out;
  };

  if (!pp?.argmax) {
    const type = plan.columns[0]!.type;
    if (type === 'array<float>') return [(row) => slice(row)];
    if (type === 'bigint') return [(row) => BigInt(data[row] as bigint)];
    if (type === 'boolean') return [(row) => Boolean(data[row])];
    return [(row) => slice(row)?.[0]];
  }

  // argmax + keep: compute each row's vector once, shared by the label and kept columns.
  let cachedRow = -1;
  let cached: number[] | undefined;
  const vector = (row: number): number[] | undefined => {
    if (row !== cachedRow) {
      cachedRow = row;
      cached = slice(row);
    }
    return cached;
  };
  const argmax = (v: number[]): number => {
    let best = 0;
    for (let k = 1; k < v.length; k++) if (v[k]! > v[best]!) best = k;
    return best;
  };
  const labels = plan.labels;
  const readers: Reader[] = [
    (row) => {
      const v = vector(row);
      if (!v) return undefined;
      const idx = argmax(v);
      if (!labels) return idx;
      const label = labels[idx];
      if (label === undefined) {
        fail(
          row,
          'POSTPROCESS_ERROR',
          `argmax ${idx} has no line in the labels file (${labels.length} labels)`,
        );
      }
      return label;
    },
  ];
  for (const keep of pp.keep) {
    readers.push(
      keep === 'score'
        ? (row) => {
            const v = vector(row);
            return v ? v[argmax(v)] : undefined;
          }
        : (row) => vector(row),
    );
  }
  return readers;
}

function softmax(v: number[]): number[] {
  let max = -Infinity;
  for (const x of v) if (x > max) max = x;
  let sum = 0;
  const out = v.map((x) => {
    const e = Math.exp(x - max);
    sum += e;
    return e;
  });
  return out.map((e) => e / sum);
}

/** Parses a labels file: one label per line, trailing blank lines ignored. */
export function parseLabels(text: string): string[] {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}
