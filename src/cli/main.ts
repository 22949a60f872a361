/**
 * The `batch-infer` command line. Local commands (run, validate, query) work with no AWS account: `run` executes
 * the deployed state machine's definition locally (src/local/run-local.ts).
 */
import '../runtime/polyfills.js';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { formatTable, LocalCatalog, queryCatalog } from '../catalog/local.js';
import { runLocal, type LocalRunOutcome } from '../local/run-local.js';
import { fmt, formatDuration, terminalProgress } from '../local/progress.js';
import { LocalModelRegistry } from '../registry/local.js';
import type { RunError } from '../runs/failures.js';
import { runUriOf } from '../runs/layout.js';
import { createLogger } from '../runtime/log.js';
import { dryRun, DryRunUnsupportedError } from '../preflight/dry-run.js';
import { formatProblem, preflight, PreflightError } from '../preflight/index.js';
import { InputError, ModelError, SpecError } from '../spec/errors.js';
import { loadJobSpecFile, outputColumnNames, specFolderUri } from '../spec/load.js';
import type { JobSpec } from '../spec/schema.js';
import { createObjectStore } from '../storage/index.js';
import { joinUri, normalizeUri } from '../storage/uri.js';

const USAGE = `batch-infer — batch inference with ONNX models, locally or on AWS

Usage:
  batch-infer run <job.yaml> [options]     run a job through the local pipeline
  batch-infer validate <job.yaml>          check a job spec against its model and input; print what it resolves to
  batch-infer query "<SQL>" [--json]       query the local catalogue (one table per job)
  batch-infer help

Options for run:
  --json                 print exactly one JSON object with the result on stdout
  --workers <n>          worker processes at once (default: number of cores)
  --run-id <id>          execution name (default: time-based)
  --input <uri>          override input.uri for this run
  --registry <dir|uri>   local model registry (default: <spec dir>/registry)
  --s3-endpoint <url>    S3-compatible endpoint for s3:// URIs (default: $BATCH_INFER_S3_ENDPOINT)
  --dry-run <n>          run the first n records on CPU into a temporary folder and print the rows; no run
Options for validate:
  --sample <n>           also run the first n records on CPU and print the rows and error rows they would give
Common options:
  --state-dir <dir>      local state: catalogue and logs (default: $BATCH_INFER_HOME or ./.batch-infer)
  --catalog <file>       local catalogue database (default: <state dir>/catalog.duckdb)
`;

const OPTIONS = {
  json: { type: 'boolean' },
  workers: { type: 'string' },
  'run-id': { type: 'string' },
  input: { type: 'string' },
  registry: { type: 'string' },
  's3-endpoint': { type: 'string' },
  'state-dir': { type: 'string' },
  catalog: { type: 'string' },
  sample: { type: 'string' },
  'dry-run': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** Exit codes: 0 success, 1 the run failed (validation, shards), 2 bad usage or bad spec. */
export async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || !command || command === 'help') {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 2;
  }
  try {
    switch (command) {
      case 'run':
        return await runCommand(single(rest, 'run <job.yaml>'), values);
      case 'validate':
        return await validateCommand(single(rest, 'validate <job.yaml>'), values);
      case 'query':
        return await queryCommand(single(rest, 'query "<SQL>"'), values);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof SpecError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

class UsageError extends Error {}

function single(args: readonly string[], usage: string): string {
  if (args.length !== 1) throw new UsageError(`expected: batch-infer ${usage}`);
  return args[0]!;
}

function stateDir(values: Values): string {
  return path.resolve(values['state-dir'] ?? process.env.BATCH_INFER_HOME ?? '.batch-infer');
}

function catalogPath(values: Values): string {
  return path.resolve(values.catalog ?? path.join(stateDir(values), 'catalog.duckdb'));
}

async function runCommand(specFile: string, values: Values): Promise<number> {
  const spec = await loadJobSpecFile(specFile);
  if (values['dry-run'] !== undefined) return dryRunCommand(specFile, spec, values, values['dry-run']);
  const workers = values.workers === undefined ? undefined : Number(values.workers);
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1)) {
    throw new UsageError(`--workers must be a positive integer (got "${values.workers}")`);
  }
  const dir = stateDir(values);
  mkdirSync(dir, { recursive: true });
  const registryUri = normalizeUri(
    values.registry ??
      process.env.BATCH_INFER_REGISTRY ??
      path.join(path.dirname(path.resolve(specFile)), 'registry/'),
    process.cwd(),
  );
  const s3Endpoint = values['s3-endpoint'] ?? process.env.BATCH_INFER_S3_ENDPOINT;
  const store = createObjectStore({ s3Endpoint });
  const catalog = new LocalCatalog({ path: catalogPath(values) });
  const log = createLogger({ component: 'local' }, { level: process.env.LOG_LEVEL ? undefined : 'warn' });
  let outcome: LocalRunOutcome;
  try {
    outcome = await runLocal(
      spec,
      {
        store,
        registry: new LocalModelRegistry(store, registryUri),
        catalog,
        log,
        ...(values.json ? {} : { progress: terminalProgress() }),
      },
      {
        stateDir: dir,
        ...(values['run-id'] ? { runId: values['run-id'] } : {}),
        ...(values.input ? { inputUri: values.input } : {}),
        ...(workers ? { workers } : {}),
        ...(s3Endpoint ? { s3Endpoint } : {}),
        specFolderUri: specFolderUri(specFile),
      },
    );
  } finally {
    await catalog.close();
  }
  const summary = {
    runId: outcome.runId,
    status: outcome.status,
    records: outcome.result?.records ?? 0,
    predictions: outcome.result?.predictions ?? 0,
    errors: outcome.result?.errors ?? 0,
    outputUri: outcome.result?.outputUri ?? spec.output.uri,
    manifestUri:
      outcome.result?.manifestUri ?? joinUri(runUriOf(spec.output.uri, outcome.runId), 'manifest.json'),
    wallMs: Math.round(outcome.wallMs),
    ...(outcome.status === 'FAILED' && { error: runErrorOf(outcome) }),
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    printSummary(spec, outcome, summary, catalogPath(values));
  }
  return outcome.status === 'SUCCEEDED' ? 0 : 1;
}

function printSummary(
  spec: JobSpec,
  outcome: LocalRunOutcome,
  s: {
    records: number;
    predictions: number;
    errors: number;
    outputUri: string;
    manifestUri: string;
    wallMs: number;
  },
  catalogFile: string,
): void {
  const out = process.stdout;
  const rate = s.wallMs > 0 ? Math.round((s.records / s.wallMs) * 1000) : 0;
  out.write(`\nRun ${outcome.runId} ${outcome.status} in ${formatDuration(s.wallMs / 1000)}`);
  out.write(outcome.status === 'SUCCEEDED' ? '\n' : ` (${outcome.error ?? 'error'})\n`);
  if (outcome.status !== 'SUCCEEDED') {
    const error = runErrorOf(outcome);
    out.write(`  reason       ${outcome.cause ?? 'unknown'}\n`);
    if (error.shard !== undefined)
      out.write(`  first error  shard ${error.shard}: ${error.code}: ${error.message}\n`);
    if (error.log !== undefined) out.write(`  its log      ${error.log}\n`);
  }
  const errorRate = s.records > 0 ? ((s.errors / s.records) * 100).toFixed(4) : '0';
  out.write(`  records      ${fmt(s.records)} (${fmt(rate)} records/s)\n`);
  out.write(`  predictions  ${fmt(s.predictions)}\n`);
  out.write(`  errors       ${fmt(s.errors)} (${errorRate}%)\n`);
  out.write(`  output       ${s.outputUri}\n`);
  out.write(`  manifest     ${s.manifestUri}\n`);
  out.write(`  worker logs  ${outcome.logDir}\n`);
  if (outcome.status === 'SUCCEEDED') {
    const columns = outputColumnNames(spec);
    const example = spec.model.outputs.some((o) => o.postprocess?.argmax)
      ? `select ${columns.includes('label') ? 'label' : columns[columns.length - 1]}, count(*) as n from ${spec.name} where run_id = '${outcome.runId}' group by all order by n desc`
      : `select * from ${spec.name} where run_id = '${outcome.runId}' limit 10`;
    const catalogFlag =
      catalogFile === path.resolve('.batch-infer', 'catalog.duckdb') ? '' : ` --catalog ${catalogFile}`;
    out.write(`\nQuery the results:\n  npx batch-infer query${catalogFlag} "${example}"\n`);
  }
}

/**
 * The first failure's reason: the failed shard's record when Finalize found one, else the Fail state's error and
 * cause (a PlanFailed's cause is the Plan error's JSON, `{ errorType, errorMessage }`, or its message).
 */
function runErrorOf(outcome: LocalRunOutcome): RunError {
  if (outcome.result?.error) return outcome.result.error;
  let code = outcome.error ?? 'Error';
  let message = outcome.cause ?? outcome.result?.message ?? 'unknown';
  try {
    const parsed = JSON.parse(message) as unknown;
    if (parsed !== null && typeof parsed === 'object') {
      const p = parsed as Record<string, unknown>;
      if (typeof p.errorType === 'string') code = p.errorType;
      if (typeof p.errorMessage === 'string') message = p.errorMessage;
    }
  } catch {
    // Not JSON: the cause is the message itself.
  }
  return { code, message };
}

async function validateCommand(specFile: string, values: Values): Promise<number> {
  const spec = await loadJobSpecFile(specFile);
  const problems = await preflightCommand(specFile, spec, values);
  if (problems !== 0) return problems;
  if (values.sample !== undefined) return dryRunCommand(specFile, spec, values, values.sample);
  process.stdout.write(`${specFile} is valid.\n\nResolved (defaults applied, paths made absolute):\n`);
  process.stdout.write(`${JSON.stringify(spec, null, 2)}\n`);
  process.stdout.write(`\nOutput columns: ${outputColumnNames(spec).join(', ')}, _shard, _source, _offset\n`);
  return 0;
}

/**
 * Preflight for validate: the spec against its model and a sample of its input (src/preflight). Prints one line per
 * problem on stderr and returns 2 when there are any; a model or input that cannot be found is a SpecError-like
 * failure (exit 2) with its message.
 */
async function preflightCommand(specFile: string, spec: JobSpec, values: Values): Promise<number> {
  const s3Endpoint = values['s3-endpoint'] ?? process.env.BATCH_INFER_S3_ENDPOINT;
  const store = createObjectStore({ s3Endpoint });
  const registryUri = normalizeUri(
    values.registry ??
      process.env.BATCH_INFER_REGISTRY ??
      path.join(path.dirname(path.resolve(specFile)), 'registry/'),
    process.cwd(),
  );
  let problems;
  try {
    problems = await preflight(spec, {
      store,
      registry: new LocalModelRegistry(store, registryUri),
      specFolder: specFolderUri(specFile),
      ...(values.input ? { inputUri: values.input } : {}),
    });
  } catch (err) {
    if (err instanceof ModelError || err instanceof InputError) {
      process.stderr.write(`${specFile}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (problems.length === 0) return 0;
  process.stderr.write(
    `${specFile} does not fit its model or input (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n`,
  );
  for (const problem of problems) process.stderr.write(`  - ${formatProblem(problem)}\n`);
  return 2;
}

/** `validate --sample n` and `run --dry-run n`: n records through the worker on CPU (src/preflight/dry-run.ts). */
async function dryRunCommand(
  specFile: string,
  spec: JobSpec,
  values: Values,
  count: string,
): Promise<number> {
  const records = Number(count);
  if (!Number.isInteger(records) || records < 1) {
    throw new UsageError(`the number of records to sample must be a positive integer (got "${count}")`);
  }
  const store = createObjectStore({
    s3Endpoint: values['s3-endpoint'] ?? process.env.BATCH_INFER_S3_ENDPOINT,
  });
  const registryUri = normalizeUri(
    values.registry ??
      process.env.BATCH_INFER_REGISTRY ??
      path.join(path.dirname(path.resolve(specFile)), 'registry/'),
    process.cwd(),
  );
  let result;
  try {
    result = await dryRun(spec, records, {
      store,
      registry: new LocalModelRegistry(store, registryUri),
      specFolderUri: specFolderUri(specFile),
    });
  } catch (err) {
    if (err instanceof PreflightError || err instanceof DryRunUnsupportedError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  }
  process.stdout.write(
    `\nDry run of ${records} record(s): ${result.rows.length} row(s), ${result.errors.length} error row(s)\n`,
  );
  for (const row of result.rows) process.stdout.write(`  ${JSON.stringify(row)}\n`);
  if (result.errors.length > 0) process.stdout.write('Error rows:\n');
  for (const row of result.errors) process.stdout.write(`  ${JSON.stringify(row)}\n`);
  return 0;
}

async function queryCommand(sql: string, values: Values): Promise<number> {
  const result = await queryCatalog(catalogPath(values), sql);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    process.stdout.write(`${formatTable(result)}\n`);
  }
  return 0;
}
