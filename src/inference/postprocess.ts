/**
 * Output tensors -> prediction columns, as declared in `model.outputs`: raw values of any element type (a value or
 * a list per record), softmax or sigmoid, argmax with labels, top-k labels and scores, the winning score or the
 * whole probability vector, and pooled, L2-normalised embeddings from [batch, tokens, hidden] outputs. A processor
 * module's postprocess adds its own columns after the declared ones.
 */
import * as ort from 'onnxruntime-node';
import type { DecodedRecord } from '../formats/records.js';
import type { ErrorReason } from '../runs/types.js';
import { ModelError } from '../spec/errors.js';
import { outputTensorColumnNames } from '../spec/load.js';
import type { OutputColumnTypeName, OutputTensorSpec } from '../spec/model-io.js';
import { describe, fromHalfBits } from './dtypes.js';
import type { ModelFiles } from './model-files.js';
import { outputColumnTypes } from './output-column-types.js';
import type { ProcessorModule } from './processor.js';
import type { TensorInfo } from './session.js';

/** Column types as the output schema names them. */
export type ColumnType = OutputColumnTypeName;

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

/** What the model was run on: pooling reads the attention mask, a processor's postprocess reads the records. */
export interface PostprocessInputs {
  /** The feeds the outputs were computed from (FeatureBatch.feeds, or the slice of it that was run). */
  readonly feeds?: Readonly<Record<string, ort.Tensor>>;
  /** The records of the rows, in row order. */
  readonly records?: readonly DecodedRecord[];
}

export interface Postprocessor {
  readonly columns: readonly PredictionColumn[];
  /** Async because a processor module's postprocess may be. */
  apply(
    outputs: Readonly<Record<string, ort.Tensor>>,
    rows: number,
    inputs?: PostprocessInputs,
  ): Promise<PostprocessResult>;
}

type Fail = (row: number, reason: ErrorReason, message: string) => void;

const INT64_MAX = 2n ** 63n - 1n;
type Reader = (row: number) => unknown;

interface OutputPlan {
  readonly spec: OutputTensorSpec;
  readonly info: TensorInfo;
  readonly argmaxLabels?: readonly string[];
  readonly topKLabels?: readonly string[];
  readonly columns: PredictionColumn[];
}

/**
 * Checks the declared outputs against the model once (names, pooling ranks, processor columns), so a mismatch
 * fails the shard before any record is read.
 * @param files labels (by their spec reference) and the processor module, from loadModelFiles.
 */
export function createPostprocessor(
  declared: readonly OutputTensorSpec[],
  modelOutputs: readonly TensorInfo[],
  files: Pick<ModelFiles, 'labels' | 'processor'>,
): Postprocessor {
  const byName = new Map(modelOutputs.map((o) => [o.name, o]));
  const labelsFor = (ref: string | undefined): readonly string[] | undefined => {
    if (ref === undefined) return undefined;
    const list = files.labels.get(ref);
    if (!list) throw new ModelError(`labels file "${ref}" was not loaded`);
    return list;
  };
  const plans: OutputPlan[] = declared.map((spec) => {
    const info = byName.get(spec.tensor);
    if (!info) {
      throw new ModelError(
        `model.outputs declares tensor "${spec.tensor}" but the model's outputs are ${[...byName.keys()].join(', ')}`,
      );
    }
    const pp = spec.postprocess;
    if (pp?.pool && info.shape && info.shape.length !== 3) {
      throw new ModelError(
        `output "${spec.tensor}" has shape [${info.shape.join(', ')}]; pool needs [batch, tokens, hidden]`,
      );
    }
    if (
      (pp?.softmax || pp?.sigmoid || pp?.argmax || pp?.topK || pp?.pool || pp?.normalize) &&
      !numeric(info)
    ) {
      throw new ModelError(`output "${spec.tensor}" is ${info.type}; its postprocess needs numbers`);
    }
    const argmaxLabels = labelsFor(pp?.argmax?.labels);
    const topKLabels = labelsFor(pp?.topK?.labels);
    const names = outputTensorColumnNames(spec);
    const types = outputColumnTypes(spec, info);
    const columns = names.map((name, i) => ({ name, type: types[i]! }));
    return { spec, info, argmaxLabels, topKLabels, columns };
  });
  const processor = processorColumns(files.processor, modelOutputs);

  return {
    columns: [...plans.flatMap((p) => p.columns), ...(processor?.columns ?? [])],
    async apply(outputs, rows, inputs = {}) {
      const values: unknown[][] = [];
      const issues: RowIssue[] = [];
      const bad = new Set<number>();
      const fail: Fail = (row, reason, message) => {
        if (!bad.has(row)) {
          bad.add(row);
          issues.push({ row, reason, message });
        }
      };
      for (const plan of plans) {
        const tensor = outputs[plan.spec.tensor];
        if (!tensor) throw new ModelError(`the model returned no "${plan.spec.tensor}" output`);
        for (const read of planReaders(plan, tensor, rows, inputs.feeds ?? {}, fail)) {
          const col = new Array<unknown>(rows);
          for (let r = 0; r < rows; r++) col[r] = read(r);
          values.push(col);
        }
      }
      if (processor) values.push(...(await processor.apply(outputs, rows, inputs.records ?? [], fail)));
      for (const col of values) for (const r of bad) col[r] = undefined;
      issues.sort((a, b) => a.row - b.row);
      return { values, issues };
    },
  };
}

function numeric(info: TensorInfo): boolean {
  return info.type !== 'string' && info.type !== 'bool';
}

/** The column type of an output's raw values: one value per record, or a list. */
function planReaders(
  plan: OutputPlan,
  tensor: ort.Tensor,
  rows: number,
  feeds: Readonly<Record<string, ort.Tensor>>,
  fail: Fail,
): Reader[] {
  const name = plan.spec.tensor;
  const width = rows === 0 ? 0 : tensor.size / rows;
  if (!Number.isInteger(width) || (rows > 0 && tensor.dims[0] !== rows && tensor.dims.length > 0)) {
    throw new ModelError(`output "${name}" has shape [${tensor.dims.join(', ')}] for ${rows} records`);
  }
  const pp = plan.spec.postprocess;
  const raw = tensor.data as ArrayLike<number | bigint | string | boolean>;
  const half = tensor.type === 'float16';
  const numberAt = (i: number): number => (half ? fromHalfBits(raw[i] as number) : Number(raw[i]));

  /** Row `row` as finite numbers (activated), or undefined after failing the row. */
  const vectorOf = (row: number): number[] | undefined => {
    const out = new Array<number>(width);
    for (let k = 0; k < width; k++) {
      const v = numberAt(row * width + k);
      if (!Number.isFinite(v)) {
        fail(row, 'INFERENCE_ERROR', `output "${name}" is not finite (${v}) at position ${k}`);
        return undefined;
      }
      out[k] = v;
    }
    if (pp?.softmax) return softmax(out);
    if (pp?.sigmoid) return out.map(sigmoid);
    return out;
  };

  if (!pp) return [rawReader(plan.columns[0]!.type, tensor, width, numberAt, vectorOf, fail)];

  if (pp.pool || pp.normalize) {
    const pooled = pp.pool ? poolReader(plan, tensor, rows, feeds, numberAt, fail) : vectorOf;
    return [
      (row) => {
        const v = pooled(row);
        if (!v || !pp.normalize) return v;
        let norm = 0;
        for (const x of v) norm += x * x;
        // As torch's F.normalize: a zero vector stays zero rather than becoming NaN.
        const scale = 1 / Math.max(Math.sqrt(norm), 1e-12);
        return v.map((x) => x * scale);
      },
    ];
  }

  // Compute each row's vector once, shared by the label, score, top-k and vector columns.
  let cachedRow = -1;
  let cached: number[] | undefined;
  const vector = (row: number): number[] | undefined => {
    if (row !== cachedRow) {
      cachedRow = row;
      cached = vectorOf(row);
    }
    return cached;
  };
  const readers: Reader[] = [];
  if (pp.argmax) {
    const labels = plan.argmaxLabels;
    readers.push((row) => {
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
    });
  }
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
  if (pp.topK) {
    const { k, minScore } = pp.topK;
    const labels = plan.topKLabels;
    let topRow = -1;
    let top: number[] = [];
    const best = (row: number): number[] | undefined => {
      const v = vector(row);
      if (!v) return undefined;
      if (row !== topRow) {
        topRow = row;
        top = topIndexes(v, k).filter((i) => minScore === undefined || v[i]! >= minScore);
      }
      return top;
    };
    readers.push((row) => {
      const idx = best(row);
      if (!idx || !labels) return idx;
      const missingLabel = idx.find((i) => labels[i] === undefined);
      if (missingLabel !== undefined) {
        fail(
          row,
          'POSTPROCESS_ERROR',
          `top-k class ${missingLabel} has no line in the labels file (${labels.length} labels)`,
        );
        return undefined;
      }
      return idx.map((i) => labels[i]!);
    });
    readers.push((row) => {
      const idx = best(row);
      const v = vector(row);
      return idx && v ? idx.map((i) => v[i]!) : undefined;
    });
  }
  if (!pp.argmax && !pp.topK) {
    readers.push(plan.columns[0]!.type === 'float' ? (row) => vector(row)?.[0] : (row) => vector(row));
  }
  return readers;
}

/** Raw values in the column type chosen for the output's element type. */
function rawReader(
  type: ColumnType,
  tensor: ort.Tensor,
  width: number,
  numberAt: (i: number) => number,
  vectorOf: (row: number) => number[] | undefined,
  fail: Fail,
): Reader {
  const data = tensor.data as ArrayLike<number | bigint | string>;
  // uint64 values above the int64 range have no place in a bigint (INT64) column: their row fails instead.
  const big = (row: number, v: number | bigint | string): bigint | undefined => {
    const b = BigInt(v);
    if (b <= INT64_MAX) return b;
    fail(row, 'POSTPROCESS_ERROR', `the ${tensor.type} value ${b} does not fit a bigint (int64) column`);
    return undefined;
  };
  const slice = <T>(row: number, map: (v: number | bigint | string, i: number) => T): T[] => {
    const out = new Array<T>(width);
    for (let k = 0; k < width; k++) out[k] = map(data[row * width + k]!, row * width + k);
    return out;
  };
  switch (type) {
    case 'float':
    case 'double':
      return (row) => vectorOf(row)?.[0];
    case 'array<float>':
    case 'array<double>':
      return (row) => vectorOf(row);
    case 'int':
      return (row) => numberAt(row);
    case 'array<int>':
      return (row) => slice(row, (_, i) => numberAt(i));
    case 'bigint':
      return (row) => big(row, data[row]!);
    case 'array<bigint>':
      return (row) => {
        const values = slice(row, (v) => big(row, v));
        return values.includes(undefined) ? undefined : values;
      };
    case 'boolean':
      return (row) => Boolean(data[row]);
    case 'array<boolean>':
      return (row) => slice(row, (v) => Boolean(v));
    case 'string':
      return (row) => data[row];
    case 'array<string>':
      return (row) => slice(row, (v) => v as string);
  }
}

/** Pools a [batch, tokens, hidden] output over its tokens: the first (cls), or mean / max where the mask is set. */
function poolReader(
  plan: OutputPlan,
  tensor: ort.Tensor,
  rows: number,
  feeds: Readonly<Record<string, ort.Tensor>>,
  numberAt: (i: number) => number,
  fail: Fail,
): (row: number) => number[] | undefined {
  const name = plan.spec.tensor;
  const pp = plan.spec.postprocess!;
  if (tensor.dims.length !== 3) {
    throw new ModelError(
      `output "${name}" has shape [${tensor.dims.join(', ')}]; pool needs [batch, tokens, hidden]`,
    );
  }
  const tokens = tensor.dims[1]!;
  const hidden = tensor.dims[2]!;
  let mask: ArrayLike<number | bigint | boolean> | undefined;
  if (pp.pool !== 'cls') {
    const maskTensor = pp.mask === undefined ? undefined : feeds[pp.mask];
    if (!maskTensor) {
      throw new ModelError(
        `pool: ${pp.pool} of output "${name}" needs the attention mask fed to the model, and the feeds have no ` +
          `"${pp.mask}"; set postprocess.mask to the graph input that holds it`,
      );
    }
    if (maskTensor.dims[0] !== rows || maskTensor.dims[1] !== tokens) {
      throw new ModelError(
        `attention mask "${pp.mask}" is [${maskTensor.dims.join(', ')}] but output "${name}" is ` +
          `[${tensor.dims.join(', ')}]; they must agree on [batch, tokens]`,
      );
    }
    mask = maskTensor.data as ArrayLike<number | bigint | boolean>;
  }
  // float32 (nearly every model): read the array directly rather than through a conversion per element.
  const f32 = tensor.type === 'float32' ? (tensor.data as Float32Array) : undefined;
  return (row) => {
    const base = row * tokens * hidden;
    const out = new Array<number>(hidden).fill(pp.pool === 'max' ? -Infinity : 0);
    let count = 0;
    for (let t = 0; t < (pp.pool === 'cls' ? 1 : tokens); t++) {
      if (mask && !Number(mask[row * tokens + t])) continue;
      count++;
      for (let h = 0; h < hidden; h++) {
        const v = f32 ? f32[base + t * hidden + h]! : numberAt(base + t * hidden + h);
        if (pp.pool === 'max') out[h] = Math.max(out[h]!, v);
        else out[h]! += v;
      }
    }
    if (count === 0) {
      fail(row, 'POSTPROCESS_ERROR', `output "${name}": the attention mask keeps no token to pool`);
      return undefined;
    }
    if (pp.pool === 'mean') for (let h = 0; h < hidden; h++) out[h]! /= count;
    if (out.some((v) => !Number.isFinite(v))) {
      fail(row, 'INFERENCE_ERROR', `output "${name}" is not finite after pooling`);
      return undefined;
    }
    return out;
  };
}

function argmax(v: readonly number[]): number {
  let best = 0;
  for (let k = 1; k < v.length; k++) if (v[k]! > v[best]!) best = k;
  return best;
}

/** Indexes of the k largest values, largest first; ties keep the lower index first (a stable choice). */
function topIndexes(v: readonly number[], k: number): number[] {
  const idx = Array.from(v, (_, i) => i);
  idx.sort((a, b) => v[b]! - v[a]! || a - b);
  return idx.slice(0, Math.min(k, v.length));
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

function sigmoid(x: number): number {
  // Split by sign so neither branch overflows exp().
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** Parses a labels file: one label per line, trailing blank lines ignored. */
export function parseLabels(text: string): string[] {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** The processor module's postprocess, checked against `model.processor.columns`. */
function processorColumns(
  processor: ProcessorModule | undefined,
  modelOutputs: readonly TensorInfo[],
):
  | {
      columns: PredictionColumn[];
      apply(
        outputs: Readonly<Record<string, ort.Tensor>>,
        rows: number,
        records: readonly DecodedRecord[],
        fail: Fail,
      ): Promise<unknown[][]>;
    }
  | undefined {
  if (!processor) return undefined;
  const declared = processor.columns;
  const postprocess = processor.postprocess;
  if (!postprocess) {
    if (declared && Object.keys(declared).length > 0) {
      throw new ModelError(
        `model.processor.columns is declared but processor "${processor.ref}" exports no postprocess; export ` +
          'one, or remove columns',
      );
    }
    return undefined;
  }
  if (!declared) {
    throw new ModelError(
      `processor "${processor.ref}" exports postprocess; declare the columns it returns in ` +
        'model.processor.columns ({ name: type })',
    );
  }
  const columns = Object.entries(declared).map(([name, type]) => ({ name, type }));
  return {
    columns,
    async apply(outputs, rows, records, fail) {
      const values = columns.map(() => new Array<unknown>(rows));
      let result: readonly Record<string, unknown>[];
      try {
        const context = { Tensor: ort.Tensor, modelOutputs };
        result = await postprocess(outputs, records, context);
      } catch (err) {
        const message = `processor "${processor.ref}" postprocess failed: ${(err as Error).message}`;
        for (let r = 0; r < rows; r++) fail(r, 'POSTPROCESS_ERROR', message);
        return values;
      }
      if (!Array.isArray(result) || result.length !== rows) {
        throw new ModelError(
          `processor "${processor.ref}": postprocess must return one row per record (${rows}), got ` +
            `${Array.isArray(result) ? result.length : describe(result)}`,
        );
      }
      result.forEach((row: unknown, r) => {
        if (row === null || typeof row !== 'object') {
          fail(r, 'POSTPROCESS_ERROR', `processor postprocess returned ${describe(row)} for a row`);
          return;
        }
        const fields = row as Record<string, unknown>;
        if (typeof fields._error === 'string') {
          fail(r, 'POSTPROCESS_ERROR', fields._error);
          return;
        }
        columns.forEach((column, c) => {
          const checked = checkValue(column.type, fields[column.name]);
          if (checked.ok) values[c]![r] = checked.value;
          else
            fail(
              r,
              'POSTPROCESS_ERROR',
              `processor column "${column.name}" (${column.type}): ${checked.why}`,
            );
        });
      });
      return values;
    },
  };
}

type Checked = { ok: true; value: unknown } | { ok: false; why: string };

/** A value as the Parquet writer takes it for `type`, or why it does not fit (so one row fails, not the file). */
export function checkValue(type: ColumnType, value: unknown): Checked {
  if (value === null || value === undefined) return { ok: true, value: null };
  const element = /^array<(.+)>$/.exec(type)?.[1] as ColumnType | undefined;
  if (element) {
    const list = ArrayBuffer.isView(value) ? Array.from(value as unknown as ArrayLike<unknown>) : value;
    if (!Array.isArray(list)) return { ok: false, why: `expected a list, got ${describe(value)}` };
    const out: unknown[] = [];
    for (const item of list as unknown[]) {
      const c = checkValue(element, item);
      if (!c.ok || c.value === null)
        return { ok: false, why: `list element ${describe(item)} is not a ${element}` };
      out.push(c.value);
    }
    return { ok: true, value: out };
  }
  switch (type) {
    case 'string':
      return typeof value === 'string'
        ? { ok: true, value }
        : { ok: false, why: `expected a string, got ${describe(value)}` };
    case 'float':
    case 'double':
      return typeof value === 'number'
        ? { ok: true, value }
        : { ok: false, why: `expected a number, got ${describe(value)}` };
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31
        ? { ok: true, value }
        : { ok: false, why: `expected a 32-bit integer, got ${describe(value)}` };
    case 'bigint':
      if (typeof value === 'bigint') return { ok: true, value };
      return typeof value === 'number' && Number.isSafeInteger(value)
        ? { ok: true, value: BigInt(value) }
        : { ok: false, why: `expected an integer, got ${describe(value)}` };
    case 'boolean':
      return typeof value === 'boolean'
        ? { ok: true, value }
        : { ok: false, why: `expected a boolean, got ${describe(value)}` };
    default:
      return { ok: false, why: `unsupported type ${type}` };
  }
}
