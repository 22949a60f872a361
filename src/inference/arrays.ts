/**
 * Array entries (`from: { array }`): one column holds the record's whole tensor, for any ONNX element type.
 *
 * A value may be nested arrays (JSON, Parquet lists), a typed array, or the text of a JSON array (a CSV cell). Its
 * shape is checked against the entry's shape (the spec's `shape`, else the model's): static dimensions must match;
 * dynamic ones are padded to the longest record of the batch with `pad`, or, without `pad`, must equal those of
 * the batch's first record. A flat list also fits a multi-dimensional static shape when its length matches
 * (row-major), which is how Parquet and CSV usually store images and matrices.
 */
import type * as ort from 'onnxruntime-node';
import { ModelError } from '../spec/errors.js';
import type { ArrayInputSpec } from '../spec/model-io.js';
import type { TensorInfo } from './session.js';
import { allocate, describe, elementWriter, tensorOf, type ElementArray } from './dtypes.js';
import { invalid, isMissing, missing, type EntryBuilder, type EntryIssue } from './entry.js';

/** A per-record dimension: a size, or undefined when dynamic. */
type Dim = number | undefined;

interface Prepared {
  readonly dims: readonly number[];
  readonly data: ElementArray;
}

export function arrayEntry(spec: ArrayInputSpec, info: TensorInfo | undefined): EntryBuilder {
  const dtype = spec.dtype;
  const recordDims = perRecordShape(spec, info);
  const write = elementWriter(dtype);
  const column = spec.from.array;
  const dynamic = recordDims === undefined || recordDims.some((d) => d === undefined);
  return {
    feeds: [spec.tensor],
    columns: [column],
    async: false,
    batch(records) {
      const prepared: (Prepared | undefined)[] = new Array<Prepared | undefined>(records.length);
      // Without `pad`, the first record prepared fixes the batch's dynamic dimensions.
      let fixed: readonly number[] | undefined;
      let rank: number | undefined;
      return {
        prepare(index): EntryIssue | undefined {
          const raw = records[index]!.values[column];
          if (isMissing(raw) && !(dtype === 'string' && raw === '')) return missing(column);
          const parsed = parseValue(raw, dtype === 'string');
          if (typeof parsed === 'string') return invalid(`column "${column}" ${parsed}`);
          const shaped = fitShape(parsed, recordDims);
          if (typeof shaped === 'string') return invalid(`column "${column}" ${shaped}`);
          if (!recordDims) {
            // Neither the spec nor the model gives a shape: the first record sets the rank.
            rank ??= shaped.dims.length;
            if (shaped.dims.length !== rank) {
              return invalid(
                `column "${column}" has shape [${shaped.dims.join(', ')}], of another rank than the first ` +
                  `record of its batch (${rank}); declare shape in the spec`,
              );
            }
          }
          if (spec.pad === undefined && dynamic) {
            if (!fixed) fixed = shaped.dims;
            else if (!sameDims(fixed, shaped.dims)) {
              return invalid(
                `column "${column}" has shape [${shaped.dims.join(', ')}], unlike [${fixed.join(', ')}] of the ` +
                  `first record of its batch; set pad in the spec to pad every record to the longest`,
              );
            }
          }
          const data = allocate(dtype, shaped.leaves.length);
          for (let i = 0; i < shaped.leaves.length; i++) {
            const problem = write(data, i, shaped.leaves[i]);
            if (problem) return invalid(`column "${column}" element ${i}: ${problem} (${dtype} tensor)`);
          }
          prepared[index] = { dims: shaped.dims, data };
          return undefined;
        },
        assemble(included): Record<string, ort.Tensor> {
          const items = included.map((i) => prepared[i]!);
          const rank = items[0]?.dims.length ?? recordDims?.length ?? 1;
          const dims = new Array<number>(rank).fill(0);
          for (const item of items) item.dims.forEach((d, j) => (dims[j] = Math.max(dims[j]!, d)));
          const size = dims.reduce((a, b) => a * b, 1);
          const out = allocate(dtype, items.length * size);
          if (spec.pad !== undefined && items.some((item) => !sameDims(item.dims, dims))) {
            for (let i = 0; i < out.length; i++) write(out, i, spec.pad);
          }
          items.forEach((item, r) => copyPadded(item.data, item.dims, out, r * size, dims));
          return { [spec.tensor]: tensorOf(dtype, out, [items.length, ...dims]) };
        },
      };
    },
  };
}

/**
 * The per-record shape (without the batch dimension): the spec's, with the model's static sizes filling its -1s;
 * undefined when neither says (any rank, all dynamic). Mismatches fail the shard before any record is read.
 */
function perRecordShape(spec: ArrayInputSpec, info: TensorInfo | undefined): Dim[] | undefined {
  const model = info?.shape?.map((d) => (typeof d === 'number' && d > 0 ? d : undefined));
  const declared = spec.shape?.map((d) => (d > 0 ? d : undefined));
  if (model && declared) {
    if (model.length !== declared.length) {
      throw new ModelError(
        `tensor "${spec.tensor}" has rank ${model.length} in the model but shape [${spec.shape!.join(', ')}] in ` +
          `the job spec; fix model.inputs shape`,
      );
    }
    declared.forEach((d, j) => {
      if (j > 0 && d !== undefined && model[j] !== undefined && d !== model[j]) {
        throw new ModelError(
          `tensor "${spec.tensor}" has size ${model[j]} in dimension ${j} in the model but ${d} in the job ` +
            `spec's shape; fix model.inputs shape`,
        );
      }
    });
  }
  const full = declared?.map((d, j) => d ?? model?.[j]) ?? model;
  return full?.slice(1);
}

interface Parsed {
  readonly dims: number[];
  readonly leaves: unknown[];
}

/** A value's shape and its elements in row-major order, or why it is not a rectangular array. */
function parseValue(raw: unknown, stringElements: boolean): Parsed | string {
  let value = raw;
  if (typeof value === 'string' && !stringElements) {
    const text = value.trim();
    if (!text.startsWith('[')) return `is ${describe(raw)}, not an array (nor the text of a JSON array)`;
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      return `is text that is not a JSON array: ${describe(raw)}`;
    }
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const flat = value as unknown as ArrayLike<unknown>;
    return { dims: [flat.length], leaves: Array.from(flat) };
  }
  if (!Array.isArray(value)) return { dims: [], leaves: [value] };
  const dims: number[] = [];
  for (let level: unknown = value; Array.isArray(level); level = level[0]) {
    dims.push(level.length);
    if (level.length === 0) break;
  }
  const leaves: unknown[] = [];
  const walk = (node: unknown, depth: number): boolean => {
    if (depth === dims.length) {
      if (Array.isArray(node)) return false;
      leaves.push(node);
      return true;
    }
    if (!Array.isArray(node) || node.length !== dims[depth]) return false;
    for (const child of node) if (!walk(child, depth + 1)) return false;
    return true;
  };
  if (!walk(value, 0))
    return 'is a ragged array (its rows differ in length); every row must have the same length';
  return { dims, leaves };
}

/** Checks a parsed value against the per-record shape; a flat list may fill a static multi-dimensional shape. */
function fitShape(parsed: Parsed, shape: Dim[] | undefined): Parsed | string {
  if (!shape) return parsed;
  const want = `[${shape.map((d) => d ?? '-1').join(', ')}]`;
  if (parsed.dims.length !== shape.length) {
    const staticSize = shape.every((d) => d !== undefined)
      ? shape.reduce<number>((a, d) => a * d, 1)
      : undefined;
    if (parsed.dims.length === 1 && staticSize === parsed.leaves.length && shape.length > 1) {
      return { dims: shape as number[], leaves: parsed.leaves };
    }
    return `has shape [${parsed.dims.join(', ')}], but each record must be ${want}`;
  }
  for (let j = 0; j < shape.length; j++) {
    const d = shape[j];
    if (d !== undefined && parsed.dims[j] !== d) {
      return `has shape [${parsed.dims.join(', ')}], but each record must be ${want}`;
    }
  }
  return parsed;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Copies a row-major [srcDims] block into a row-major [dstDims] block at `offset` (dstDims >= srcDims). */
function copyPadded(
  src: ElementArray,
  srcDims: readonly number[],
  dst: ElementArray,
  offset: number,
  dstDims: readonly number[],
): void {
  const rank = srcDims.length;
  if (rank === 0) {
    copyRun(src, 0, dst, offset, 1);
    return;
  }
  const last = srcDims[rank - 1]!;
  const strides = new Array<number>(rank).fill(1);
  for (let j = rank - 2; j >= 0; j--) strides[j] = strides[j + 1]! * dstDims[j + 1]!;
  const outer = srcDims.slice(0, -1).reduce((a, b) => a * b, 1);
  const index = new Array<number>(Math.max(rank - 1, 0)).fill(0);
  for (let o = 0; o < outer; o++) {
    let at = offset;
    for (let j = 0; j < rank - 1; j++) at += index[j]! * strides[j]!;
    copyRun(src, o * last, dst, at, last);
    // Odometer over the outer dimensions of the source.
    for (let j = rank - 2; j >= 0; j--) {
      index[j]! += 1;
      if (index[j]! < srcDims[j]!) break;
      index[j] = 0;
    }
  }
}

function copyRun(src: ElementArray, from: number, dst: ElementArray, to: number, length: number): void {
  if (Array.isArray(src)) {
    for (let i = 0; i < length; i++) (dst as string[])[to + i] = src[from + i]!;
  } else {
    (dst as Float32Array).set((src as Float32Array).subarray(from, from + length), to);
  }
}
