/**
 * Writes the JSON Schemas of job specs and pipelines (src/spec/json-schema.ts) to schemas/. Run it after changing a
 * zod schema of src/spec (`npm run schemas`); test/spec/json-schema.test.ts fails while the files are stale.
 */
import { writeFileSync } from 'node:fs';
import * as prettier from 'prettier';
import {
  JOB_SPEC_SCHEMA_FILE,
  jobSpecJsonSchema,
  PIPELINE_SCHEMA_FILE,
  pipelineJsonSchema,
  schemaFileText,
} from '../src/spec/json-schema.js';
import { fromRepoRoot } from '../lib/paths.js';

for (const [file, schema] of [
  [JOB_SPEC_SCHEMA_FILE, jobSpecJsonSchema()],
  [PIPELINE_SCHEMA_FILE, pipelineJsonSchema()],
] as const) {
  const path = fromRepoRoot(file);
  // Formatted as `npm run lint` wants it; the test compares the parsed JSON, so formatting never makes it stale.
  const options = { ...(await prettier.resolveConfig(path)), filepath: path };
  writeFileSync(path, await prettier.format(schemaFileText(schema), options));
  console.log(`wrote ${file}`);
}
