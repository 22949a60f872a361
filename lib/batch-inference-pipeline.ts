/**
 * The product as a construct, for other CDK apps: `new BatchInferencePipeline(this, 'Scores', { spec, triggers })`
 * adds one pipeline with everything it runs on (data lake, network, compute, task functions, workflow, triggers,
 * model registry access, monitoring) to any stack. It is the same composition as BatchInferenceStack
 * (addBatchInference), validated the same way: the spec and its triggers as a pipeline file is (lib/pipelines.ts),
 * the settings as the deploy configuration is (lib/config.ts).
 */
import { Construct } from 'constructs';
import type { z } from 'zod';
import { addBatchInference, type BatchInferenceResources } from './batch-inference-stack.js';
import type { deployConfigSchema } from './config.js';
import { parseDeployConfig, type DeployConfig } from './config.js';
import type { InferenceWorkflow } from './constructs/inference-workflow.js';
import { acknowledgeFindings } from './nag.js';
import { MANIFEST_OBJECTS_KEY, parsePipelineText, type Pipeline } from './pipelines.js';
import type { JobSpecInput } from '../src/spec/schema.js';
import type { s3TriggerSchema, scheduleTriggerSchema, volumeTriggerSchema } from '../src/spec/triggers.js';

/** A trigger as a pipeline file writes it: exactly one key, its kind (see src/spec/triggers.ts). */
export type PipelineTriggerInput =
  | { readonly s3: z.input<typeof s3TriggerSchema> }
  | { readonly schedule: z.input<typeof scheduleTriggerSchema> }
  | { readonly volume: z.input<typeof volumeTriggerSchema> };

/** The deploy configuration as written (defaults optional); see lib/config.ts. */
export type DeployConfigInput = z.input<typeof deployConfigSchema>;

/** The settings of the compute environments (AWS Batch). */
export type ComputeSettings = Pick<
  DeployConfigInput,
  | 'gpuInstanceTypes'
  | 'maxvCpus'
  | 'spot'
  | 'workerCpu'
  | 'workerMemoryMiB'
  | 'cpuInstanceTypes'
  | 'cpuMaxvCpus'
  | 'cpuWorkerCpu'
  | 'cpuWorkerMemoryMiB'
  | 'attemptTimeoutMinutes'
  | 'runnableTimeoutMinutes'
>;

export interface BatchInferencePipelineProps {
  /**
   * The job spec every run of the pipeline receives (schemas/job-spec.schema.json), with s3:// locations;
   * `s3://${dataBucket}/...` is the data bucket this construct creates.
   */
  readonly spec: JobSpecInput;

  /**
   * How runs start: S3 arrivals, a schedule, a volume of new data.
   *
   * @default - no triggers: runs are started with the CLI or Step Functions' StartExecution
   */
  readonly triggers?: readonly PipelineTriggerInput[];

  /**
   * Where the objects named by a manifest input live (s3:// prefixes ending in `/`).
   *
   * @default - none (required when the spec's input is a manifest naming objects outside the data bucket)
   */
  readonly manifestObjects?: readonly string[];

  /**
   * The compute environments' settings.
   *
   * @default - the deploy configuration's defaults (lib/config.ts)
   */
  readonly compute?: ComputeSettings;

  /**
   * The rest of the deploy configuration: stage, VPC, removal policy, alarm e-mail, model registry access...
   * (`pipelinesDir` does not apply: the pipeline is `spec`).
   *
   * @default - the deploy configuration's defaults (lib/config.ts)
   */
  readonly config?: Omit<DeployConfigInput, keyof ComputeSettings | 'pipelinesDir'>;
}

/**
 * The pipeline's resource fields are those of {@link BatchInferenceResources}, merged into the class's type and
 * assigned from `addBatchInference` in the constructor.
 */
// The members are BatchInferenceResources' (hence empty), and the constructor assigns every one (Object.assign).
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface BatchInferencePipeline extends BatchInferenceResources {}

/** One batch inference pipeline and everything it runs on, in any stack. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- see the interface above
export class BatchInferencePipeline extends Construct {
  /** The validated pipeline (defaults applied). */
  readonly pipeline: Pipeline;
  /** The validated deploy configuration. */
  readonly config: DeployConfig;
  /** The pipeline's workflow (its state machine). */
  readonly workflow: InferenceWorkflow;

  constructor(scope: Construct, id: string, props: BatchInferencePipelineProps) {
    super(scope, id);
    const where = `BatchInferencePipeline ${this.node.path}`;
    this.config = parseDeployConfig({ ...props.config, ...props.compute }, where);
    // Validated exactly as a pipeline file is, so every problem is reported with its field and fix.
    const file = {
      ...props.spec,
      ...(props.triggers ? { triggers: props.triggers } : {}),
      ...(props.manifestObjects ? { [MANIFEST_OBJECTS_KEY]: props.manifestObjects } : {}),
    };
    this.pipeline = parsePipelineText(JSON.stringify(file), where);
    Object.assign(this, addBatchInference(this, { config: this.config, pipelines: [this.pipeline] }));
    this.workflow = this.workflows.get(this.pipeline.name)!;
    acknowledgeFindings(this, this);
  }
}
