/**
 * The stack outputs the CLI's AWS backend reads (ADR 0010): their keys and the shapes of their values, in one module
 * that both the stack (lib/batch-inference-stack.ts, at synth) and the CLI (./aws-backend.ts, at DescribeStacks)
 * import, so the two cannot drift. Outputs are not exported: no cross-stack name to clash, no 1024-character limit.
 */
import { z } from 'zod';
import { pascalCase, pipelineOutputKeys } from '../../lib/pipelines.js';

/** A stack, a pipeline or an output the CLI cannot do without: one line saying what to do. */
export class AwsSetupError extends Error {
  override readonly name = 'AwsSetupError';
}

/** The stack name of a stage: `batch-infer-<stage>` (bin/app.ts names the stack so). */
export function stackNameOfStage(stage: string): string {
  return `batch-infer-${stage}`;
}

/** Stack-wide outputs the CLI reads. */
export const STACK_OUTPUT_KEYS = {
  /** The pipelines, comma-separated (`-` when there are none). */
  pipelineNames: 'PipelineNames',
  gpuJobQueueName: 'GpuJobQueueName',
  /** Present when the stack has a CPU queue. */
  cpuJobQueueName: 'CpuJobQueueName',
  /** The Batch workers' log group (one stream per job attempt). */
  workerLogGroupName: 'WorkerLogGroupName',
  /** JSON: the task and trigger functions' log groups, by function (see functionLogGroupsSchema). */
  functionLogGroupNames: 'FunctionLogGroupNames',
} as const;

/** The per-pipeline outputs the CLI reads. */
export function pipelineOperateOutputKeys(name: string): {
  readonly stateMachineArn: string;
  /** JSON: see pipelineOperateSchema. */
  readonly operate: string;
} {
  return {
    stateMachineArn: pipelineOutputKeys(name).stateMachineArn,
    operate: `Pipeline${pascalCase(name)}Operate`,
  };
}

export const functionLogGroupsSchema = z.record(z.string(), z.string().min(1));

/** What the CLI needs to start, list and find the files of a pipeline's runs (the `Pipeline<Name>Operate` output). */
export const pipelineOperateSchema = z.strictObject({
  /** The spec every run of the pipeline starts with (the execution input's `spec`, as the triggers send it). */
  spec: z.record(z.string(), z.unknown()),
  /** `output.uri`: the runs' files are under `<outputUri>/_runs/<runId>/`. */
  outputUri: z.string().min(1),
  /** The s3:// prefixes the pipeline's runs may read input from (its input.uri and its triggers' prefixes). */
  inputPrefixes: z.array(z.string().min(1)),
  /** The s3:// prefixes a manifest input's objects may live under (`manifestObjects`). */
  manifestObjects: z.array(z.string()),
  /** One line per trigger, e.g. `schedule cron(0 6 * * ? *) Europe/Paris`, `s3 s3://bucket/incoming/`. */
  triggers: z.array(z.string()),
});
export type PipelineOperate = z.infer<typeof pipelineOperateSchema>;
