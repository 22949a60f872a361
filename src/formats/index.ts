/** The record readers by input format, and the one call the worker makes to read a range. */
import type { ObjectStore } from '../storage/object-store.js';
import type { InputRange } from '../runs/types.js';
import type { InputFormat } from '../spec/schema.js';
import { readCsv } from './csv.js';
import { readFiles } from './files.js';
import { readJsonl } from './jsonl.js';
import { readParquet } from './parquet-read.js';
import type { ReadOptions, ReaderRegistry, SourceRecord } from './records.js';

export { readCsvHeader } from './csv.js';
export { MAX_FILE_BYTES, readFileRanges } from './files.js';
export { parquetLayout, READABLE_CODECS, type ParquetLayout } from './parquet-read.js';
export { encodeParquet, type OutputColumn, type OutputColumnType } from './parquet-write.js';
export type * from './records.js';

export const readers: ReaderRegistry = {
  jsonl: readJsonl,
  csv: readCsv,
  parquet: readParquet,
  files: readFiles,
};

/** Reads one range of one input object, batch by batch, in input order. */
export function readRange(
  store: ObjectStore,
  format: InputFormat,
  range: InputRange,
  options: ReadOptions,
): AsyncIterable<SourceRecord[]> {
  // A zero or fractional batch size would loop forever or yield one record at a time by accident.
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer, got ${options.batchSize}`);
  }
  return readers[format](store, range, options);
}
