import '../../src/runtime/polyfills.js';
import { describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { renderWorkflowDefinition } from '../../lib/workflow-definition.js';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import {
  LOCAL_VALIDATION_OPTIONS,
  localWorkflowDefinition,
  withAwsTaskTimeouts,
} from '../../src/local/local-definition.js';

type States = Record<string, Record<string, unknown>>;

describe('the definition a local run executes', () => {
  it('is the synthesized definition, with only the untimed tasks given the execution timeout', () => {
    const rendered = renderWorkflowDefinition();
    const executed = localWorkflowDefinition();
    const renderedStates = rendered.States as States;
    const executedStates = executed.States as States;
    expect(Object.keys(executedStates)).toEqual(Object.keys(renderedStates));
    for (const [name, state] of Object.entries(renderedStates)) {
      const { TimeoutSeconds, ...rest } = executedStates[name]!;
      expectIn(rest, name).toEqual(
        Object.fromEntries(Object.entries(state).filter(([k]) => k !== 'TimeoutSeconds')),
      );
      if (state.TimeoutSeconds !== undefined) expectIn(TimeoutSeconds, name).toBe(state.TimeoutSeconds);
      else if (state.Type === 'Task') expectIn(TimeoutSeconds, name).toBe(rendered.TimeoutSeconds);
      else expectIn(TimeoutSeconds, name).toBeUndefined();
    }
    expect({ ...executed, States: undefined }).toEqual({ ...rendered, States: undefined });
  });

  it("passes the interpreter's validation (States Language schema and paths), which local runs skip", () => {
    const definition = localWorkflowDefinition() as unknown as StateMachineDefinition;
    // What a local run constructs: no validation (it costs each run about a second of CPU)...
    expect(LOCAL_VALIDATION_OPTIONS).toEqual({ noValidate: true });
    // ...because the definition it runs is validated here, with every check but the ARN check (local resources).
    expect(() => new StateMachine(definition, { validationOptions: { checkArn: false } })).not.toThrow();
    // The check is real: a broken definition fails it.
    const broken = { ...definition, StartAt: 'NoSuchState' };
    expect(() => new StateMachine(broken, { validationOptions: { checkArn: false } })).toThrow();
  });

  it('gives an untimed task the execution timeout, or AWS default when the machine has none', () => {
    const machine = {
      StartAt: 'A',
      TimeoutSeconds: 3600,
      States: {
        A: { Type: 'Task', Resource: 'x', Next: 'B' },
        B: { Type: 'Task', Resource: 'y', TimeoutSeconds: 5, End: true },
      },
    };
    const adapted = withAwsTaskTimeouts(machine).States as States;
    expect(adapted.A!.TimeoutSeconds).toBe(3600);
    expect(adapted.B!.TimeoutSeconds).toBe(5);
    const { TimeoutSeconds: _omit, ...untimedMachine } = machine;
    expect((withAwsTaskTimeouts(untimedMachine).States as States).A!.TimeoutSeconds).toBe(99_999_999);
  });
});
