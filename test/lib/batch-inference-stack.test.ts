/**
 * The deployed stack, synthesized once like `cdk synth` (cdk.json context, bin/app.ts's config) but with
 * function bundling skipped: resources, grants, outputs, and that it runs the same definition as the local
 * orchestrator.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKER_IMAGE_EXCLUDE } from '../../lib/constructs/gpu-compute.js';
import { WORKFLOW_STATES } from '../../lib/constructs/inference-workflow.js';
import { REPO_ROOT } from '../../lib/paths.js';
import { normalizeDefinitionArns, renderWorkflowDefinition } from '../../lib/workflow-definition.js';
import { deployedDefinition, logicalIdsOfType, statesOf, synthApp } from './helpers.js';
import type { SynthesizedApp } from './helpers.js';

let synthesized: SynthesizedApp;
let template: Template;
let json: Record<string, unknown>;

beforeAll(() => {
  synthesized = synthApp({ bundling: false });
  json = synthesized.template;
  template = Template.fromJSON(json);
});

afterAll(() => synthesized.cleanup());

interface AssetManifest {
  readonly files: Record<string, { readonly source: { readonly path: string; readonly packaging?: string } }>;
  readonly dockerImages: Record<
    string,
    {
      readonly source: {
        readonly directory: string;
        readonly dockerFile?: string;
        readonly platform?: string;
      };
    }
  >;
}

function assetManifest(): AssetManifest {
  const file = path.join(synthesized.outdir, `${synthesized.stack.artifactId}.assets.json`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as AssetManifest;
}

function onlyLogicalId(type: string, prefix: string): string {
  const ids = logicalIdsOfType(json, type).filter((id) => id.startsWith(prefix));
  expect(ids).toHaveLength(1);
  return ids[0]!;
}

describe('BatchInferenceStack', () => {
  it('runs the same definition as the local orchestrator, apart from resource ARNs (local = deployed)', () => {
    const deployed = normalizeDefinitionArns(deployedDefinition(json));
    const local = normalizeDefinitionArns(renderWorkflowDefinition());
    expect(local).toEqual(deployed);
  });

  it('wires each task to its own function, the GPU queue and the worker job definition', () => {
    const states = statesOf(deployedDefinition(json));
    const getArn = (prefix: string) => `\${${onlyLogicalId('AWS::Lambda::Function', prefix)}.Arn}`;
    expect(states[WORKFLOW_STATES.plan]?.Parameters?.FunctionName).toBe(getArn('PlanFunction'));
    expect(states[WORKFLOW_STATES.reconcile]?.Parameters?.FunctionName).toBe(getArn('ReconcileFunction'));
    expect(states[WORKFLOW_STATES.finalize]?.Parameters?.FunctionName).toBe(getArn('FinalizeFunction'));
    const queue = onlyLogicalId('AWS::Batch::JobQueue', 'GpuCompute');
    const jobDefinition = onlyLogicalId('AWS::Batch::JobDefinition', 'GpuCompute');
    for (const name of [WORKFLOW_STATES.inferShard, WORKFLOW_STATES.inferShards]) {
      expect(states[name]?.Parameters?.JobQueue).toBe(`\${${queue}.JobQueueArn}`);
      expect(states[name]?.Parameters?.JobDefinition).toBe(`\${Ref:${jobDefinition}}`);
    }
  });

  it('NodeFunctions run Node 22 on arm64 with active tracing, source maps and a service name', () => {
    const functions = template.findResources('AWS::Lambda::Function');
    expect(Object.keys(functions)).toHaveLength(3);
    for (const fn of Object.values(functions)) {
      expect(fn).toMatchObject({
        Properties: {
          Runtime: 'nodejs22.x',
          Architectures: ['arm64'],
          TracingConfig: { Mode: 'Active' },
          Handler: 'index.handler',
          Environment: {
            Variables: { NODE_OPTIONS: '--enable-source-maps', POWERTOOLS_SERVICE_NAME: 'batch-infer' },
          },
          LoggingConfig: { LogGroup: { Ref: expect.any(String) as string } },
        },
      });
    }
  });

  it('Finalize knows the Glue database', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          GLUE_DATABASE_NAME: { Ref: onlyLogicalId('AWS::Glue::Database', 'DataLake') },
        }),
      },
    });
  });

  it('the worker job definition retries spot reclaims and image pulls, exits otherwise, 3 attempts', () => {
    template.hasResourceProperties('AWS::Batch::JobDefinition', {
      RetryStrategy: {
        Attempts: 3,
        EvaluateOnExit: [
          { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
          { Action: 'RETRY', OnReason: 'CannotPullContainerError:*' },
          { Action: 'EXIT', OnReason: '*' },
        ],
      },
      Timeout: { AttemptDurationSeconds: 7200 },
      PlatformCapabilities: ['EC2'],
      ContainerProperties: Match.objectLike({
        ResourceRequirements: Match.arrayWith([{ Type: 'GPU', Value: '1' }]),
      }),
    });
  });

  it('the compute environment scales GPU instances from zero on the NVIDIA AL2023 AMI, on spot by default', () => {
    template.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      Type: 'managed',
      ComputeResources: Match.objectLike({
        Type: 'SPOT',
        MinvCpus: 0,
        MaxvCpus: 64,
        InstanceTypes: ['g5.xlarge', 'g5.2xlarge', 'g6.xlarge', 'g6.2xlarge'],
        Ec2Configuration: [{ ImageType: 'ECS_AL2023_NVIDIA' }],
      }),
    });
  });

  it('the data bucket is encrypted, versioned, private and TLS-only', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: Match.objectLike({}),
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('puts workers in private subnets of two AZs with an S3 gateway endpoint', () => {
    template.resourceCountIs('AWS::EC2::Subnet', 4);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway' });
  });

  it('grants no wildcard actions', () => {
    const policies = template.findResources('AWS::IAM::Policy');
    const actions = Object.values(policies).flatMap((policy) => {
      const statements = (
        policy as { Properties: { PolicyDocument: { Statement: { Action: string | string[] }[] } } }
      ).Properties.PolicyDocument.Statement;
      return statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    });
    expect(actions.length).toBeGreaterThan(0);
    for (const action of actions) expect(action).not.toMatch(/^\*$|:\*$/);
  });

  it("scopes Finalize's Glue actions to the catalog, the database and its tables", () => {
    const policies = Object.values(template.findResources('AWS::IAM::Policy'));
    const glueStatements = policies.flatMap((policy) =>
      (
        policy as {
          Properties: { PolicyDocument: { Statement: { Action: string | string[]; Resource: unknown }[] } };
        }
      ).Properties.PolicyDocument.Statement.filter((s) =>
        (Array.isArray(s.Action) ? s.Action : [s.Action]).some((a) => a.startsWith('glue:')),
      ),
    );
    expect(glueStatements).toHaveLength(1);
    const resources = JSON.stringify(glueStatements[0]!.Resource);
    expect(resources).toContain(':catalog');
    expect(resources).toContain(':database/batch_infer_dev');
    expect(resources).toContain(':table/batch_infer_dev/*');
  });

  it('has the StateMachineArn, DataBucketName and GlueDatabaseName outputs', () => {
    expect(Object.keys(template.findOutputs('*')).sort()).toEqual(
      ['DataBucketName', 'GlueDatabaseName', 'StateMachineArn'].sort(),
    );
  });

  it('skips function bundling when aws:cdk:bundling-stacks is []: function assets point at the sources', () => {
    const files = Object.values(assetManifest().files);
    const zips = files.filter((file) => file.source.packaging === 'zip');
    expect(zips).toHaveLength(3);
    // Bundled assets would be staged as asset.<hash> folders holding index.mjs.
    for (const zip of zips) expect(zip.source.path).toBe(REPO_ROOT);
  });

  it('stages the worker image context without Docker: the repository allowlist only', () => {
    const images = Object.values(assetManifest().dockerImages);
    expect(images).toHaveLength(1);
    const { source } = images[0]!;
    expect(source.dockerFile).toBe('containers/worker/Dockerfile');
    expect(source.platform).toBe('linux/amd64');
    const context = path.join(synthesized.outdir, source.directory);
    expect(fs.readdirSync(context).sort()).toEqual(
      ['.dockerignore', 'containers', 'package-lock.json', 'package.json', 'src', 'tsconfig.json'].sort(),
    );
    expect(fs.readdirSync(path.join(context, 'containers'))).toEqual(['worker']);
  });

  it('.dockerignore matches the asset exclude list, so docker build and cdk deploy build the same context', () => {
    const lines = fs
      .readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    expect(lines).toEqual([...WORKER_IMAGE_EXCLUDE]);
  });
});
