/**
 * `batch-infer start <job.yaml>`: start a local run in the background (a detached `batch-infer run`) and return
 * its run id at once; `--wait` follows it like `watch`. Its output goes to `<state dir>/logs/<runId>/run.log`.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { RUN_LOG_FILE } from '../../operate/local-backend.js';
import { LocalRunRecords } from '../../operate/local-records.js';
import { newRunId, RUN_ID_PATTERN, RUN_ID_RULE } from '../../runs/layout.js';
import { loadJobSpecFile } from '../../spec/load.js';
import {
  jsonOption,
  positiveInt,
  resolveStateDir,
  stateDirOption,
  catalogOption,
  type StateOptions,
} from '../common.js';
import type { CommandContext } from '../context.js';
import { CliError, EXIT, UsageError } from '../errors.js';
import { writeJson } from '../io.js';
import { localBackend } from '../local-backend.js';
import { watchCommand } from './status.js';
import { estimateBeforeStart } from '../../cost/before-start.js';
import { printEstimate } from '../../cost/cli.js';
import type { CostEstimate } from '../../cost/estimate.js';
import { createObjectStore } from '../../storage/index.js';
import { deployedBackend, stackNameOf, stackOption, stageOption, type StackOptions } from '../deployed.js';

interface StartOptions extends StateOptions, StackOptions {
  readonly manifest?: string;
  readonly json?: boolean;
  readonly input?: string;
  readonly runId?: string;
  readonly wait?: boolean;
  readonly workers?: string;
  readonly registry?: string;
  readonly s3Endpoint?: string;
}

const BIN = fileURLToPath(new URL('../../../bin/batch-infer.js', import.meta.url));

export function registerStart(program: Command, ctx: CommandContext): void {
  program
    .command('start')
    .description(
      'start a local run in the background and print its run id; with --stack/--stage, a deployed pipeline run',
    )
    .argument('<job.yaml|pipeline>', 'the job spec; with --stack/--stage, the deployed pipeline')
    .option('--input <uri>', 'override input.uri for this run (a backfill)')
    .option(
      '--manifest <uri>',
      'deployed: read the objects a manifest lists (a list or S3 Inventory manifest.json)',
    )
    .option('--run-id <id>', 'execution name (default: time-based)')
    .option('--wait', 'follow the run until it ends and exit with its status')
    .option(
      '--workers <n>',
      'worker processes at once (default: one per core, one per two cores for CSV into a tabular model)',
    )
    .option('--registry <dir|uri>', 'local model registry (default: <spec dir>/registry)')
    .option('--s3-endpoint <url>', 'S3-compatible endpoint for s3:// URIs')
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .addOption(catalogOption())
    .addOption(stackOption())
    .addOption(stageOption())
    .action(async (specFile: string, options: StartOptions) => {
      ctx.exit(
        stackNameOf(options) === undefined
          ? await startCommand(specFile, options, ctx)
          : await startDeployedCommand(specFile, options, ctx),
      );
    });
}

export async function startCommand(
  specArg: string,
  options: StartOptions,
  ctx: CommandContext,
): Promise<number> {
  const { io } = ctx;
  const specFile = path.resolve(io.cwd, specArg);
  const spec = await loadJobSpecFile(specFile); // a bad spec fails here, with exit 2, not in the background
  positiveInt('--workers', options.workers);
  const runId = options.runId ?? newRunId();
  if (!RUN_ID_PATTERN.test(runId)) {
    throw new UsageError(`--run-id "${runId}" ${RUN_ID_RULE}`);
  }
  const stateDir = resolveStateDir(options, io);
  const records = new LocalRunRecords(stateDir);
  if (records.read(runId)) {
    throw new CliError(
      `Run ${runId} exists already; pick another --run-id, or continue it with: batch-infer run --resume ${runId}`,
    );
  }
  const estimate = await startEstimate(
    () =>
      estimateBeforeStart({
        store: createObjectStore({ s3Endpoint: options.s3Endpoint ?? io.env.BATCH_INFER_S3_ENDPOINT }),
        spec,
        ...(options.input !== undefined && { inputUri: options.input }),
        local: true,
      }),
    io.stderr,
  );
  const logDir = path.join(stateDir, 'logs', runId);
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, RUN_LOG_FILE);
  const args = [BIN, 'run', specFile, '--json', '--run-id', runId, '--state-dir', stateDir];
  for (const [flag, value] of [
    ['--input', options.input],
    ['--workers', options.workers],
    ['--registry', options.registry],
    ['--s3-endpoint', options.s3Endpoint],
    ['--catalog', options.catalog],
  ] as const) {
    if (value !== undefined) args.push(flag, value);
  }
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, args, {
    cwd: io.cwd,
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...io.env, NO_COLOR: '1' },
  });
  closeSync(fd);
  const pid = child.pid;
  child.unref();
  if (pid === undefined)
    throw new CliError(`Could not start the run process (${process.execPath} ${BIN})`, EXIT.failed);
  // The run writes its own record when it starts; this one covers the moments before (and a run that dies early).
  if (!records.read(runId)) {
    records.write({
      version: 1,
      runId,
      pipeline: spec.name,
      specFile,
      outputUri: spec.output.uri,
      ...(options.input ? { inputUri: options.input } : {}),
      pid,
      status: 'STARTING',
      startedAt: new Date().toISOString(),
      logDir,
    });
  }
  if (options.wait) {
    io.stderr.write(
      `Started run ${runId} (pid ${pid}); following it, Ctrl-C stops following, not the run.\n`,
    );
    return watchCommand(runId, localBackend(options, io), { ...(options.json ? { json: true } : {}) }, ctx);
  }
  if (options.json)
    writeJson(io.stdout, { runId, status: 'STARTING', pid, logFile, ...(estimate && { estimate }) });
  else {
    io.stdout.write(`Started run ${runId} (pid ${pid}).\n`);
    const flag = options.stateDir ? ` --state-dir ${stateDir}` : '';
    io.stdout.write(
      `  watch   batch-infer watch ${runId}${flag}\n  logs    batch-infer logs ${runId}${flag}\n`,
    );
    io.stdout.write(`  cancel  batch-infer cancel ${runId}${flag}\n`);
  }
  return EXIT.ok;
}

/**
 * `batch-infer start <pipeline> --stack S [--input URI|--manifest URI] [--run-id ID] [--wait]`: StartExecution of
 * the pipeline's state machine with the input its triggers send (an ad-hoc run or a backfill, no redeploy).
 */
export async function startDeployedCommand(
  pipeline: string,
  options: StartOptions,
  ctx: CommandContext,
): Promise<number> {
  const { io } = ctx;
  if (options.input !== undefined && options.manifest !== undefined)
    throw new UsageError('pass --input or --manifest, not both');
  const runId = options.runId ?? newRunId();
  if (!RUN_ID_PATTERN.test(runId)) throw new UsageError(`--run-id "${runId}" ${RUN_ID_RULE}`);
  const backend = await deployedBackend(options, 'start');
  const estimate = await startEstimate(
    () =>
      backend.estimate({
        pipeline,
        ...(options.input !== undefined ? { input: options.input } : {}),
        ...(options.manifest !== undefined ? { manifest: options.manifest } : {}),
      }),
    io.stderr,
  );
  const started = await backend.start({
    pipeline,
    runId,
    ...(options.input !== undefined ? { input: options.input } : {}),
    ...(options.manifest !== undefined ? { manifest: options.manifest } : {}),
  });
  const flag = ` --stack ${backend.stack.stackName}`;
  if (options.wait) {
    io.stderr.write(
      `Started run ${runId} of ${pipeline}; following it, Ctrl-C stops following, not the run.\n`,
    );
    return watchCommand(runId, backend, { ...(options.json ? { json: true } : {}) }, ctx);
  }
  if (options.json)
    writeJson(io.stdout, {
      runId,
      status: 'RUNNING',
      executionArn: started.executionArn,
      ...(estimate && { estimate }),
    });
  else {
    io.stdout.write(`Started run ${runId} of ${pipeline} (${started.executionArn}).\n`);
    io.stdout.write(
      `  watch   batch-infer watch ${runId}${flag}\n  logs    batch-infer logs ${runId}${flag}\n`,
    );
    io.stdout.write(`  cancel  batch-infer cancel ${runId}${flag}\n`);
  }
  return EXIT.ok;
}

/** The estimate before a start, printed to stderr; a failure to estimate is said and never stops the start. */
async function startEstimate(
  estimate: () => Promise<CostEstimate>,
  stderr: { write(text: string): unknown },
): Promise<CostEstimate | undefined> {
  try {
    const result = await estimate();
    printEstimate(stderr, result);
    return result;
  } catch (err) {
    printEstimate(stderr, undefined, err);
    return undefined;
  }
}
