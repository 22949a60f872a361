/**
 * The file extension and content type of each output format, apart from the encoders: code that only names output
 * files (Finalize, bundled into a Lambda) must not pull in the Parquet writer and its native DuckDB binding.
 */
import type { JobSpec } from '../spec/schema.js';

export type OutputFormat = JobSpec['output']['format'];

export const OUTPUT_FILES: Readonly<Record<OutputFormat, { extension: string; contentType: string }>> = {
  parquet: { extension: 'parquet', contentType: 'application/vnd.apache.parquet' },
  jsonl: { extension: 'jsonl', contentType: 'application/x-ndjson' },
  csv: { extension: 'csv', contentType: 'text/csv' },
};
