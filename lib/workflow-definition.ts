/**
 * The state machine definition as plain ASL, for the local orchestrator: it runs exactly what would be deployed,
 * because it is synthesized from the same `InferenceWorkflow` construct. Functions, queues and the job definition
 * are imported by fixed placeholder ARNs (the local orchestrator replaces every task with a local handler by state
 * name), so the definition does not depend on any deployed resource.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { InferenceWorkflow } from './constructs/inference-workflow.js';

/** The values of the pseudo parameters and imported resources of the rendered definition. */
export const PLACEHOLDERS = {
  partition: 'aws',
  region: 'us-east-1',
  account: '123456789012',
  urlSuffix: 'amazonaws.com',
  planFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:batch-infer-plan',
  reconcileFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:batch-infer-reconcile',
  finalizeFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:batch-infer-finalize',
  gpuJobQueueArn: 'arn:aws:batch:us-east-1:123456789012:job-queue/batch-infer-gpu',
  cpuJobQueueArn: 'arn:aws:batch:us-east-1:123456789012:job-queue/batch-infer-cpu',
  gpuOnDemandJobQueueArn: 'arn:aws:batch:us-east-1:123456789012:job-queue/batch-infer-gpu-ondemand',
  cpuOnDemandJobQueueArn: 'arn:aws:batch:us-east-1:123456789012:job-queue/batch-infer-cpu-ondemand',
  jobDefinitionArn: 'arn:aws:batch:us-east-1:123456789012:job-definition/batch-infer-worker:1',
  cpuJobDefinitionArn: 'arn:aws:batch:us-east-1:123456789012:job-definition/batch-infer-cpu-worker:1',
} as const;

const PSEUDO_PARAMETERS: Readonly<Record<string, string>> = {
  'AWS::Partition': PLACEHOLDERS.partition,
  'AWS::Region': PLACEHOLDERS.region,
  'AWS::AccountId': PLACEHOLDERS.account,
  'AWS::URLSuffix': PLACEHOLDERS.urlSuffix,
};

/** How `Ref` and `Fn::GetAtt` of a template's own resources resolve; pseudo parameters are always known. */
export interface CfnResolveOptions {
  /** `{ Ref: logicalId }` -> value; throw (or return undefined) for an unknown resource. */
  readonly ref?: (logicalId: string) => string | undefined;
  /** `{ "Fn::GetAtt": [logicalId, attribute] }` -> value. */
  readonly getAtt?: (logicalId: string, attribute: string) => string | undefined;
}

/**
 * Resolves a CloudFormation string expression: a literal, `Fn::Join`, `Ref` (pseudo parameters, and resources
 * through `options.ref`) and `Fn::GetAtt` (through `options.getAtt`). Anything else throws, naming the construct
 * it met, so a definition that starts depending on a deploy-time value cannot be rendered silently wrong.
 */
export function resolveCfnString(value: unknown, options: CfnResolveOptions = {}): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`Cannot resolve ${JSON.stringify(value)}: expected a string or an intrinsic function`);
  }
  const entries = Object.entries(value as Record<string, unknown>);
  const [entry] = entries;
  if (entries.length !== 1 || !entry) {
    throw new Error(`Cannot resolve ${JSON.stringify(value)}: an intrinsic function has exactly one key`);
  }
  const [fn, args] = entry;
  switch (fn) {
    case 'Fn::Join': {
      if (
        !Array.isArray(args) ||
        args.length !== 2 ||
        typeof args[0] !== 'string' ||
        !Array.isArray(args[1])
      ) {
        throw new Error(`Cannot resolve ${JSON.stringify(value)}: Fn::Join takes [separator, [values...]]`);
      }
      const separator = args[0];
      const parts: readonly unknown[] = args[1];
      return parts.map((part) => resolveCfnString(part, options)).join(separator);
    }
    case 'Ref': {
      if (typeof args !== 'string')
        throw new Error(`Cannot resolve ${JSON.stringify(value)}: Ref takes a name`);
      const resolved = PSEUDO_PARAMETERS[args] ?? options.ref?.(args);
      if (resolved === undefined)
        throw new Error(`Cannot resolve { Ref: ${args} }: unknown parameter or resource`);
      return resolved;
    }
    case 'Fn::GetAtt': {
      const [logicalId, attribute]: readonly unknown[] = Array.isArray(args)
        ? (args as readonly unknown[])
        : typeof args === 'string'
          ? args.split('.', 2)
          : [];
      if (typeof logicalId !== 'string' || typeof attribute !== 'string') {
        throw new Error(`Cannot resolve ${JSON.stringify(value)}: Fn::GetAtt takes [logicalId, attribute]`);
      }
      const resolved = options.getAtt?.(logicalId, attribute);
      if (resolved === undefined) {
        throw new Error(`Cannot resolve { Fn::GetAtt: [${logicalId}, ${attribute}] }: unknown resource`);
      }
      return resolved;
    }
    default:
      throw new Error(`Cannot resolve ${JSON.stringify(value)}: unsupported intrinsic function ${fn}`);
  }
}

/** The shape of a synthesized template that this module reads. */
interface TemplateResources {
  readonly Resources?: Readonly<Record<string, { readonly Type?: string; readonly Properties?: unknown }>>;
}

/**
 * The ASL of the one `AWS::StepFunctions::StateMachine` of a synthesized template, with its `DefinitionString`
 * resolved by `resolveCfnString`. Throws unless the template holds exactly one state machine.
 */
export function definitionFromTemplate(
  template: unknown,
  options: CfnResolveOptions = {},
): Record<string, unknown> {
  const definitions = Object.values(definitionsFromTemplate(template, options));
  const [definition] = definitions;
  if (definitions.length !== 1 || !definition) {
    throw new Error(
      `Expected one AWS::StepFunctions::StateMachine in the template, found ${definitions.length}`,
    );
  }
  return definition;
}

/** The ASL of every `AWS::StepFunctions::StateMachine` of a synthesized template, by logical id. */
export function definitionsFromTemplate(
  template: unknown,
  options: CfnResolveOptions = {},
): Record<string, Record<string, unknown>> {
  const resources = Object.entries((template as TemplateResources).Resources ?? {});
  const definitions: Record<string, Record<string, unknown>> = {};
  for (const [logicalId, resource] of resources) {
    if (resource.Type !== 'AWS::StepFunctions::StateMachine') continue;
    const properties = (resource.Properties ?? {}) as { readonly DefinitionString?: unknown };
    const parsed: unknown = JSON.parse(resolveCfnString(properties.DefinitionString, options));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error(`The definition of state machine ${logicalId} is not a JSON object`);
    }
    definitions[logicalId] = parsed as Record<string, unknown>;
  }
  return definitions;
}

/**
 * Synthesizes the workflow in a throwaway app and returns its ASL. Nothing is bundled (the context
 * `aws:cdk:bundling-stacks` is `[]`, and the stack has no function of its own anyway), and the cloud assembly is
 * written to a temporary folder that is removed afterwards.
 */
export function renderWorkflowDefinition(): Record<string, unknown> {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-asl-'));
  try {
    const app = new App({
      outdir,
      context: { 'aws:cdk:bundling-stacks': [] },
      // Only the template is read: skip what synthesis spends time on for deployments. The built-in CloudFormation
      // validation alone (a WASM engine) costs seconds; the deployed app still runs it on the same definition.
      builtinCloudFormationValidation: false,
      stackTraces: false,
      treeMetadata: false,
      analyticsReporting: false,
      performanceReporting: false,
      autoSynth: false,
    });
    const stack = new Stack(app, 'BatchInferWorkflowDefinition', {
      env: { account: PLACEHOLDERS.account, region: PLACEHOLDERS.region },
    });
    new InferenceWorkflow(stack, 'Workflow', {
      planFunction: lambda.Function.fromFunctionArn(stack, 'Plan', PLACEHOLDERS.planFunctionArn),
      reconcileFunction: lambda.Function.fromFunctionArn(
        stack,
        'Reconcile',
        PLACEHOLDERS.reconcileFunctionArn,
      ),
      finalizeFunction: lambda.Function.fromFunctionArn(stack, 'Finalize', PLACEHOLDERS.finalizeFunctionArn),
      gpuJobQueue: batch.JobQueue.fromJobQueueArn(stack, 'GpuQueue', PLACEHOLDERS.gpuJobQueueArn),
      // The deployed stack always has a CPU queue (pipelines with run.compute: cpu), so the local definition has
      // the CPU states too, and a local run of a cpu spec takes the same path as in AWS.
      cpuJobQueue: batch.JobQueue.fromJobQueueArn(stack, 'CpuQueue', PLACEHOLDERS.cpuJobQueueArn),
      // Likewise the On-Demand queues of retry rounds (with spot off, the deployed stack passes its one queue per kind
      // as both, so its definition has these states too).
      gpuOnDemandJobQueue: batch.JobQueue.fromJobQueueArn(
        stack,
        'GpuOnDemandQueue',
        PLACEHOLDERS.gpuOnDemandJobQueueArn,
      ),
      cpuOnDemandJobQueue: batch.JobQueue.fromJobQueueArn(
        stack,
        'CpuOnDemandQueue',
        PLACEHOLDERS.cpuOnDemandJobQueueArn,
      ),
      jobDefinition: batch.EcsJobDefinition.fromJobDefinitionArn(
        stack,
        'JobDefinition',
        PLACEHOLDERS.jobDefinitionArn,
      ),
      cpuJobDefinition: batch.EcsJobDefinition.fromJobDefinitionArn(
        stack,
        'CpuJobDefinition',
        PLACEHOLDERS.cpuJobDefinitionArn,
      ),
    });
    const template = app.synth().getStackArtifact(stack.artifactId).template as unknown;
    // Imported resources are literal ARNs: any Ref/GetAtt left in the definition is a bug, so none are resolvable.
    return definitionFromTemplate(template);
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

/** The value that replaces resource-specific strings in `normalizeDefinitionArns`. */
const placeholderFor = (key: string): string => `<${key}>`;

/** Parameters whose value names a deployed resource (an ARN, a name, or a reference to one). */
const RESOURCE_PARAMETERS = new Set(['FunctionName', 'JobQueue', 'JobDefinition']);

/**
 * `arn:partition:service:region:account:resource` with the partition, region, account and the resource's name
 * replaced; the service and resource type are kept, so a changed integration (`batch:submitJob.sync` ->
 * `batch:submitJob`) is still a difference.
 */
function normalizeArn(arn: string): string {
  const parts = arn.split(':');
  if (parts.length < 6) return arn;
  const [, partition, service, region, account, ...rest] = parts;
  const resource = rest.join(':');
  // Service integrations (`arn:aws:states:::lambda:invoke`) have no region, account or resource name.
  const isIntegration = service === 'states' && region === '' && account === '';
  const normalizedResource = isIntegration ? resource : resource.replace(/^([a-z-]+)([/:]).*$/, '$1$2<name>');
  return [
    'arn',
    partition ? '<partition>' : '',
    service,
    region ? '<region>' : '',
    account ? '<account>' : '',
    normalizedResource,
  ].join(':');
}

/**
 * A copy of a definition with every resource-specific value replaced by a placeholder: the Lambda FunctionName,
 * Batch JobQueue and JobDefinition parameters, and the partition, region, account and resource name of any ARN.
 * Two definitions that are equal after this differ only in which deployed resources they call.
 */
export function normalizeDefinitionArns<T>(definition: T): T {
  const walk = (value: unknown, key: string | undefined): unknown => {
    if (key !== undefined && RESOURCE_PARAMETERS.has(key) && typeof value === 'string')
      return placeholderFor(key);
    if (typeof value === 'string') return value.startsWith('arn:') ? normalizeArn(value) : value;
    if (Array.isArray(value)) return value.map((item) => walk(item, undefined));
    if (typeof value === 'object' && value !== null) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, k)]));
    }
    return value;
  };
  return walk(definition, undefined) as T;
}
