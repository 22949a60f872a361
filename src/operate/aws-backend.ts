/**
 * The deployed backend of the CLI (ADR 0010): the same OperateBackend as the local one, over a stack's outputs
 * (CloudFormation DescribeStacks), Step Functions (one execution per run, named by its run id), Batch (the run's
 * jobs are named `<runId>-r<round>`), the run files on S3 (./run-progress.ts) and CloudWatch Logs.
 *
 * Every AWS response is read through the fields it documents; the SDK clients retry throttling themselves.
 */
import { costFieldsOf } from '../cost/cli.js';
import { estimateBeforeStart } from '../cost/before-start.js';
import type { CostEstimate } from '../cost/estimate.js';
import { parseJobSpec } from '../spec/load.js';
import {
  BatchClient,
  DescribeJobsCommand,
  ListJobsCommand,
  TerminateJobCommand,
  type JobStatus,
} from '@aws-sdk/client-batch';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient, FilterLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import {
  DescribeExecutionCommand,
  ListExecutionsCommand,
  SFNClient,
  StopExecutionCommand,
  type ExecutionStatus,
} from '@aws-sdk/client-sfn';
import { z } from 'zod';
import type { ObjectStore } from '../storage/object-store.js';
import { RUN_ID_PATTERN, RUN_ID_RULE, runUriOf } from '../runs/layout.js';
import { executionArnOf, startRun } from '../triggers/start-run.js';
import { MANIFEST_OBJECTS_KEY } from '../../lib/pipelines.js';
import {
  rateAndEta,
  type CancelResult,
  type LogLine,
  type LogQuery,
  type OperateBackend,
  type RunFilter,
  type RunList,
  type RunListEntry,
  type RunStatusReport,
} from './backend.js';
import type { RunStatus } from './local-records.js';
import { UnknownRunError } from './local-backend.js';
import { readRunProgress } from './run-progress.js';
import {
  functionLogGroupsSchema,
  pipelineOperateOutputKeys,
  pipelineOperateSchema,
  STACK_OUTPUT_KEYS,
  type PipelineOperate,
} from './stack-outputs.js';

export interface AwsClients {
  readonly cloudFormation: CloudFormationClient;
  readonly sfn: SFNClient;
  readonly batch: BatchClient;
  readonly logs: CloudWatchLogsClient;
  /** Reads the run files (S3). */
  readonly store: ObjectStore;
  /** How a run's progress is read from its files. @default readRunProgress */
  readonly readProgress?: typeof readRunProgress;
}

/** What the stack's outputs say about the deployment. */
export interface DeployedStack {
  readonly stackName: string;
  readonly pipelines: ReadonlyMap<string, DeployedPipeline>;
  readonly jobQueues: readonly string[];
  readonly workerLogGroup: string;
  readonly functionLogGroups: Readonly<Record<string, string>>;
}

export interface DeployedPipeline extends PipelineOperate {
  readonly name: string;
  readonly stateMachineArn: string;
}

// In stack-outputs.ts, which the CLI loads at every start: this module loads the AWS SDK's clients, only for
// --stack / --stage.
import { AwsSetupError } from './stack-outputs.js';
import { awsHttpOptions } from '../runtime/aws-http.js';
export { AwsSetupError, stackNameOfStage } from './stack-outputs.js';

/** Reads the stack's outputs with DescribeStacks and parses the ones the CLI uses. */
export async function loadDeployedStack(
  client: CloudFormationClient,
  stackName: string,
): Promise<DeployedStack> {
  let out;
  try {
    out = await client.send(new DescribeStacksCommand({ StackName: stackName }));
  } catch (err) {
    const e = err as { name?: string; message?: string };
    if (e.name === 'ValidationError' && /does not exist/.test(e.message ?? '')) {
      throw new AwsSetupError(
        `Stack ${stackName} does not exist in this account and region; deploy it (npx cdk deploy) or pass --stack <name> / --stage <stage> and AWS_REGION`,
      );
    }
    throw err;
  }
  const stack = out.Stacks?.[0];
  if (!stack) throw new AwsSetupError(`DescribeStacks returned no stack named ${stackName}`);
  const outputs = new Map<string, string>();
  for (const o of stack.Outputs ?? [])
    if (o.OutputKey && o.OutputValue !== undefined) outputs.set(o.OutputKey, o.OutputValue);
  const need = (key: string): string => {
    const value = outputs.get(key);
    if (value === undefined) {
      throw new AwsSetupError(
        `Stack ${stackName} has no output ${key}: it was deployed by an older version; redeploy it (npx cdk deploy)`,
      );
    }
    return value;
  };
  const json = (key: string): unknown => {
    try {
      return JSON.parse(need(key));
    } catch {
      throw new AwsSetupError(`Stack ${stackName} output ${key} is not JSON; redeploy it (npx cdk deploy)`);
    }
  };
  const names = need(STACK_OUTPUT_KEYS.pipelineNames);
  const pipelines = new Map<string, DeployedPipeline>();
  for (const name of names === '-' ? [] : names.split(',')) {
    const keys = pipelineOperateOutputKeys(name);
    const parsed = pipelineOperateSchema.safeParse(json(keys.operate));
    if (!parsed.success) {
      throw new AwsSetupError(
        `Stack ${stackName} output ${keys.operate}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}; redeploy it`,
      );
    }
    pipelines.set(name, { name, stateMachineArn: need(keys.stateMachineArn), ...parsed.data });
  }
  const groups = functionLogGroupsSchema.safeParse(json(STACK_OUTPUT_KEYS.functionLogGroupNames));
  if (!groups.success)
    throw new AwsSetupError(
      `Stack ${stackName} output ${STACK_OUTPUT_KEYS.functionLogGroupNames} is not a map of names; redeploy it`,
    );
  const cpu = outputs.get(STACK_OUTPUT_KEYS.cpuJobQueueName);
  return {
    stackName,
    pipelines,
    jobQueues: [need(STACK_OUTPUT_KEYS.gpuJobQueueName), ...(cpu ? [cpu] : [])],
    workerLogGroup: need(STACK_OUTPUT_KEYS.workerLogGroupName),
    functionLogGroups: groups.data,
  };
}

/** Step Functions' status as the CLI reports it: ABORTED (StopExecution) is a cancelled run. */
export function runStatusOfExecution(status: string | undefined): RunStatus {
  switch (status) {
    case 'RUNNING':
      return 'RUNNING';
    case 'SUCCEEDED':
      return 'SUCCEEDED';
    case 'TIMED_OUT':
      return 'TIMED_OUT';
    case 'ABORTED':
      return 'CANCELLED';
    default:
      return 'FAILED'; // FAILED, PENDING_REDRIVE
  }
}

export interface PipelineSummary {
  readonly name: string;
  readonly stateMachineArn: string;
  readonly triggers: readonly string[];
  readonly inputPrefixes: readonly string[];
  readonly lastRun?: { readonly runId: string; readonly status: RunStatus; readonly startedAt: string };
}

export interface StartRequest {
  readonly pipeline: string;
  readonly input?: string;
  readonly manifest?: string;
  readonly runId: string;
}

/** Whether `uri` is under one of `prefixes` (s3:// prefixes ending in `/`, or exact object keys). */
function isUnder(uri: string, prefixes: readonly string[]): boolean {
  return prefixes.some(
    (p) => uri === p || uri.startsWith(p.endsWith('/') ? p : `${p}/`) || uri === p.replace(/\/$/, ''),
  );
}

export class AwsBackend implements OperateBackend {
  readonly kind = 'aws' as const;

  constructor(
    private readonly clients: AwsClients,
    readonly stack: DeployedStack,
    /** The clock for durations of running executions. */
    private readonly now: () => Date = () => new Date(),
  ) {}

  pipeline(name: string): DeployedPipeline {
    const p = this.stack.pipelines.get(name);
    if (!p) {
      throw new AwsSetupError(
        `No pipeline "${name}" in stack ${this.stack.stackName}; its pipelines: ${[...this.stack.pipelines.keys()].join(', ') || '(none)'}`,
      );
    }
    return p;
  }

  /** The pipelines, their triggers and prefixes, and each one's newest execution. */
  async pipelines(): Promise<PipelineSummary[]> {
    const out: PipelineSummary[] = [];
    for (const p of this.stack.pipelines.values()) {
      const page = await this.clients.sfn.send(
        new ListExecutionsCommand({ stateMachineArn: p.stateMachineArn, maxResults: 1 }),
      );
      const last = page.executions?.[0];
      out.push({
        name: p.name,
        stateMachineArn: p.stateMachineArn,
        triggers: p.triggers,
        inputPrefixes: p.inputPrefixes,
        ...(last?.name && last.startDate
          ? {
              lastRun: {
                runId: last.name,
                status: runStatusOfExecution(last.status),
                startedAt: last.startDate.toISOString(),
              },
            }
          : {}),
      });
    }
    return out;
  }

  /** StartExecution with the input a trigger sends (src/triggers/start-run.ts): the pipeline's spec, an input. */
  async start(request: StartRequest): Promise<{ runId: string; executionArn: string }> {
    const p = this.pipeline(request.pipeline);
    if (!RUN_ID_PATTERN.test(request.runId))
      throw new AwsSetupError(`--run-id "${request.runId}" ${RUN_ID_RULE}`);
    if (request.input !== undefined && request.manifest !== undefined)
      throw new AwsSetupError('Pass --input or --manifest, not both');
    const inputUri = request.input ?? request.manifest;
    if (inputUri !== undefined && !isUnder(inputUri, p.inputPrefixes)) {
      throw new AwsSetupError(
        `${inputUri} is outside the input prefixes pipeline ${p.name} may read: ${p.inputPrefixes.join(', ')}; ` +
          `widen them with input.uri (or a trigger's prefix) in the pipeline's file` +
          `${request.manifest !== undefined ? `, and the manifest's objects with ${MANIFEST_OBJECTS_KEY}` : ''}, then redeploy`,
      );
    }
    // A manifest names the objects to read: an S3 Inventory report (manifest.json) or a list of URIs.
    const spec =
      request.manifest === undefined
        ? p.spec
        : {
            ...p.spec,
            input: {
              ...(p.spec.input as Record<string, unknown>),
              manifest: request.manifest.endsWith('manifest.json') ? 's3-inventory' : 'list',
            },
          };
    const outcome = await startRun(this.clients.sfn, {
      stateMachineArn: p.stateMachineArn,
      name: request.runId,
      input: { spec, ...(inputUri !== undefined ? { inputUri } : {}) },
    });
    if (outcome.status === 'duplicate') {
      throw new AwsSetupError(
        `Run ${request.runId} exists already in pipeline ${p.name}; pick another --run-id, or follow it with: batch-infer watch ${request.runId}`,
      );
    }
    return { runId: request.runId, executionArn: outcome.executionArn };
  }

  /** The cost estimate `start` prints before it starts a run of the pipeline (src/cost/before-start.ts). */
  async estimate(request: Pick<StartRequest, 'pipeline' | 'input' | 'manifest'>): Promise<CostEstimate> {
    const p = this.pipeline(request.pipeline);
    const inputUri = request.input ?? request.manifest;
    return estimateBeforeStart({
      store: this.clients.store,
      spec: parseJobSpec(p.spec),
      ...(inputUri !== undefined && { inputUri }),
      outputUri: p.outputUri,
      local: false,
    });
  }

  /** The pipeline and execution of a run id: DescribeExecution on each pipeline's state machine. */
  private async findExecution(runId: string) {
    for (const p of this.stack.pipelines.values()) {
      try {
        const execution = await this.clients.sfn.send(
          new DescribeExecutionCommand({ executionArn: executionArnOf(p.stateMachineArn, runId) }),
        );
        return { pipeline: p, execution };
      } catch (err) {
        if ((err as { name?: string }).name === 'ExecutionDoesNotExist') continue;
        throw err;
      }
    }
    throw new UnknownRunError(
      `No run "${runId}" in stack ${this.stack.stackName}; list the runs with: batch-infer runs --stack ${this.stack.stackName}`,
    );
  }

  /** The run's Batch jobs on the stack's queues (`<runId>-r<round>`), every status, newest round last. */
  private async runJobs(runId: string, statuses?: readonly JobStatus[]) {
    const jobs: { jobId: string; jobName: string; status: string }[] = [];
    for (const jobQueue of this.stack.jobQueues) {
      let nextToken: string | undefined;
      do {
        const page = await this.clients.batch.send(
          new ListJobsCommand({
            jobQueue,
            filters: [{ name: 'JOB_NAME', values: [`${runId}-r*`] }],
            ...(nextToken ? { nextToken } : {}),
          }),
        );
        for (const j of page.jobSummaryList ?? []) {
          if (!j.jobId || !j.jobName || !j.jobName.startsWith(`${runId}-r`)) continue;
          if (statuses && !statuses.includes(j.status as JobStatus)) continue;
          jobs.push({ jobId: j.jobId, jobName: j.jobName, status: j.status ?? 'UNKNOWN' });
        }
        nextToken = page.nextToken;
      } while (nextToken);
    }
    const round = (name: string) => Number(/-r(\d+)$/.exec(name)?.[1] ?? 0);
    return jobs.sort((a, b) => round(a.jobName) - round(b.jobName));
  }

  async status(runId: string): Promise<RunStatusReport> {
    const { pipeline, execution } = await this.findExecution(runId);
    const status = runStatusOfExecution(execution.status);
    const startedAt = execution.startDate ?? this.now();
    const end = execution.stopDate ?? this.now();
    const progress = await (this.clients.readProgress ?? readRunProgress)(
      this.clients.store,
      pipeline.outputUri,
      runId,
    );
    const elapsedMs = progress.plannedAt ? end.getTime() - Date.parse(progress.plannedAt) : 0;
    const rate = rateAndEta(progress.recordsDone, progress.recordsPlanned, elapsedMs);
    // The current round's job: its array status summary says how many children are where.
    let batch: Record<string, number> | undefined;
    if (status === 'RUNNING') {
      const jobs = await this.runJobs(runId);
      const current = jobs.at(-1);
      if (current) {
        const described = await this.clients.batch.send(new DescribeJobsCommand({ jobs: [current.jobId] }));
        const summary = described.jobs?.[0]?.arrayProperties?.statusSummary;
        if (summary)
          batch = Object.fromEntries(Object.entries(summary).filter(([, n]) => typeof n === 'number'));
      }
    }
    return {
      backend: 'aws',
      runId,
      pipeline: pipeline.name,
      status,
      startedAt: startedAt.toISOString(),
      ...(execution.stopDate ? { finishedAt: execution.stopDate.toISOString() } : {}),
      durationMs: Math.max(0, end.getTime() - startedAt.getTime()),
      ...(execution.error ? { error: execution.error } : {}),
      ...(execution.cause ? { cause: execution.cause } : {}),
      progress,
      recordsPerSecond: rate.recordsPerSecond,
      ...(status === 'RUNNING' && rate.etaSeconds !== undefined ? { etaSeconds: rate.etaSeconds } : {}),
      ...(batch ? { batch } : {}),
      outputUri: runUriOf(pipeline.outputUri, runId),
    };
  }

  /** ListExecutions of each pipeline (every page up to the limit), newest first. */
  async runs(filter: RunFilter): Promise<RunList> {
    const limit = filter.limit ?? 20;
    const pipelines = filter.pipeline ? [this.pipeline(filter.pipeline)] : [...this.stack.pipelines.values()];
    const statusFilter = filter.status === 'CANCELLED' ? 'ABORTED' : filter.status;
    const runs: RunListEntry[] = [];
    for (const p of pipelines) {
      let nextToken: string | undefined;
      let taken = 0;
      do {
        const page = await this.clients.sfn.send(
          new ListExecutionsCommand({
            stateMachineArn: p.stateMachineArn,
            maxResults: Math.min(1000, limit),
            ...(statusFilter ? { statusFilter: statusFilter as ExecutionStatus } : {}),
            ...(nextToken ? { nextToken } : {}),
          }),
        );
        nextToken = page.nextToken;
        for (const e of page.executions ?? []) {
          if (!e.name || !e.startDate) continue;
          // Executions come newest first: the first one before --since ends this pipeline's list.
          if (filter.since && e.startDate < filter.since) {
            nextToken = undefined;
            break;
          }
          runs.push({
            runId: e.name,
            pipeline: p.name,
            status: runStatusOfExecution(e.status),
            startedAt: e.startDate.toISOString(),
            ...(e.stopDate
              ? {
                  finishedAt: e.stopDate.toISOString(),
                  durationMs: e.stopDate.getTime() - e.startDate.getTime(),
                }
              : {}),
          });
          if (e.stopDate) {
            Object.assign(
              runs[runs.length - 1]!,
              await costFieldsOf(this.clients.store, `${runUriOf(p.outputUri, e.name)}manifest.json`),
            );
          }
          if (++taken >= limit) {
            nextToken = undefined;
            break;
          }
        }
      } while (nextToken);
    }
    runs.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
    return { backend: 'aws', runs: runs.slice(0, limit) };
  }

  /** StopExecution, then TerminateJob on each of the run's jobs that has not ended. */
  async cancel(runId: string): Promise<CancelResult> {
    const { execution } = await this.findExecution(runId);
    if (execution.status !== 'RUNNING') {
      return { runId, status: runStatusOfExecution(execution.status), cancelled: false };
    }
    await this.clients.sfn.send(
      new StopExecutionCommand({
        executionArn: execution.executionArn,
        error: 'Cancelled',
        cause: 'batch-infer cancel',
      }),
    );
    const live: JobStatus[] = ['SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING'];
    const terminated: string[] = [];
    for (const job of await this.runJobs(runId, live)) {
      await this.clients.batch.send(
        new TerminateJobCommand({ jobId: job.jobId, reason: `batch-infer cancel ${runId}` }),
      );
      terminated.push(job.jobId);
    }
    return { runId, status: 'CANCELLED', cancelled: true, terminatedJobs: terminated };
  }

  /**
   * FilterLogEvents on the worker log group (streams of the run's jobs carry no run id, so the filter is the run id,
   * which every worker line logs) and on the function log groups; `--shard N` keeps worker lines of that shard.
   * The cursor is the newest timestamp returned, for --follow.
   */
  async logs(runId: string, query: LogQuery): Promise<{ lines: LogLine[]; cursor: string }> {
    await this.findExecution(runId);
    const startTime = query.cursor ? Number(query.cursor) + 1 : undefined;
    const groups: [string, string][] = [
      ['worker', this.stack.workerLogGroup],
      ...(query.shard === undefined ? Object.entries(this.stack.functionLogGroups) : []),
    ];
    const lines: (LogLine & { ts: number })[] = [];
    for (const [source, logGroupName] of groups) {
      // Worker and function lines are JSON with a runId field (src/runtime/log.ts, Powertools' appendKeys).
      const filterPattern =
        query.shard !== undefined
          ? `{ $.runId = "${runId}" && $.shardId = ${query.shard} }`
          : `{ $.runId = "${runId}" }`;
      let nextToken: string | undefined;
      do {
        const page = await this.clients.logs.send(
          new FilterLogEventsCommand({
            logGroupName,
            filterPattern,
            ...(startTime !== undefined ? { startTime } : {}),
            ...(nextToken ? { nextToken } : {}),
          }),
        );
        for (const e of page.events ?? []) {
          if (e.message === undefined) continue;
          const ts = e.timestamp ?? 0;
          const fields = logFieldsOf(e.message);
          lines.push({
            source,
            ...(fields.shardId !== undefined ? { shard: fields.shardId } : {}),
            ...(fields.attempt !== undefined ? { attempt: fields.attempt } : {}),
            stream: `${logGroupName}/${e.logStreamName ?? ''}`,
            message: e.message.replace(/\n$/, ''),
            ...(e.timestamp !== undefined ? { timestamp: new Date(ts).toISOString() } : {}),
            ts,
          });
        }
        nextToken = page.nextToken;
      } while (nextToken);
    }
    lines.sort((a, b) => a.ts - b.ts);
    const newest = lines.reduce((m, l) => Math.max(m, l.ts), Number(query.cursor ?? 0));
    return { lines: lines.map(({ ts: _ts, ...line }) => line), cursor: String(newest) };
  }
}

const logFieldsSchema = z.object({
  shardId: z.number().int().nonnegative().optional().catch(undefined),
  attempt: z.number().int().positive().optional().catch(undefined),
});

/** The shard and attempt of a JSON log line; nothing for other lines. */
function logFieldsOf(message: string): z.infer<typeof logFieldsSchema> {
  try {
    const parsed = logFieldsSchema.safeParse(JSON.parse(message));
    return parsed.success ? parsed.data : {};
  } catch {
    return {};
  }
}

/** The backend for a stack, with clients from the SDK's default provider chain (env, ~/.aws/config, profile). */
export async function awsBackendFor(stackName: string, store: ObjectStore): Promise<AwsBackend> {
  const cloudFormation = new CloudFormationClient(awsHttpOptions());
  const region = await cloudFormation.config.region().catch(() => undefined);
  if (!region) {
    throw new AwsSetupError('No AWS region: set AWS_REGION (or a region in ~/.aws/config for AWS_PROFILE)');
  }
  let stack;
  try {
    stack = await loadDeployedStack(cloudFormation, stackName);
  } catch (err) {
    if ((err as { name?: string }).name === 'CredentialsProviderError') {
      throw new AwsSetupError(
        'No AWS credentials: set AWS_PROFILE (aws configure / aws sso login) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY',
      );
    }
    throw err;
  }
  return new AwsBackend(
    {
      cloudFormation,
      sfn: new SFNClient(awsHttpOptions()),
      batch: new BatchClient(awsHttpOptions()),
      logs: new CloudWatchLogsClient(awsHttpOptions()),
      store,
    },
    stack,
  );
}
