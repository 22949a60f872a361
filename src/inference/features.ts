/**
 * Records -> input tensors. A record whose values can't become numbers is set aside as an error row here, before
 * inference, so one bad value never fails a batch.
 */
import * as ort from 'onnxruntime-node';
import type { DecodedRecord } from '../formats/records.js';
import type { ErrorReason } from '../runs/types.js';
import { ModelError } from '../spec/errors.js';
import type { InputTensorSpec, TabularDtype } from '../spec/schema.js';
import type { TensorInfo } from './session.js';

export interface RecordIssue {
  /** Index of the record in the batch handed to `build`. */
  readonly index: number;
  readonly reason: ErrorReason;
  readonly message: string;
}

export interface FeatureBatch {
  readonly feeds: Record<string, ort.Tensor>;
  /** Batch indexes of the records that made it into the tensors, in order: row i of every tensor. */
  readonly included: readonly number[];
  readonly issues: readonly RecordIssue[];
}

export interface FeatureBuilder {
  /** Columns the builder reads: what a reader needs to decode. */
  readonly columns: readonly string[];
  build(records: readonly DecodedRecord[]): FeatureBatch;
}

type NumericArray = Float32Array | Float64Array | Int32Array | BigInt64Array;

const ARRAYS: Record<TabularDtype, new (n: number) => NumericArray> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  int64: BigInt64Array,
};

/** Checks the declared inputs against the model once, so a mismatch fails the shard before any record is read. */
export function createFeatureBuilder(
  declared: readonly InputTensorSpec[],
  modelInputs: readonly TensorInfo[],
): FeatureBuilder {
  const byName = new Map(modelInputs.map((i) => [i.name, i]));
  const problems: string[] = [];
  for (const input of declared) {
    const info = byName.get(input.tensor);
    if (!info) {
      problems.push(
        `model.inputs declares tensor "${input.tensor}" but the model's inputs are ${[...byName.keys()].join(', ')}`,
      );
      continue;
    }
    if (info.type && info.type !== input.dtype) {
      problems.push(
        `tensor "${input.tensor}" is ${info.type} in the model; set dtype: ${info.type} in the job spec`,
      );
    }
    const last = info.shape?.[info.shape.length - 1];
    if (typeof last === 'number' && last !== input.from.columns.length) {
      problems.push(
        `tensor "${input.tensor}" takes ${last} values per record but ${input.from.columns.length} columns are listed`,
      );
    }
    if (info.shape && info.shape.length !== 2) {
      problems.push(
        `tensor "${input.tensor}" has rank ${info.shape.length}; tabular inputs need [batch, features]`,
      );
    }
  }
  const declaredNames = new Set(declared.map((d) => d.tensor));
  for (const name of byName.keys()) {
    if (!declaredNames.has(name))
      problems.push(`the model input "${name}" is not fed: declare it in model.inputs`);
  }
  if (problems.length > 0)
    throw new ModelError(`The job spec does not match the model: ${problems.join('; ')}`);

  const columns = [...new Set(declared.flatMap((d) => d.from.columns))];
  return { columns, build: (records) => buildBatch(declared, records) };
}

function buildBatch(declared: readonly InputTensorSpec[], records: readonly DecodedRecord[]): FeatureBatch {
  const n = records.length;
  const buffers = declared.map((d) => new ARRAYS[d.dtype](n * d.from.columns.length));
  const issues: RecordIssue[] = [];
  const included: number[] = [];
  let row = 0;
  for (let index = 0; index < n; index++) {
    const values = records[index]!.values;
    let issue: RecordIssue | undefined;
    for (let t = 0; t < declared.length && !issue; t++) {
      const spec = declared[t]!;
      const buf = buffers[t]!;
      const cols = spec.from.columns;
      const base = row * cols.length;
      for (let c = 0; c < cols.length; c++) {
        const column = cols[c]!;
        const raw = values[column];
        let num = toNumber(raw);
        if (num === undefined) {
          if (raw === null || raw === undefined || raw === '') {
            if (spec.missing === 'error') {
              issue = { index, reason: 'MISSING_VALUE', message: `column "${column}" is missing or null` };
              break;
            }
            num = spec.missing.fill;
          } else {
            issue = {
              index,
              reason: 'INVALID_VALUE',
              message: `column "${column}" is not a number: ${show(raw)}`,
            };
            break;
          }
        }
        if (buf instanceof BigInt64Array) {
          if (!Number.isInteger(num)) {
            issue = {
              index,
              reason: 'INVALID_VALUE',
              message: `column "${column}" is not an integer: ${show(raw)}`,
            };
            break;
          }
          buf[base + c] = BigInt(num);
        } else {
          buf[base + c] = num;
        }
      }
    }
    if (issue) {
      issues.push(issue);
    } else {
      included.push(index);
      row++;
    }
  }
  const feeds: Record<string, ort.Tensor> = {};
  declared.forEach((spec, t) => {
    const width = spec.from.columns.length;
    const full = buffers[t]!;
    // Rows of rejected records were never committed: only the first `row` rows hold data.
    const data = row === n ? full : full.subarray(0, row * width);
    feeds[spec.tensor] = new ort.Tensor(spec.dtype, data, [row, width]);
  });
  return { feeds, included, issues };
}

/** A finite number, or undefined when the value is absent or not numeric. */
function toNumber(raw: unknown): number | undefined {
  switch (typeof raw) {
    case 'number':
      return Number.isFinite(raw) ? raw : undefined;
    case 'string': {
      const n = Number(raw);
      // Number('') and Number('  ') are 0: only then is it worth checking for a blank string (trim allocates).
      if (n === 0 && raw.trim().length === 0) return undefined;
      return Number.isFinite(n) ? n : undefined;
    }
    case 'bigint':
      return Number(raw);
    default:
      return undefined;
  }
}

function show(raw: unknown): string {
  const text = typeof raw === 'string' ? JSON.stringify(raw) : String(raw);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
