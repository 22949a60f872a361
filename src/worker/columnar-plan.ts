/**
 * Whether a run's shards take the columnar path (columnar-stream.ts), decided from its spec alone: apart from the
 * stream so that the CLI can ask (a local run sizes its worker processes by it) without loading the worker's data
 * path.
 */
import type { ColumnarPlan } from '../formats/columnar-rows.js';
import { isTabularInput } from '../spec/model-io.js';
import type { JobSpec } from '../spec/schema.js';

/**
 * The columnar plan of a run, when its shards can take the columnar path: CSV or Parquet input, every model input
 * tabular, no processor module (its hooks read record objects) and no challenger (its lane writes from the records).
 * Undefined otherwise: the shard reads records (RecordStream).
 */
export function columnarPlanOf(
  spec: Pick<JobSpec, 'input' | 'model' | 'output'>,
  identityTypes: Readonly<Record<string, string>> | undefined,
  challenger: boolean,
): ColumnarPlan | undefined {
  const format = spec.input.format;
  if ((format !== 'csv' && format !== 'parquet') || challenger || spec.model.processor) return undefined;
  const entries = spec.model.inputs.filter(isTabularInput);
  if (entries.length === 0 || entries.length !== spec.model.inputs.length) return undefined;
  const identity = [...new Set([...(spec.input.id ? [spec.input.id] : []), ...spec.output.passthrough])];
  // Parquet values come typed from the file: the CSV identity types do not apply.
  const types = format === 'csv' ? identityTypes : undefined;
  return { entries, identity, format, ...(types ? { types } : {}) };
}
