/**
 * The contract between the feature builder and each kind of `model.inputs` entry (tabular, array, text, image).
 *
 * Building a batch has two phases so a record that fails any entry leaves every tensor: first each entry
 * *prepares* every record (checks and converts its values, remembering them), then each entry *assembles* its
 * tensors from the records that every entry accepted. Batch-wide choices (the longest token sequence, the padded
 * size of a dynamic dimension) are made in the second phase, over exactly the records that go in.
 */
import type * as ort from 'onnxruntime-node';
import type { DecodedRecord } from '../formats/records.js';
import type { ErrorReason } from '../runs/types.js';

/** Why one record cannot feed an entry. */
export interface EntryIssue {
  readonly reason: ErrorReason;
  readonly message: string;
}

export interface EntryBatch {
  /** Prepares record `index` of the batch; an issue sets the record aside. May be async (image decoding). */
  prepare(index: number): EntryIssue | undefined | Promise<EntryIssue | undefined>;
  /** The entry's tensors, one row per index of `included`, in that order. */
  assemble(included: readonly number[]): Record<string, ort.Tensor>;
}

export interface EntryBuilder {
  /** Graph inputs the entry feeds. */
  readonly feeds: readonly string[];
  /** Record columns it reads. */
  readonly columns: readonly string[];
  /** Whether `prepare` is async: the builder then prepares records concurrently. */
  readonly async: boolean;
  /** Per-batch state, so batches may be built concurrently. */
  batch(records: readonly DecodedRecord[]): EntryBatch;
}

/** A record value that is absent: null, undefined, or (for text formats) an empty cell. */
export function isMissing(value: unknown): boolean {
  return value === null || value === undefined || value === '';
}

export function missing(column: string): EntryIssue {
  return { reason: 'MISSING_VALUE', message: `column "${column}" is missing or null` };
}

export function invalid(message: string): EntryIssue {
  return { reason: 'INVALID_VALUE', message };
}
