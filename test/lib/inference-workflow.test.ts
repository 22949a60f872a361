/**
 * The state machine's shape (states, transitions, catches, retries, Batch parameters), read from the rendered
 * definition, and its behaviour, by running it in aws-local-stepfunctions with stub task handlers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { ExecutionError, StateMachine } from 'aws-local-stepfunctions';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import {
  InferenceWorkflow,
  NON_RETRYABLE_ERRORS,
  WORKFLOW_STATES,
  ON_DEMAND_INFER_STATES,
} from '../../lib/constructs/inference-workflow.js';
import {
  PLACEHOLDERS,
  definitionFromTemplate,
  renderWorkflowDefinition,
} from '../../lib/workflow-definition.js';
import { REPO_ROOT } from '../../lib/paths.js';
import type { RunResult, RunState } from '../../src/runs/tasks.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { actionsOf, iamStatements, statesOf } from './helpers.js';
import type { AslState } from './helpers.js';

const S = WORKFLOW_STATES;

let definition: Record<string, unknown>;
let states: Record<string, AslState>;

beforeAll(() => {
  definition = renderWorkflowDefinition();
  states = statesOf(definition);
});

function state(name: string): AslState {
  const found = states[name];
  if (!found) throw new Error(`No state "${name}" in ${Object.keys(states).join(', ')}`);
  return found;
}

describe('InferenceWorkflow definition', () => {
  it('has exactly the documented states, starting at Plan, in JSONPath', () => {
    expect(definition.StartAt).toBe(S.plan);
    expect(definition.QueryLanguage ?? 'JSONPath').toBe('JSONPath');
    expect(Object.keys(states).sort()).toEqual(
      [
        S.plan,
        S.planFailed,
        S.routeShards,
        S.inferShard,
        S.inferShards,
        S.inferShardOnCpu,
        S.inferShardsOnCpu,
        S.routeRetryShards,
        S.inferShardOnDemand,
        S.inferShardsOnDemand,
        S.inferShardOnCpuOnDemand,
        S.inferShardsOnCpuOnDemand,
        S.reconcile,
        S.retryRound,
        S.canary,
        S.inferCanary,
        S.inferCanaryOnCpu,
        S.checkCanary,
        S.canaryPassed,
        S.finalize,
        S.passed,
        S.succeeded,
        S.failed,
      ].sort(),
    );
  });

  it('Canary? sends a plan with $.canary to the canary job (on its compute), and every other plan to Route shards', () => {
    expect(state(S.plan).Next).toBe(S.canary);
    const choice = state(S.canary);
    expect(choice.Type).toBe('Choice');
    expect(choice.Default).toBe(S.routeShards);
    expect(choice.Choices).toEqual([
      {
        And: [
          { Variable: '$.canary', IsPresent: true },
          { Variable: '$.compute', StringEquals: 'cpu' },
        ],
        Next: S.inferCanaryOnCpu,
      },
      { Variable: '$.canary', IsPresent: true, Next: S.inferCanary },
    ]);
    for (const name of [S.inferCanary, S.inferCanaryOnCpu]) {
      const job = state(name);
      const params = job.Parameters as Record<string, unknown>;
      // A job of one: no array properties; the worker learns the canary's size from its environment.
      expectIn(params, name).not.toHaveProperty('ArrayProperties');
      expect((params.ContainerOverrides as { Environment: unknown[] }).Environment).toContainEqual({
        Name: WORKER_ENV.canaryRecords,
        'Value.$': "States.Format('{}', $.canary)",
      });
      expect(job.Next).toBe(S.checkCanary);
      expect(job.Catch).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.inferError', Next: S.checkCanary },
      ]);
    }
    const check = state(S.checkCanary);
    expect((check.Parameters as Record<string, unknown>).FunctionName).toBe(
      PLACEHOLDERS.reconcileFunctionArn,
    );
    expect(check.Next).toBe(S.canaryPassed);
    expect(state(S.canaryPassed)).toMatchObject({
      Type: 'Choice',
      Choices: [{ Variable: '$.next', StringEquals: 'infer', Next: S.routeShards }],
      Default: S.finalize,
    });
  });

  it('Plan invokes the plan function with the whole execution input under "request" and the execution name', () => {
    const plan = state(S.plan);
    expect(plan.Type).toBe('Task');
    expect(plan.Resource).toBe('arn:aws:states:::lambda:invoke');
    expect(plan.Parameters).toEqual({
      FunctionName: PLACEHOLDERS.planFunctionArn,
      Payload: { 'request.$': '$', 'runId.$': '$$.Execution.Name' },
    });
    expect(plan.OutputPath).toBe('$.Payload');
    // Through Canary?, which sends a plan without a canary straight to Route shards.
    expect(plan.Next).toBe(S.canary);
  });

  it('Plan catches every error into the PlanFailed Fail state, with the caught cause', () => {
    expect(state(S.plan).Catch).toEqual([{ ErrorEquals: ['States.ALL'], Next: S.planFailed }]);
    expect(state(S.planFailed)).toEqual({ Type: 'Fail', Error: 'PlanFailed', CausePath: '$.Cause' });
  });

  it('Route shards sends 0 pending to Finalize, 1 to the single job and more to the array job, CPU runs to the CPU queue', () => {
    const route = state(S.routeShards);
    expect(route.Type).toBe('Choice');
    const onCpu = { Variable: '$.compute', StringEquals: 'cpu' };
    expect(route.Choices).toEqual([
      { Variable: '$.pending', NumericEquals: 0, Next: S.finalize },
      { And: [{ Variable: '$.pending', NumericEquals: 1 }, onCpu], Next: S.inferShardOnCpu },
      { Variable: '$.pending', NumericEquals: 1, Next: S.inferShard },
      { ...onCpu, Next: S.inferShardsOnCpu },
    ]);
    expect(route.Default).toBe(S.inferShards);
  });

  it.each([S.inferShardOnCpu, S.inferShardsOnCpu])(
    '%s submits to the CPU queue with the CPU job definition',
    (name) => {
      expect(state(name).Parameters?.JobQueue).toBe(PLACEHOLDERS.cpuJobQueueArn);
      expect(state(name).Parameters?.JobDefinition).toBe(PLACEHOLDERS.cpuJobDefinitionArn);
    },
  );

  it.each([S.inferShard, S.inferShards])('%s submits a Batch job and waits for it (.sync)', (name) => {
    const task = state(name);
    expect(task.Type).toBe('Task');
    expect(task.Resource).toBe('arn:aws:states:::batch:submitJob.sync');
    expect(task.Parameters?.JobQueue).toBe(PLACEHOLDERS.gpuJobQueueArn);
    expect(task.Parameters?.JobDefinition).toBe(PLACEHOLDERS.jobDefinitionArn);
    expect(task.Parameters?.['JobName.$']).toBe("States.Format('{}-r{}', $.runId, $.round)");
  });

  it.each([S.inferShard, S.inferShards, S.inferShardOnCpu, S.inferShardsOnCpu])(
    '%s passes the run URI and round to the worker environment',
    (name) => {
      expect(state(name).Parameters?.ContainerOverrides).toEqual({
        Environment: [
          { Name: WORKER_ENV.runUri, 'Value.$': '$.runUri' },
          { Name: WORKER_ENV.round, 'Value.$': "States.Format('{}', $.round)" },
        ],
      });
    },
  );

  it('only the array job sets an array size, read from $.pending', () => {
    expect(state(S.inferShards).Parameters?.ArrayProperties).toEqual({ 'Size.$': '$.pending' });
    expect(state(S.inferShard).Parameters).not.toHaveProperty('ArrayProperties');
  });

  it.each([S.inferShard, S.inferShards, S.inferShardOnCpu, S.inferShardsOnCpu])(
    '%s keeps RunState (result discarded), catches every error into $.inferError and goes to Reconcile',
    (name) => {
      const task = state(name);
      expect(task.ResultPath).toBeNull();
      expect(task.Next).toBe(S.reconcile);
      expect(task.Catch).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.inferError', Next: S.reconcile },
      ]);
      // Batch's job retry strategy retries spot reclaims; a state-level Retry would resubmit the whole round.
      expect(task).not.toHaveProperty('Retry');
    },
  );

  it('Reconcile gets the whole state and Retry round? goes to Route retry shards or to Finalize', () => {
    const reconcile = state(S.reconcile);
    expect(reconcile.Parameters).toEqual({
      FunctionName: PLACEHOLDERS.reconcileFunctionArn,
      'Payload.$': '$',
    });
    expect(reconcile.OutputPath).toBe('$.Payload');
    expect(reconcile.Next).toBe(S.retryRound);
    const retryRound = state(S.retryRound);
    expect(retryRound.Choices).toEqual([
      { Variable: '$.next', StringEquals: 'infer', Next: S.routeRetryShards },
    ]);
    expect(retryRound.Default).toBe(S.finalize);
  });

  it('routes retry rounds like the first round, but to the On-Demand queues', () => {
    const route = state(S.routeRetryShards);
    const onCpu = { Variable: '$.compute', StringEquals: 'cpu' };
    expect(route.Choices).toEqual([
      { Variable: '$.pending', NumericEquals: 0, Next: S.finalize },
      { And: [{ Variable: '$.pending', NumericEquals: 1 }, onCpu], Next: S.inferShardOnCpuOnDemand },
      { Variable: '$.pending', NumericEquals: 1, Next: S.inferShardOnDemand },
      { ...onCpu, Next: S.inferShardsOnCpuOnDemand },
    ]);
    expect(route.Default).toBe(S.inferShardsOnDemand);
    const queues = {
      [S.inferShardOnDemand]: PLACEHOLDERS.gpuOnDemandJobQueueArn,
      [S.inferShardsOnDemand]: PLACEHOLDERS.gpuOnDemandJobQueueArn,
      [S.inferShardOnCpuOnDemand]: PLACEHOLDERS.cpuOnDemandJobQueueArn,
      [S.inferShardsOnCpuOnDemand]: PLACEHOLDERS.cpuOnDemandJobQueueArn,
    };
    for (const [name, queue] of Object.entries(queues)) {
      const task = state(name);
      expectIn(task.Parameters?.JobQueue, name).toBe(queue);
      expectIn(task.Next, name).toBe(S.reconcile);
      expectIn(task.Catch, name).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.inferError', Next: S.reconcile },
      ]);
    }
    expect(state(S.inferShardsOnDemand).Parameters?.ArrayProperties).toEqual({ 'Size.$': '$.pending' });
    expect(state(S.inferShardOnDemand).Parameters).not.toHaveProperty('ArrayProperties');
    expect(state(S.inferShardOnDemand).Parameters?.JobDefinition).toBe(PLACEHOLDERS.jobDefinitionArn);
    expect(state(S.inferShardOnCpuOnDemand).Parameters?.JobDefinition).toBe(PLACEHOLDERS.cpuJobDefinitionArn);
    // The first round stays on the Spot queues.
    expect(state(S.inferShards).Parameters?.JobQueue).toBe(PLACEHOLDERS.gpuJobQueueArn);
    expect(state(S.inferShardsOnCpu).Parameters?.JobQueue).toBe(PLACEHOLDERS.cpuJobQueueArn);
  });

  it('Finalize gets the whole state and Passed? ends in Succeeded or in Failed with the result reason', () => {
    const finalize = state(S.finalize);
    expect(finalize.Parameters).toEqual({ FunctionName: PLACEHOLDERS.finalizeFunctionArn, 'Payload.$': '$' });
    expect(finalize.OutputPath).toBe('$.Payload');
    expect(finalize.Next).toBe(S.passed);
    const passed = state(S.passed);
    expect(passed.Choices).toEqual([{ Variable: '$.status', StringEquals: 'SUCCEEDED', Next: S.succeeded }]);
    expect(passed.Default).toBe(S.failed);
    expect(state(S.succeeded)).toEqual({ Type: 'Succeed' });
    expect(state(S.failed)).toEqual({ Type: 'Fail', ErrorPath: '$.reason', CausePath: '$.message' });
  });

  it.each([S.plan, S.reconcile, S.finalize])(
    '%s retries Lambda service errors and throttling (with full jitter) only',
    (name) => {
      const retry = state(name).Retry ?? [];
      expect(retry).toContainEqual(
        expect.objectContaining({
          ErrorEquals: [
            'Lambda.ClientExecutionTimeoutException',
            'Lambda.ServiceException',
            'Lambda.AWSLambdaException',
            'Lambda.SdkClientException',
          ],
          JitterStrategy: 'FULL',
          BackoffRate: 2,
          MaxDelaySeconds: 60,
        }),
      );
      expect(retry).toContainEqual(
        expect.objectContaining({
          ErrorEquals: ['Lambda.TooManyRequestsException'],
          JitterStrategy: 'FULL',
          BackoffRate: 2,
        }),
      );
      for (const retrier of retry) {
        for (const error of retrier.ErrorEquals) expect(error).toMatch(/^Lambda\./);
      }
    },
  );

  it('no Retry anywhere matches the typed, non-retryable error names (nor a catch-all)', () => {
    const retried = Object.values(states).flatMap((s) => (s.Retry ?? []).flatMap((r) => r.ErrorEquals));
    for (const name of [...NON_RETRYABLE_ERRORS, 'States.ALL', 'States.TaskFailed']) {
      expect(retried).not.toContain(name);
    }
  });

  it('times out after 24 hours by default', () => {
    expect(definition.TimeoutSeconds).toBe(24 * 60 * 60);
  });

  it('gives every Lambda task an explicit timeout and leaves Batch rounds bounded by the run timeout', () => {
    const timeouts = Object.fromEntries(
      Object.entries(states)
        .filter(([, s]) => s.Type === 'Task')
        .map(([name, s]) => [name, (s as { TimeoutSeconds?: number }).TimeoutSeconds]),
    );
    expect(timeouts).toEqual({
      [S.plan]: 900,
      [S.reconcile]: 900,
      [S.finalize]: 900,
      [S.inferShard]: undefined,
      [S.inferShards]: undefined,
      [S.inferShardOnCpu]: undefined,
      [S.inferShardsOnCpu]: undefined,
      [S.inferShardOnDemand]: undefined,
      [S.inferShardsOnDemand]: undefined,
      [S.inferShardOnCpuOnDemand]: undefined,
      [S.inferShardsOnCpuOnDemand]: undefined,
      [S.checkCanary]: 900,
      [S.inferCanary]: undefined,
      [S.inferCanaryOnCpu]: undefined,
    });
  });
});

describe('InferenceWorkflow with a CPU queue', () => {
  let cpuStates: Record<string, AslState>;

  beforeAll(() => {
    const app = new App({ builtinCloudFormationValidation: false });
    const stack = new Stack(app, 'CpuQueue', {
      env: { account: PLACEHOLDERS.account, region: PLACEHOLDERS.region },
    });
    const fn = lambda.Function.fromFunctionArn(stack, 'Fn', PLACEHOLDERS.planFunctionArn);
    new InferenceWorkflow(stack, 'Workflow', {
      planFunction: fn,
      reconcileFunction: fn,
      finalizeFunction: fn,
      gpuJobQueue: batch.JobQueue.fromJobQueueArn(stack, 'Gpu', PLACEHOLDERS.gpuJobQueueArn),
      cpuJobQueue: batch.JobQueue.fromJobQueueArn(
        stack,
        'Cpu',
        'arn:aws:batch:us-east-1:123456789012:job-queue/cpu',
      ),
      jobDefinition: batch.EcsJobDefinition.fromJobDefinitionArn(stack, 'Def', PLACEHOLDERS.jobDefinitionArn),
    });
    cpuStates = statesOf(definitionFromTemplate(app.synth().getStackByName('CpuQueue').template));
  });

  it('without On-Demand queues, sends retry rounds back to Route shards and has no On-Demand state', () => {
    expect(cpuStates[S.retryRound]?.Choices).toEqual([
      { Variable: '$.next', StringEquals: 'infer', Next: S.routeShards },
    ]);
    for (const name of [S.routeRetryShards, ...ON_DEMAND_INFER_STATES]) {
      expectIn(Object.keys(cpuStates), name).not.toContain(name);
    }
  });

  it('routes runs whose compute is cpu to the CPU queue, single and array', () => {
    const onCpu = { Variable: '$.compute', StringEquals: 'cpu' };
    expect(cpuStates[S.routeShards]?.Choices).toEqual([
      { Variable: '$.pending', NumericEquals: 0, Next: S.finalize },
      { And: [{ Variable: '$.pending', NumericEquals: 1 }, onCpu], Next: S.inferShardOnCpu },
      { Variable: '$.pending', NumericEquals: 1, Next: S.inferShard },
      { ...onCpu, Next: S.inferShardsOnCpu },
    ]);
    expect(cpuStates[S.routeShards]?.Default).toBe(S.inferShards);
    expect(cpuStates[S.inferShardOnCpu]?.Parameters?.JobQueue).toMatch(/job-queue\/cpu$/);
    expect(cpuStates[S.inferShardsOnCpu]?.Parameters?.JobQueue).toMatch(/job-queue\/cpu$/);
    expect(cpuStates[S.inferShardsOnCpu]?.Parameters?.ArrayProperties).toEqual({ 'Size.$': '$.pending' });
    expect(cpuStates[S.inferShard]?.Parameters?.JobQueue).toBe(PLACEHOLDERS.gpuJobQueueArn);
  });

  it('generates no CPU states when the CPU queue is the GPU queue', () => {
    const app = new App({ builtinCloudFormationValidation: false });
    const stack = new Stack(app, 'SameQueue');
    const fn = lambda.Function.fromFunctionArn(stack, 'Fn', PLACEHOLDERS.planFunctionArn);
    const queue = batch.JobQueue.fromJobQueueArn(stack, 'Gpu', PLACEHOLDERS.gpuJobQueueArn);
    new InferenceWorkflow(stack, 'Workflow', {
      planFunction: fn,
      reconcileFunction: fn,
      finalizeFunction: fn,
      gpuJobQueue: queue,
      cpuJobQueue: queue,
      jobDefinition: batch.EcsJobDefinition.fromJobDefinitionArn(stack, 'Def', PLACEHOLDERS.jobDefinitionArn),
    });
    const names = Object.keys(
      statesOf(definitionFromTemplate(app.synth().getStackByName('SameQueue').template)),
    );
    expect(names).not.toContain(S.inferShardOnCpu);
    expect(names).not.toContain(S.inferShardsOnCpu);
  });
});

describe('InferenceWorkflow state machine resource', () => {
  function synthWorkflow(timeout?: Duration): Template {
    const app = new App({ builtinCloudFormationValidation: false });
    const stack = new Stack(app, 'Resource');
    const fn = lambda.Function.fromFunctionArn(stack, 'Fn', PLACEHOLDERS.planFunctionArn);
    new InferenceWorkflow(stack, 'Workflow', {
      planFunction: fn,
      reconcileFunction: fn,
      finalizeFunction: fn,
      gpuJobQueue: batch.JobQueue.fromJobQueueArn(stack, 'Gpu', PLACEHOLDERS.gpuJobQueueArn),
      jobDefinition: batch.EcsJobDefinition.fromJobDefinitionArn(stack, 'Def', PLACEHOLDERS.jobDefinitionArn),
      timeout,
    });
    return Template.fromJSON(app.synth().getStackByName('Resource').template as Record<string, unknown>);
  }

  it('is STANDARD, traced, and logs ALL with execution data to a log group with retention', () => {
    const template = synthWorkflow();
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: true }),
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('takes its timeout from props', () => {
    const template = synthWorkflow(Duration.hours(2));
    const [machine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
    const asl = definitionFromTemplate({ Resources: { Machine: machine } });
    expect(asl.TimeoutSeconds).toBe(7200);
  });

  it('rule: the timeout is at most what a STANDARD execution may run', () => {
    expect(() => synthWorkflow(Duration.days(400))).toThrow(/between 1 second and 365 days/);
  });

  it('rule: a CPU job definition comes with a CPU queue', () => {
    const app = new App({ builtinCloudFormationValidation: false });
    const stack = new Stack(app, 'CpuDefinitionOnly');
    const fn = lambda.Function.fromFunctionArn(stack, 'Fn', PLACEHOLDERS.planFunctionArn);
    const definition = batch.EcsJobDefinition.fromJobDefinitionArn(
      stack,
      'Def',
      PLACEHOLDERS.jobDefinitionArn,
    );
    expect(
      () =>
        new InferenceWorkflow(stack, 'Workflow', {
          planFunction: fn,
          reconcileFunction: fn,
          finalizeFunction: fn,
          gpuJobQueue: batch.JobQueue.fromJobQueueArn(stack, 'Gpu', PLACEHOLDERS.gpuJobQueueArn),
          jobDefinition: definition,
          cpuJobDefinition: definition,
        }),
    ).toThrow(/cpuJobDefinition is only used with a cpuJobQueue/);
  });

  it('rule: a CPU On-Demand queue comes with a CPU queue and a GPU On-Demand queue', () => {
    const app = new App({ builtinCloudFormationValidation: false });
    const stack = new Stack(app, 'CpuOnDemandOnly');
    const fn = lambda.Function.fromFunctionArn(stack, 'Fn', PLACEHOLDERS.planFunctionArn);
    const queue = (id: string, arn: string) => batch.JobQueue.fromJobQueueArn(stack, id, arn);
    const base = {
      planFunction: fn,
      reconcileFunction: fn,
      finalizeFunction: fn,
      gpuJobQueue: queue('Gpu', PLACEHOLDERS.gpuJobQueueArn),
      jobDefinition: batch.EcsJobDefinition.fromJobDefinitionArn(stack, 'Def', PLACEHOLDERS.jobDefinitionArn),
      cpuOnDemandJobQueue: queue('CpuOd', PLACEHOLDERS.cpuOnDemandJobQueueArn),
    };
    expect(() => new InferenceWorkflow(stack, 'NoCpuQueue', { ...base })).toThrow(
      /cpuOnDemandJobQueue is only used with a cpuJobQueue and a gpuOnDemandJobQueue/,
    );
    expect(
      () =>
        new InferenceWorkflow(stack, 'NoGpuOnDemand', {
          ...base,
          cpuJobQueue: queue('Cpu', PLACEHOLDERS.cpuJobQueueArn),
        }),
    ).toThrow(/cpuOnDemandJobQueue is only used with a cpuJobQueue and a gpuOnDemandJobQueue/);
  });
});

/** A workflow with every task (GPU and CPU queues), its stack's template and the workflow construct. */
function synthFullWorkflow(): { template: Record<string, unknown>; workflow: InferenceWorkflow } {
  const app = new App({ builtinCloudFormationValidation: false });
  const stack = new Stack(app, 'Full');
  const workflow = new InferenceWorkflow(stack, 'Workflow', {
    planFunction: lambda.Function.fromFunctionArn(stack, 'Plan', PLACEHOLDERS.planFunctionArn),
    reconcileFunction: lambda.Function.fromFunctionArn(stack, 'Reconcile', PLACEHOLDERS.reconcileFunctionArn),
    finalizeFunction: lambda.Function.fromFunctionArn(stack, 'Finalize', PLACEHOLDERS.finalizeFunctionArn),
    gpuJobQueue: batch.JobQueue.fromJobQueueArn(stack, 'Gpu', PLACEHOLDERS.gpuJobQueueArn),
    cpuJobQueue: batch.JobQueue.fromJobQueueArn(stack, 'Cpu', PLACEHOLDERS.cpuJobQueueArn),
    jobDefinition: batch.EcsJobDefinition.fromJobDefinitionArn(stack, 'Def', PLACEHOLDERS.jobDefinitionArn),
    cpuJobDefinition: batch.EcsJobDefinition.fromJobDefinitionArn(
      stack,
      'CpuDef',
      PLACEHOLDERS.cpuJobDefinitionArn,
    ),
  });
  return { template: app.synth().getStackByName('Full').template as Record<string, unknown>, workflow };
}

describe("InferenceWorkflow's role", () => {
  it('may invoke exactly the three functions, submit exactly the two job definitions to the two queues, nothing else', () => {
    const statements = iamStatements(synthFullWorkflow().template).filter((s) => s.Effect === 'Allow');
    const byAction = (action: string) =>
      statements.filter((s) => actionsOf(s).includes(action)).flatMap((s) => [s.Resource].flat());
    expect(byAction('lambda:InvokeFunction').sort()).toEqual(
      [
        PLACEHOLDERS.planFunctionArn,
        PLACEHOLDERS.reconcileFunctionArn,
        PLACEHOLDERS.finalizeFunctionArn,
      ].sort(),
    );
    // The job definitions by name, every revision (executions started before a deploy submit the old revision),
    // not job-definition/*.
    const everyRevision = (arn: string) => arn.replace(/:\d+$/, ':*');
    expect(everyRevision(PLACEHOLDERS.jobDefinitionArn)).toMatch(/job-definition\/batch-infer-worker:\*$/);
    expect(byAction('batch:SubmitJob').sort()).toEqual(
      [
        everyRevision(PLACEHOLDERS.jobDefinitionArn),
        everyRevision(PLACEHOLDERS.cpuJobDefinitionArn),
        PLACEHOLDERS.gpuJobQueueArn,
        PLACEHOLDERS.cpuJobQueueArn,
      ].sort(),
    );
    expect(JSON.stringify(byAction('events:PutRule'))).toContain(
      ':rule/StepFunctionsGetEventsForBatchJobsRule',
    );
    // Stopping an execution stops its jobs (their ids are only known at run time).
    expect(new Set(byAction('batch:TerminateJob').map((r) => JSON.stringify(r)))).toEqual(
      new Set([
        JSON.stringify({
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':batch:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':job/*',
            ],
          ],
        }),
      ]),
    );
    // As Step Functions' documented policy for submitJob.sync: DescribeJobs, which takes no resource ARN.
    expect(byAction('batch:DescribeJobs')).toEqual(['*']);
    // Every other action is log delivery or X-Ray, the only ones on "*".
    const known = new Set([
      'lambda:InvokeFunction',
      'batch:SubmitJob',
      'batch:DescribeJobs',
      'events:PutRule',
      'events:PutTargets',
      'events:DescribeRule',
      'batch:TerminateJob',
    ]);
    for (const s of statements) {
      for (const action of actionsOf(s).filter((a) => !known.has(a))) expect(action).toMatch(/^(logs|xray):/);
    }
  });
});

describe('InferenceWorkflow is built from typed tasks', () => {
  it('every state of the construct is a typed CDK state (LambdaInvoke, BatchSubmitJob, Choice, Fail, Succeed), one per ASL state', () => {
    const { template, workflow } = synthFullWorkflow();
    const constructs = workflow.node.findAll().filter((c): c is sfn.State => c instanceof sfn.State);
    for (const state of constructs) {
      expect(state).not.toBeInstanceOf(sfn.CustomState);
      expectIn(
        [tasks.LambdaInvoke, tasks.BatchSubmitJob, sfn.Choice, sfn.Fail, sfn.Succeed].some(
          (t) => state instanceof t,
        ),
        state.node.path,
      ).toBe(true);
    }
    const asl = statesOf(definitionFromTemplate(template));
    expect(constructs.map((c) => c.stateId).sort()).toEqual(Object.keys(asl).sort());
  });

  it('no infrastructure source writes ASL by hand (no DefinitionBody.fromString/fromFile, no CustomState)', () => {
    const files = fs
      .readdirSync(path.join(REPO_ROOT, 'lib'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'));
    expect(files).toContain(path.join('constructs', 'inference-workflow.ts'));
    for (const file of files) {
      const text = fs.readFileSync(path.join(REPO_ROOT, 'lib', file), 'utf8');
      expectIn(text, file).not.toMatch(/\bfromString\s*\(|\bfromFile\s*\(|\bCustomState\b|definitionString/);
    }
  });
});

// --- Running the definition locally ---------------------------------------------------------------------------

interface Calls {
  readonly states: string[];
  readonly payloads: Record<string, unknown[]>;
}

type Handler = (input: Record<string, unknown>) => unknown;

const baseState: RunState = {
  runId: 'run-1',
  runUri: 'file:///tmp/out/_runs/run-1/',
  shardCount: 3,
  round: 0,
  maxRounds: 2,
  pending: 3,
  compute: 'gpu',
  next: 'infer',
};

const passedResult: RunResult = {
  runId: 'run-1',
  status: 'SUCCEEDED',
  message: 'ok',
  records: 10,
  predictions: 10,
  errors: 0,
  failedShards: 0,
  outputUri: 'file:///tmp/out/',
  manifestUri: 'file:///tmp/out/_runs/run-1/manifest.json',
};

function namedError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

let localMachine: StateMachine | undefined;

/** Runs the rendered definition with stub handlers: Lambda tasks answer `{ Payload }`, Batch tasks anything. */
async function runLocally(
  handlers: Partial<Record<string, Handler>>,
  input: Record<string, unknown> = { spec: { name: 'job' } },
): Promise<{ readonly output: unknown; readonly calls: Calls }> {
  const calls: Calls = { states: [], payloads: {} };
  const lambdaStates = new Set<string>([S.plan, S.reconcile, S.finalize]);
  const overrides = Object.fromEntries(
    [
      S.plan,
      S.reconcile,
      S.finalize,
      S.inferShard,
      S.inferShards,
      S.inferShardOnDemand,
      S.inferShardsOnDemand,
    ].map((name) => [
      name,
      async (taskInput: unknown) => {
        const parameters = taskInput as Record<string, unknown>;
        calls.states.push(name);
        (calls.payloads[name] ??= []).push(lambdaStates.has(name) ? parameters.Payload : parameters);
        const handler = handlers[name];
        if (!handler) throw new Error(`unexpected state ${name}`);
        const result = await handler(
          lambdaStates.has(name) ? (parameters.Payload as Record<string, unknown>) : parameters,
        );
        return (lambdaStates.has(name) ? { Payload: result } : (result ?? {})) as never;
      },
    ]),
  );
  // Validating a definition takes the interpreter about a second: build the machine once.
  localMachine ??= new StateMachine(definition as unknown as StateMachineDefinition);
  const execution = localMachine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: overrides,
      retryIntervalOverrides: Object.fromEntries([S.plan, S.reconcile, S.finalize].map((name) => [name, 0])),
    },
    context: { Execution: { Name: 'run-1' } },
  });
  return { output: await execution.result, calls };
}

async function failure(
  promise: Promise<unknown>,
): Promise<{ readonly name: string; readonly message: string }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ExecutionError && error.cause instanceof Error) {
      return { name: error.cause.name, message: error.cause.message };
    }
    throw error;
  }
  throw new Error('expected the execution to fail');
}

describe('InferenceWorkflow executed by aws-local-stepfunctions', () => {
  it('passes validation of the local interpreter (ARNs and paths checked)', () => {
    expect(() => new StateMachine(definition as unknown as StateMachineDefinition)).not.toThrow();
  });

  it('runs Plan -> Infer shards -> Reconcile -> Finalize -> Succeeded, passing RunState through the Batch task', async () => {
    const { output, calls } = await runLocally({
      [S.plan]: () => baseState,
      [S.inferShards]: () => ({ JobId: 'ignored' }),
      [S.reconcile]: (s) => ({ ...(s as RunState), next: 'finalize' }),
      [S.finalize]: () => passedResult,
    });
    expect(calls.states).toEqual([S.plan, S.inferShards, S.reconcile, S.finalize]);
    expect(calls.payloads[S.plan]).toEqual([{ request: { spec: { name: 'job' } }, runId: 'run-1' }]);
    expect(calls.payloads[S.inferShards]?.[0]).toMatchObject({
      JobName: 'run-1-r0',
      ArrayProperties: { Size: 3 },
      ContainerOverrides: {
        Environment: [
          { Name: WORKER_ENV.runUri, Value: baseState.runUri },
          { Name: WORKER_ENV.round, Value: '0' },
        ],
      },
    });
    expect(calls.payloads[S.reconcile]).toEqual([baseState]);
    expect(output).toEqual(passedResult);
  });

  it('gives Plan only the fields the execution input has (optional fields may be absent)', async () => {
    const { calls } = await runLocally(
      { [S.plan]: () => ({ ...baseState, pending: 0 }), [S.finalize]: () => passedResult },
      { specUri: 's3://bucket/spec.yaml' },
    );
    expect(calls.payloads[S.plan]).toEqual([
      { request: { specUri: 's3://bucket/spec.yaml' }, runId: 'run-1' },
    ]);
    expect(calls.states).toEqual([S.plan, S.finalize]);
  });

  it('runs one pending shard as a single job, without an array size', async () => {
    const { calls } = await runLocally({
      [S.plan]: () => ({ ...baseState, pending: 1 }),
      [S.inferShard]: () => ({}),
      [S.reconcile]: (s) => ({ ...(s as RunState), next: 'finalize' }),
      [S.finalize]: () => passedResult,
    });
    expect(calls.states).toEqual([S.plan, S.inferShard, S.reconcile, S.finalize]);
    expect(calls.payloads[S.inferShard]?.[0]).not.toHaveProperty('ArrayProperties');
  });

  it('hands a failed Batch job to Reconcile under inferError and runs a retry round when Reconcile says so', async () => {
    let reconciles = 0;
    const { calls, output } = await runLocally({
      [S.plan]: () => baseState,
      [S.inferShards]: () => {
        throw namedError('States.TaskFailed', 'array child 2 failed');
      },
      [S.inferShardOnDemand]: () => ({}),
      [S.reconcile]: (s) => {
        reconciles += 1;
        return reconciles === 1
          ? { ...(s as RunState), round: 1, pending: 1, next: 'infer' }
          : { ...(s as RunState), next: 'finalize' };
      },
      [S.finalize]: () => passedResult,
    });
    expect(calls.states).toEqual([
      S.plan,
      S.inferShards,
      S.reconcile,
      S.inferShardOnDemand,
      S.reconcile,
      S.finalize,
    ]);
    expect(calls.payloads[S.reconcile]?.[0]).toEqual({
      ...baseState,
      inferError: { Error: 'States.TaskFailed', Cause: 'array child 2 failed' },
    });
    expect(calls.payloads[S.inferShardOnDemand]?.[0]).toMatchObject({ JobName: 'run-1-r1' });
    expect(output).toEqual(passedResult);
  });

  it('fails with PlanFailed and the cause when Plan throws a typed error, without retrying it', async () => {
    let attempts = 0;
    const result = await failure(
      runLocally({
        [S.plan]: () => {
          attempts += 1;
          throw namedError('SpecError', 'Invalid job spec: model.group is required');
        },
      }),
    );
    expect(attempts).toBe(1);
    expect(result).toEqual({ name: 'PlanFailed', message: 'Invalid job spec: model.group is required' });
  });

  it('retries a throttled Lambda task', async () => {
    let attempts = 0;
    const { output } = await runLocally({
      [S.plan]: () => {
        attempts += 1;
        if (attempts < 3) throw namedError('Lambda.TooManyRequestsException', 'Rate exceeded');
        return { ...baseState, pending: 0 };
      },
      [S.finalize]: () => passedResult,
    });
    expect(attempts).toBe(3);
    expect(output).toEqual(passedResult);
  });

  it('does not retry a typed error from Finalize: the execution fails with that error', async () => {
    let attempts = 0;
    const result = await failure(
      runLocally({
        [S.plan]: () => ({ ...baseState, pending: 0 }),
        [S.finalize]: () => {
          attempts += 1;
          throw namedError('RunStateError', 'plan.json is missing');
        },
      }),
    );
    expect(attempts).toBe(1);
    expect(result.name).toBe('RunStateError');
  });

  it('ends in Failed with the result reason and message when Finalize reports FAILED', async () => {
    const result = await failure(
      runLocally({
        [S.plan]: () => ({ ...baseState, pending: 0 }),
        [S.finalize]: () => ({
          ...passedResult,
          status: 'FAILED',
          reason: 'ShardsFailed',
          message: '2 shards failed',
        }),
      }),
    );
    expect(result).toEqual({ name: 'ShardsFailed', message: '2 shards failed' });
  });
});
