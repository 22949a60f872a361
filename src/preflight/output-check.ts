/**
 * `output.schema` against the columns the job will write: every declared column must be one the run writes
 * (input.id, output.passthrough, the model outputs' columns, a processor's columns, _shard/_source/_offset), and a
 * model output column's declared type must be the type the worker writes for that tensor. Passthrough columns keep
 * their input type, which is checked at Finalize against what was written.
 */
import { outputColumnNames } from '../spec/load.js';
import type { JobSpec } from '../spec/schema.js';
import { modelOutputColumnTypes } from './model-check.js';
import type { ModelSignature } from './onnx-signature.js';
import { didYouMean, listNames, type Problem } from './problems.js';

/** Columns every output row has besides the spec's (worker/shard-writer.ts). */
export const ROW_IDENTITY_COLUMNS = ['_shard', '_source', '_offset'] as const;

export function checkOutputSchema(spec: JobSpec, signature: ModelSignature | undefined): Problem[] {
  const declared = spec.output.schema;
  if (!declared) return [];
  const written = [...outputColumnNames(spec), ...ROW_IDENTITY_COLUMNS];
  const processorTypes = new Map(Object.entries(spec.model.processor?.columns ?? {}));
  const modelTypes = signature ? modelOutputColumnTypes(spec, signature) : new Map<string, string>();
  const problems: Problem[] = [];
  for (const [column, type] of Object.entries(declared)) {
    const field = `output.schema.${column}`;
    if (!written.includes(column)) {
      const near = didYouMean(column, written);
      problems.push({
        code: 'SchemaColumn',
        field,
        value: type,
        found: `the job writes no column "${column}"; it writes ${listNames(written)}`,
        fix: near
          ? `did you mean "${near}"? rename it in output.schema`
          : 'remove it from output.schema, or add it to output.passthrough',
      });
      continue;
    }
    const writes = modelTypes.get(column) ?? processorTypes.get(column);
    if (writes !== undefined && writes !== type) {
      problems.push({
        code: 'SchemaType',
        field,
        value: type,
        found: `the job writes "${column}" as ${writes}${modelTypes.has(column) ? ' (from the model output and its postprocess)' : ' (model.processor.columns)'}`,
        fix: `declare ${column}: ${writes}, or change the postprocess that makes it`,
      });
    }
  }
  return problems;
}
