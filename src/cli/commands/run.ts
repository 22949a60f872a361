/**
 * `batch-infer run <job.yaml>`: run a job through the local pipeline (the synthesized state machine in the local
 * interpreter). `--resume <runId>` continues an interrupted run from its plan, markers and checkpoints.
 *
 * Every run gets a record in the state directory's runs table (src/operate/local-records.ts) when it starts and
 * when it ends, so `runs`, `status`, `watch`, `cancel` and `logs` see it. Ctrl-C stops the workers (they
 * checkpoint) and ends the run ABORTED, exit 130; `cancel` (SIGTERM) ends it CANCELLED, exit 1.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { LocalCatalog } from '../../catalog/local.js';
import { fmt, formatDuration, terminalProgress } from '../../local/progress.js';
import { runLocal, type LocalRunOutcome } from '../../local/run-local.js';
import {
  LocalRunRecords,
  effectiveStatus,
  type LocalRunRecord,
  type RunStatus,
} from '../../operate/local-records.js';
import { LocalModelRegistry } from '../../registry/local.js';
import type { RunError } from '../../runs/failures.js';
import { newRunId, RUN_ID_PATTERN, RUN_ID_RULE, runUriOf } from '../../runs/layout.js';
import { createLogger } from '../../runtime/log.js';
import { loadJobSpecFile, outputColumnNames, specFolderUri } from '../../spec/load.js';
import type { JobSpec } from '../../spec/schema.js';
import { workerTuningIssues } from '../../worker/env.js';
import { createObjectStore } from '../../storage/index.js';
import { joinUri, normalizeUri, parseUri } from '../../storage/uri.js';
import {
  catalogOption,
  jsonOption,
  positiveInt,
  resolveCatalogPath,
  resolveStateDir,
  stateDirOption,
  type StateOptions,
  s3EndpointOption,
  specRegistryOption,
} from '../common.js';
import type { CommandContext } from '../context.js';
import { CliError, EXIT, UsageError } from '../errors.js';
import { painter, statusStyle, writeJson } from '../io.js';
import { dryRunCommand, runErrorOf } from './preflight.js';
import { costOfManifest, describeCost, estimatePlannedRun, printEstimate } from '../../cost/cli.js';
import type { RunCost } from '../../cost/cost.js';
import type { CostEstimate } from '../../cost/estimate.js';

export interface RunOptions extends StateOptions {
  readonly json?: boolean;
  readonly workers?: string;
  readonly runId?: string;
  readonly input?: string;
  readonly registry?: string;
  readonly s3Endpoint?: string;
  readonly resume?: string;
  readonly dryRun?: string;
}

export function registerRun(program: Command, ctx: CommandContext): void {
  program
    .command('run')
    .description('run a job through the local pipeline, in the foreground')
    .argument('[job.yaml]', 'the job spec (optional with --resume)')
    .addOption(jsonOption())
    .option(
      '--workers <n>',
      'worker processes at once (default: one per core, one per two cores for CSV into a tabular model)',
    )
    .option('--run-id <id>', 'execution name (default: time-based)')
    .option('--input <uri>', 'override input.uri for this run')
    .addOption(specRegistryOption())
    .addOption(s3EndpointOption())
    .addOption(new Option('--resume <runId>', 'continue an interrupted run from its markers and checkpoints'))
    .option(
      '--dry-run <n>',
      'run the first n records on CPU into a temporary folder and print the rows; no run',
    )
    .addOption(stateDirOption())
    .addOption(catalogOption())
    .action(async (specFile: string | undefined, options: RunOptions) => {
      ctx.exit(await runCommand(specFile, options, ctx));
    });
}

/** The run's result as `run --json` prints it. */
export interface RunSummary {
  readonly runId: string;
  readonly status: RunStatus;
  readonly records: number;
  readonly predictions: number;
  readonly errors: number;
  readonly outputUri: string;
  readonly manifestUri: string;
  readonly wallMs: number;
  /** A failed run's first failure: what, where and its log. */
  readonly error?: RunError;
  /** The cost estimate printed once the run was planned (src/cost/estimate.ts). */
  readonly estimate?: CostEstimate;
  /** What the run's completed shards cost, from its manifest (src/cost/cost.ts). */
  readonly cost?: RunCost;
}

export async function runCommand(
  specArg: string | undefined,
  options: RunOptions,
  ctx: CommandContext,
): Promise<number> {
  const { io } = ctx;
  const dir = resolveStateDir(options, io);
  const records = new LocalRunRecords(dir);
  let specFile = specArg;
  let runId = options.runId;
  let inputUri = options.input;
  if (options.resume !== undefined) {
    const previous = records.read(options.resume);
    if (!previous) {
      throw new CliError(
        `No local run "${options.resume}" in ${records.dir}; list runs with: batch-infer runs --state-dir ${dir}`,
      );
    }
    const status = effectiveStatus(previous);
    if (status === 'RUNNING' || status === 'STARTING') {
      throw new CliError(
        `Run ${previous.runId} is still running (pid ${previous.pid}); watch it with: batch-infer watch ${previous.runId}`,
      );
    }
    if (status === 'SUCCEEDED') {
      throw new CliError(`Run ${previous.runId} already SUCCEEDED; start a new run instead of resuming it`);
    }
    if (options.runId !== undefined && options.runId !== previous.runId) {
      throw new UsageError('--run-id and --resume name different runs; give only --resume');
    }
    specFile ??= previous.specFile;
    runId = previous.runId;
    inputUri ??= previous.inputUri;
  }
  if (specFile === undefined)
    throw new UsageError('missing argument: run <job.yaml> (or run --resume <runId>)');
  // The workers inherit this environment: a bad tuning value would fail each of them, round after round.
  const tuning = workerTuningIssues(io.env);
  if (tuning.length > 0) {
    throw new CliError(`Invalid worker setting in the environment (fix or unset it): ${tuning.join('; ')}`);
  }
  specFile = path.resolve(io.cwd, specFile);
  const spec = await loadJobSpecFile(specFile);
  if (options.dryRun !== undefined) return dryRunCommand(specFile, spec, options.dryRun, options, ctx);
  const workers = positiveInt('--workers', options.workers);
  runId ??= newRunId();
  if (!RUN_ID_PATTERN.test(runId)) {
    throw new UsageError(`--run-id "${runId}" ${RUN_ID_RULE}`);
  }
  mkdirSync(dir, { recursive: true });
  const registryUri = normalizeUri(
    options.registry ?? io.env.BATCH_INFER_REGISTRY ?? path.join(path.dirname(specFile), 'registry/'),
    io.cwd,
  );
  const s3Endpoint = options.s3Endpoint ?? io.env.BATCH_INFER_S3_ENDPOINT;
  const store = createObjectStore({ s3Endpoint });
  const catalogFile = resolveCatalogPath(options, io);
  // The store lets the catalogue publish runs whose output is in S3 (ADR 0014).
  const catalog = new LocalCatalog({
    path: catalogFile,
    store,
    warn: (message) => io.stderr.write(`${message}\n`),
  });
  const log = createLogger({ component: 'local' }, { level: io.env.LOG_LEVEL ? undefined : 'warn' });
  const logDir = path.join(dir, 'logs', runId);
  const startedAt = new Date().toISOString();
  const existing = records.read(runId);
  const base: LocalRunRecord = {
    version: 1,
    runId,
    pipeline: spec.name,
    specFile,
    outputUri: spec.output.uri,
    ...(inputUri ? { inputUri } : {}),
    pid: process.pid,
    status: 'RUNNING',
    startedAt: existing?.startedAt ?? startedAt,
    logDir,
  };
  records.write(base);

  let outcome: LocalRunOutcome;
  let estimate: CostEstimate | undefined;
  try {
    outcome = await runLocal(
      spec,
      {
        store,
        registry: new LocalModelRegistry(store, registryUri),
        catalog,
        log,
        ...(options.json ? {} : { progress: terminalProgress(io.stderr as NodeJS.WriteStream) }),
      },
      {
        stateDir: dir,
        runId,
        ...(inputUri ? { inputUri } : {}),
        ...(workers ? { workers } : {}),
        ...(s3Endpoint ? { s3Endpoint } : {}),
        specFolderUri: specFolderUri(specFile),
        signal: ctx.interrupted,
        // Workers start from one bundle of the sources instead of each transpiling them (ADR 0019).
        bundleWorker: true,
        onPlanned: async (runUri) => {
          estimate = await estimatePlannedRun(store, runUri, true).catch((err: unknown) => {
            printEstimate(io.stderr, undefined, err);
            return undefined;
          });
          if (estimate) printEstimate(io.stderr, estimate);
        },
      },
    );
  } finally {
    await catalog.close();
  }

  const stopped = outcome.status === 'FAILED' && ctx.interrupted.aborted;
  const cancelled =
    stopped && (ctx.interrupted.reason === 'SIGTERM' || records.read(runId)?.cancelRequestedAt !== undefined);
  const status: RunStatus = stopped ? (cancelled ? 'CANCELLED' : 'ABORTED') : outcome.status;
  const manifestUri =
    outcome.result?.manifestUri ?? joinUri(runUriOf(spec.output.uri, runId), 'manifest.json');
  const summary: RunSummary = {
    runId,
    status,
    records: outcome.result?.records ?? 0,
    predictions: outcome.result?.predictions ?? 0,
    errors: outcome.result?.errors ?? 0,
    outputUri: outcome.result?.outputUri ?? spec.output.uri,
    manifestUri,
    wallMs: Math.round(outcome.wallMs),
    ...(status === 'FAILED' && { error: runErrorOf(outcome) }),
    ...(estimate && { estimate }),
  };
  const cost = outcome.result ? await costOfManifest(store, manifestUri) : undefined;
  if (cost) Object.assign(summary, { cost });
  const latest = records.read(runId) ?? base;
  records.write({
    ...latest,
    status,
    finishedAt: new Date().toISOString(),
    ...(status === 'SUCCEEDED'
      ? {}
      : { error: stopped ? (cancelled ? 'Cancelled' : 'Aborted') : (outcome.error ?? 'Error') }),
    ...(status === 'SUCCEEDED' || stopped ? {} : { cause: outcome.cause ?? 'unknown' }),
    ...(stopped ? { cause: cancelled ? 'cancelled by batch-infer cancel' : 'interrupted (Ctrl-C)' } : {}),
    // Always set: a resumed run that now succeeded drops the first error of its failed try.
    firstError: summary.error,
    ...(outcome.result
      ? {
          records: outcome.result.records,
          predictions: outcome.result.predictions,
          errors: outcome.result.errors,
          manifestUri: outcome.result.manifestUri,
        }
      : {}),
  });

  if (options.json) writeJson(io.stdout, summary);
  else if (stopped)
    printStopped(ctx, summary, outcome, status, options.stateDir ? ` --state-dir ${dir}` : '');
  else printSummary(ctx, spec, outcome, summary, catalogFile);
  if (status === 'SUCCEEDED') return EXIT.ok;
  return status === 'ABORTED' ? EXIT.aborted : EXIT.failed;
}

function printSummary(
  ctx: CommandContext,
  spec: JobSpec,
  outcome: LocalRunOutcome,
  s: RunSummary,
  catalogFile: string,
): void {
  const out = ctx.io.stdout;
  const paint = painter(out, ctx.io.env);
  const rate = s.wallMs > 0 ? Math.round((s.records / s.wallMs) * 1000) : 0;
  out.write(
    `\nRun ${outcome.runId} ${paint(statusStyle(s.status), s.status)} in ${formatDuration(s.wallMs / 1000)}`,
  );
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
  if (s.cost) out.write(`  cost         ${describeCost(s.cost)}\n`);
  out.write(`  manifest     ${s.manifestUri}\n`);
  out.write(`  worker logs  ${outcome.logDir}\n`);
  if (outcome.status === 'SUCCEEDED') {
    const columns = outputColumnNames(spec);
    const example = spec.model.outputs.some((o) => o.postprocess?.argmax)
      ? `select ${columns.includes('label') ? 'label' : columns[columns.length - 1]}, count(*) as n from ${spec.name} where run_id = '${outcome.runId}' group by all order by n desc`
      : `select * from ${spec.name} where run_id = '${outcome.runId}' limit 10`;
    const catalogFlag =
      catalogFile === path.resolve(ctx.io.cwd, '.batch-infer', 'catalog.duckdb')
        ? ''
        : ` --catalog ${catalogFile}`;
    out.write(`\nQuery the results:\n  npx batch-infer query${catalogFlag} "${example}"\n`);
  } else if (outcome.rounds.length > 0) {
    // Only when workers ran: a run that failed before its first round (planning) has no worker logs; its reason
    // is the line above.
    out.write(`\nWhy a shard failed:\n  npx batch-infer logs ${outcome.runId}\n`);
  }
}

/** After Ctrl-C or cancel: what is left, pointing only at files that exist. */
function printStopped(
  ctx: CommandContext,
  s: RunSummary,
  outcome: LocalRunOutcome,
  status: RunStatus,
  stateFlag: string,
): void {
  const out = ctx.io.stdout;
  const paint = painter(out, ctx.io.env);
  out.write(
    `\nRun ${s.runId} ${paint(statusStyle(status), status)} after ${formatDuration(s.wallMs / 1000)}\n`,
  );
  const runDir = localPathOf(runUriOf(s.outputUri, s.runId));
  if (runDir && existsSync(runDir)) out.write(`  run files    ${runDir}\n`);
  if (existsSync(outcome.logDir)) out.write(`  worker logs  ${outcome.logDir}\n`);
  if (status === 'ABORTED') {
    out.write(`\nContinue it from its checkpoints:\n  npx batch-infer run --resume ${s.runId}${stateFlag}\n`);
  }
}

function localPathOf(uri: string): string | undefined {
  if (uri.startsWith('s3://')) return undefined;
  try {
    return parseUri(uri).key;
  } catch {
    return undefined;
  }
}
