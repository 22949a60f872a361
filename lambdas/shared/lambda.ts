/**
 * What the handlers share: environment checks at module load, event parsing that fails with a named error instead
 * of a generic one, and (powertools.ts) the Powertools logger and metrics with their adapters for the engine code.
 */
import { z } from 'zod';

export {
  beginInvocation,
  createFunctionLogger,
  createFunctionMetrics,
  emfMetrics,
  engineLogger,
  type LambdaContext,
} from './powertools.js';

/**
 * The event did not match the handler's schema: a wiring bug between the state machine and the handler, never
 * fixed by retrying. Its name is what Step Functions sees as the task's error.
 */
export class InvalidEventError extends Error {
  override readonly name = 'InvalidEvent';
}

/** A required environment variable is missing or invalid: the function is misconfigured. */
export class ConfigurationError extends Error {
  override readonly name = 'ConfigurationError';
}

/**
 * Reads and checks the environment once. Called at module load, so a misconfigured function fails its first
 * invocation's init with a message naming the variable, not halfway through a run.
 */
export function readEnv<T extends z.ZodType<Record<string, unknown>>>(schema: T): z.infer<T> {
  const parsed = schema.safeParse(process.env);
  if (!parsed.success) {
    throw new ConfigurationError(`Invalid function environment:\n${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** Parses an event, turning a schema mismatch into an InvalidEventError that names the fields. */
export function parseEvent<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof z.ZodError) {
      throw new InvalidEventError(`Invalid ${what} event:\n${z.prettifyError(error)}`);
    }
    throw error;
  }
}
