/**
 * Deployments other than the example, synthesized as `cdk synth` does (cdk-nag included): an imported VPC and data
 * bucket with a pipeline reading another bucket, On-Demand only; a disposable stage (removalPolicy: destroy); and
 * invalid deployments, which fail the synth with a precise message.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDeployment } from '../../lib/deployment.js';
import { actionsOf, cdkJsonContext, iamStatements, synthApp, type SynthesizedApp } from './helpers.js';

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

  it('uses the imported bucket for outputs and tables', () => {
    template.hasResourceProperties('AWS::Glue::Table', {
      TableInput: Match.objectLike({
        Name: 'landing_scores',
        StorageDescriptor: Match.objectLike({ Location: 's3://corp-ml-data/predictions/landing_scores/' }),
      }),
    });
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
        expect(resource, type).toMatchObject({ DeletionPolicy: 'Delete' });
    }
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 2);
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 7 });
  });

  it('names everything after the stage', () => {
    expect(synthesized.stack.stackName).toBe('BatchInfer-sandbox');
    template.hasResourceProperties('AWS::Glue::Database', {
      DatabaseInput: Match.objectLike({ Name: 'batch_infer_sandbox' }),
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
