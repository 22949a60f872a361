/** What every command handler gets: where to write and how to report its exit code. */
import type { CliIo } from './io.js';

export interface CommandContext {
  readonly io: CliIo;
  /** Sets the process's exit code for this command (the last call wins). */
  exit(code: number): void;
  /** Aborts when the user interrupts (Ctrl-C): long commands stop and exit 130. */
  readonly interrupted: AbortSignal;
}
