/**
 * `batch-infer report <runId> [--open]`: the run's HTML report (src/report). Finalize writes it next to the
 * manifest; this command renders it again from the run files (so any past run gets one, with today's renderer),
 * stores it at `<run>/_runs/<runId>/report.html` and prints where it is. `--open` opens it in the desktop's browser.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UnknownRunError } from '../../operate/local-backend.js';
import { LocalRunRecords } from '../../operate/local-records.js';
import { writeRunReport } from '../../report/run-report.js';
import { runUriOf } from '../../runs/layout.js';
import { RunStateError } from '../../spec/errors.js';
import { createObjectStore } from '../../storage/index.js';
import {
  jsonOption,
  resolveStateDir,
  stateDirOption,
  type StateOptions,
  s3EndpointOption,
} from '../common.js';
import type { CommandContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { writeJson } from '../io.js';

interface ReportOptions extends StateOptions {
  readonly json?: boolean;
  readonly open?: boolean;
  readonly s3Endpoint?: string;
}

export function registerReport(program: Command, ctx: CommandContext): void {
  program
    .command('report')
    .description("write a run's HTML report from its run files and print where it is")
    .argument('<runId>')
    .option('--open', "open the report in the desktop's browser (xdg-open, open)")
    .addOption(s3EndpointOption())
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .action(async (runId: string, options: ReportOptions) => {
      ctx.exit(await reportCommand(runId, options, ctx));
    });
}

export async function reportCommand(
  runId: string,
  options: ReportOptions,
  ctx: CommandContext,
): Promise<number> {
  const stateDir = resolveStateDir(options, ctx.io);
  const records = new LocalRunRecords(stateDir);
  const record = records.read(runId);
  if (!record) {
    throw new CliError(
      new UnknownRunError(
        `No local run "${runId}" in ${records.dir}; list the runs with: batch-infer runs --state-dir ${stateDir}`,
      ).message,
    );
  }
  const store = createObjectStore({ s3Endpoint: options.s3Endpoint ?? ctx.io.env.BATCH_INFER_S3_ENDPOINT });
  let reportUri: string;
  try {
    reportUri = await writeRunReport(store, runUriOf(record.outputUri, runId));
  } catch (err) {
    // A run stopped before Finalize has no manifest: say so, and what to do, in one line.
    if (err instanceof RunStateError) {
      throw new CliError(
        `${err.message}; a report exists once the run has finished (batch-infer run --resume ${runId})`,
      );
    }
    throw err;
  }
  if (options.json) writeJson(ctx.io.stdout, { runId, reportUri });
  else ctx.io.stdout.write(`${reportUri}\n`);
  if (options.open) openInBrowser(reportUri, ctx);
  return EXIT.ok;
}

function openInBrowser(uri: string, ctx: CommandContext): void {
  if (!uri.startsWith('file://')) {
    ctx.io.stderr.write(`--open opens local files only; download ${uri} first\n`);
    return;
  }
  const opener =
    process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(opener, [fileURLToPath(uri)], { detached: true, stdio: 'ignore' });
  child.on('error', () => ctx.io.stderr.write(`could not run ${opener}; open ${uri} in a browser\n`));
  child.unref();
}
