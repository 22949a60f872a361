/**
 * `batch-infer validate <job.yaml>`: check a job spec against its schema, its model and a sample of its input, and
 * print what it resolves to; `--sample n` also runs n records through the worker on CPU and prints the rows.
 */
import type { Command } from 'commander';
import { loadJobSpecFile, outputColumnNames } from '../../spec/load.js';
import { jsonOption, s3EndpointOption, specRegistryOption } from '../common.js';
import type { CommandContext } from '../context.js';
import { dryRunCommand, preflightCommand, type ModelSourceOptions } from './preflight.js';

export interface ValidateOptions extends ModelSourceOptions {
  readonly sample?: string;
  readonly json?: boolean;
}

export function registerValidate(program: Command, ctx: CommandContext): void {
  program
    .command('validate')
    .description('check a job spec against its model and input; print what it resolves to')
    .argument('<job.yaml>', 'the job spec')
    .option('--sample <n>', 'also run the first n records on CPU and print the rows and error rows they give')
    .option('--input <uri>', 'check this input instead of input.uri')
    .addOption(specRegistryOption())
    .addOption(s3EndpointOption())
    .addOption(jsonOption())
    .action(async (specFile: string, options: ValidateOptions) => {
      ctx.exit(await validateCommand(specFile, ctx, options));
    });
}

export async function validateCommand(
  specFile: string,
  ctx: CommandContext,
  options: ValidateOptions = {},
): Promise<number> {
  const spec = await loadJobSpecFile(specFile);
  const problems = await preflightCommand(specFile, spec, options, ctx);
  if (problems !== 0) return problems;
  if (options.sample !== undefined) return dryRunCommand(specFile, spec, options.sample, options, ctx);
  const out = ctx.io.stdout;
  out.write(`${specFile} is valid.\n\nResolved (defaults applied, paths made absolute):\n`);
  out.write(`${JSON.stringify(spec, null, 2)}\n`);
  out.write(`\nOutput columns: ${outputColumnNames(spec).join(', ')}, _shard, _source, _offset\n`);
  return 0;
}
