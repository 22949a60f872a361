/**
 * The AWS backend at the request level (aws-sdk-client-mock): each operation's exact calls and parameters, the
 * documented response shapes (DescribeStacks, StartExecution, DescribeExecution, ListExecutions, StopExecution,
 * ListJobs, DescribeJobs, TerminateJob, FilterLogEvents), paging, and throttling retried by the SDK itself.
 */
import { describe, expect, it, beforeEach } from '@jest/globals';
import { mockClient } from 'aws-sdk-client-mock';
import {
  BatchClient,
  DescribeJobsCommand,
  ListJobsCommand,
  TerminateJobCommand,
} from '@aws-sdk/client-batch';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient, FilterLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { expectIn } from '../support/expect-in.js';
import {
  AwsBackend,
  AwsSetupError,
  loadDeployedStack,
  type AwsClients,
} from '../../src/operate/aws-backend.js';
import { runListSchema, runStatusSchema, cancelResultSchema, logsSchema } from '../../src/operate/backend.js';
import { UnknownRunError } from '../../src/operate/local-backend.js';
import type { RunProgress } from '../../src/operate/run-progress.js';
import {
  pipelineOperateOutputKeys,
  STACK_OUTPUT_KEYS,
  type PipelineOperate,
} from '../../src/operate/stack-outputs.js';
import { renderStatus } from '../../src/cli/render.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

const STACK = 'batch-infer-dev';
const SM = 'arn:aws:states:eu-west-1:111122223333:stateMachine:PipelineBreastCancer';
const SM_DAILY = 'arn:aws:states:eu-west-1:111122223333:stateMachine:PipelineBreastCancerDaily';
const execArn = (sm: string, name: string) => `${sm.replace(':stateMachine:', ':execution:')}:${name}`;

const SPEC = {
  name: 'breast_cancer',
  input: { uri: 's3://data-bucket/incoming/breast_cancer/', format: 'csv', manifest: 'auto' },
  output: { uri: 's3://data-bucket/predictions/breast_cancer/' },
};
const OPERATE: PipelineOperate = {
  spec: SPEC,
  outputUri: 's3://data-bucket/predictions/breast_cancer/',
  inputPrefixes: ['s3://data-bucket/incoming/breast_cancer/'],
  manifestObjects: [],
  triggers: [
    's3 s3://data-bucket/incoming/breast_cancer/ *.csv',
    'schedule cron(0 6 ? * MON *) Europe/Paris',
  ],
};
const OPERATE_DAILY: PipelineOperate = {
  ...OPERATE,
  spec: { ...SPEC, name: 'breast_cancer_daily' },
  outputUri: 's3://data-bucket/predictions/breast_cancer_daily/',
  inputPrefixes: ['s3://data-bucket/landing/breast_cancer/'],
  triggers: [],
};

/** A DescribeStacks response as documented: Stacks[].Outputs[] of OutputKey / OutputValue / Description. */
function describeStacksResponse() {
  const outputs: Record<string, string> = {
    [STACK_OUTPUT_KEYS.pipelineNames]: 'breast_cancer,breast_cancer_daily',
    [STACK_OUTPUT_KEYS.gpuJobQueueName]: 'batch-infer-dev-gpu',
    [STACK_OUTPUT_KEYS.cpuJobQueueName]: 'batch-infer-dev-cpu',
    [STACK_OUTPUT_KEYS.workerLogGroupName]: '/batch-infer/dev/worker',
    [STACK_OUTPUT_KEYS.functionLogGroupNames]: JSON.stringify({
      plan: '/fn/plan',
      reconcile: '/fn/reconcile',
    }),
    [pipelineOperateOutputKeys('breast_cancer').stateMachineArn]: SM,
    [pipelineOperateOutputKeys('breast_cancer').operate]: JSON.stringify(OPERATE),
    [pipelineOperateOutputKeys('breast_cancer_daily').stateMachineArn]: SM_DAILY,
    [pipelineOperateOutputKeys('breast_cancer_daily').operate]: JSON.stringify(OPERATE_DAILY),
    DashboardName: 'batch-infer-dev',
  };
  return {
    Stacks: [
      {
        StackName: STACK,
        StackId: `arn:aws:cloudformation:eu-west-1:111122223333:stack/${STACK}/abc`,
        CreationTime: new Date('2026-11-01T00:00:00Z'),
        StackStatus: 'UPDATE_COMPLETE' as const,
        Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
      },
    ],
  };
}

const cfn = mockClient(CloudFormationClient);
const sfn = mockClient(SFNClient);
const batch = mockClient(BatchClient);
const logs = mockClient(CloudWatchLogsClient);

const notFound = (name: string) =>
  new ExecutionDoesNotExist({ message: `Execution Does Not Exist: '${name}'`, $metadata: {} });

function progress(over: Partial<RunProgress> = {}): RunProgress {
  return {
    planned: true,
    shards: 10,
    round: 2,
    roundShards: 3,
    succeeded: 7,
    running: 1,
    failed: 2,
    failedShardIds: [4, 9],
    pending: 0,
    recordsPlanned: 1000,
    recordsExact: true,
    recordsDone: 750,
    predictions: 740,
    errors: 10,
    errorsByReason: { INVALID_VALUE: 10 },
    shardFailuresByReason: { 'exit code 1': 3, 'Host EC2 terminated': 2 },
    manifestUri: 's3://data-bucket/predictions/breast_cancer/_runs/r-7/manifest.json',
    plannedAt: '2026-12-01T08:00:00.000Z',
    ...over,
  };
}

/** The output URIs whose run files the backend read. */
let progressReads: string[] = [];

async function backend(): Promise<AwsBackend> {
  const clients: AwsClients = {
    cloudFormation: new CloudFormationClient({ region: 'eu-west-1' }),
    sfn: new SFNClient({ region: 'eu-west-1' }),
    batch: new BatchClient({ region: 'eu-west-1' }),
    logs: new CloudWatchLogsClient({ region: 'eu-west-1' }),
    store: {} as ObjectStore,
    readProgress: async (_store, outputUri, runId) => {
      progressReads.push(`${outputUri} ${runId}`);
      return progress();
    },
  };
  const stack = await loadDeployedStack(clients.cloudFormation, STACK);
  return new AwsBackend(clients, stack, () => new Date('2026-12-01T08:10:00Z'));
}

beforeEach(() => {
  progressReads = [];
  cfn.reset();
  sfn.reset();
  batch.reset();
  logs.reset();
  cfn.on(DescribeStacksCommand, { StackName: STACK }).resolves(describeStacksResponse());
});

describe('stack outputs (DescribeStacks)', () => {
  it('reads the pipelines, queues and log groups from the named stack', async () => {
    const b = await backend();
    expect(cfn.commandCalls(DescribeStacksCommand).map((c) => c.args[0].input)).toEqual([
      { StackName: STACK },
    ]);
    expect([...b.stack.pipelines.keys()]).toEqual(['breast_cancer', 'breast_cancer_daily']);
    expect(b.stack.jobQueues).toEqual(['batch-infer-dev-gpu', 'batch-infer-dev-cpu']);
    expect(b.stack.workerLogGroup).toBe('/batch-infer/dev/worker');
  });

  it('says to deploy when the stack does not exist, and to redeploy when an output is missing', async () => {
    cfn
      .on(DescribeStacksCommand, { StackName: 'nope' })
      .rejects(Object.assign(new Error('Stack with id nope does not exist'), { name: 'ValidationError' }));
    await expect(
      loadDeployedStack(new CloudFormationClient({ region: 'eu-west-1' }), 'nope'),
    ).rejects.toThrow(/Stack nope does not exist.*npx cdk deploy.*--stack/);
    const old = describeStacksResponse();
    old.Stacks[0]!.Outputs = old.Stacks[0]!.Outputs.filter(
      (o) => o.OutputKey !== STACK_OUTPUT_KEYS.workerLogGroupName,
    );
    cfn.on(DescribeStacksCommand, { StackName: 'old' }).resolves(old);
    await expect(loadDeployedStack(new CloudFormationClient({ region: 'eu-west-1' }), 'old')).rejects.toThrow(
      new AwsSetupError(
        'Stack old has no output WorkerLogGroupName: it was deployed by an older version; redeploy it (npx cdk deploy)',
      ),
    );
  });
});

describe('pipelines', () => {
  it('lists each pipeline with its triggers, input prefixes and newest execution (ListExecutions maxResults 1)', async () => {
    sfn.on(ListExecutionsCommand, { stateMachineArn: SM }).resolves({
      executions: [
        {
          executionArn: execArn(SM, 'r-7'),
          stateMachineArn: SM,
          name: 'r-7',
          status: 'ABORTED',
          startDate: new Date('2026-12-01T08:00:00Z'),
          stopDate: new Date('2026-12-01T08:05:00Z'),
        },
      ],
    });
    sfn.on(ListExecutionsCommand, { stateMachineArn: SM_DAILY }).resolves({ executions: [] });
    const list = await (await backend()).pipelines();
    expect(sfn.commandCalls(ListExecutionsCommand).map((c) => c.args[0].input)).toEqual([
      { stateMachineArn: SM, maxResults: 1 },
      { stateMachineArn: SM_DAILY, maxResults: 1 },
    ]);
    expect(list).toEqual([
      {
        name: 'breast_cancer',
        stateMachineArn: SM,
        triggers: OPERATE.triggers,
        inputPrefixes: OPERATE.inputPrefixes,
        lastRun: { runId: 'r-7', status: 'CANCELLED', startedAt: '2026-12-01T08:00:00.000Z' },
      },
      {
        name: 'breast_cancer_daily',
        stateMachineArn: SM_DAILY,
        triggers: [],
        inputPrefixes: OPERATE_DAILY.inputPrefixes,
      },
    ]);
  });
});

describe('start', () => {
  it('starts the execution named by the run id with the input the triggers send: the spec and an input URI', async () => {
    sfn
      .on(StartExecutionCommand)
      .resolves({ executionArn: execArn(SM, 'backfill-1'), startDate: new Date() });
    const b = await backend();
    const out = await b.start({
      pipeline: 'breast_cancer',
      runId: 'backfill-1',
      input: 's3://data-bucket/incoming/breast_cancer/2026/11/',
    });
    expect(out).toEqual({ runId: 'backfill-1', executionArn: execArn(SM, 'backfill-1') });
    const calls = sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.stateMachineArn).toBe(SM);
    expect(calls[0]!.name).toBe('backfill-1');
    expect(JSON.parse(calls[0]!.input!)).toEqual({
      spec: SPEC,
      inputUri: 's3://data-bucket/incoming/breast_cancer/2026/11/',
    });
  });

  it('reads a manifest: input.manifest list (s3-inventory for a manifest.json)', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: execArn(SM, 'm-1') });
    const b = await backend();
    await b.start({
      pipeline: 'breast_cancer',
      runId: 'm-1',
      manifest: 's3://data-bucket/incoming/breast_cancer/list.jsonl',
    });
    await b.start({
      pipeline: 'breast_cancer',
      runId: 'm-2',
      manifest: 's3://data-bucket/incoming/breast_cancer/inv/manifest.json',
    });
    const inputs = sfn
      .commandCalls(StartExecutionCommand)
      .map((c) => JSON.parse(c.args[0].input.input!) as { spec: typeof SPEC; inputUri: string });
    expect(inputs.map((i) => i.spec.input.manifest)).toEqual(['list', 's3-inventory']);
    expect(inputs[0]!.inputUri).toBe('s3://data-bucket/incoming/breast_cancer/list.jsonl');
  });

  it('refuses input outside the granted prefixes, naming them and the key that widens them; no call made', async () => {
    const b = await backend();
    await expect(
      b.start({
        pipeline: 'breast_cancer',
        runId: 'x-1',
        input: 's3://other-bucket/incoming/breast_cancer/',
      }),
    ).rejects.toThrow(
      's3://other-bucket/incoming/breast_cancer/ is outside the input prefixes pipeline breast_cancer may read: ' +
        "s3://data-bucket/incoming/breast_cancer/; widen them with input.uri (or a trigger's prefix) in the pipeline's file, then redeploy",
    );
    // A sibling prefix sharing the same start is outside too.
    await expect(
      b.start({
        pipeline: 'breast_cancer',
        runId: 'x-1',
        input: 's3://data-bucket/incoming/breast_cancer_old/',
      }),
    ).rejects.toThrow(/is outside the input prefixes/);
    await expect(
      b.start({ pipeline: 'breast_cancer', runId: 'x-1', manifest: 's3://data-bucket/lists/a.jsonl' }),
    ).rejects.toThrow(/manifest's objects with manifestObjects/);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it('checks the run id with the RUN_ID rule and names an unknown pipeline with the deployed ones', async () => {
    const b = await backend();
    await expect(b.start({ pipeline: 'breast_cancer', runId: '-bad.id' })).rejects.toThrow(
      /--run-id "-bad.id" must be 1-80 letters, digits/,
    );
    await expect(b.start({ pipeline: 'nope', runId: 'ok' })).rejects.toThrow(
      'No pipeline "nope" in stack batch-infer-dev; its pipelines: breast_cancer, breast_cancer_daily',
    );
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it('reports an existing run id (ExecutionAlreadyExists) with how to follow it', async () => {
    sfn
      .on(StartExecutionCommand)
      .rejects(Object.assign(new Error('Execution Already Exists'), { name: 'ExecutionAlreadyExists' }));
    await expect((await backend()).start({ pipeline: 'breast_cancer', runId: 'r-7' })).rejects.toThrow(
      'Run r-7 exists already in pipeline breast_cancer; pick another --run-id, or follow it with: batch-infer watch r-7',
    );
  });
});

function runningExecution() {
  return {
    executionArn: execArn(SM, 'r-7'),
    stateMachineArn: SM,
    name: 'r-7',
    status: 'RUNNING' as const,
    startDate: new Date('2026-12-01T07:59:00Z'),
    input: '{}',
  };
}

describe('status', () => {
  it('finds the run on its pipeline, reads its files and the current round job array status summary', async () => {
    sfn.on(DescribeExecutionCommand, { executionArn: execArn(SM, 'r-7') }).resolves(runningExecution());
    batch.on(ListJobsCommand, { jobQueue: 'batch-infer-dev-gpu' }).resolves({
      jobSummaryList: [
        { jobId: 'job-r0', jobName: 'r-7-r0', status: 'FAILED', jobArn: 'a0' },
        { jobId: 'job-r2', jobName: 'r-7-r2', status: 'RUNNING', jobArn: 'a2' },
        { jobId: 'job-r1', jobName: 'r-7-r1', status: 'FAILED', jobArn: 'a1' },
      ],
    });
    batch.on(ListJobsCommand, { jobQueue: 'batch-infer-dev-cpu' }).resolves({ jobSummaryList: [] });
    batch.on(DescribeJobsCommand, { jobs: ['job-r2'] }).resolves({
      jobs: [
        {
          jobId: 'job-r2',
          jobName: 'r-7-r2',
          jobQueue: 'batch-infer-dev-gpu',
          status: 'RUNNING',
          jobDefinition: 'worker:3',
          startedAt: 1,
          arrayProperties: { size: 3, statusSummary: { SUCCEEDED: 1, RUNNING: 1, FAILED: 1 } },
        },
      ],
    });
    const report = await (await backend()).status('r-7');
    runStatusSchema.parse(report);
    expect(progressReads).toEqual(['s3://data-bucket/predictions/breast_cancer/ r-7']);
    expect(sfn.commandCalls(DescribeExecutionCommand).map((c) => c.args[0].input)).toEqual([
      { executionArn: execArn(SM, 'r-7') },
    ]);
    expect(batch.commandCalls(ListJobsCommand).map((c) => c.args[0].input)).toEqual([
      { jobQueue: 'batch-infer-dev-gpu', filters: [{ name: 'JOB_NAME', values: ['r-7-r*'] }] },
      { jobQueue: 'batch-infer-dev-cpu', filters: [{ name: 'JOB_NAME', values: ['r-7-r*'] }] },
    ]);
    expect(report).toMatchObject({
      backend: 'aws',
      pipeline: 'breast_cancer',
      status: 'RUNNING',
      durationMs: 11 * 60_000,
      batch: { SUCCEEDED: 1, RUNNING: 1, FAILED: 1 },
      outputUri: 's3://data-bucket/predictions/breast_cancer/_runs/r-7/',
      recordsPerSecond: 750 / 600,
      etaSeconds: 250 / (750 / 600),
    });
    // The multi-round run with failed shards, as `status` prints it.
    const text = renderStatus(report, (_s, t) => t);
    expect(text).toEqual([
      'Run r-7 RUNNING · breast_cancer · 11m00s · round 2 (3 shards retried)',
      '  shards     7/10 succeeded · 1 running · 0 pending · 2 failed (4, 9)',
      '  batch      SUCCEEDED 1 · RUNNING 1 · FAILED 1',
      '  records    750/1,000 · 1 rec/s · ETA 3m20s',
      '  errors     10 (INVALID_VALUE 10)',
      '  shard failures  exit code 1: 3; Host EC2 terminated: 2',
    ]);
  });

  it('looks in the next pipeline on ExecutionDoesNotExist, and reports a failed run with its error and cause', async () => {
    sfn.on(DescribeExecutionCommand, { executionArn: execArn(SM, 'r-7') }).rejects(notFound('r-7'));
    sfn.on(DescribeExecutionCommand, { executionArn: execArn(SM_DAILY, 'r-7') }).resolves({
      ...runningExecution(),
      executionArn: execArn(SM_DAILY, 'r-7'),
      stateMachineArn: SM_DAILY,
      status: 'FAILED',
      stopDate: new Date('2026-12-01T08:30:00Z'),
      error: 'RunFailed',
      cause: 'shards 4, 9 failed after 3 rounds',
    });
    const report = await (await backend()).status('r-7');
    expect(progressReads).toEqual(['s3://data-bucket/predictions/breast_cancer_daily/ r-7']);
    expect(report).toMatchObject({
      pipeline: 'breast_cancer_daily',
      status: 'FAILED',
      finishedAt: '2026-12-01T08:30:00.000Z',
      error: 'RunFailed',
      cause: 'shards 4, 9 failed after 3 rounds',
    });
    expect(report.etaSeconds).toBeUndefined();
    // A run that is not running has no current job to ask Batch about.
    expect(batch.calls()).toHaveLength(0);
    expect(renderStatus(report, (_s, t) => t).at(-1)).toBe(
      '  reason     RunFailed: shards 4, 9 failed after 3 rounds',
    );
  });

  it('names the stack and the runs command for an unknown run', async () => {
    sfn.on(DescribeExecutionCommand).rejects(notFound('zz'));
    const err = await (await backend()).status('zz').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownRunError);
    expect((err as Error).message).toBe(
      'No run "zz" in stack batch-infer-dev; list the runs with: batch-infer runs --stack batch-infer-dev',
    );
    expect(sfn.commandCalls(DescribeExecutionCommand)).toHaveLength(2);
  });
});

describe('runs', () => {
  it('pages ListExecutions with nextToken and lists newest first across pipelines, CANCELLED for ABORTED', async () => {
    sfn.on(ListExecutionsCommand, { stateMachineArn: SM }).callsFake((input: { nextToken?: string }) =>
      input.nextToken === undefined
        ? {
            executions: [
              {
                executionArn: 'e3',
                stateMachineArn: SM,
                name: 'r-3',
                status: 'RUNNING',
                startDate: new Date('2026-12-03T00:00:00Z'),
              },
            ],
            nextToken: 'page-2',
          }
        : {
            executions: [
              {
                executionArn: 'e1',
                stateMachineArn: SM,
                name: 'r-1',
                status: 'ABORTED',
                startDate: new Date('2026-12-01T00:00:00Z'),
                stopDate: new Date('2026-12-01T00:02:00Z'),
              },
            ],
          },
    );
    sfn.on(ListExecutionsCommand, { stateMachineArn: SM_DAILY }).resolves({
      executions: [
        {
          executionArn: 'e2',
          stateMachineArn: SM_DAILY,
          name: 'd-2',
          status: 'FAILED',
          startDate: new Date('2026-12-02T00:00:00Z'),
          stopDate: new Date('2026-12-02T01:00:00Z'),
        },
      ],
    });
    const list = await (await backend()).runs({ limit: 20 });
    runListSchema.parse(list);
    expect(sfn.commandCalls(ListExecutionsCommand).map((c) => c.args[0].input)).toEqual([
      { stateMachineArn: SM, maxResults: 20 },
      { stateMachineArn: SM, maxResults: 20, nextToken: 'page-2' },
      { stateMachineArn: SM_DAILY, maxResults: 20 },
    ]);
    expect(list.runs.map((r) => [r.runId, r.pipeline, r.status, r.durationMs])).toEqual([
      ['r-3', 'breast_cancer', 'RUNNING', undefined],
      ['d-2', 'breast_cancer_daily', 'FAILED', 3_600_000],
      ['r-1', 'breast_cancer', 'CANCELLED', 120_000],
    ]);
  });

  it('filters by pipeline and status (CANCELLED is ABORTED), stops at --since and at --limit', async () => {
    sfn.on(ListExecutionsCommand).resolves({
      executions: [
        {
          executionArn: 'a',
          stateMachineArn: SM,
          name: 'new',
          status: 'ABORTED',
          startDate: new Date('2026-12-03T00:00:00Z'),
        },
        {
          executionArn: 'b',
          stateMachineArn: SM,
          name: 'old',
          status: 'ABORTED',
          startDate: new Date('2026-11-01T00:00:00Z'),
        },
      ],
      nextToken: 'more',
    });
    const list = await (
      await backend()
    ).runs({
      pipeline: 'breast_cancer',
      status: 'CANCELLED',
      since: new Date('2026-12-01T00:00:00Z'),
      limit: 5,
    });
    expect(sfn.commandCalls(ListExecutionsCommand).map((c) => c.args[0].input)).toEqual([
      { stateMachineArn: SM, maxResults: 5, statusFilter: 'ABORTED' },
    ]);
    expect(list.runs.map((r) => r.runId)).toEqual(['new']);
  });
});

describe('cancel', () => {
  it("stops the execution and terminates the run's live jobs on every queue (ListJobs paged)", async () => {
    sfn.on(DescribeExecutionCommand, { executionArn: execArn(SM, 'r-7') }).resolves(runningExecution());
    sfn.on(StopExecutionCommand).resolves({ stopDate: new Date() });
    batch
      .on(ListJobsCommand, { jobQueue: 'batch-infer-dev-gpu' })
      .callsFake((input: { nextToken?: string }) =>
        input.nextToken
          ? { jobSummaryList: [{ jobId: 'j2', jobName: 'r-7-r1', status: 'RUNNABLE', jobArn: 'a' }] }
          : {
              jobSummaryList: [
                { jobId: 'j0', jobName: 'r-7-r0', status: 'FAILED', jobArn: 'a' },
                { jobId: 'jx', jobName: 'r-77-r0', status: 'RUNNING', jobArn: 'a' },
              ],
              nextToken: 't2',
            },
      );
    batch.on(ListJobsCommand, { jobQueue: 'batch-infer-dev-cpu' }).resolves({
      jobSummaryList: [{ jobId: 'c1', jobName: 'r-7-r1', status: 'RUNNING', jobArn: 'a' }],
    });
    batch.on(TerminateJobCommand).resolves({});
    const result = await (await backend()).cancel('r-7');
    cancelResultSchema.parse(result);
    expect(sfn.commandCalls(StopExecutionCommand).map((c) => c.args[0].input)).toEqual([
      { executionArn: execArn(SM, 'r-7'), error: 'Cancelled', cause: 'batch-infer cancel' },
    ]);
    expect(batch.commandCalls(ListJobsCommand).map((c) => c.args[0].input.nextToken)).toEqual([
      undefined,
      't2',
      undefined,
    ]);
    expect(batch.commandCalls(TerminateJobCommand).map((c) => c.args[0].input)).toEqual([
      { jobId: 'j2', reason: 'batch-infer cancel r-7' },
      { jobId: 'c1', reason: 'batch-infer cancel r-7' },
    ]);
    expect(result).toEqual({
      runId: 'r-7',
      status: 'CANCELLED',
      cancelled: true,
      terminatedJobs: ['j2', 'c1'],
    });
  });

  it('leaves a run that has ended alone', async () => {
    sfn.on(DescribeExecutionCommand).resolves({ ...runningExecution(), status: 'SUCCEEDED' });
    expect(await (await backend()).cancel('r-7')).toEqual({
      runId: 'r-7',
      status: 'SUCCEEDED',
      cancelled: false,
    });
    expect(sfn.commandCalls(StopExecutionCommand)).toHaveLength(0);
    expect(batch.commandCalls(TerminateJobCommand)).toHaveLength(0);
  });
});

describe('logs', () => {
  it('filters the worker and function log groups by the runId field, pages, and orders lines by time', async () => {
    sfn.on(DescribeExecutionCommand).resolves(runningExecution());
    logs
      .on(FilterLogEventsCommand, { logGroupName: '/batch-infer/dev/worker' })
      .callsFake((input: { nextToken?: string }) =>
        input.nextToken
          ? {
              events: [
                {
                  logStreamName: 'w/2',
                  timestamp: 3000,
                  message: '{"runId":"r-7","shardId":9,"attempt":2,"message":"shard failed"}\n',
                },
              ],
            }
          : {
              events: [
                { logStreamName: 'w/1', timestamp: 1000, message: '{"runId":"r-7","shardId":4,"attempt":1}' },
              ],
              nextToken: 'n2',
            },
      );
    logs.on(FilterLogEventsCommand, { logGroupName: '/fn/plan' }).resolves({
      events: [{ logStreamName: 'p', timestamp: 500, message: '{"runId":"r-7","message":"Planned run"}' }],
    });
    logs.on(FilterLogEventsCommand, { logGroupName: '/fn/reconcile' }).resolves({ events: [] });
    const page = await (await backend()).logs('r-7', {});
    logsSchema.parse({ runId: 'r-7', lines: page.lines });
    expect(logs.commandCalls(FilterLogEventsCommand).map((c) => c.args[0].input)).toEqual([
      { logGroupName: '/batch-infer/dev/worker', filterPattern: '{ $.runId = "r-7" }' },
      { logGroupName: '/batch-infer/dev/worker', filterPattern: '{ $.runId = "r-7" }', nextToken: 'n2' },
      { logGroupName: '/fn/plan', filterPattern: '{ $.runId = "r-7" }' },
      { logGroupName: '/fn/reconcile', filterPattern: '{ $.runId = "r-7" }' },
    ]);
    expect(page.lines.map((l) => [l.source, l.shard, l.attempt, l.stream])).toEqual([
      ['plan', undefined, undefined, '/fn/plan/p'],
      ['worker', 4, 1, '/batch-infer/dev/worker/w/1'],
      ['worker', 9, 2, '/batch-infer/dev/worker/w/2'],
    ]);
    expect(page.lines[2]!.message).toBe('{"runId":"r-7","shardId":9,"attempt":2,"message":"shard failed"}');
    expect(page.cursor).toBe('3000');
  });

  it("--shard reads only the worker group for that shard; --follow's cursor starts after the last line", async () => {
    sfn.on(DescribeExecutionCommand).resolves(runningExecution());
    logs.on(FilterLogEventsCommand).resolves({ events: [] });
    const page = await (await backend()).logs('r-7', { shard: 9, cursor: '3000' });
    expect(logs.commandCalls(FilterLogEventsCommand).map((c) => c.args[0].input)).toEqual([
      {
        logGroupName: '/batch-infer/dev/worker',
        filterPattern: '{ $.runId = "r-7" && $.shardId = 9 }',
        startTime: 3001,
      },
    ]);
    expectIn(page, 'no new lines keeps the cursor').toEqual({ lines: [], cursor: '3000' });
  });
});
