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
import { scheduleExpression } from '../src/spec/triggers.js';
import {
  pipelineOperateOutputKeys,
  STACK_OUTPUT_KEYS,
  type PipelineOperate,
} from '../src/operate/stack-outputs.js';

export interface BatchInferenceStackProps extends StackProps {
  /** Validated deploy configuration (see lib/config.ts). */
  readonly config: DeployConfig;
  /** Validated pipelines of the deployment (see lib/pipelines.ts). */
  readonly pipelines: readonly Pipeline[];
}

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

export class BatchInferenceStack extends Stack {
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

  constructor(scope: Construct, id: string, props: BatchInferenceStackProps) {
    super(scope, id, props);
    const { config, pipelines } = props;
    const removalPolicy = config.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    const logRetention = config.logRetentionDays as logs.RetentionDays;

    // --- Data lake ------------------------------------------------------------------------------------------------
    this.dataLake = new DataLake(this, 'DataLake', {
      databaseName: glueDatabaseName(config),
      removalPolicy,
      tempDataExpiration: Duration.days(config.tempDataExpirationDays),
      tempPrefix: DATA_PREFIXES.temp,
      ...(config.dataBucketName
        ? { bucket: s3.Bucket.fromBucketName(this, 'ImportedDataBucket', config.dataBucketName) }
        : {}),
    });
    const dataBucket = this.dataLake.bucket;
    const otherBuckets = new Map<string, s3.IBucket>();
    /** The bucket of a pipeline location: the data bucket (`${dataBucket}`) or another, imported by name. */
    const bucketNamed = (name: string): s3.IBucket => {
      if (isDataBucket(name)) return dataBucket;
      let bucket = otherBuckets.get(name);
      if (!bucket) {
        bucket = s3.Bucket.fromBucketName(this, `Bucket-${name}`, name);
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
      const vpc = ec2.Vpc.fromVpcAttributes(this, 'ImportedVpc', {
        vpcId: imported.vpcId,
        vpcCidrBlock: imported.cidr,
        availabilityZones: imported.availabilityZones,
        privateSubnetIds: imported.subnetIds,
        privateSubnetRouteTableIds: imported.routeTableIds,
      });
      this.network = new Network(this, 'Network', {
        vpc,
        subnets: { subnets: vpc.privateSubnets },
        createEndpoints: imported.endpoints,
      });
    } else {
      this.network = new Network(this, 'Network', {
        maxAzs: config.vpc.create?.maxAzs,
        cidr: config.vpc.create?.cidr,
        flowLogRetention: logRetention,
        removalPolicy,
      });
    }

    this.gpuCompute = new GpuCompute(this, 'GpuCompute', {
      vpc: this.network.vpc,
      subnets: this.network.workerSubnets,
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
    const { jobRole } = this.gpuCompute;

    // --- Task functions (shared by every pipeline's state machine) -------------------------------------------------
    const fnDefaults = { logRetention, logRemovalPolicy: removalPolicy };
    this.planFunction = new NodeFunction(this, 'PlanFunction', {
      entry: 'lambdas/plan/handler.ts',
      description: 'Plans a batch inference run: resolves the model, lists the input, writes the shards',
      ...PLAN_FUNCTION_SIZE,
      ...fnDefaults,
    });
    this.reconcileFunction = new NodeFunction(this, 'ReconcileFunction', {
      entry: 'lambdas/reconcile/handler.ts',
      description: 'Finds the shards a Batch round did not complete and decides whether to run another round',
      memorySize: 512,
      timeout: Duration.minutes(2),
      ...fnDefaults,
    });
    const auditRunsUri = `s3://${dataBucket.bucketName}/${DATA_PREFIXES.auditRuns}`;
    this.finalizeFunction = new NodeFunction(this, 'FinalizeFunction', {
      entry: 'lambdas/finalize/handler.ts',
      description: 'Validates a run, writes its audit manifest and record, publishes it to the Glue catalog',
      memorySize: 2048,
      timeout: Duration.minutes(10),
      environment: {
        [FUNCTION_ENV.glueDatabase]: this.dataLake.databaseName,
        [FUNCTION_ENV.auditRunsUri]: auditRunsUri,
        // What the audit manifest records as the code and the worker image of each run.
        [CODE_VERSION_ENV]: resolveCodeVersion(),
        ...(this.gpuCompute.workerImageUri ? { [WORKER_IMAGE_ENV]: this.gpuCompute.workerImageUri } : {}),
      },
      ...fnDefaults,
    });
    const taskRoles = [this.planFunction.role, this.reconcileFunction.role, this.finalizeFunction.role];

    // --- Data access: least privilege by prefix ----------------------------------------------------------------
    // Each role gets the part of each pipeline's locations it reads or writes (lib/run-data-access.ts, printed in
    // docs/operations.md), in the data bucket and in buckets outside the stack alike. Runs submitted ad hoc (a spec
    // that is not a pipeline of the deployment) read and write under the data bucket's ad hoc prefix.
    const runRoles: Record<RunRole, iam.IRole> = {
      plan: this.planFunction.role,
      worker: jobRole,
      reconcile: this.reconcileFunction.role,
      finalize: this.finalizeFunction.role,
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
    grantS3(this.finalizeFunction.role, auditRuns, 'readwrite');
    this.auditRunsLocation = auditRuns;
    this.pipelineGrants = pipelineGrants;
    this.pipelineLocations = pipelineLocations;

    // Reconcile asks Batch why a round's children failed (for the manifest). Neither action takes a resource ARN.
    this.reconcileFunction.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['batch:ListJobs', 'batch:DescribeJobs'], resources: ['*'] }),
    );

    // Finalize publishes to this stack's database only: the catalog, the database and its tables.
    const { glueArns } = this.dataLake;
    this.finalizeFunction.role.addToPolicy(
      new iam.PolicyStatement({
        actions: GLUE_PUBLISH_ACTIONS,
        resources: [glueArns.catalog, glueArns.database, glueArns.tables],
      }),
    );

    const artifactUris = config.modelArtifactUris.map(withDataBucketStandin);
    rejectOutputsInArtifacts(pipelines, artifactUris);
    this.modelArtifactLocations = artifactUris.map(locationOf);
    // Model artifacts are read-only for everything that runs: the read-write grants above cover the whole data
    // bucket (and pipelines' output prefixes), and a Deny wins over them, so no run can replace or delete a model.
    for (const role of [...taskRoles, jobRole]) {
      for (const location of this.modelArtifactLocations) denyS3Writes(role, location);
    }
    this.modelRegistryAccess = new ModelRegistryAccess(this, 'ModelRegistryAccess', {
      resolvers: [this.planFunction.role],
      artifactReaders: [jobRole],
      modelPackageGroups: [
        ...new Set([...config.modelPackageGroups, ...modelPackageGroupsOf(pipelines)]),
      ].sort(),
      artifactLocations: this.modelArtifactLocations,
    });

    // --- Pipelines ------------------------------------------------------------------------------------------------
    const workflows = new Map<string, InferenceWorkflow>();
    for (const pipeline of pipelines) {
      const workflow = new InferenceWorkflow(this, `Pipeline${pascalCase(pipeline.name)}`, {
        planFunction: this.planFunction.function,
        reconcileFunction: this.reconcileFunction.function,
        finalizeFunction: this.finalizeFunction.function,
        gpuJobQueue: this.gpuCompute.jobQueue,
        cpuJobQueue: this.gpuCompute.cpuJobQueue,
        jobDefinition: this.gpuCompute.jobDefinition,
        cpuJobDefinition: this.gpuCompute.cpuJobDefinition,
        timeout: Duration.hours(config.runTimeoutHours),
        logRetention,
        logRemovalPolicy: removalPolicy,
      });
      workflows.set(pipeline.name, workflow);
      const tables = this.dataLake.addPipelineTables({
        name: pipeline.name,
        outputUri: resolve(pipeline.spec.output.uri),
        format: pipeline.spec.output.format,
        columns: Object.entries(pipeline.spec.output.schema ?? {}).map(([name, type]) => ({ name, type })),
        runsUri: `${auditRunsUri}${pipeline.name}/`,
        runsColumns: RUN_RECORD_COLUMNS,
      });
      const keys = pipelineOutputKeys(pipeline.name);
      new CfnOutput(this, keys.stateMachineArn, {
        description: `Pipeline ${pipeline.name}: its state machine`,
        value: workflow.stateMachine.stateMachineArn,
      });
      new CfnOutput(this, keys.table, {
        description: `Pipeline ${pipeline.name}: its predictions table`,
        value: tables.table,
      });
      new CfnOutput(this, keys.runsTable, {
        description: `Pipeline ${pipeline.name}: its runs table`,
        value: tables.runsTable,
      });
      const locations = pipelineLocations.find((l) => l.pipeline === pipeline.name)!;
      new CfnOutput(this, pipelineOperateOutputKeys(pipeline.name).operate, {
        description: `Pipeline ${pipeline.name}: what batch-infer needs to start and follow its runs (JSON)`,
        value: this.toJsonString(operateOutputOf(pipeline, locations, resolve)),
      });
    }
    this.workflows = workflows;

    // --- Triggers -----------------------------------------------------------------------------------------------------
    this.triggers = new PipelineTriggers(this, 'Triggers', {
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
    const { cpuJobQueue } = this.gpuCompute;
    this.monitoring = new Monitoring(this, 'Monitoring', {
      pipelines: pipelines.map((p) => ({
        name: p.name,
        stateMachine: workflows.get(p.name)!.stateMachine,
        maxErrorRate: p.spec.validation.maxErrorRate,
      })),
      jobQueues: [
        { label: 'gpu', jobQueueName: this.gpuCompute.jobQueue.jobQueueName },
        ...(cpuJobQueue ? [{ label: 'cpu', jobQueueName: cpuJobQueue.jobQueueName }] : []),
      ],
      queueDepthMetrics: config.queueDepthMetrics,
      // Half the RUNNABLE limit (in 5-minute steps, at most 30 minutes): a human hears before Batch cancels the job.
      stuckRunnableAfter: Duration.minutes(
        Math.min(30, Math.max(5, Math.floor(config.runnableTimeoutMinutes / 2 / 5) * 5)),
      ),
      functions: [
        { label: 'plan', function: this.planFunction.function },
        { label: 'reconcile', function: this.reconcileFunction.function },
        { label: 'finalize', function: this.finalizeFunction.function },
        ...(this.triggers.triggerFunction
          ? [{ label: 'trigger', function: this.triggers.triggerFunction.function }]
          : []),
        ...(this.triggers.volumeFunction
          ? [{ label: 'volume', function: this.triggers.volumeFunction.function }]
          : []),
      ],
      deadLetterQueues: this.triggers.deadLetterQueue ? [this.triggers.deadLetterQueue] : [],
      alarmEmail: config.alarmEmail,
      driftThreshold: config.driftThreshold,
      dashboardName: `batch-infer-${config.stage}`,
      logRetention,
      removalPolicy,
    });

    // --- Outputs ------------------------------------------------------------------------------------------------------
    new CfnOutput(this, 'DataBucketName', { description: 'The data bucket', value: dataBucket.bucketName });
    if (this.dataLake.accessLogsBucket) {
      new CfnOutput(this, 'AccessLogsBucketName', {
        description: "The data bucket's server access logs",
        value: this.dataLake.accessLogsBucket.bucketName,
      });
    }
    new CfnOutput(this, 'GlueDatabaseName', {
      description: 'The Glue database of the pipelines tables',
      value: this.dataLake.databaseName,
    });
    new CfnOutput(this, 'GpuJobQueueName', { value: this.gpuCompute.jobQueue.jobQueueName });
    if (cpuJobQueue) new CfnOutput(this, 'CpuJobQueueName', { value: cpuJobQueue.jobQueueName });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.monitoring.alarmTopic.topicArn });
    new CfnOutput(this, 'RunEventsTopicArn', {
      description: 'Every finished run (Step Functions status change events) is published here',
      value: this.monitoring.runEventsTopic.topicArn,
    });
    new CfnOutput(this, 'DashboardName', { value: this.monitoring.dashboard.dashboardName });
    // What the CLI's AWS backend reads (src/operate/stack-outputs.ts).
    new CfnOutput(this, STACK_OUTPUT_KEYS.workerLogGroupName, {
      value: this.gpuCompute.logGroup.logGroupName,
    });
    new CfnOutput(this, STACK_OUTPUT_KEYS.functionLogGroupNames, {
      description: 'The task and trigger functions log groups, by function (JSON)',
      value: this.toJsonString(this.functionLogGroupNames()),
    });
    new CfnOutput(this, 'PipelineNames', {
      description: 'The pipelines of this deployment, comma-separated',
      value: pipelines.map((p) => p.name).join(',') || '-',
    });

    acknowledgeFindings(this);
  }

  /** Each function's log group, by function: where `batch-infer logs` reads the orchestration's lines. */
  private functionLogGroupNames(): Record<string, string> {
    const { triggerFunction, volumeFunction } = this.triggers;
    return {
      plan: this.planFunction.logGroup.logGroupName,
      reconcile: this.reconcileFunction.logGroup.logGroupName,
      finalize: this.finalizeFunction.logGroup.logGroupName,
      ...(triggerFunction ? { trigger: triggerFunction.logGroup.logGroupName } : {}),
      ...(volumeFunction ? { volume: volumeFunction.logGroup.logGroupName } : {}),
    };
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
