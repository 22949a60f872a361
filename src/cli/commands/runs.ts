/** `batch-infer runs [pipeline]`: run history, newest first, with failures (Plan failures and cancels too). */
import { Option, type Command } from 'commander';
import { RUN_STATUSES } from '../../operate/local-records.js';
import type { OperateBackend, RunFilter } from '../../operate/backend.js';
import { jsonOption, positiveInt, stateDirOption, type StateOptions } from '../common.js';
import type { CommandContext } from '../context.js';
import { EXIT, UsageError } from '../errors.js';
import { painter, writeJson } from '../io.js';
import { backendFor, stackOption, stageOption, type StackOptions } from '../deployed.js';
import { renderRuns } from '../render.js';

interface RunsOptions extends StateOptions, StackOptions {
  readonly json?: boolean;
  readonly status?: string;
  readonly since?: string;
  readonly limit?: string;
}

export function registerRuns(program: Command, ctx: CommandContext): void {
  program
    .command('runs')
    .description('run history, newest first: counts, duration, model version, failure reason')
    .argument('[pipeline]', 'only runs of this job (spec name)')
    .addOption(new Option('--status <status>', 'only runs with this status').choices([...RUN_STATUSES]))
    .option('--since <date>', 'only runs started at or after this date (ISO 8601, e.g. 2026-12-01)')
    .option('--limit <n>', 'at most n runs (default 20)')
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .addOption(stackOption())
    .addOption(stageOption())
    .action(async (pipeline: string | undefined, options: RunsOptions) => {
      ctx.exit(await runsCommand(pipeline, await backendFor(options, ctx.io), options, ctx));
    });
}

export function runFilterOf(pipeline: string | undefined, options: RunsOptions): RunFilter {
  let since: Date | undefined;
  if (options.since !== undefined) {
    since = new Date(options.since);
    if (Number.isNaN(since.getTime())) {
      throw new UsageError(
        `--since must be a date such as 2026-12-01 or 2026-12-01T08:00:00Z (got "${options.since}")`,
      );
    }
  }
  return {
    ...(pipeline !== undefined ? { pipeline } : {}),
    ...(options.status !== undefined ? { status: options.status } : {}),
    ...(since ? { since } : {}),
    limit: positiveInt('--limit', options.limit) ?? 20,
  };
}

export async function runsCommand(
  pipeline: string | undefined,
  backend: OperateBackend,
  options: RunsOptions,
  ctx: CommandContext,
): Promise<number> {
  const list = await backend.runs(runFilterOf(pipeline, options));
  if (options.json) writeJson(ctx.io.stdout, list);
  else ctx.io.stdout.write(`${renderRuns(list, painter(ctx.io.stdout, ctx.io.env)).join('\n')}\n`);
  return EXIT.ok;
}
