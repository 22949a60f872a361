/**
 * The deployed product, one construct per box: the data lake, the network, the compute, the three task functions
 * shared by every pipeline, one state machine per pipeline, the pipelines' triggers, model registry access and
 * monitoring. Configured by a validated DeployConfig (lib/config.ts) and the validated pipelines of the deployment
 * (lib/pipelines.ts).
 */
import { CfnOutput, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { RUN_RECORD_COLUMNS } from '../lambdas/finalize/run-record-columns.js';
import type { DeployConfig } from './config.js';
import { DATA_BUCKET_PLACEHOLDER, DATA_PREFIXES, glueDatabaseName } from './config.js';
import { DataLake } from './constructs/data-lake.js';
import { GpuCompute } from './constructs/gpu-compute.js';
import { InferenceWorkflow } from './constructs/inference-workflow.js';
import { ModelRegistryAccess } from './constructs/model-registry-access.js';
import { Monitoring } from './constructs/monitoring.js';
import { Network } from './constructs/network.js';
import { NodeFunction } from './constructs/node-function.js';
import { PipelineTriggers, type TriggerTarget } from './constructs/pipeline-triggers.js';
import { acknowledgeFindings } from './nag.js';
import {
  DATA_BUCKET_STANDIN,
  declaredPrefix,
  isDataBucket,
  modelPackageGroupsOf,
  pascalCase,
  pipelineOutputKeys,
  s3Location,
  triggerKeyPrefix,
  withDataBucketStandin,
  type Pipeline,
} from './pipelines.js';
import { denyS3Writes, grantS3, type S3Location } from './s3-access.js';
import { FUNCTION_ENV } from './workflow-contract.js';
import { CODE_VERSION_ENV, resolveCodeVersion, WORKER_IMAGE_ENV } from '../src/results/code-version.js';
import { scheduleExpression } from '../src/spec/triggers.js';

/** What the product is made of: a validated configuration and the pipelines it runs. */
export interface BatchInferenceProps {
  /** Validated deploy configuration (see lib/config.ts). */
  readonly config: DeployConfig;
  /** Validated pipelines of the deployment (see lib/pipelines.ts). */
  readonly pipelines: readonly Pipeline[];
}

export interface BatchInferenceStackProps extends StackProps, BatchInferenceProps {}

/**
 * Glue actions Finalize needs to publish a run, as src/catalog/glue.ts calls them: read, create or update the job's
 * table, add the run's partition. Listed one by one: no `glue:*`.
 */
export const GLUE_PUBLISH_ACTIONS = [
  'glue:GetTable',
  'glue:CreateTable',
  'glue:UpdateTable',
  'glue:BatchCreatePartition',
];

/** A grant on a pipeline's prefix in a bucket outside the stack. */
export interface PipelineGrant {
  readonly pipeline: string;
  readonly what: 'input' | 'output' | 'manifest objects';
  readonly role: iam.IRole;
  readonly location: S3Location;
}

export interface BatchInferenceResources {
  readonly dataLake: DataLake;
  readonly network: Network;
  readonly gpuCompute: GpuCompute;
  readonly planFunction: NodeFunction;
  readonly reconcileFunction: NodeFunction;
  readonly finalizeFunction: NodeFunction;
  /** One workflow per pipeline, by pipeline name. */
  readonly workflows: ReadonlyMap<string, InferenceWorkflow>;
  readonly modelRegistryAccess: ModelRegistryAccess;
  readonly triggers: PipelineTriggers;
  readonly monitoring: Monitoring;
  /** Where model artifacts may be read from. */
  readonly modelArtifactLocations: readonly S3Location[];
  /** Grants on buckets outside the stack that pipelines read or write. */
  readonly pipelineGrants: readonly PipelineGrant[];
}

/**
 * Adds the product's resources (see the module comment) to `scope`: a stack (BatchInferenceStack) or any construct
 * (BatchInferencePipeline). Construct ids are the same in both, relative to `scope`.
 */
export function addBatchInference(scope: Construct, props: BatchInferenceProps): BatchInferenceResources {
  const out = {} as { -readonly [K in keyof BatchInferenceResources]: BatchInferenceResources[K] };
  const { config, pipelines } = props;
  const removalPolicy = config.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
  const logRetention = config.logRetentionDays as logs.RetentionDays;

  // --- Data lake ------------------------------------------------------------------------------------------------
  out.dataLake = new DataLake(scope, 'DataLake', {
    databaseName: glueDatabaseName(config),
    removalPolicy,
    tempDataExpiration: Duration.days(config.tempDataExpirationDays),
    tempPrefix: DATA_PREFIXES.temp,
    ...(config.dataBucketName
      ? { bucket: s3.Bucket.fromBucketName(scope, 'ImportedDataBucket', config.dataBucketName) }
      : {}),
  });
  const dataBucket = out.dataLake.bucket;
  const otherBuckets = new Map<string, s3.IBucket>();
  /** The bucket of a pipeline location: the data bucket (`${dataBucket}`) or another, imported by name. */
  const bucketNamed = (name: string): s3.IBucket => {
    if (isDataBucket(name)) return dataBucket;
    let bucket = otherBuckets.get(name);
    if (!bucket) {
      bucket = s3.Bucket.fromBucketName(scope, `Bucket-${name}`, name);
      otherBuckets.set(name, bucket);
    }
    return bucket;
  };
  /** A string of a pipeline with the data bucket's real name (a token) in place of the stand-in. */
  const resolve = (text: string): string => text.split(DATA_BUCKET_STANDIN).join(dataBucket.bucketName);
  const locationOf = (uri: string): S3Location => {
    const { bucket, key } = s3Location(uri);
    return { bucket: bucketNamed(bucket), keyPrefix: key };
  };

  // --- Network and compute ----------------------------------------------------------------------------------------
  const imported = config.vpc.import;
  if (imported) {
    const vpc = ec2.Vpc.fromVpcAttributes(scope, 'ImportedVpc', {
      vpcId: imported.vpcId,
      vpcCidrBlock: imported.cidr,
      availabilityZones: imported.availabilityZones,
      privateSubnetIds: imported.subnetIds,
      privateSubnetRouteTableIds: imported.routeTableIds,
    });
    out.network = new Network(scope, 'Network', {
      vpc,
      subnets: { subnets: vpc.privateSubnets },
      createEndpoints: imported.endpoints,
    });
  } else {
    out.network = new Network(scope, 'Network', {
      maxAzs: config.vpc.create?.maxAzs,
      cidr: config.vpc.create?.cidr,
      flowLogRetention: logRetention,
      removalPolicy,
    });
  }

  out.gpuCompute = new GpuCompute(scope, 'GpuCompute', {
    vpc: out.network.vpc,
    subnets: out.network.workerSubnets,
    instanceTypes: config.gpuInstanceTypes,
    maxvCpus: config.maxvCpus,
    spot: config.spot,
    workerCpu: config.workerCpu,
    workerMemoryMiB: config.workerMemoryMiB,
    attemptTimeout: Duration.minutes(config.attemptTimeoutMinutes),
    runnableTimeout: Duration.minutes(config.runnableTimeoutMinutes),
    cpu: {
      instanceTypes: config.cpuInstanceTypes,
      maxvCpus: config.cpuMaxvCpus,
      workerCpu: config.cpuWorkerCpu,
      workerMemoryMiB: config.cpuWorkerMemoryMiB,
    },
    queueNamePrefix: `batch-infer-${config.stage}`,
    logRetention,
    logRemovalPolicy: removalPolicy,
  });
  const { jobRole } = out.gpuCompute;

  // --- Task functions (shared by every pipeline's state machine) -------------------------------------------------
  const fnDefaults = { logRetention, logRemovalPolicy: removalPolicy };
  out.planFunction = new NodeFunction(scope, 'PlanFunction', {
    entry: 'lambdas/plan/handler.ts',
    description: 'Plans a batch inference run: resolves the model, lists the input, writes the shards',
    memorySize: 1024,
    timeout: Duration.minutes(5),
    ...fnDefaults,
  });
  out.reconcileFunction = new NodeFunction(scope, 'ReconcileFunction', {
    entry: 'lambdas/reconcile/handler.ts',
    description: 'Finds the shards a Batch round did not complete and decides whether to run another round',
    memorySize: 512,
    timeout: Duration.minutes(2),
    ...fnDefaults,
  });
  const auditRunsUri = `s3://${dataBucket.bucketName}/${DATA_PREFIXES.auditRuns}`;
  out.finalizeFunction = new NodeFunction(scope, 'FinalizeFunction', {
    entry: 'lambdas/finalize/handler.ts',
    description: 'Validates a run, writes its audit manifest and record, publishes it to the Glue catalog',
    memorySize: 2048,
    timeout: Duration.minutes(10),
    environment: {
      [FUNCTION_ENV.glueDatabase]: out.dataLake.databaseName,
      [FUNCTION_ENV.auditRunsUri]: auditRunsUri,
      // What the audit manifest records as the code and the worker image of each run.
      [CODE_VERSION_ENV]: resolveCodeVersion(),
      ...(out.gpuCompute.workerImageUri ? { [WORKER_IMAGE_ENV]: out.gpuCompute.workerImageUri } : {}),
    },
    ...fnDefaults,
  });
  const taskRoles = [out.planFunction.role, out.reconcileFunction.role, out.finalizeFunction.role];

  // --- Data access ------------------------------------------------------------------------------------------------
  // The data lake is the product's own bucket: every task and the workers read and write runs anywhere in it
  // (run files live under output prefixes chosen by each spec, including specs submitted ad hoc).
  for (const role of [...taskRoles, jobRole])
    grantS3(role, { bucket: dataBucket, keyPrefix: '' }, 'readwrite');
  // Pipelines reading or writing other buckets get exactly their prefixes there.
  const pipelineGrants: PipelineGrant[] = [];
  for (const pipeline of pipelines) {
    const input = locationOf(pipeline.spec.input.uri);
    const output = locationOf(pipeline.spec.output.uri);
    if (input.bucket !== dataBucket) {
      for (const role of [out.planFunction.role, jobRole]) {
        grantS3(role, input, 'read');
        pipelineGrants.push({ pipeline: pipeline.name, what: 'input', role, location: input });
      }
    }
    if (output.bucket !== dataBucket) {
      for (const role of [...taskRoles, jobRole]) {
        grantS3(role, output, 'readwrite');
        pipelineGrants.push({ pipeline: pipeline.name, what: 'output', role, location: output });
      }
    }
    // A manifest input names objects elsewhere: Plan heads them, the workers read them (see manifestObjects).
    for (const uri of pipeline.manifestObjects) {
      const location = locationOf(uri);
      if (location.bucket === dataBucket) continue;
      for (const role of [out.planFunction.role, jobRole]) {
        grantS3(role, location, 'read');
        pipelineGrants.push({ pipeline: pipeline.name, what: 'manifest objects', role, location });
      }
    }
  }
  out.pipelineGrants = pipelineGrants;

  // Reconcile asks Batch why a round's children failed (for the manifest). Neither action takes a resource ARN.
  out.reconcileFunction.role.addToPolicy(
    new iam.PolicyStatement({ actions: ['batch:ListJobs', 'batch:DescribeJobs'], resources: ['*'] }),
  );

  // Finalize publishes to this stack's database only: the catalog, the database and its tables.
  const { glueArns } = out.dataLake;
  out.finalizeFunction.role.addToPolicy(
    new iam.PolicyStatement({
      actions: GLUE_PUBLISH_ACTIONS,
      resources: [glueArns.catalog, glueArns.database, glueArns.tables],
    }),
  );

  const artifactUris = config.modelArtifactUris.map(withDataBucketStandin);
  rejectOutputsInArtifacts(pipelines, artifactUris);
  out.modelArtifactLocations = artifactUris.map(locationOf);
  // Model artifacts are read-only for everything that runs: the read-write grants above cover the whole data
  // bucket (and pipelines' output prefixes), and a Deny wins over them, so no run can replace or delete a model.
  for (const role of [...taskRoles, jobRole]) {
    for (const location of out.modelArtifactLocations) denyS3Writes(role, location);
  }
  out.modelRegistryAccess = new ModelRegistryAccess(scope, 'ModelRegistryAccess', {
    resolvers: [out.planFunction.role],
    artifactReaders: [jobRole],
    modelPackageGroups: [
      ...new Set([...config.modelPackageGroups, ...modelPackageGroupsOf(pipelines)]),
    ].sort(),
    artifactLocations: out.modelArtifactLocations,
  });

  // --- Pipelines ------------------------------------------------------------------------------------------------
  const workflows = new Map<string, InferenceWorkflow>();
  for (const pipeline of pipelines) {
    const workflow = new InferenceWorkflow(scope, `Pipeline${pascalCase(pipeline.name)}`, {
      planFunction: out.planFunction.function,
      reconcileFunction: out.reconcileFunction.function,
      finalizeFunction: out.finalizeFunction.function,
      gpuJobQueue: out.gpuCompute.jobQueue,
      cpuJobQueue: out.gpuCompute.cpuJobQueue,
      jobDefinition: out.gpuCompute.jobDefinition,
      cpuJobDefinition: out.gpuCompute.cpuJobDefinition,
      timeout: Duration.hours(config.runTimeoutHours),
      logRetention,
      logRemovalPolicy: removalPolicy,
    });
    workflows.set(pipeline.name, workflow);
    const tables = out.dataLake.addPipelineTables({
      name: pipeline.name,
      outputUri: resolve(pipeline.spec.output.uri),
      format: pipeline.spec.output.format,
      columns: Object.entries(pipeline.spec.output.schema ?? {}).map(([name, type]) => ({ name, type })),
      runsUri: `${auditRunsUri}${pipeline.name}/`,
      runsColumns: RUN_RECORD_COLUMNS,
    });
    const keys = pipelineOutputKeys(pipeline.name);
    new CfnOutput(scope, keys.stateMachineArn, {
      description: `Pipeline ${pipeline.name}: its state machine`,
      value: workflow.stateMachine.stateMachineArn,
    });
    new CfnOutput(scope, keys.table, {
      description: `Pipeline ${pipeline.name}: its predictions table`,
      value: tables.table,
    });
    new CfnOutput(scope, keys.runsTable, {
      description: `Pipeline ${pipeline.name}: its runs table`,
      value: tables.runsTable,
    });
  }
  out.workflows = workflows;

  // --- Triggers -----------------------------------------------------------------------------------------------------
  out.triggers = new PipelineTriggers(scope, 'Triggers', {
    pipelines: pipelines.map((pipeline) => ({
      name: pipeline.name,
      stateMachine: workflows.get(pipeline.name)!.stateMachine,
      // A JSON round trip first: the execution input is JSON, and undefined fields have no place in it.
      spec: resolveDeep(JSON.parse(JSON.stringify(pipeline.spec)), resolve) as Record<string, unknown>,
      triggers: pipeline.triggers.map((trigger): TriggerTarget => {
        if (trigger.kind === 'schedule') {
          const s = trigger.schedule;
          return {
            kind: 'schedule',
            expression: scheduleExpression(s),
            timezone: s.timezone,
            ...(s.input !== undefined ? { input: resolve(s.input) } : {}),
            ...(s.offset !== undefined ? { offset: s.offset } : {}),
          };
        }
        const bucketName = bucketNamed(s3Location(pipeline.spec.input.uri).bucket).bucketName;
        const prefix = triggerKeyPrefix(pipeline.spec, declaredPrefix(trigger));
        return trigger.kind === 's3'
          ? { kind: 's3', bucketName, prefix, ...(trigger.s3.suffix ? { suffix: trigger.s3.suffix } : {}) }
          : { kind: 'volume', bucketName, prefix, minBytes: trigger.volume.minBytes };
      }),
    })),
    volumeState: { bucket: dataBucket, keyPrefix: DATA_PREFIXES.volumeState },
    logRetention,
    logRemovalPolicy: removalPolicy,
  });

  // --- Monitoring -----------------------------------------------------------------------------------------------
  const { cpuJobQueue } = out.gpuCompute;
  out.monitoring = new Monitoring(scope, 'Monitoring', {
    pipelines: pipelines.map((p) => ({
      name: p.name,
      stateMachine: workflows.get(p.name)!.stateMachine,
      maxErrorRate: p.spec.validation.maxErrorRate,
    })),
    jobQueues: [
      { label: 'gpu', jobQueueName: out.gpuCompute.jobQueue.jobQueueName },
      ...(cpuJobQueue ? [{ label: 'cpu', jobQueueName: cpuJobQueue.jobQueueName }] : []),
    ],
    queueDepthMetrics: config.queueDepthMetrics,
    // Half the RUNNABLE limit (in 5-minute steps, at most 30 minutes): a human hears before Batch cancels the job.
    stuckRunnableAfter: Duration.minutes(
      Math.min(30, Math.max(5, Math.floor(config.runnableTimeoutMinutes / 2 / 5) * 5)),
    ),
    functions: [
      { label: 'plan', function: out.planFunction.function },
      { label: 'reconcile', function: out.reconcileFunction.function },
      { label: 'finalize', function: out.finalizeFunction.function },
      ...(out.triggers.triggerFunction
        ? [{ label: 'trigger', function: out.triggers.triggerFunction.function }]
        : []),
      ...(out.triggers.volumeFunction
        ? [{ label: 'volume', function: out.triggers.volumeFunction.function }]
        : []),
    ],
    deadLetterQueues: out.triggers.deadLetterQueue ? [out.triggers.deadLetterQueue] : [],
    alarmEmail: config.alarmEmail,
    driftThreshold: config.driftThreshold,
    dashboardName: `batch-infer-${config.stage}`,
    logRetention,
    removalPolicy,
  });

  // --- Outputs ------------------------------------------------------------------------------------------------------
  new CfnOutput(scope, 'DataBucketName', { description: 'The data bucket', value: dataBucket.bucketName });
  if (out.dataLake.accessLogsBucket) {
    new CfnOutput(scope, 'AccessLogsBucketName', {
      description: "The data bucket's server access logs",
      value: out.dataLake.accessLogsBucket.bucketName,
    });
  }
  new CfnOutput(scope, 'GlueDatabaseName', {
    description: 'The Glue database of the pipelines tables',
    value: out.dataLake.databaseName,
  });
  new CfnOutput(scope, 'GpuJobQueueName', { value: out.gpuCompute.jobQueue.jobQueueName });
  if (cpuJobQueue) new CfnOutput(scope, 'CpuJobQueueName', { value: cpuJobQueue.jobQueueName });
  new CfnOutput(scope, 'AlarmTopicArn', { value: out.monitoring.alarmTopic.topicArn });
  new CfnOutput(scope, 'RunEventsTopicArn', {
    description: 'Every finished run (Step Functions status change events) is published here',
    value: out.monitoring.runEventsTopic.topicArn,
  });
  new CfnOutput(scope, 'DashboardName', { value: out.monitoring.dashboard.dashboardName });
  new CfnOutput(scope, 'PipelineNames', {
    description: 'The pipelines of this deployment, comma-separated',
    value: pipelines.map((p) => p.name).join(',') || '-',
  });

  return out;
}

export class BatchInferenceStack extends Stack implements BatchInferenceResources {
  declare readonly dataLake: DataLake;
  declare readonly network: Network;
  declare readonly gpuCompute: GpuCompute;
  declare readonly planFunction: NodeFunction;
  declare readonly reconcileFunction: NodeFunction;
  declare readonly finalizeFunction: NodeFunction;
  /** One workflow per pipeline, by pipeline name. */
  declare readonly workflows: ReadonlyMap<string, InferenceWorkflow>;
  declare readonly modelRegistryAccess: ModelRegistryAccess;
  declare readonly triggers: PipelineTriggers;
  declare readonly monitoring: Monitoring;
  /** Where model artifacts may be read from. */
  declare readonly modelArtifactLocations: readonly S3Location[];
  /** Grants on buckets outside the stack that pipelines read or write. */
  declare readonly pipelineGrants: readonly PipelineGrant[];

  constructor(scope: Construct, id: string, props: BatchInferenceStackProps) {
    super(scope, id, props);
    Object.assign(this, addBatchInference(this, props));
    acknowledgeFindings(this, this);
  }
}

/**
 * Model artifact locations are read-only for the stack's roles, so a pipeline writing into one could never finish:
 * rejected at synth, naming the pipeline, both locations and the fix.
 */
function rejectOutputsInArtifacts(pipelines: readonly Pipeline[], artifactUris: readonly string[]): void {
  const problems: string[] = [];
  for (const pipeline of pipelines) {
    const output = s3Location(pipeline.spec.output.uri);
    for (const uri of artifactUris) {
      const artifacts = s3Location(uri);
      if (output.bucket !== artifacts.bucket) continue;
      if (!output.key.startsWith(artifacts.key) && !artifacts.key.startsWith(output.key)) continue;
      problems.push(
        `${pipeline.file}: output.uri ${pipeline.spec.output.uri} overlaps the model artifact location ${uri} ` +
          '(modelArtifactUris), which is read-only for every role of the stack, so no run could write its output. ' +
          'Fix: write the output elsewhere, or move the model artifacts (modelArtifactUris).',
      );
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `Invalid pipelines:\n  ${problems.join('\n  ').split(DATA_BUCKET_STANDIN).join(DATA_BUCKET_PLACEHOLDER)}`,
    );
  }
}

/** A copy of a JSON value with `resolve` applied to every string. */
function resolveDeep(value: unknown, resolve: (text: string) => string): unknown {
  if (typeof value === 'string') return resolve(value);
  if (Array.isArray(value)) return value.map((item) => resolveDeep(item, resolve));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveDeep(v, resolve)]));
  }
  return value;
}
