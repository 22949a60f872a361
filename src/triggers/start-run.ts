/**
 * Starting a run: StartExecution with a deterministic name (see execution-name.ts). `ExecutionAlreadyExists` means
 * the run was already started for this trigger, so it is reported as a duplicate, not as an error; every other
 * error is thrown, so the trigger function fails and its event is retried (and, after the retries, kept in the
 * dead-letter queue).
 *
 * Throttling and transient errors are retried by the SDK client's own retry strategy.
 */
import { ExecutionAlreadyExists, StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { PlanRequest } from '../runs/tasks.js';
import { EXECUTION_NAME } from './execution-name.js';

/** The execution input of a triggered run: a PlanRequest without `runId` (the execution name is the run id). */
export type RunInput = Omit<PlanRequest, 'runId'>;

/** Step Functions refuses an execution input above 256 KiB. */
export const MAX_EXECUTION_INPUT_BYTES = 256 * 1024;

/** A run's start; other executions started once by name (an upload window's timer) pass their own input type. */
export interface StartRunRequest<Input extends object = RunInput> {
  readonly stateMachineArn: string;
  readonly name: string;
  readonly input: Input;
}

export type StartRunOutcome =
  | { readonly status: 'started'; readonly executionArn: string; readonly startDate?: Date }
  | {
      readonly status: 'duplicate';
      /** The existing execution of that name (derived from the state machine ARN and the name). */
      readonly executionArn: string;
      readonly message: string;
    };

/** `arn:aws:states:r:a:stateMachine:M` + name -> `arn:aws:states:r:a:execution:M:name`. */
export function executionArnOf(stateMachineArn: string, name: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
}

export async function startRun<Input extends object = RunInput>(
  client: SFNClient,
  request: StartRunRequest<Input>,
): Promise<StartRunOutcome> {
  if (!EXECUTION_NAME.test(request.name)) {
    throw new Error(
      `Execution name "${request.name}" is not 1-80 letters, digits, "-" or "_" (a Step Functions execution name)`,
    );
  }
  const input = JSON.stringify(request.input);
  const bytes = Buffer.byteLength(input, 'utf8');
  if (bytes > MAX_EXECUTION_INPUT_BYTES) {
    throw new Error(
      `The run input is ${bytes} bytes; Step Functions accepts at most ${MAX_EXECUTION_INPUT_BYTES}. Store the spec in S3 and pass specUri`,
    );
  }
  try {
    const out = await client.send(
      new StartExecutionCommand({ stateMachineArn: request.stateMachineArn, name: request.name, input }),
    );
    return {
      status: 'started',
      executionArn: out.executionArn ?? executionArnOf(request.stateMachineArn, request.name),
      ...(out.startDate ? { startDate: out.startDate } : {}),
    };
  } catch (error) {
    if (
      error instanceof ExecutionAlreadyExists ||
      (error as { name?: unknown }).name === 'ExecutionAlreadyExists'
    ) {
      return {
        status: 'duplicate',
        executionArn: executionArnOf(request.stateMachineArn, request.name),
        message: (error as Error).message,
      };
    }
    throw error;
  }
}
