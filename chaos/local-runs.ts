/**
 * What the whole-run chaos loops (s3-faults, poison-runs, concurrency) share: running the shipped breast-cancer
 * example (or a spec of one's own) as a local run through the synthesized state machine, and the checks that say
 * whether a run's published data is exact and whether a failed run left anything visible.
 *
 * "Visible" is judged the way readers see an output prefix, independent of where the product keeps unpublished
 * files: the Parquet files a glob `<output>/run_date=*\/run_id=<id>/*.parquet` matches (listed through the object
 * store, so the same for file:// and s3://), and the local catalogue (its table and its `_runs` table).
 */
import '../src/runtime/polyfills.js';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';
import type { Catalog } from '../src/catalog/catalog.js';
import { LocalCatalog, queryCatalog, quoteIdentifier, quoteString } from '../src/catalog/local.js';
import { runLocal, type LocalRunOutcome } from '../src/local/run-local.js';
import { LocalModelRegistry } from '../src/registry/local.js';
import { createLogger } from '../src/runtime/log.js';
import { parseJobSpec } from '../src/spec/load.js';
import type { JobSpec } from '../src/spec/schema.js';
import { asPrefix } from '../src/storage/uri.js';
import type { ObjectStore } from '../src/storage/object-store.js';

export const repo = path.resolve(fileURLToPath(import.meta.url), '../..');
export const example = path.join(repo, 'examples/breast-cancer');
export const exampleRegistryUri = `${pathToFileURL(path.join(example, 'registry')).href}/`;

/**
 * The shipped example's spec over `inputUri`, writing to `outputUri`, with top-level fields replaced by `overrides`
 * (e.g. `run`, `validation`, `name`), parsed as a spec file is (defaults applied, relative paths resolved).
 */
export async function exampleSpec(
  inputUri: string,
  outputUri: string,
  overrides: Record<string, unknown> = {},
): Promise<JobSpec> {
  const file = path.join(example, 'job.yaml');
  const raw = YAML.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  return parseJobSpec(
    {
      ...raw,
      input: { ...(raw.input as object), uri: asPrefix(inputUri) },
      output: { ...(raw.output as object), uri: asPrefix(outputUri) },
      ...overrides,
    },
    { source: file, baseDir: example },
  );
}

export interface LocalRunSetup {
  readonly store: ObjectStore;
  /** The local catalogue's DuckDB file. */
  readonly catalogPath: string;
  readonly stateDir: string;
  readonly runId: string;
  readonly s3Endpoint?: string;
  /** @default 2 */
  readonly workers?: number;
  /** @default the shipped example's registry */
  readonly registryUri?: string;
  /** A catalogue other than the local DuckDB one (e.g. one that fails). */
  readonly catalog?: Catalog;
}

/** One local run, as `batch-infer run` does it, with errors of the run itself returned rather than thrown. */
export async function runOnce(spec: JobSpec, setup: LocalRunSetup): Promise<LocalRunOutcome> {
  const catalog = setup.catalog ?? new LocalCatalog({ path: setup.catalogPath, store: setup.store });
  try {
    return await runLocal(
      spec,
      {
        store: setup.store,
        registry: new LocalModelRegistry(setup.store, setup.registryUri ?? exampleRegistryUri),
        catalog,
        log: createLogger({}, { level: 'error' }),
      },
      {
        runId: setup.runId,
        stateDir: setup.stateDir,
        workers: setup.workers ?? 2,
        ...(setup.s3Endpoint ? { s3Endpoint: setup.s3Endpoint } : {}),
      },
    );
  } finally {
    if (!setup.catalog) await (catalog as LocalCatalog).close();
  }
}

/** Parquet files of a run that a glob `run_date=*\/run_id=<runId>/*.parquet` over the output prefix matches. */
export async function visibleParquet(
  store: ObjectStore,
  outputUri: string,
  runId: string,
): Promise<string[]> {
  const prefix = asPrefix(outputUri);
  const pattern = new RegExp(`^run_date=[^/]+/run_id=${runId}/[^/]+\\.parquet$`);
  const found: string[] = [];
  for await (const object of store.list(prefix)) {
    const relative = object.uri.slice(prefix.length);
    if (pattern.test(relative)) found.push(relative);
  }
  return found.sort();
}

/** What the local catalogue holds of a run: rows of its table, and whether `_runs` lists it. */
export async function catalogueOf(
  catalogPath: string,
  table: string,
  runId: string,
): Promise<{ rows: number; listed: boolean }> {
  if (!existsSync(catalogPath)) return { rows: 0, listed: false };
  const count = async (sql: string): Promise<number> => {
    try {
      return Number((await queryCatalog(catalogPath, sql)).rows[0]?.[0] ?? 0);
    } catch (err) {
      // A catalogue without the table (or `_runs`) yet holds nothing of the run.
      if (/does not exist|not found/i.test(String(err))) return 0;
      throw err;
    }
  };
  const rows = await count(
    `SELECT count(*) FROM ${quoteIdentifier(table)} WHERE run_id = ${quoteString(runId)}`,
  );
  const listed = await count(`SELECT count(*) FROM _runs WHERE run_id = ${quoteString(runId)}`);
  return { rows, listed: listed > 0 };
}

/**
 * Differences between a run's published rows and a reference run's, in the catalogue: every column except the
 * partition columns, EXCEPT ALL both ways; duplicate ids; and the row count. [] when exact.
 */
export async function publishedDifferences(
  catalogPath: string,
  table: string,
  runId: string,
  referenceRunId: string,
  idColumn: string,
  expectedRows: number,
  /** The reference run's table, when it is not `table` (another pipeline with the same spec). */
  referenceTable: string = table,
): Promise<string[]> {
  const t = quoteIdentifier(table);
  const id = quoteIdentifier(idColumn);
  const of = (run: string, from = t): string =>
    `(SELECT * EXCLUDE (run_id, run_date) FROM ${from} WHERE run_id = ${quoteString(run)})`;
  const reference = of(referenceRunId, quoteIdentifier(referenceTable));
  const result = await queryCatalog(
    catalogPath,
    `SELECT
       (SELECT count(*) FROM ${t} WHERE run_id = ${quoteString(runId)}) AS n,
       (SELECT count(DISTINCT ${id}) FROM ${t} WHERE run_id = ${quoteString(runId)}) AS ids,
       (SELECT count(*) FROM (${of(runId)} EXCEPT ALL ${reference})) AS only_here,
       (SELECT count(*) FROM (${reference} EXCEPT ALL ${of(runId)})) AS only_there`,
  );
  const [n, ids, onlyHere, onlyThere] = (result.rows[0] ?? []).map(Number) as [
    number,
    number,
    number,
    number,
  ];
  const problems: string[] = [];
  if (n !== expectedRows) problems.push(`${n} rows published, expected ${expectedRows}`);
  if (ids !== n) problems.push(`${n - ids} duplicate ${idColumn}s`);
  if (onlyHere > 0 || onlyThere > 0)
    problems.push(`${onlyHere} rows not in the reference run, ${onlyThere} of its rows missing`);
  return problems;
}
