/**
 * The deployed product, one construct per box: the data lake, the network, the compute, the three task functions
 * shared by every pipeline, one state machine per pipeline, the pipelines' triggers, model registry access and
 * monitoring. Configured by a validated DeployConfig (lib/config.ts) and the validated pipelines of the deployment
 * (lib/pipelines.ts).
 */
import { Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import type { DeployConfig } from './config.js';
import { DATA_BUCKET_PLACEHOLDER, DATA_PREFIXES, glueDatabaseName } from './config.js';
import { DataLake } from './constructs/data-lake.js';
import { GpuCompute } from './constructs/gpu-compute.js';
import { InferenceWorkflow } from './constructs/inference-workflow.js';
import { ModelRegistryAccess } from './constructs/model-registry-access.js';
import { Monitoring } from './constructs/monitoring.js';
import { Network } from './constructs/network.js';
import { NodeFunction } from './constructs/node-function.js';
import { PipelineTriggers, type S3BatchTarget, type TriggerTarget } from './constructs/pipeline-triggers.js';
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
import {
  keyPrefixOfTemplate,
  runDataGrants,
  type PipelineLocationKind,
  type PipelineLocations,
  type RunRole,
} from './run-data-access.js';
import { denyS3Writes, grantS3, type S3Access, type S3Location } from './s3-access.js';
import { FUNCTION_ENV } from './workflow-contract.js';
import { CODE_VERSION_ENV, resolveCodeVersion, WORKER_IMAGE_ENV } from '../src/results/code-version.js';
import { scheduleExpression, windowSeconds, type S3Trigger } from '../src/spec/triggers.js';
import {
  pipelineOperateOutputKeys,
  STACK_OUTPUT_KEYS,
  type PipelineOperate,
} from '../src/operate/stack-outputs.js';

/** What the product is made of: a validated configuration and the pipelines it runs. */
export interface BatchInferenceProps {
  /** Validated deploy configuration (see lib/config.ts). */
  readonly config: DeployConfig;
  /** Validated pipelines of the deployment (see lib/pipelines.ts). */
  readonly pipelines: readonly Pipeline[];
}

export interface BatchInferenceStackProps extends StackProps, BatchInferenceProps {}

/**
 * The stack's Glue database (ADR 0017): an existing one by name, or a new one named `batch_infer_<stage>_<suffix>`,
 * the suffix being the first 8 hex digits of the stack id's UUID (`arn:...:stack/<name>/<uuid>`). The UUID is new
 * each time the stack is created, so a redeploy after a destroy that retained the database gets a name of its own.
 */
function glueDatabaseOf(config: DeployConfig): { databaseName: string; useExistingDatabase?: boolean } {
  const existing = config.glueDatabase.existing;
  if (existing !== undefined) return { databaseName: existing, useExistingDatabase: true };
  const stackUuid = Fn.select(2, Fn.split('/', Aws.STACK_ID));
  return { databaseName: Fn.join('_', [glueDatabaseName(config), Fn.select(0, Fn.split('-', stackUuid))]) };
}

/**
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

/** A grant of one of a run's roles on a prefix of a pipeline's locations (see lib/run-data-access.ts). */
export interface PipelineGrant {
  readonly pipeline: string;
  readonly what: PipelineLocationKind;
  readonly role: iam.IRole;
  readonly roleName: RunRole;
  readonly location: S3Location;
  readonly access: S3Access;
}

/**
 * The Plan function's size, from the plan benchmark (docs/benchmarks.md, plan-finalize): a 1M-object list manifest
 * peaks at 571 MiB RSS and 7.4 s of CPU; a 1M list of bare URIs needs a HEAD per object, about 5 minutes at 64 in
 * flight. 2048 MiB leaves the peak 3.5x headroom and gives the function more than one vCPU (Lambda allots CPU by
 * memory: one vCPU at 1769 MB) for parsing and the HEADs' TLS; 15 minutes (Lambda's maximum, and the Plan state's
 * task timeout) is three times the bare-URI case.
 */
export const PLAN_FUNCTION_SIZE = { memorySize: 2048, timeout: Duration.minutes(15) } as const;

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
  /** The run roles' grants on the pipelines' prefixes (data bucket and other buckets). */
  readonly pipelineGrants: readonly PipelineGrant[];
  /** Each pipeline's locations (and the ad hoc prefix's), which the run roles' grants are derived from. */
  readonly pipelineLocations: readonly PipelineLocations[];
  /** Where Finalize writes the audit records of runs (the runs tables); no other role may. */
  readonly auditRunsLocation: S3Location;
  /** Where the triggers write the list manifests of batched runs, which Plan reads; absent without such triggers. */
  readonly triggerManifestsLocation?: S3Location;
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
    ...glueDatabaseOf(config),
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
      isolated: config.vpc.create?.isolated,
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
    spotRunnableTimeout: Duration.minutes(config.spotRunnableTimeoutMinutes),
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
    ...PLAN_FUNCTION_SIZE,
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

  // --- Data access: least privilege by prefix ----------------------------------------------------------------
  // Each role gets the part of each pipeline's locations it reads or writes (lib/run-data-access.ts, printed in
  // docs/operations.md), in the data bucket and in buckets outside the stack alike. Runs submitted ad hoc (a spec
  // that is not a pipeline of the deployment) read and write under the data bucket's ad hoc prefix.
  const runRoles: Record<RunRole, iam.IRole> = {
    plan: out.planFunction.role,
    worker: jobRole,
    reconcile: out.reconcileFunction.role,
    finalize: out.finalizeFunction.role,
  };
  const adHoc: S3Location = { bucket: dataBucket, keyPrefix: DATA_PREFIXES.adHoc };
  const pipelineLocations: PipelineLocations[] = [
    ...pipelines.map((pipeline) => pipelineLocationsOf(pipeline, locationOf)),
    {
      pipeline: '(ad hoc)',
      input: [adHoc],
      manifestObjects: [],
      // Any output folder one level under the prefix: `<adhoc>/<folder>/_runs/...`.
      output: { bucket: dataBucket, keyPrefix: `${DATA_PREFIXES.adHoc}*/` },
    },
  ];
  const pipelineGrants: PipelineGrant[] = [];
  for (const grant of runDataGrants(pipelineLocations)) {
    const role = runRoles[grant.role];
    grantS3(role, grant.location, grant.access);
    pipelineGrants.push({
      pipeline: grant.pipeline,
      what: grant.on,
      role,
      roleName: grant.role,
      location: grant.location,
      access: grant.access,
    });
  }
  // The audit records (one JSON row per finalized run, the runs tables) are Finalize's alone.
  const auditRuns: S3Location = { bucket: dataBucket, keyPrefix: DATA_PREFIXES.auditRuns };
  grantS3(out.finalizeFunction.role, auditRuns, 'readwrite');
  out.auditRunsLocation = auditRuns;
  out.pipelineGrants = pipelineGrants;
  out.pipelineLocations = pipelineLocations;
  // Unpublished predictions (failed or killed runs) expire; the ad hoc outputs (a wildcard folder) live under
  // adhoc/, which has no per-folder rule.
  for (const pipeline of pipelines) {
    const output = pipelineLocationsOf(pipeline, locationOf).output;
    if (output.bucket === dataBucket) out.dataLake.expireUnpublishedPredictions(output.keyPrefix);
  }

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
  if (config.lakeFormation) {
    out.dataLake.grantLakeFormationPublish(out.finalizeFunction.role, config.lakeFormation.dataLocationArns);
  }

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
      gpuOnDemandJobQueue: out.gpuCompute.onDemandJobQueue,
      cpuOnDemandJobQueue: out.gpuCompute.cpuOnDemandJobQueue,
      jobDefinition: out.gpuCompute.jobDefinition,
      cpuJobDefinition: out.gpuCompute.cpuJobDefinition,
      timeout: Duration.hours(config.runTimeoutHours),
      logRetention,
      logRemovalPolicy: removalPolicy,
    });
    workflows.set(pipeline.name, workflow);
    const tables = out.dataLake.reservePipelineTables({ name: pipeline.name });
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
    const locations = pipelineLocations.find((l) => l.pipeline === pipeline.name)!;
    new CfnOutput(scope, pipelineOperateOutputKeys(pipeline.name).operate, {
      description: `Pipeline ${pipeline.name}: what batch-infer needs to start and follow its runs (JSON)`,
      value: Stack.of(scope).toJsonString(operateOutputOf(pipeline, locations, resolve)),
    });
  }
  out.workflows = workflows;

  // --- Triggers -----------------------------------------------------------------------------------------------------
  // Batched runs read a list manifest the triggers write here: Plan reads it (and nothing else of state/).
  const triggerManifests: S3Location = { bucket: dataBucket, keyPrefix: DATA_PREFIXES.triggerManifests };
  if (
    pipelines.some((p) =>
      p.triggers.some((t) => t.kind === 'volume' || (t.kind === 's3' && t.s3.window !== undefined)),
    )
  ) {
    grantS3(out.planFunction.role, triggerManifests, 'read');
    out.triggerManifestsLocation = triggerManifests;
  }
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
          ? {
              kind: 's3',
              bucketName,
              prefix,
              ...(trigger.s3.suffix ? { suffix: trigger.s3.suffix } : {}),
              ...s3BatchTargetOf(trigger.s3),
            }
          : { kind: 'volume', bucketName, prefix, minBytes: trigger.volume.minBytes };
      }),
    })),
    volumeState: { bucket: dataBucket, keyPrefix: DATA_PREFIXES.volumeState },
    // The manifests must be in the volume state's bucket: the function writes both through one store.
    volumeManifests: triggerManifests,
    windowState: {
      state: { bucket: dataBucket, keyPrefix: DATA_PREFIXES.windowState },
      manifests: triggerManifests,
    },
    logRetention,
    logRemovalPolicy: removalPolicy,
  });

  // --- Monitoring -----------------------------------------------------------------------------------------------
  const { cpuJobQueue, onDemandJobQueue, cpuOnDemandJobQueue } = out.gpuCompute;
  out.monitoring = new Monitoring(scope, 'Monitoring', {
    pipelines: pipelines.map((p) => ({
      name: p.name,
      stateMachine: workflows.get(p.name)!.stateMachine,
      maxErrorRate: p.spec.validation.maxErrorRate,
      compute: p.spec.run.compute,
    })),
    jobQueues: [
      { label: 'gpu', jobQueueName: out.gpuCompute.jobQueue.jobQueueName },
      ...(cpuJobQueue ? [{ label: 'cpu', jobQueueName: cpuJobQueue.jobQueueName }] : []),
      // The On-Demand queues of retry rounds, when they are queues of their own (spot on).
      ...(onDemandJobQueue !== out.gpuCompute.jobQueue
        ? [{ label: 'gpu-ondemand', jobQueueName: onDemandJobQueue.jobQueueName }]
        : []),
      ...(cpuOnDemandJobQueue && cpuOnDemandJobQueue !== cpuJobQueue
        ? [{ label: 'cpu-ondemand', jobQueueName: cpuOnDemandJobQueue.jobQueueName }]
        : []),
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
      ...(out.triggers.windowFunction
        ? [{ label: 'window', function: out.triggers.windowFunction.function }]
        : []),
    ],
    deadLetterQueues: out.triggers.deadLetterQueue ? [out.triggers.deadLetterQueue] : [],
    alarmEmail: config.alarmEmail,
    finalizeLogGroup: out.finalizeFunction.logGroup,
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
  new CfnOutput(scope, 'GpuOnDemandJobQueueName', { value: onDemandJobQueue.jobQueueName });
  if (cpuOnDemandJobQueue) {
    new CfnOutput(scope, 'CpuOnDemandJobQueueName', { value: cpuOnDemandJobQueue.jobQueueName });
  }
  new CfnOutput(scope, 'AlarmTopicArn', { value: out.monitoring.alarmTopic.topicArn });
  new CfnOutput(scope, 'RunEventsTopicArn', {
    description: 'Every finished run (Step Functions status change events) is published here',
    value: out.monitoring.runEventsTopic.topicArn,
  });
  new CfnOutput(scope, 'DashboardName', { value: out.monitoring.dashboard.dashboardName });
  // What the CLI's AWS backend reads (src/operate/stack-outputs.ts).
  new CfnOutput(scope, STACK_OUTPUT_KEYS.workerLogGroupName, {
    value: out.gpuCompute.logGroup.logGroupName,
  });
  new CfnOutput(scope, STACK_OUTPUT_KEYS.functionLogGroupNames, {
    description: 'The task and trigger functions log groups, by function (JSON)',
    value: Stack.of(scope).toJsonString(functionLogGroupNames(out)),
  });
  new CfnOutput(scope, 'PipelineNames', {
    description: 'The pipelines of this deployment, comma-separated',
    value: pipelines.map((p) => p.name).join(',') || '-',
  });

  return out;
}

/**
 * The stack's fields are those of {@link BatchInferenceResources}, merged into the class's type (one list, in the
 * interface) and assigned from `addBatchInference` in the constructor.
 */
// The members are BatchInferenceResources' (hence empty), and the constructor assigns every one (Object.assign).
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface BatchInferenceStack extends BatchInferenceResources {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- see the interface above
export class BatchInferenceStack extends Stack {
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

/**
 * A pipeline's locations: its input (input.uri, every trigger's prefix, every schedule's input template up to its
 * first placeholder), the objects its manifest names, and its output.
 */
function pipelineLocationsOf(pipeline: Pipeline, locationOf: (uri: string) => S3Location): PipelineLocations {
  const inputBucket = s3Location(pipeline.spec.input.uri).bucket;
  const inputUris = [pipeline.spec.input.uri];
  for (const trigger of pipeline.triggers) {
    if (trigger.kind === 'schedule') {
      if (trigger.schedule.input !== undefined) inputUris.push(trigger.schedule.input);
    } else {
      inputUris.push(`s3://${inputBucket}/${triggerKeyPrefix(pipeline.spec, declaredPrefix(trigger))}`);
    }
  }
  const input = inputUris.map((uri) => {
    const location = locationOf(uri);
    return { bucket: location.bucket, keyPrefix: keyPrefixOfTemplate(location.keyPrefix) };
  });
  // A prefix that another one of the same bucket covers adds nothing.
  const covering = input.filter(
    (a, i) =>
      !input.some(
        (b, j) =>
          b.bucket === a.bucket &&
          a.keyPrefix.startsWith(b.keyPrefix) &&
          (b.keyPrefix !== a.keyPrefix || j < i),
      ),
  );
  return {
    pipeline: pipeline.name,
    input: covering,
    manifestObjects: pipeline.manifestObjects.map(locationOf),
    output: locationOf(
      pipeline.spec.output.uri.endsWith('/') ? pipeline.spec.output.uri : `${pipeline.spec.output.uri}/`,
    ),
  };
}

/** Each function's log group, by function: where `batch-infer logs` reads the orchestration's lines. */
function functionLogGroupNames(deployed: BatchInferenceResources): Record<string, string> {
  const { triggerFunction, volumeFunction } = deployed.triggers;
  return {
    plan: deployed.planFunction.logGroup.logGroupName,
    reconcile: deployed.reconcileFunction.logGroup.logGroupName,
    finalize: deployed.finalizeFunction.logGroup.logGroupName,
    ...(triggerFunction ? { trigger: triggerFunction.logGroup.logGroupName } : {}),
    ...(volumeFunction ? { volume: volumeFunction.logGroup.logGroupName } : {}),
  };
}

/** The `Pipeline<Name>Operate` output (src/operate/stack-outputs.ts): its spec, run files, input prefixes, triggers. */
function operateOutputOf(
  pipeline: Pipeline,
  locations: PipelineLocations,
  resolve: (text: string) => string,
): PipelineOperate {
  const uriOf = (l: S3Location) => `s3://${l.bucket.bucketName}/${l.keyPrefix}`;
  return {
    spec: resolveDeep(JSON.parse(JSON.stringify(pipeline.spec)), resolve) as Record<string, unknown>,
    outputUri: resolve(pipeline.spec.output.uri),
    inputPrefixes: locations.input.map(uriOf),
    manifestObjects: locations.manifestObjects.map(uriOf),
    triggers: pipeline.triggers.map((trigger) => {
      if (trigger.kind === 'schedule') {
        const s = trigger.schedule;
        return `schedule ${scheduleExpression(s)} ${s.timezone}${s.input !== undefined ? ` input ${resolve(s.input)}` : ''}`;
      }
      const bucket = resolve(s3Location(pipeline.spec.input.uri).bucket);
      const prefix = `s3://${bucket}/${triggerKeyPrefix(pipeline.spec, declaredPrefix(trigger))}`;
      return trigger.kind === 's3'
        ? `s3 ${prefix}${trigger.s3.suffix ? ` *${trigger.s3.suffix}` : ''}`
        : `volume ${prefix} >= ${trigger.volume.minBytes} bytes`;
    }),
  };
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

/** A batching S3 trigger's target settings (`window`, `maxObjects`, `maxBytes` of the pipeline file); {} otherwise. */
function s3BatchTargetOf(trigger: S3Trigger): { batch?: S3BatchTarget } {
  if (trigger.window === undefined) return {};
  const seconds = windowSeconds(trigger.window);
  if (seconds === undefined) throw new Error(`Invalid window "${trigger.window}" (validated at synth)`);
  return {
    batch: {
      windowSeconds: seconds,
      ...(trigger.maxObjects !== undefined ? { maxObjects: trigger.maxObjects } : {}),
      ...(trigger.maxBytes !== undefined ? { maxBytes: trigger.maxBytes } : {}),
    },
  };
}
