/**
 * The package's entry point for CDK apps (`import { BatchInferencePipeline } from 'batch-infer'`): the pipeline
 * construct, the whole product as a stack, and the constructs they are made of, for those who compose their own.
 */
export {
  BatchInferencePipeline,
  type BatchInferencePipelineProps,
  type ComputeSettings,
  type DeployConfigInput,
  type PipelineTriggerInput,
} from './batch-inference-pipeline.js';
export {
  addBatchInference,
  BatchInferenceStack,
  GLUE_PUBLISH_ACTIONS,
  type BatchInferenceProps,
  type BatchInferenceResources,
  type BatchInferenceStackProps,
  type PipelineGrant,
} from './batch-inference-stack.js';
export { addDeployment, type DeploymentOptions } from './deployment.js';
export {
  deployConfigSchema,
  loadDeployConfig,
  loadDeployConfigFile,
  parseDeployConfig,
  stackName,
  type DeployConfig,
} from './config.js';
export { loadPipelines, parsePipelineText, PipelineError, type Pipeline } from './pipelines.js';
export { addNagChecks } from './nag.js';
export { DataLake, type DataLakeProps, type PipelineTablesProps } from './constructs/data-lake.js';
export { GpuCompute, type CpuComputeProps, type GpuComputeProps } from './constructs/gpu-compute.js';
export { InferenceWorkflow, type InferenceWorkflowProps } from './constructs/inference-workflow.js';
export { ModelRegistryAccess, type ModelRegistryAccessProps } from './constructs/model-registry-access.js';
export { Monitoring, type MonitoringProps } from './constructs/monitoring.js';
export { Network, type NetworkProps } from './constructs/network.js';
export { NodeFunction, type NodeFunctionProps } from './constructs/node-function.js';
export {
  PipelineTriggers,
  type PipelineTriggersProps,
  type S3BatchTarget,
} from './constructs/pipeline-triggers.js';
export type { JobSpec, JobSpecInput } from '../src/spec/schema.js';
