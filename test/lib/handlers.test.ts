/**
 * The Lambda handlers as Lambda runs them, with the environment NodeFunction sets: their Powertools logs and EMF
 * metrics read from stdout, the AWS clients real (the SDK over recorded responses, swapped into the handlers'
 * exported deps), and what each handler hands the engine.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BatchClient } from '@aws-sdk/client-batch';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { REPO_ROOT } from '../../lib/paths.js';
import { AwsBatchJobInspector } from '../../src/results/aws-job-inspector.js';
import { QUEUE_METRICS } from '../../src/runtime/metrics.js';
import { RecordedHttpHandler, TEST_CREDENTIALS } from '../triggers/recorded-http.js';
import { recordedSfn, sfnResponse, startExecutionBody } from '../triggers/sfn.js';

/** What NodeFunction and the stack set (lib/constructs/node-function.ts, lib/batch-inference-stack.ts). */
const FUNCTION_ENV: Record<string, string> = {
  AWS_REGION: 'us-east-1',
  POWERTOOLS_SERVICE_NAME: 'batch-infer',
  POWERTOOLS_METRICS_NAMESPACE: 'BatchInfer',
  JOB_QUEUES: JSON.stringify(['batch-infer-dev-gpu']),
  GLUE_DATABASE_NAME: 'batch_infer_dev',
};

/** A Lambda context object, as the Node.js runtime passes it. */
const CONTEXT = {
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
  functionName: 'BatchInfer-dev-MonitoringQueueDepthFunction',
  functionVersion: '$LATEST',
  invokedFunctionArn:
    'arn:aws:lambda:us-east-1:123456789012:function:BatchInfer-dev-MonitoringQueueDepthFunction',
  memoryLimitInMB: '256',
};

const saved = { ...process.env };
beforeAll(() => {
  for (const key of ['LOG_LEVEL', 'POWERTOOLS_LOG_LEVEL', 'POWERTOOLS_DEV', 'POWERTOOLS_METRICS_DISABLED']) {
    delete process.env[key];
  }
  Object.assign(process.env, FUNCTION_ENV);
});
afterAll(() => {
  process.env = saved;
});

/** Captures what is written to stdout while `run` runs, one parsed JSON object per line. */
async function stdoutOf(run: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const chunks: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return chunks
    .join('')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

afterEach(() => {
  jest.restoreAllMocks();
});

describe('the queue-depth handler (Powertools logger and metrics)', () => {
  const listJobs = (jobs: unknown[]) => ({
    status: 200,
    headers: { 'content-type': 'application/json' },
    body: { jobSummaryList: jobs },
  });

  it('logs a Powertools line with the Lambda context and emits one EMF blob per queue in the BatchInfer namespace', async () => {
    const { handler, deps } = await import('../../lambdas/queue-depth/handler.js');
    const http = new RecordedHttpHandler([
      listJobs([]), // SUBMITTED
      listJobs([]), // PENDING
      listJobs([
        { jobId: 'a', status: 'RUNNABLE' },
        { jobId: 'b', status: 'RUNNABLE' },
      ]),
      listJobs([]), // STARTING
      listJobs([{ jobId: 'c', status: 'RUNNING' }]),
    ]);
    deps.batch = new BatchClient({
      region: 'us-east-1',
      credentials: TEST_CREDENTIALS,
      requestHandler: http,
      maxAttempts: 1,
    });
    const lines = await stdoutOf(() => handler({}, CONTEXT));

    const blobs = lines.filter((line) => '_aws' in line);
    expect(blobs).toHaveLength(1);
    const blob = blobs[0]!;
    expect(blob._aws).toMatchObject({
      Timestamp: expect.any(Number),
      CloudWatchMetrics: [
        {
          Namespace: 'BatchInfer',
          // Exactly the dimension the alarms and the dashboard read: no Powertools `service` dimension.
          Dimensions: [[QUEUE_METRICS.dimension]],
          Metrics: expect.arrayContaining([
            { Name: QUEUE_METRICS.runnable, Unit: 'Count' },
            { Name: QUEUE_METRICS.running, Unit: 'Count' },
          ]) as unknown,
        },
      ],
    });
    expect(blob).toMatchObject({
      JobQueue: 'batch-infer-dev-gpu',
      [QUEUE_METRICS.pending]: 0,
      [QUEUE_METRICS.runnable]: 2,
      [QUEUE_METRICS.starting]: 0,
      [QUEUE_METRICS.running]: 1,
    });
    expect(blob).not.toHaveProperty('service');

    const logs = lines.filter((line) => !('_aws' in line));
    expect(logs).toEqual([
      expect.objectContaining({
        level: 'INFO',
        message: 'Measured queues',
        service: 'batch-infer',
        sampling_rate: 0,
        timestamp: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/) as unknown,
        cold_start: expect.any(Boolean),
        function_name: CONTEXT.functionName,
        function_request_id: CONTEXT.awsRequestId,
        function_arn: CONTEXT.invokedFunctionArn,
        function_memory_size: CONTEXT.memoryLimitInMB,
        depths: [{ queue: 'batch-infer-dev-gpu', pending: 0, runnable: 2, starting: 0, running: 1 }],
      }),
    ]);
  });
});

describe('the trigger handler', () => {
  it("logs the engine's lines through Powertools, with the pipeline and the trigger on each", async () => {
    const { handler, deps } = await import('../../lambdas/trigger/handler.js');
    const { client, http } = recordedSfn([sfnResponse('started')]);
    deps.sfn = client;
    const event = {
      trigger: 'schedule',
      pipeline: 'breast_cancer_daily',
      stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:BreastCancerDaily',
      spec: { name: 'breast_cancer_daily' },
      scheduleId: '04b75375875f',
      scheduledTime: '2025-03-01T02:30:00Z',
    };
    const lines = await stdoutOf(() => handler(event, { ...CONTEXT, awsRequestId: 'req-2' }));
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'INFO',
        message: 'started run',
        service: 'batch-infer',
        function_request_id: 'req-2',
        pipeline: 'breast_cancer_daily',
        trigger: 'schedule',
        name: 'sched-04b75375875f-20250301T023000Z',
      }),
    ]);
    expect(JSON.parse(startExecutionBody(http.requests[0]!.text).input)).toMatchObject({
      scheduledTime: '2025-03-01T02:30:00.000Z',
    });
  });
});

describe('the reconcile handler', () => {
  it('asks AWS Batch why children failed: its engine deps hold the AwsBatchJobInspector', async () => {
    const { deps } = await import('../../lambdas/reconcile/handler.js');
    expect(deps.inspector).toBeInstanceOf(AwsBatchJobInspector);
  });
});

describe('the run context (scheduledTime) from the execution input to Finalize', () => {
  let root: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-handlers-'));
    fs.mkdirSync(path.join(root, 'in'));
    fs.writeFileSync(path.join(root, 'in', 'part-0.csv'), 'a,b,c\n1,2,3\n-1,0,4\n');
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('Plan puts it in RunState, and Reconcile keeps it in the state it hands the next round or Finalize', async () => {
    const base = pathToFileURL(root).href;
    const spec = {
      name: 'scheduled_scores',
      input: { uri: `${base}/in/`, format: 'csv' },
      model: {
        uri: pathToFileURL(path.join(REPO_ROOT, 'test/fixtures/models/affine.onnx')).href,
        inputs: [{ tensor: 'x', from: { columns: ['a', 'b', 'c'] } }],
        outputs: [{ tensor: 'y' }],
      },
      output: { uri: `${base}/out/` },
    };
    const plan = await import('../../lambdas/plan/handler.js');
    const reconcile = await import('../../lambdas/reconcile/handler.js');
    const scheduledTime = '2025-03-01T02:30:00.000Z';
    const state = await plan.handler(
      { runId: 'sched-04b75375875f-20250301T023000Z', request: { spec, scheduledTime } },
      CONTEXT,
    );
    expect(state).toMatchObject({ shardCount: 1, round: 0, next: 'infer', scheduledTime });
    // No shard completed (no worker ran): Reconcile schedules another round, and the state keeps the time.
    const next = await reconcile.handler(state, CONTEXT);
    expect(next).toMatchObject({ round: 1, next: 'infer', pending: 1, scheduledTime });
    // A run not started by a schedule has none.
    const manual = await plan.handler({ runId: 'manual-1', request: { spec } }, CONTEXT);
    expect(manual).not.toHaveProperty('scheduledTime');
  });
});
