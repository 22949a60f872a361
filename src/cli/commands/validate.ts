/** `batch-infer validate <job.yaml>`: check a job spec and print what it resolves to. */
import type { Command } from 'commander';
import { loadJobSpecFile, outputColumnNames } from '../../spec/load.js';
import type { CommandContext } from '../context.js';

export function registerValidate(program: Command, ctx: CommandContext): void {
  program
    .command('validate')
    .description('check a job spec and print what it resolves to')
    .argument('<job.yaml>', 'the job spec')
    .action(async (specFile: string) => {
      ctx.exit(await validateCommand(specFile, ctx));
    });
}

export async function validateCommand(specFile: string, ctx: CommandContext): Promise<number> {
  const spec = await loadJobSpecFile(specFile);
  const out = ctx.io.stdout;
  out.write(`${specFile} is valid.\n\nResolved (defaults applied, paths made absolute):\n`);
  out.write(`${JSON.stringify(spec, null, 2)}\n`);
  out.write(`\nOutput columns: ${outputColumnNames(spec).join(', ')}, _shard, _source, _offset\n`);
  return 0;
}
