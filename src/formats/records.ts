/**
 * Record readers turn a piece of an input object (an InputRange) into records, batch by batch, streaming: memory
 * stays bounded by the batch size whatever the object size.
 */
import type { ObjectStore } from '../storage/object-store.js';
import type { ErrorReason, InputRange } from '../runs/types.js';
import type { InputFormat } from '../spec/schema.js';

/** A record's place in the input: its identity when no id column is declared, and its lineage always. */
export interface RecordPosition {
  /** URI of the input object. */
  readonly source: string;
  /** Byte offset of the record's line (jsonl, csv) or row index in the file (parquet). */
  readonly offset: number;
}

export interface DecodedRecord extends RecordPosition {
  readonly values: Readonly<Record<string, unknown>>;
  readonly error?: undefined;
}

/** A record that could not be decoded; it becomes an error row, and the shard goes on. */
export interface UndecodableRecord extends RecordPosition {
  readonly values?: undefined;
  readonly error: { readonly reason: ErrorReason; readonly message: string };
  /**
   * The record's values as far as they were read, when the record itself could be split into them and only a value
   * failed (a CSV field not of its declared type): the error row can still carry the record's id.
   */
  readonly partial?: Readonly<Record<string, unknown>>;
}

export type SourceRecord = DecodedRecord | UndecodableRecord;

export interface ReadOptions {
  /** Records per yielded batch. */
  readonly batchSize: number;
  /** Columns to decode (others may be skipped, e.g. not read from Parquet). Undefined: all. */
  readonly columns?: readonly string[];
}

/** Reads one range of one input object, in input order. */
export type RangeReader = (
  store: ObjectStore,
  range: InputRange,
  options: ReadOptions,
) => AsyncIterable<SourceRecord[]>;

export type ReaderRegistry = Readonly<Record<InputFormat, RangeReader>>;
