/**
 * Exit codes and the errors commands throw. Every error reaches the user as one line (plus the command's usage for a
 * usage error), never a stack trace: set BATCH_INFER_DEBUG=1 to see the stack.
 */
import { AwsSetupError } from '../operate/stack-outputs.js';
import { SpecError } from '../spec/errors.js';

/** The documented exit codes (README "Exit codes"). */
export const EXIT = {
  /** The command did what was asked (a run SUCCEEDED, a query answered). */
  ok: 0,
  /** The run (or the operation on it) failed: FAILED, CANCELLED, TIMED_OUT, an AWS call refused. */
  failed: 1,
  /** Bad usage or a bad job spec: nothing was started. */
  usage: 2,
  /** Interrupted (Ctrl-C): the run was ABORTED, its files say how far it got. */
  aborted: 130,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Wrong arguments or options: printed with the command's usage, exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Something the user can fix, with the fix in the message: an unknown run, no catalogue, missing credentials.
 * `exitCode` 2 when nothing was started, 1 when an operation failed.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.usage,
  ) {
    super(message);
  }
}

/** One line for any error: its message, with nested causes joined, and no stack. */
export function describeError(err: unknown): string {
  if (err instanceof SpecError) return err.message;
  if (err instanceof Error) {
    const parts = [err.message.trim() || err.name];
    let cause = err.cause;
    while (cause instanceof Error && parts.length < 4) {
      if (!parts.some((p) => p.includes(cause instanceof Error ? cause.message : '')))
        parts.push(cause.message);
      cause = cause.cause;
    }
    return parts.join(': ');
  }
  return String(err);
}

/** The exit code an error maps to. */
export function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof UsageError || err instanceof SpecError) return EXIT.usage;
  if (err instanceof CliError) return err.exitCode;
  // A stack, output, pipeline or input the deployed backend refused before starting anything.
  if (err instanceof AwsSetupError) return EXIT.usage;
  return EXIT.failed;
}
