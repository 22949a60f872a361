/** `batch-infer pipelines --stack S`: the deployed pipelines, their triggers, input prefixes, last run and status. */
import type { Command } from 'commander';
import { z } from 'zod';
import { RUN_STATUSES } from '../../operate/local-records.js';
import type { PipelineSummary } from '../../operate/aws-backend.js';
import { jsonOption } from '../common.js';
import type { CommandContext } from '../context.js';
import { deployedBackend, stackOption, stageOption, type StackOptions } from '../deployed.js';
import { EXIT } from '../errors.js';
import { painter, statusStyle, writeJson } from '../io.js';

export const pipelineListSchema = z.strictObject({
  stack: z.string(),
  pipelines: z.array(
    z.strictObject({
      name: z.string(),
      stateMachineArn: z.string(),
      triggers: z.array(z.string()),
      inputPrefixes: z.array(z.string()),
      lastRun: z
        .strictObject({ runId: z.string(), status: z.enum(RUN_STATUSES), startedAt: z.string() })
        .optional(),
    }),
  ),
});

interface PipelinesOptions extends StackOptions {
  readonly json?: boolean;
}

export function registerPipelines(program: Command, ctx: CommandContext): void {
  program
    .command('pipelines')
    .description('the deployed pipelines: triggers, input prefixes, last run and its status')
    .addOption(jsonOption())
    .addOption(stackOption())
    .addOption(stageOption())
    .action(async (options: PipelinesOptions) => {
      const backend = await deployedBackend(options, 'pipelines');
      ctx.exit(await pipelinesCommand(backend.stack.stackName, await backend.pipelines(), options, ctx));
    });
}

export async function pipelinesCommand(
  stack: string,
  pipelines: readonly PipelineSummary[],
  options: PipelinesOptions,
  ctx: CommandContext,
): Promise<number> {
  if (options.json) {
    writeJson(ctx.io.stdout, { stack, pipelines });
    return EXIT.ok;
  }
  const paint = painter(ctx.io.stdout, ctx.io.env);
  const lines = pipelines.length ? [] : [`No pipelines in stack ${stack}.`];
  for (const p of pipelines) {
    const last = p.lastRun
      ? `last run ${p.lastRun.runId} ${paint(statusStyle(p.lastRun.status), p.lastRun.status)} at ${p.lastRun.startedAt}`
      : 'no runs yet';
    lines.push(`${p.name} · ${last}`);
    lines.push(`  input      ${p.inputPrefixes.join(', ')}`);
    lines.push(
      `  triggers   ${p.triggers.length ? p.triggers.join('; ') : '(none: start it with batch-infer start)'}`,
    );
  }
  ctx.io.stdout.write(`${lines.join('\n')}\n`);
  return EXIT.ok;
}
