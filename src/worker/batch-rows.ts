/**
 * From a model's outputs to the rows a ShardWriter appends, for the champion (run-shard.ts) and the challenger
 * (challenger/lane.ts) alike: the outputs of one batch post-processed into prediction columns in record order, with
 * the records a model or its post-processing failed as error rows; and the batches of a bucketed window put back
 * into input order.
 */
import type * as ort from 'onnxruntime-node';
import type { DecodedRecord, SourceRecord } from '../formats/records.js';
import type { Postprocessor } from '../inference/postprocess.js';
import type { ErrorReason } from '../runs/types.js';
import { sliceFeeds, type InferenceResult } from './inference-thread.js';
import type { BatchRows } from './shard-writer.js';

export type RowError = { reason: ErrorReason; message: string };

/** The records of a batch (or window) as read: what the rows are of. */
export interface RecordsOf {
  readonly records: readonly SourceRecord[];
  readonly ranges: readonly number[];
}

/** A decoded batch as inference saw it. */
export interface InferredBatch {
  readonly batch: RecordsOf;
  /** Batch indexes of the records in the tensors, row by row. */
  readonly included: readonly number[];
}

/**
 * Outputs -> prediction values in record order, and the error rows of the batch. `errors` holds the batch's
 * decode and feature errors and receives the model's and the post-processor's (it becomes the rows' `errors`).
 * `model` names the model in the message of a record it failed ("model", "challenger model").
 */
export async function assembleBatchRows(
  item: InferredBatch,
  result: InferenceResult | undefined,
  post: Postprocessor,
  options: {
    readonly errors: Map<number, RowError>;
    /** The batch's feeds (post-processing may read them: pooling by attention mask). */
    readonly feeds: Record<string, ort.Tensor> | undefined;
    readonly model: string;
  },
): Promise<BatchRows> {
  const { errors, feeds } = options;
  const n = item.batch.records.length;
  const rowOf = new Int32Array(n).fill(-1);
  const predictions: unknown[][] = post.columns.map(() => []);
  let count = 0;
  for (const segment of result?.segments ?? []) {
    if (!segment.outputs) {
      const message =
        segment.count === 1
          ? `the ${options.model} failed on this record: ${segment.error ?? 'unknown error'}`
          : `the ${options.model} failed on this batch: ${segment.error ?? 'unknown error'}`;
      for (let r = 0; r < segment.count; r++) {
        errors.set(item.included[segment.start + r]!, { reason: 'INFERENCE_ERROR', message });
      }
      continue;
    }
    const whole = segment.start === 0 && segment.count === item.included.length;
    const records = item.included
      .slice(segment.start, segment.start + segment.count)
      .map((i) => item.batch.records[i] as DecodedRecord);
    const out = await post.apply(segment.outputs, segment.count, {
      ...(feeds
        ? { feeds: whole ? feeds : sliceFeeds(feeds, item.included.length, segment.start, segment.count) }
        : {}),
      records,
    });
    const issues = new Map(out.issues.map((i) => [i.row, i]));
    for (let r = 0; r < segment.count; r++) {
      const index = item.included[segment.start + r]!;
      const issue = issues.get(r);
      if (issue) {
        errors.set(index, { reason: issue.reason, message: issue.message });
        continue;
      }
      rowOf[index] = count++;
      for (let c = 0; c < predictions.length; c++) predictions[c]!.push(out.values[c]![r]);
    }
  }
  return {
    records: item.batch.records,
    ranges: item.batch.ranges,
    rowOf,
    predictions,
    predictionCount: count,
    errors,
  };
}

/** A bucketed window's rows, gathered per record (`values`: its prediction values, when it has one). */
export interface WindowValues {
  readonly values: (unknown[] | undefined)[];
  readonly errors: Map<number, RowError>;
}

/** Puts a batch's rows into its window: record j of the batch is record `order[j]` of the window. */
export function placeBatchRows(window: WindowValues, order: readonly number[], rows: BatchRows): void {
  for (let j = 0; j < order.length; j++) {
    const index = order[j]!;
    const row = rows.rowOf[j]!;
    if (row >= 0) window.values[index] = rows.predictions.map((column) => column[row]);
    else {
      const error = rows.errors.get(j);
      if (error) window.errors.set(index, error);
    }
  }
}

/** A bucketed window's rows in input order. */
export function gatherWindowRows(
  batch: RecordsOf,
  window: WindowValues | undefined,
  columns: number,
): BatchRows {
  const n = batch.records.length;
  const rowOf = new Int32Array(n).fill(-1);
  const predictions: unknown[][] = Array.from({ length: columns }, () => []);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const values = window?.values[i];
    if (!values) continue;
    rowOf[i] = count++;
    for (let c = 0; c < columns; c++) predictions[c]!.push(values[c]);
  }
  return {
    records: batch.records,
    ranges: batch.ranges,
    rowOf,
    predictions,
    predictionCount: count,
    errors: window?.errors ?? new Map(),
  };
}
