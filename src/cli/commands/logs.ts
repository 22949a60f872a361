/** `batch-infer logs <runId> [--shard N] [--follow]`: the run's orchestrator and worker log lines. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { TERMINAL, type LogLine, type OperateBackend } from '../../operate/backend.js';
import { UnknownRunError } from '../../operate/local-backend.js';
import { jsonOption, nonNegativeInt, stateDirOption, type StateOptions } from '../common.js';
import type { CommandContext } from '../context.js';
import { CliError, EXIT, UsageError } from '../errors.js';
import { writeJson } from '../io.js';
import { backendFor, stackOption, stageOption, type StackOptions } from '../deployed.js';

interface LogsOptions extends StateOptions, StackOptions {
  readonly json?: boolean;
  readonly shard?: string;
  readonly follow?: boolean;
  readonly interval?: string;
}

export function registerLogs(program: Command, ctx: CommandContext): void {
  program
    .command('logs')
    .description("a run's log lines: the workers' (each shard attempt) and the orchestrator's")
    .argument('<runId>')
    .option('--shard <n>', "only this shard's worker lines")
    .option('--follow', 'keep printing new lines until the run ends')
    .option('--interval <seconds>', 'seconds between reads with --follow (default 2)')
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .addOption(stackOption())
    .addOption(stageOption())
    .action(async (runId: string, options: LogsOptions) => {
      ctx.exit(await logsCommand(runId, await backendFor(options, ctx.io), options, ctx));
    });
}

function prefix(line: LogLine): string {
  if (line.shard !== undefined)
    return `[shard ${line.shard}${line.attempt ? ` attempt ${line.attempt}` : ''}] `;
  return `[${line.source}] `;
}

export async function logsCommand(
  runId: string,
  backend: OperateBackend,
  options: LogsOptions,
  ctx: CommandContext,
): Promise<number> {
  const shard = nonNegativeInt('--shard', options.shard);
  if (options.json && options.follow)
    throw new UsageError('--json prints one object: use it without --follow');
  const interval = Number(options.interval ?? 2);
  if (!Number.isFinite(interval) || interval <= 0) {
    throw new UsageError(`--interval must be a positive number of seconds (got "${options.interval}")`);
  }
  let cursor: string | undefined;
  const read = async () => {
    try {
      const page = await backend.logs(runId, {
        ...(shard !== undefined ? { shard } : {}),
        ...(cursor ? { cursor } : {}),
      });
      cursor = page.cursor;
      return page.lines;
    } catch (err) {
      if (err instanceof UnknownRunError) throw new CliError(err.message);
      throw err;
    }
  };
  const first = await read();
  if (options.json) {
    writeJson(ctx.io.stdout, { runId, lines: first });
    return EXIT.ok;
  }
  const print = (lines: LogLine[]) => {
    for (const line of lines) ctx.io.stdout.write(`${prefix(line)}${line.message}\n`);
  };
  print(first);
  if (first.length === 0 && !options.follow) {
    ctx.io.stderr.write(
      `No log lines for run ${runId}${shard !== undefined ? ` shard ${shard}` : ''} yet.\n`,
    );
  }
  if (!options.follow) return EXIT.ok;
  for (;;) {
    const { status } = await backend.status(runId);
    print(await read());
    if (TERMINAL.has(status)) return EXIT.ok;
    try {
      await sleep(interval * 1000, undefined, { signal: ctx.interrupted });
    } catch {
      return EXIT.aborted;
    }
  }
}
