/**
 * The `batch-infer` command line: a commander program, one module per command in ./commands. This file only wires
 * them up and turns errors into one actionable line and an exit code (see ./errors.ts for the codes).
 */
import '../runtime/polyfills.js';
import { existsSync, readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { registerCancel } from './commands/cancel.js';
import { registerLogs } from './commands/logs.js';
import { registerModels } from './commands/models.js';
import { registerInit } from './commands/init.js';
import { registerInspect } from './commands/inspect.js';
import { registerPipelines } from './commands/pipelines.js';
import { registerQuery } from './commands/query.js';
import { registerReport } from './commands/report.js';
import { registerRun } from './commands/run.js';
import { registerRuns } from './commands/runs.js';
import { registerStart } from './commands/start.js';
import { registerStatus } from './commands/status.js';
import { registerValidate } from './commands/validate.js';
import type { CommandContext } from './context.js';
import { describeError, EXIT, exitCodeOf, UsageError } from './errors.js';
import { processIo, type CliIo } from './io.js';

export const EXIT_CODES_HELP = `
Exit codes:
  0    ok (the run SUCCEEDED, the command did what was asked)
  1    the run failed, was cancelled, or an operation on it failed
  2    bad usage or an invalid job spec: nothing was started
  130  interrupted (Ctrl-C): the run is ABORTED; \`run --resume <runId>\` continues it

Environment:
  BATCH_INFER_HOME         state directory (default ./.batch-infer)
  BATCH_INFER_S3_ENDPOINT  S3-compatible endpoint for s3:// URIs
  NO_COLOR                 no colour in the output (also off when the output is not a terminal)
  BATCH_INFER_DEBUG        print stack traces of unexpected errors
  AWS_REGION, AWS_PROFILE  with --stack/--stage: the deployed stack's region and credentials`;

export function cliVersion(): string {
  // From source this module is src/cli/main.ts; in the package it is dist/src/cli/main.js: the package's
  // package.json is two or three folders up.
  for (const candidate of ['../../package.json', '../../../package.json']) {
    const file = new URL(candidate, import.meta.url);
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown };
    if (typeof pkg.version === 'string') return pkg.version;
  }
  return '0.0.0';
}

/** Registers every command on a fresh program. */
export function buildProgram(ctx: CommandContext): Command {
  const { io } = ctx;
  const program = new Command('batch-infer')
    .description('batch inference with ONNX models, locally or on AWS')
    .version(cliVersion(), '-V, --version', 'print the version')
    .helpCommand('help [command]', 'show help for a command')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) => write(text.replace(/^error: /, '')),
      getOutHelpWidth: () => io.stdout.columns ?? 100,
      getErrHelpWidth: () => io.stderr.columns ?? 100,
    })
    .showHelpAfterError()
    .exitOverride()
    .addHelpText('after', EXIT_CODES_HELP);
  // Our own message for an unknown command (commander's quotes it differently), with the list of commands.
  program.on('command:*', (operands: string[]) => {
    throw new UsageError(`unknown command "${operands[0] ?? ''}"`);
  });
  registerRun(program, ctx);
  registerValidate(program, ctx);
  registerQuery(program, ctx);
  registerStart(program, ctx);
  registerStatus(program, ctx);
  registerRuns(program, ctx);
  registerCancel(program, ctx);
  registerLogs(program, ctx);
  registerReport(program, ctx);
  registerPipelines(program, ctx);
  registerInspect(program, ctx);
  registerModels(program, ctx);
  registerInit(program, ctx);
  return program;
}

/** Runs the CLI on `argv` (without node and script) and returns the exit code. */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let code: number = EXIT.ok;
  const interrupt = new AbortController();
  const ctx: CommandContext = {
    io,
    exit: (c) => {
      code = c;
    },
    interrupted: interrupt.signal,
  };
  // First Ctrl-C: the command stops cleanly (workers checkpoint). A second one: exit now.
  const onSigint = (): void => {
    if (interrupt.signal.aborted) process.exit(EXIT.aborted);
    interrupt.abort('SIGINT');
  };
  const onSigterm = (): void => interrupt.abort('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  const program = buildProgram(ctx);
  // The command being run, so a usage error shows that command's usage rather than the program's.
  let current: Command = program;
  program.hook('preAction', (_program, actionCommand) => {
    current = actionCommand;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (err) {
    return reportError(err, current, io);
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
  }
}

function reportError(err: unknown, command: Command, io: CliIo): number {
  if (err instanceof CommanderError) {
    // Help and version were printed already; errors were printed with the command's usage.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
    if (err.code === 'commander.help') return argvAskedForHelp(err) ? EXIT.ok : EXIT.usage;
    return EXIT.usage;
  }
  if (err instanceof UsageError) {
    io.stderr.write(`${err.message}\n\n`);
    io.stderr.write(command.helpInformation());
    return EXIT.usage;
  }
  io.stderr.write(`${describeError(err)}\n`);
  if (io.env.BATCH_INFER_DEBUG && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
  return exitCodeOf(err);
}

/** `help` and `help <command>` exit 0; a bare `batch-infer` (help shown because nothing was asked) exits 2. */
function argvAskedForHelp(err: CommanderError): boolean {
  return err.exitCode === 0;
}
