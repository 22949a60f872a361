/**
 * `batch-infer status <runId>` and `batch-infer watch <runId>`: a run's round, shards, records, rate, ETA and
 * errors. `watch` redraws on a terminal and prints a line every few seconds otherwise, and exits with the run's
 * final status (0 SUCCEEDED, 1 otherwise, 130 when interrupted itself).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { fmt } from '../../local/progress.js';
import { TERMINAL, type OperateBackend, type RunStatusReport } from '../../operate/backend.js';
import { UnknownRunError } from '../../operate/local-backend.js';
import { jsonOption, stateDirOption, type StateOptions } from '../common.js';
import type { CommandContext } from '../context.js';
import { CliError, EXIT, UsageError } from '../errors.js';
import { painter, writeJson } from '../io.js';
import { backendFor, stackOption, stageOption, type StackOptions } from '../deployed.js';
import { renderStatus } from '../render.js';

interface StatusOptions extends StateOptions, StackOptions {
  readonly json?: boolean;
  readonly interval?: string;
}

export function registerStatus(program: Command, ctx: CommandContext): void {
  program
    .command('status')
    .description("a run's round, shards, records, rate, ETA and errors")
    .argument('<runId>')
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .addOption(stackOption())
    .addOption(stageOption())
    .action(async (runId: string, options: StatusOptions) => {
      ctx.exit(await statusCommand(runId, await backendFor(options, ctx.io), options, ctx));
    });
  program
    .command('watch')
    .description("follow a run until it ends; exits with the run's status")
    .argument('<runId>')
    .addOption(jsonOption())
    .option('--interval <seconds>', 'seconds between checks (default: 1 on a terminal, 5 otherwise)')
    .addOption(stateDirOption())
    .addOption(stackOption())
    .addOption(stageOption())
    .action(async (runId: string, options: StatusOptions) => {
      ctx.exit(await watchCommand(runId, await backendFor(options, ctx.io), options, ctx));
    });
}

async function fetchStatus(backend: OperateBackend, runId: string): Promise<RunStatusReport> {
  try {
    return await backend.status(runId);
  } catch (err) {
    if (err instanceof UnknownRunError) throw new CliError(err.message);
    throw err;
  }
}

export function exitCodeOfStatus(status: string): number {
  if (status === 'SUCCEEDED') return EXIT.ok;
  if (status === 'ABORTED') return EXIT.failed;
  return EXIT.failed;
}

export async function statusCommand(
  runId: string,
  backend: OperateBackend,
  options: StatusOptions,
  ctx: CommandContext,
): Promise<number> {
  const report = await fetchStatus(backend, runId);
  if (options.json) writeJson(ctx.io.stdout, report);
  else ctx.io.stdout.write(`${renderStatus(report, painter(ctx.io.stdout, ctx.io.env)).join('\n')}\n`);
  return EXIT.ok;
}

export async function watchCommand(
  runId: string,
  backend: OperateBackend,
  options: StatusOptions,
  ctx: CommandContext,
): Promise<number> {
  const { stderr, stdout } = ctx.io;
  const tty = Boolean(stderr.isTTY);
  const interval = options.interval === undefined ? (tty ? 1 : 5) : Number(options.interval);
  if (!Number.isFinite(interval) || interval <= 0) {
    throw new UsageError(`--interval must be a positive number of seconds (got "${options.interval}")`);
  }
  const paint = painter(stderr, ctx.io.env);
  let drawn = 0;
  for (;;) {
    const report = await fetchStatus(backend, runId);
    const lines = renderStatus(report, paint);
    if (TERMINAL.has(report.status)) {
      if (tty && drawn) stderr.write(`\x1b[${drawn}A\x1b[0J`);
      if (options.json) writeJson(stdout, report);
      else stdout.write(`${renderStatus(report, painter(stdout, ctx.io.env)).join('\n')}\n`);
      return exitCodeOfStatus(report.status);
    }
    if (tty) {
      // Redraw in place: move up over the previous block and clear it.
      if (drawn) stderr.write(`\x1b[${drawn}A\x1b[0J`);
      stderr.write(`${lines.join('\n')}\n`);
      drawn = lines.length;
    } else {
      const p = report.progress;
      stderr.write(
        `${report.runId} ${report.status} round ${p.round} · shards ${p.succeeded}/${p.shards} · ` +
          `${p.running} running · ${p.failed} failed · records ${fmt(p.recordsDone)}/${fmt(p.recordsPlanned)} · ` +
          `errors ${fmt(p.errors)}\n`,
      );
    }
    try {
      await sleep(interval * 1000, undefined, { signal: ctx.interrupted });
    } catch {
      stderr.write(`watch interrupted; the run goes on: batch-infer watch ${runId}\n`);
      return EXIT.aborted;
    }
  }
}
