/**
 * The setup every end-to-end local run test shares: the shipped breast-cancer job written with another input,
 * output and overrides; a run of it through the synthesized state machine (real worker processes, the example's
 * model registry, the DuckDB catalogue); its manifest; and SQL over the files it wrote.
 */
import '../../src/runtime/polyfills.js';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { LocalCatalog } from '../../src/catalog/local.js';
import { runLocal, type LocalRunOutcome } from '../../src/local/run-local.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { parseManifest, type Manifest } from '../../src/results/manifest.js';
import { createLogger } from '../../src/runtime/log.js';
import { loadJobSpecFile } from '../../src/spec/load.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { sql } from './duckdb-sql.js';

export { sql };

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
/** The shipped example (examples/breast-cancer). */
export const exampleDir = path.join(repo, 'examples/breast-cancer');
export const exampleRegistryUri = pathToFileURL(path.join(exampleDir, 'registry')).href + '/';

/**
 * Writes `<dir>/<name>.yaml`: the shipped job named `name`, reading `input` and writing `out` (folders), with
 * `model` fields added to its model and `overrides` replacing top-level fields. Returns the file.
 */
export function writeExampleJob(
  dir: string,
  name: string,
  where: { readonly input: string; readonly out: string; readonly model?: Record<string, unknown> },
  overrides: Record<string, unknown> = {},
): string {
  const spec = YAML.parse(readFileSync(path.join(exampleDir, 'job.yaml'), 'utf8')) as Record<string, unknown>;
  const job = {
    ...spec,
    name,
    input: { ...(spec.input as object), uri: `${where.input}/` },
    ...(where.model ? { model: { ...(spec.model as object), ...where.model } } : {}),
    output: { ...(spec.output as object), uri: `${where.out}/` },
    ...overrides,
  };
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, YAML.stringify(job));
  return file;
}

/** Runs a job file locally: two workers, state under `<dir>/state`, the catalogue at `catalogPath`. */
export async function runExampleJob(
  specFile: string,
  dir: string,
  catalogPath: string,
): Promise<LocalRunOutcome> {
  const store = new LocalObjectStore();
  const catalog = new LocalCatalog({ path: catalogPath });
  try {
    return await runLocal(
      await loadJobSpecFile(specFile),
      {
        store,
        registry: new LocalModelRegistry(store, exampleRegistryUri),
        catalog,
        log: createLogger({}, { level: 'error' }),
      },
      { stateDir: path.join(dir, 'state'), workers: 2 },
    );
  } finally {
    await catalog.close();
  }
}

/** The manifest of a run that got as far as writing one. */
export function manifestOf(outcome: LocalRunOutcome): Manifest {
  return parseManifest(JSON.parse(readFileSync(fileURLToPath(outcome.result!.manifestUri), 'utf8')));
}
