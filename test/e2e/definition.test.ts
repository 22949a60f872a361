import '../../src/runtime/polyfills.js';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { renderWorkflowDefinition } from '../../lib/workflow-definition.js';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import {
  keptDefinitionName,
  LOCAL_VALIDATION_OPTIONS,
  localWorkflowDefinition,
  withAwsTaskTimeouts,
} from '../../src/local/local-definition.js';

type States = Record<string, Record<string, unknown>>;

describe('the definition a local run executes', () => {
  it('is the synthesized definition, with only the untimed tasks given the execution timeout', async () => {
    const rendered = renderWorkflowDefinition();
    const executed = await localWorkflowDefinition();
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

  it("passes the interpreter's validation (States Language schema and paths), which local runs skip", async () => {
    const definition = (await localWorkflowDefinition()) as unknown as StateMachineDefinition;
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

describe('the definition kept between local runs', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kept-definition-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is rendered once, kept under the version of aws-cdk-lib, and read from there by later runs', async () => {
    const cacheDir = path.join(dir, 'bundle');
    mkdirSync(cacheDir);
    const first = await localWorkflowDefinition({ cacheDir });
    expect(first).toEqual(await localWorkflowDefinition());
    const { version } = JSON.parse(
      readFileSync(path.join('node_modules', 'aws-cdk-lib', 'package.json'), 'utf8'),
    ) as { version: string };
    expect(keptDefinitionName()).toBe(`workflow-definition-aws-cdk-lib-${version}.json`);
    expect(readdirSync(cacheDir)).toEqual([keptDefinitionName()]);
    const kept = path.join(cacheDir, keptDefinitionName());
    expect(JSON.parse(readFileSync(kept, 'utf8'))).toEqual(first);
    // A later run reads the file, not aws-cdk-lib: what the file says is what it gets.
    writeFileSync(kept, JSON.stringify({ ...first, Comment: 'read from the kept file' }));
    expect((await localWorkflowDefinition({ cacheDir })).Comment).toBe('read from the kept file');
  });

  it('renders a damaged file again and replaces it; a folder it cannot write to only costs the rendering', async () => {
    const cacheDir = path.join(dir, 'damaged');
    mkdirSync(cacheDir);
    const kept = path.join(cacheDir, keptDefinitionName());
    writeFileSync(kept, '{"StartAt": "Pla');
    const rendered = await localWorkflowDefinition({ cacheDir });
    expect(rendered).toEqual(await localWorkflowDefinition());
    expect(JSON.parse(readFileSync(kept, 'utf8'))).toEqual(rendered);
    const missing = path.join(dir, 'no-such-folder');
    expect(await localWorkflowDefinition({ cacheDir: missing })).toEqual(rendered);
    expect(existsSync(missing)).toBe(false);
  });
});
