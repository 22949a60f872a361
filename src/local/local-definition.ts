/**
 * The state machine definition a local run executes (src/local/run-local.ts): the one `cdk synth` produces, rendered
 * from the same construct, with the one adaptation the interpreter needs. A module of its own because rendering
 * loads aws-cdk-lib, which only `batch-infer run` needs: run-local.ts imports this module when a run starts.
 */
import { renderWorkflowDefinition } from '../../lib/workflow-definition.js';

/**
 * How a local run builds its interpreter: without validating the definition. The definition is the package's own
 * (rendered from the CDK construct, not from user input) and test/e2e/definition.test.ts validates exactly it, with
 * every check but the ARN check; validating it again costs each run about a second of CPU (the schema check).
 */
export const LOCAL_VALIDATION_OPTIONS = { noValidate: true } as const;

/** The definition a local run executes: the synthesized one, with AWS's task timeout default made explicit. */
export function localWorkflowDefinition(): Record<string, unknown> {
  return withAwsTaskTimeouts(renderWorkflowDefinition());
}

/**
 * The one adaptation of the definition for the interpreter. A Task without `TimeoutSeconds` runs until the execution
 * times out in AWS (its default is 99999999 s), but the interpreter applies the States Language default of 60 s,
 * which would cut every Batch round short. Such tasks get the execution's own timeout, AWS's effective bound.
 */
export function withAwsTaskTimeouts(definition: Record<string, unknown>): Record<string, unknown> {
  const executionTimeout =
    typeof definition.TimeoutSeconds === 'number' ? definition.TimeoutSeconds : 99_999_999;
  const states = definition.States as Record<string, Record<string, unknown>>;
  const adapted: Record<string, Record<string, unknown>> = {};
  for (const [name, state] of Object.entries(states)) {
    const untimed =
      state.Type === 'Task' && state.TimeoutSeconds === undefined && state.TimeoutSecondsPath === undefined;
    adapted[name] = untimed ? { ...state, TimeoutSeconds: executionTimeout } : state;
  }
  return { ...definition, States: adapted };
}
