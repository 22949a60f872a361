/**
 * Deployments other than the example, synthesized as `cdk synth` does (cdk-nag included): every configuration key
 * set to a value other than its default, each found in the template; an imported VPC and data bucket with a
 * pipeline reading another bucket, On-Demand only; a disposable stage (removalPolicy: destroy); and invalid
 * deployments, which fail the synth with a precise message.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { deployConfigSchema } from '../../lib/config.js';
import { addDeployment } from '../../lib/deployment.js';
import { flattenForNag } from '../../lib/nag.js';
import { definitionFromTemplate } from '../../lib/workflow-definition.js';
import {
  actionsOf,
  cdkJsonContext,
  iamStatements,
  logicalIdsOfType,
  resourcesOf,
  roleStatements,
  synthApp,
  type SynthesizedApp,
} from './helpers.js';

const PIPELINE = `name: landing_scores
input:
  uri: s3://corp-landing/exports/scores/
  format: jsonl
model:
  uri: s3://\${dataBucket}/models/scores/model.onnx
  inputs:
    - tensor: features
      from: { columns: [a, b] }
  outputs:
    - tensor: score
output:
  uri: s3://\${dataBucket}/predictions/landing_scores/
triggers:
  - s3: { suffix: .jsonl }
`;

const IMPORTED = {
  stage: 'prod',
  dataBucketName: 'corp-ml-data',
  spot: false,
  alarmEmail: 'ml-oncall@example.com',
  queueDepthMetrics: false,
  vpc: {
    import: {
      vpcId: 'vpc-0123456789abcdef0',
      cidr: '10.1.0.0/16',
      availabilityZones: ['eu-west-1a', 'eu-west-1b'],
      subnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
      routeTableIds: ['rtb-0123456789abcdef0', 'rtb-0123456789abcdef1'],
    },
  },
};

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-deployment-'));
  fs.writeFileSync(path.join(dir, 'landing_scores.yaml'), PIPELINE);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * A value other than the default for every key of the configuration, except `dataBucketName` and `vpc.import`
 * (the imported variant below): with an imported bucket the stack sets no lifecycle, so tempDataExpirationDays
 * would have nothing to land in.
 */
const EVERY_KEY = {
  stage: 'qa',
  gpuInstanceTypes: ['g6e.xlarge', 'g5'],
  maxvCpus: 96,
  spot: false,
  workerCpu: 8,
  workerMemoryMiB: 30000,
  cpuInstanceTypes: ['c7a', 'm7i.2xlarge'],
  cpuMaxvCpus: 48,
  cpuWorkerCpu: 4,
  cpuWorkerMemoryMiB: 8192,
  attemptTimeoutMinutes: 45,
  runnableTimeoutMinutes: 20,
  // No Spot queue with spot off: the default-config stack test shows where this lands (the Spot queues).
  spotRunnableTimeoutMinutes: 30,
  runTimeoutHours: 6,
  alarmEmail: 'qa-oncall@example.com',
  vpc: { create: { maxAzs: 3, cidr: '10.80.0.0/16', isolated: true } },
  removalPolicy: 'destroy',
  logRetentionDays: 90,
  tempDataExpirationDays: 3,
  modelPackageGroups: ['fraud-scorer'],
  modelArtifactUris: ['s3://${dataBucket}/artifacts/', 's3://corp-models/onnx/'],
  driftThreshold: 0.35,
  queueDepthMetrics: false,
  glueDatabase: { existing: 'corp_lake_qa' },
  lakeFormation: { dataLocationArns: ['arn:aws:s3:::corp-lake/predictions'] },
  // A Savings Plan rate for the GPU type: merged into each pipeline's spec (test/lib/pipeline-prices.test.ts).
  prices: { 'g6e.xlarge': { onDemand: 1.2, spot: 0.6 } },
};

/** A pipeline reading a list manifest in another bucket, whose objects live under manifestObjects. */
const MANIFEST_PIPELINE = `name: listed_scores
input:
  uri: s3://corp-landing/lists/today.jsonl
  manifest: list
  format: csv
model:
  uri: s3://corp-models/onnx/scores/model.onnx
  inputs:
    - tensor: features
      from: { columns: [a, b] }
  outputs:
    - tensor: score
output:
  uri: s3://\${dataBucket}/predictions/listed_scores/
manifestObjects: [s3://corp-exports/daily/]
`;

describe('every configuration key set to a value other than its default', () => {
  let synthesized: SynthesizedApp;
  let template: Template;
  let json: Record<string, unknown>;
  let everyDir: string;
  beforeAll(() => {
    everyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-every-key-'));
    fs.writeFileSync(path.join(everyDir, 'listed_scores.yaml'), MANIFEST_PIPELINE);
    synthesized = synthApp({ bundling: false, config: { ...EVERY_KEY, pipelinesDir: everyDir } });
    json = synthesized.template;
    template = Template.fromJSON(json);
  }, 120_000);
  afterAll(() => {
    synthesized?.cleanup();
    fs.rmSync(everyDir, { recursive: true, force: true });
  });

  const resourcesOfType = (type: string) =>
    Object.values(template.findResources(type)) as { Properties: Record<string, unknown> }[];
  const jobDefinition = (name: string) =>
    resourcesOfType('AWS::Batch::JobDefinition').find((d) => d.Properties.JobDefinitionName === name)!;

  it('covers every key of the configuration but the imported bucket, with values other than the defaults', () => {
    const defaults = deployConfigSchema.parse({}) as Record<string, unknown>;
    const keys = Object.keys(deployConfigSchema.shape).sort();
    expect([...Object.keys(EVERY_KEY), 'pipelinesDir', 'dataBucketName'].sort()).toEqual(keys);
    for (const [key, value] of Object.entries(EVERY_KEY)) {
      expectIn(value, key).not.toEqual(defaults[key]);
    }
  });

  it('stage: names the stack, the queues, the job definitions and the dashboard', () => {
    expect(synthesized.stack.stackName).toBe('BatchInfer-qa');
    const queues = resourcesOfType('AWS::Batch::JobQueue').map((q) => q.Properties.JobQueueName);
    expect(queues.sort()).toEqual(['batch-infer-qa-cpu', 'batch-infer-qa-gpu']);
    expect(jobDefinition('batch-infer-qa-worker')).toBeDefined();
    expect(jobDefinition('batch-infer-qa-cpu-worker')).toBeDefined();
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'batch-infer-qa' });
  });

  it('pipelinesDir: deploys the pipelines of that folder', () => {
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
    expect(template.findOutputs('PipelineNames').PipelineNames?.Value).toBe('listed_scores');
  });

  it('gpuInstanceTypes, maxvCpus and spot: one On-Demand GPU environment of those types, up to 96 vCPUs', () => {
    const environments = resourcesOfType('AWS::Batch::ComputeEnvironment').map(
      (e) => e.Properties.ComputeResources as Record<string, unknown>,
    );
    // spot: false -> no Spot environment at all.
    expect(environments.map((e) => e.Type)).toEqual(['EC2', 'EC2']);
    const gpu = environments.filter((e) => JSON.stringify(e).includes('ECS_AL2023_NVIDIA'));
    expect(gpu).toEqual([
      expect.objectContaining({ InstanceTypes: ['g6e.xlarge', 'g5'], MaxvCpus: 96, MinvCpus: 0 }),
    ]);
  });

  it('workerCpu and workerMemoryMiB: the GPU job definition reserves them', () => {
    expect(jobDefinition('batch-infer-qa-worker').Properties.ContainerProperties).toMatchObject({
      ResourceRequirements: expect.arrayContaining([
        { Type: 'VCPU', Value: '8' },
        { Type: 'MEMORY', Value: '30000' },
        { Type: 'GPU', Value: '1' },
      ]) as unknown,
    });
  });

  it('cpuInstanceTypes, cpuMaxvCpus, cpuWorkerCpu and cpuWorkerMemoryMiB: the CPU environment and job', () => {
    const cpu = resourcesOfType('AWS::Batch::ComputeEnvironment')
      .map((e) => e.Properties.ComputeResources as Record<string, unknown>)
      .filter((e) => !JSON.stringify(e).includes('NVIDIA'));
    expect(cpu).toEqual([expect.objectContaining({ InstanceTypes: ['m7i.2xlarge', 'c7a'], MaxvCpus: 48 })]);
    expect(jobDefinition('batch-infer-qa-cpu-worker').Properties.ContainerProperties).toMatchObject({
      ResourceRequirements: expect.arrayContaining([
        { Type: 'VCPU', Value: '4' },
        { Type: 'MEMORY', Value: '8192' },
      ]) as unknown,
    });
  });

  it('attemptTimeoutMinutes: the attempt timeout of both job definitions', () => {
    for (const name of ['batch-infer-qa-worker', 'batch-infer-qa-cpu-worker']) {
      expectIn(jobDefinition(name).Properties.Timeout, name).toEqual({ AttemptDurationSeconds: 45 * 60 });
    }
  });

  it('runnableTimeoutMinutes (and spotRunnableTimeoutMinutes, with spot off): both queues cancel jobs RUNNABLE that long', () => {
    for (const queue of resourcesOfType('AWS::Batch::JobQueue')) {
      const limits = queue.Properties.JobStateTimeLimitActions as { MaxTimeSeconds: number }[];
      expect(limits.length).toBeGreaterThan(0);
      for (const limit of limits) expect(limit.MaxTimeSeconds).toBe(20 * 60);
    }
  });

  it('runTimeoutHours: the state machine times out after 6 hours', () => {
    const asl = definitionFromTemplate(json, { ref: (id) => id, getAtt: (id) => id });
    expect(asl.TimeoutSeconds).toBe(6 * 3600);
  });

  it('alarmEmail: subscribed to the alarm topic', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'qa-oncall@example.com',
    });
  });

  it('vpc.create: the CIDR, and one isolated subnet in each of 3 zones, with the interface endpoints', () => {
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.80.0.0/16' });
    const subnets = resourcesOfType('AWS::EC2::Subnet');
    expect(subnets).toHaveLength(3);
    for (const subnet of subnets) expect(subnet.Properties.MapPublicIpOnLaunch).toBe(false);
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 8);
    expect(new Set(subnets.map((s) => JSON.stringify(s.Properties.AvailabilityZone))).size).toBe(3);
  });

  it('glueDatabase.existing: Finalize publishes to that database, which the stack neither creates nor owns', () => {
    template.resourceCountIs('AWS::Glue::Database', 0);
    template.resourceCountIs('AWS::Glue::Table', 0);
    const finalize = Object.values(template.findResources('AWS::Lambda::Function')).find((f) =>
      JSON.stringify(f).includes('GLUE_DATABASE_NAME'),
    ) as { Properties: { Environment: { Variables: Record<string, unknown> } } };
    expect(finalize.Properties.Environment.Variables.GLUE_DATABASE_NAME).toBe('corp_lake_qa');
    const glue = iamStatements(json).filter((st) => actionsOf(st).some((a) => a.startsWith('glue:')));
    expect(JSON.stringify(glue.map((st) => st.Resource))).toContain(':database/corp_lake_qa');
  });

  it("lakeFormation: grants Finalize's role on the database, its tables and each registered location", () => {
    const grants = Object.values(template.findResources('AWS::LakeFormation::PrincipalPermissions')) as {
      Properties: { Principal: unknown; Resource: Record<string, unknown>; Permissions: string[] };
    }[];
    expect(grants.map((g) => [Object.keys(g.Properties.Resource)[0], g.Properties.Permissions])).toEqual([
      ['Database', ['CREATE_TABLE', 'DESCRIBE']],
      ['Table', ['ALTER', 'DESCRIBE', 'INSERT']],
      ['DataLocation', ['DATA_LOCATION_ACCESS']],
    ]);
    for (const g of grants) {
      expect(g.Properties.Principal).toEqual({
        DataLakePrincipalIdentifier: {
          'Fn::GetAtt': [expect.stringMatching(/^FinalizeFunction.*Role/), 'Arn'],
        },
      });
    }
    expect(grants[2]!.Properties.Resource).toEqual({
      DataLocation: {
        CatalogId: { Ref: 'AWS::AccountId' },
        ResourceArn: 'arn:aws:s3:::corp-lake/predictions',
      },
    });
  });

  it('removalPolicy: destroy deletes the buckets (emptied first) with the stack', () => {
    for (const type of ['AWS::S3::Bucket']) {
      for (const resource of Object.values(template.findResources(type))) {
        expectIn(resource, type).toMatchObject({ DeletionPolicy: 'Delete' });
      }
    }
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 2);
  });

  it('logRetentionDays: every log group keeps 90 days', () => {
    expect(logicalIdsOfType(json, 'AWS::Logs::LogGroup').length).toBeGreaterThan(3);
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  it("tempDataExpirationDays: the data bucket's tmp/ objects expire after 3 days", () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ Prefix: 'tmp/', ExpirationInDays: 3, Status: 'Enabled' }),
        ]),
      },
    });
  });

  it('modelPackageGroups: Plan may describe the versions of that group too', () => {
    const described = iamStatements(json)
      .filter((s) => actionsOf(s).includes('sagemaker:DescribeModelPackage'))
      .flatMap((s) => resourcesOf(s).map(flattenForNag));
    expect(described).toEqual([expect.stringMatching(/:model-package\/fraud-scorer\/\*$/)]);
  });

  it('modelArtifactUris: Plan and the workers read both locations, and nothing may write them', () => {
    const bucket = logicalIdsOfType(json, 'AWS::S3::Bucket').find((id) => id.startsWith('DataLakeBucket'))!;
    const artifacts = [`<${bucket}.Arn>/artifacts/*`, 'arn:<AWS::Partition>:s3:::corp-models/onnx/*'];
    for (const prefix of ['PlanFunctionRole', 'GpuComputeJobRole']) {
      const role = logicalIdsOfType(json, 'AWS::IAM::Role').find((id) => id.startsWith(prefix))!;
      const statements = roleStatements(json, role);
      const readable = statements
        .filter((s) => s.Effect === 'Allow' && actionsOf(s).includes('s3:GetObject'))
        .flatMap((s) => resourcesOf(s).map(flattenForNag));
      expectIn(readable, prefix).toEqual(expect.arrayContaining(artifacts));
      const denied = statements
        .filter((s) => s.Effect === 'Deny')
        .flatMap((s) => resourcesOf(s).map(flattenForNag));
      expectIn(denied, prefix).toEqual(expect.arrayContaining(artifacts));
    }
  });

  it('driftThreshold: the drift alarm fires above 0.35', () => {
    const drift = resourcesOfType('AWS::CloudWatch::Alarm').filter((a) =>
      String(a.Properties.AlarmDescription).includes('drifted'),
    );
    expect(drift).toHaveLength(1);
    expect(drift[0]!.Properties.Threshold).toBe(0.35);
  });

  it('queueDepthMetrics: false -> no queue-depth function, schedule or stuck-queue alarm', () => {
    expect(logicalIdsOfType(json, 'AWS::Lambda::Function').some((id) => id.includes('QueueDepth'))).toBe(
      false,
    );
    const descriptions = resourcesOfType('AWS::CloudWatch::Alarm').map((a) =>
      String(a.Properties.AlarmDescription),
    );
    expect(descriptions.filter((d) => d.includes('RUNNABLE'))).toEqual([]);
  });

  it("manifestObjects: Plan and the workers may read the listed objects' prefix, read-only, and only they", () => {
    const onExports = iamStatements(json).filter((s) =>
      resourcesOf(s).some((r) => flattenForNag(r).includes(':s3:::corp-exports/')),
    );
    expect(new Set(onExports.map((s) => s.policy.replace(/[0-9A-F]{8}$/, '')))).toEqual(
      new Set(['PlanFunctionRoleDefaultPolicy', 'GpuComputeJobRoleDefaultPolicy']),
    );
    for (const s of onExports) {
      expect(actionsOf(s)).toEqual(['s3:GetObject']);
      expect(resourcesOf(s).map(flattenForNag)).toContain('arn:<AWS::Partition>:s3:::corp-exports/daily/*');
    }
  });
});

describe('an imported VPC and data bucket, a pipeline reading another bucket, On-Demand only', () => {
  let synthesized: SynthesizedApp;
  let template: Template;
  beforeAll(() => {
    synthesized = synthApp({ bundling: false, config: { ...IMPORTED, pipelinesDir: dir } });
    template = Template.fromJSON(synthesized.template);
  }, 120_000);
  afterAll(() => synthesized?.cleanup());

  it('creates no VPC and no data bucket, but the endpoints in the imported VPC', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcId: 'vpc-0123456789abcdef0',
      VpcEndpointType: 'Gateway',
    });
  });

  it('runs On-Demand only', () => {
    template.resourceCountIs('AWS::Batch::ComputeEnvironment', 2);
    template.allResourcesProperties('AWS::Batch::ComputeEnvironment', {
      ComputeResources: Match.objectLike({ Type: 'EC2' }),
    });
  });

  it('watches the other bucket, and grants exactly the pipeline input prefix there, read-only', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({
        detail: {
          bucket: { name: ['corp-landing'] },
          object: { key: [{ wildcard: 'exports/scores/*.jsonl' }], size: [{ numeric: ['>', 0] }] },
        },
      }),
    });
    const onLanding = iamStatements(synthesized.template).filter((s) =>
      JSON.stringify(s.Resource).includes('corp-landing/'),
    );
    expect(onLanding.length).toBeGreaterThan(0);
    for (const s of onLanding) {
      expect(actionsOf(s)).toEqual(['s3:GetObject']);
      expect(JSON.stringify(s.Resource)).toContain(':s3:::corp-landing/exports/scores/*');
    }
  });

  it('uses the imported bucket for outputs (the table location Finalize registers is the output uri)', () => {
    expect(JSON.stringify(synthesized.template)).toContain('s3://corp-ml-data/predictions/landing_scores/');
    template.resourceCountIs('AWS::Glue::Table', 0);
  });

  it('subscribes the alarm email and skips queue-depth metrics', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ml-oncall@example.com',
    });
    template.resourceCountIs('AWS::Lambda::Function', 4);
  });
});

describe('a disposable stage (removalPolicy: destroy)', () => {
  let synthesized: SynthesizedApp;
  let template: Template;
  beforeAll(() => {
    synthesized = synthApp({
      bundling: false,
      config: { stage: 'sandbox', removalPolicy: 'destroy', logRetentionDays: 7 },
    });
    template = Template.fromJSON(synthesized.template);
  }, 120_000);
  afterAll(() => synthesized?.cleanup());

  it('deletes and empties the buckets, deletes the tables and log groups with the stack', () => {
    for (const type of [
      'AWS::S3::Bucket',
      'AWS::Glue::Table',
      'AWS::Glue::Database',
      'AWS::Logs::LogGroup',
    ]) {
      for (const resource of Object.values(template.findResources(type)))
        expectIn(resource, type).toMatchObject({ DeletionPolicy: 'Delete' });
    }
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 2);
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 7 });
  });

  it('names everything after the stage', () => {
    expect(synthesized.stack.stackName).toBe('BatchInfer-sandbox');
    template.hasResourceProperties('AWS::Glue::Database', {
      DatabaseInput: Match.objectLike({
        Name: { 'Fn::Join': ['_', ['batch_infer_sandbox', Match.anyValue()]] },
      }),
    });
    template.hasResourceProperties('AWS::Batch::JobQueue', { JobQueueName: 'batch-infer-sandbox-gpu' });
  });
});

describe('an invalid deployment fails the synth with a precise message', () => {
  const deploy = (config: Record<string, unknown>) => () =>
    addDeployment(
      new App({
        context: {
          ...cdkJsonContext(),
          batchInfer: { ...(cdkJsonContext().batchInfer as object), ...config },
        },
        builtinCloudFormationValidation: false,
      }),
    );

  it('names the configuration key, the value and the fix', () => {
    expect(deploy({ maxvCpus: 0 })).toThrow(
      /batchInfer\.maxvCpus: got 0; .*Fix: use a whole number of vCPUs/,
    );
  });

  it('rejects a pipeline writing into a model artifact location (read-only for every role), naming both and the fix', () => {
    const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-deployment-'));
    try {
      fs.writeFileSync(
        path.join(bad, 'p.yaml'),
        PIPELINE.replace('predictions/landing_scores/', 'models/landing_scores/out/'),
      );
      expect(deploy({ pipelinesDir: bad })).toThrow(
        /p\.yaml: output\.uri s3:\/\/\$\{dataBucket\}\/models\/landing_scores\/out\/ overlaps the model artifact location s3:\/\/\$\{dataBucket\}\/models\/ \(modelArtifactUris\), which is read-only .*Fix: write the output elsewhere/,
      );
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });

  it('names the pipeline file, the field, the value and the fix', () => {
    const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-deployment-'));
    try {
      fs.writeFileSync(
        path.join(bad, 'p.yaml'),
        PIPELINE.replace('s3://corp-landing/exports/scores/', 'exports/'),
      );
      expect(deploy({ pipelinesDir: bad })).toThrow(
        /p\.yaml[\s\S]*input\.uri: relative paths are only allowed in a spec file/,
      );
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });
});
