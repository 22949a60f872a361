/** `batch-infer query "<SQL>"`: query the local catalogue (one table per job). */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { formatTable, queryCatalog } from '../../catalog/local.js';
import {
  catalogOption,
  jsonOption,
  resolveCatalogPath,
  stateDirOption,
  type StateOptions,
} from '../common.js';
import type { CommandContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { writeJson } from '../io.js';

interface QueryOptions extends StateOptions {
  readonly json?: boolean;
}

export function registerQuery(program: Command, ctx: CommandContext): void {
  program
    .command('query')
    .description('query the local catalogue (one table per job, plus _runs)')
    .argument('<sql>', 'the SQL statement, quoted')
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .addOption(catalogOption())
    .action(async (sql: string, options: QueryOptions) => {
      ctx.exit(await queryCommand(sql, options, ctx));
    });
}

export async function queryCommand(sql: string, options: QueryOptions, ctx: CommandContext): Promise<number> {
  const file = resolveCatalogPath(options, ctx.io);
  if (!existsSync(file)) {
    throw new CliError(
      `No catalogue at ${file}: it is created by the first run published from this state directory; ` +
        'run `batch-infer run <job.yaml>` first, or point at an existing one with --state-dir <dir> or --catalog <file>',
    );
  }
  let result;
  try {
    result = await queryCatalog(file, sql);
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw new CliError(
      `Query failed: ${message} (list the tables with: batch-infer query "show tables"${options.catalog ? ` --catalog ${file}` : ''})`,
      EXIT.usage,
    );
  }
  if (options.json) writeJson(ctx.io.stdout, result);
  else ctx.io.stdout.write(`${formatTable(result)}\n`);
  return 0;
}
