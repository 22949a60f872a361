/** `batch-infer cancel <runId>`: stop a run; it is recorded CANCELLED and nothing is published. */
import type { Command } from 'commander';
import type { OperateBackend } from '../../operate/backend.js';
import { UnknownRunError } from '../../operate/local-backend.js';
import { jsonOption, stateDirOption, type StateOptions } from '../common.js';
import type { CommandContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { writeJson } from '../io.js';
import { backendFor, stackOption, stageOption, type StackOptions } from '../deployed.js';

interface CancelOptions extends StateOptions, StackOptions {
  readonly json?: boolean;
}

export function registerCancel(program: Command, ctx: CommandContext): void {
  program
    .command('cancel')
    .description('stop a run: it is recorded CANCELLED and nothing is published')
    .argument('<runId>')
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .addOption(stackOption())
    .addOption(stageOption())
    .action(async (runId: string, options: CancelOptions) => {
      ctx.exit(await cancelCommand(runId, await backendFor(options, ctx.io), options, ctx));
    });
}

export async function cancelCommand(
  runId: string,
  backend: OperateBackend,
  options: CancelOptions,
  ctx: CommandContext,
): Promise<number> {
  let result;
  try {
    result = await backend.cancel(runId);
  } catch (err) {
    if (err instanceof UnknownRunError) throw new CliError(err.message);
    throw err;
  }
  if (options.json) writeJson(ctx.io.stdout, result);
  else if (result.cancelled) ctx.io.stdout.write(`Run ${runId} CANCELLED; nothing was published.\n`);
  else ctx.io.stdout.write(`Run ${runId} had already ended ${result.status}; nothing to cancel.\n`);
  return EXIT.ok;
}
