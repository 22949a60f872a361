/**
 * Typed errors. Their `name` is what Step Functions sees as the error of a failed Lambda task, so Retry/Catch
 * rules can match on it; keep names stable.
 */

/** One problem found in a job spec: which field, what value it had, and how to fix it. */
export interface SpecIssue {
  /** Dotted path of the field, e.g. `model.inputs[0].dtype`. */
  readonly path: string;
  /** The offending value, rendered for humans (`undefined` when the field is missing). */
  readonly value: string;
  /** What is wrong and what to do about it. */
  readonly message: string;
}

/** The job spec is invalid. Never retried: the same spec fails the same way. */
export class SpecError extends Error {
  override readonly name = 'SpecError';
  constructor(
    readonly issues: readonly SpecIssue[],
    readonly source?: string,
  ) {
    super(
      `Invalid job spec${source ? ` ${source}` : ''}:\n` +
        issues.map((i) => `  - ${i.path || '(root)'}: ${i.message} (got ${i.value})`).join('\n'),
    );
  }
}

/** Input data could not be listed or is unusable (empty where data was required, overlapping the output...). */
export class InputError extends Error {
  override readonly name = 'InputError';
}

/** The model could not be resolved or loaded (no approved version, missing artifact, bad ONNX file). */
export class ModelError extends Error {
  override readonly name = 'ModelError';
}

/**
 * A GPU run's worker could not load the CUDA execution provider and the spec does not allow running on the CPU
 * (`run.cpuFallback`). The same host type fails the same way: the shard fails instead of running at CPU speed.
 */
export class ExecutionProviderError extends Error {
  override readonly name = 'ExecutionProviderError';
}

/** A run's stored state (plan, markers, rounds) is missing or corrupt. */
export class RunStateError extends Error {
  override readonly name = 'RunStateError';
}

/** Finalize found that the run does not meet its quality bar; nothing was published. */
export class ValidationFailedError extends Error {
  override readonly name = 'ValidationFailed';
}
