/**
 * The example deployment (cdk.json's configuration, the two pipelines of pipelines/), synthesized once like
 * `cdk synth` (cdk-nag included) with function bundling skipped: every item a security reviewer and an on-call
 * engineer look for, read from the template, and that each pipeline runs the same definition as the local
 * orchestrator.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { readValidationReport, violationsOf } from '../support/validation-report.js';
import { WORKER_IMAGE_EXCLUDE } from '../../lib/constructs/gpu-compute.js';
import { WORKFLOW_STATES } from '../../lib/constructs/inference-workflow.js';
import { REPO_ROOT } from '../../lib/paths.js';
import { DATA_BUCKET_STANDIN, loadPipelines, pipelineOutputKeys } from '../../lib/pipelines.js';
import { flattenForNag } from '../../lib/nag.js';
import { normalizeDefinitionArns, renderWorkflowDefinition } from '../../lib/workflow-definition.js';
import { CODE_VERSION_ENV, WORKER_IMAGE_ENV } from '../../src/results/code-version.js';
import {
  functionLogGroupsSchema,
  pipelineOperateOutputKeys,
  pipelineOperateSchema,
  STACK_OUTPUT_KEYS,
} from '../../src/operate/stack-outputs.js';
import {
  actionsOf,
  deployedDefinitions,
  iamStatements,
  logicalIdsOfType,
  resourcesOf,
  roleStatements,
  statesOf,
  synthApp,
} from './helpers.js';
import type { SynthesizedApp } from './helpers.js';

let synthesized: SynthesizedApp;
let template: Template;
let json: Record<string, unknown>;
let resources: Record<
  string,
  { Type: string; Properties: Record<string, unknown>; Metadata?: Record<string, unknown> }
>;

beforeAll(() => {
  // Throws if any cdk-nag finding is not acknowledged, as `cdk synth` does.
  synthesized = synthApp({ bundling: false });
  json = synthesized.template;
  template = Template.fromJSON(json);
  resources = json.Resources as typeof resources;
}, 120_000);

afterAll(() => synthesized?.cleanup());

const PIPELINES = ['breast_cancer', 'breast_cancer_daily'] as const;

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

/** Evaluates the intrinsics a CloudFormation name can be made of (Ref AWS::StackId, Fn::Join, Fn::Select, Fn::Split). */
function evaluate(value: unknown, stackId: string): string {
  const ev = (v: unknown): unknown => {
    if (typeof v === 'string') return v;
    if (Array.isArray(v)) return v.map(ev);
    const o = v as Record<string, unknown[]>;
    if ((o as { Ref?: string }).Ref === 'AWS::StackId') return stackId;
    if (o['Fn::Join']) return (ev(o['Fn::Join'][1]) as string[]).join(o['Fn::Join'][0] as string);
    if (o['Fn::Split']) return (ev(o['Fn::Split'][1]) as string).split(o['Fn::Split'][0] as string);
    if (o['Fn::Select']) return (ev(o['Fn::Select'][1]) as unknown[])[Number(o['Fn::Select'][0])];
    throw new Error(`Cannot evaluate ${JSON.stringify(v)}`);
  };
  const out = ev(value);
  if (typeof out !== 'string') throw new Error(`${JSON.stringify(value)} is not a string`);
  return out;
}

function onlyLogicalId(type: string, prefix: string): string {
  const ids = logicalIdsOfType(json, type).filter((id) => id.startsWith(prefix));
  expectIn(ids, `${type} ${prefix}*`).toHaveLength(1);
  return ids[0]!;
}

function stateMachineId(pipeline: string): string {
  const prefix = `Pipeline${pipeline.replace(/(^|_)([a-z])/g, (_m, _s: string, c: string) => c.toUpperCase())}StateMachine`;
  return logicalIdsOfType(json, 'AWS::StepFunctions::StateMachine').find((id) =>
    new RegExp(`^${prefix}[0-9A-F]{8}$`).test(id),
  )!;
}

describe('cdk-nag AwsSolutions', () => {
  it('synthesizes with no unacknowledged finding: the report exists and lists no violation', () => {
    // The synth above throws on an unacknowledged error; the report must exist (the plugin ran) and hold no
    // violation of any severity, warnings included.
    expect(violationsOf(readValidationReport(synthesized.outdir))).toEqual([]);
  });

  it('acknowledges findings one by one, each with a specific reason written next to the resource', () => {
    const acknowledged = Object.values(resources)
      .flatMap(
        (r) =>
          (r.Metadata?.cdk_nag as { rules_to_suppress?: { id: string; reason: string }[] })
            ?.rules_to_suppress ?? [],
      )
      // aws-cdk-lib acknowledges some of its built-in CloudFormation validation rules on its own constructs.
      .filter((a) => a.id.startsWith('AwsSolutions-'));
    expect(acknowledged.length).toBeGreaterThan(0);
    for (const { id, reason } of acknowledged) {
      // Wildcard findings are acknowledged by the exact resource or policy, never the rule as a whole.
      if (/IAM[45]/.test(id)) expect(id).toMatch(/^AwsSolutions-IAM[45]\[(Resource|Policy)::.+\]$/);
      expectIn(reason.length, id).toBeGreaterThan(60);
    }
    expect(new Set(acknowledged.map((a) => a.id.replace(/\[.*$/, '')))).toEqual(
      new Set(['AwsSolutions-IAM4', 'AwsSolutions-IAM5', 'AwsSolutions-SQS3']),
    );
  });
});

describe('pipelines', () => {
  it('deploys one state machine per pipeline', () => {
    // And the upload windows' timer of the batching S3 trigger (breast_cancer's).
    template.resourceCountIs('AWS::StepFunctions::StateMachine', PIPELINES.length + 1);
    expect(onlyLogicalId('AWS::StepFunctions::StateMachine', 'TriggersWindowTimer')).toBeDefined();
    for (const pipeline of PIPELINES) expectIn(stateMachineId(pipeline), pipeline).toBeDefined();
  });

  it('runs the same definition as the local orchestrator, apart from resource ARNs (local = deployed), for every pipeline', () => {
    const local = normalizeDefinitionArns(renderWorkflowDefinition());
    const deployed = deployedDefinitions(json);
    for (const pipeline of PIPELINES) {
      expectIn(normalizeDefinitionArns(deployed[stateMachineId(pipeline)]!), pipeline).toEqual(local);
    }
  });

  it("expires each pipeline's unpublished predictions (staging), and nothing published", () => {
    const bucket = Object.entries(resources).find(
      ([id, r]) => r.Type === 'AWS::S3::Bucket' && id.startsWith('DataLakeBucket'),
    )![1];
    const rules = (bucket.Properties.LifecycleConfiguration as { Rules: { Prefix?: string }[] }).Rules;
    const staged = rules.filter((r) => r.Prefix?.includes('_staging/')).map((r) => r.Prefix);
    const outputs = synthesized.stack.pipelineLocations
      .filter((l) => PIPELINES.includes(l.pipeline as (typeof PIPELINES)[number]))
      .map((l) => l.output.keyPrefix);
    expect(outputs).toHaveLength(PIPELINES.length);
    expect(staged.sort()).toEqual(
      [...new Set(outputs)].flatMap((o) => [`${o}_staging/`, `${o}_challenger/_staging/`]).sort(),
    );
  });

  it('cancels first-round (Spot) jobs RUNNABLE after spotRunnableTimeoutMinutes, retry-round ones after runnableTimeoutMinutes', () => {
    const limits = Object.fromEntries(
      Object.values(template.findResources('AWS::Batch::JobQueue')).map((q) => {
        const props = (q as { Properties: Record<string, unknown> }).Properties;
        const actions = props.JobStateTimeLimitActions as { MaxTimeSeconds: number }[];
        return [props.JobQueueName as string, [...new Set(actions.map((l) => l.MaxTimeSeconds))]];
      }),
    );
    expect(limits).toEqual({
      'batch-infer-dev-gpu': [15 * 60],
      'batch-infer-dev-cpu': [15 * 60],
      'batch-infer-dev-gpu-ondemand': [60 * 60],
      'batch-infer-dev-cpu-ondemand': [60 * 60],
    });
  });

  it('wires every pipeline to the shared functions, the GPU and CPU queues and their job definitions', () => {
    const getArn = (prefix: string) => `\${${onlyLogicalId('AWS::Lambda::Function', prefix)}.Arn}`;
    const gpuQueue = `\${${onlyLogicalId('AWS::Batch::JobQueue', 'GpuComputeJobQueue')}.JobQueueArn}`;
    const cpuQueue = `\${${onlyLogicalId('AWS::Batch::JobQueue', 'GpuComputeCpuJobQueue')}.JobQueueArn}`;
    const gpuJob = `\${Ref:${onlyLogicalId('AWS::Batch::JobDefinition', 'GpuComputeJobDefinition')}}`;
    const cpuJob = `\${Ref:${onlyLogicalId('AWS::Batch::JobDefinition', 'GpuComputeCpuJobDefinition')}}`;
    const deployed = deployedDefinitions(json);
    for (const pipeline of PIPELINES) {
      const states = statesOf(deployed[stateMachineId(pipeline)]!);
      expect(states[WORKFLOW_STATES.plan]?.Parameters?.FunctionName).toBe(getArn('PlanFunction'));
      expect(states[WORKFLOW_STATES.reconcile]?.Parameters?.FunctionName).toBe(getArn('ReconcileFunction'));
      expect(states[WORKFLOW_STATES.finalize]?.Parameters?.FunctionName).toBe(getArn('FinalizeFunction'));
      for (const name of [WORKFLOW_STATES.inferShard, WORKFLOW_STATES.inferShards]) {
        expect(states[name]?.Parameters).toMatchObject({ JobQueue: gpuQueue, JobDefinition: gpuJob });
      }
      const queue = (prefix: string) => `\${${onlyLogicalId('AWS::Batch::JobQueue', prefix)}.JobQueueArn}`;
      // Retry rounds: the On-Demand queues.
      for (const name of [WORKFLOW_STATES.inferShardOnDemand, WORKFLOW_STATES.inferShardsOnDemand]) {
        expectIn(states[name]?.Parameters, name).toMatchObject({
          JobQueue: queue('GpuComputeOnDemandJobQueue'),
          JobDefinition: gpuJob,
        });
      }
      for (const name of [
        WORKFLOW_STATES.inferShardOnCpuOnDemand,
        WORKFLOW_STATES.inferShardsOnCpuOnDemand,
      ]) {
        expectIn(states[name]?.Parameters, name).toMatchObject({
          JobQueue: queue('GpuComputeCpuOnDemandJobQueue'),
          JobDefinition: cpuJob,
        });
      }
      for (const name of [WORKFLOW_STATES.inferShardOnCpu, WORKFLOW_STATES.inferShardsOnCpu]) {
        expect(states[name]?.Parameters).toMatchObject({ JobQueue: cpuQueue, JobDefinition: cpuJob });
      }
    }
  });

  it('logs every execution at level ALL to a log group with retention, traced with X-Ray', () => {
    const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
    for (const machine of machines) {
      expect(machine).toMatchObject({
        Properties: {
          StateMachineType: 'STANDARD',
          TracingConfiguration: { Enabled: true },
          LoggingConfiguration: {
            Level: 'ALL',
            IncludeExecutionData: true,
            Destinations: [
              { CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [expect.any(String), 'Arn'] } } },
            ],
          },
        },
      });
    }
    for (const group of Object.values(template.findResources('AWS::Logs::LogGroup'))) {
      expect(group).toMatchObject({ Properties: { RetentionInDays: 30 } });
    }
  });

  it('declares no Glue table: Finalize alone creates and updates each pipeline table (ADR 0017)', () => {
    // A table in the template would have two owners, and every deploy would revert what Finalize wrote.
    template.resourceCountIs('AWS::Glue::Table', 0);
    const outputs = template.findOutputs('*');
    for (const p of PIPELINES) {
      expectIn(outputs[pipelineOutputKeys(p).table]?.Value, p).toBe(p);
      expectIn(outputs[pipelineOutputKeys(p).runsTable]?.Value, p).toBe(`${p}_runs`);
    }
  });

  it('names the Glue database after the stage and the stack id, so a stack created again gets a new database', () => {
    const [db] = Object.values(template.findResources('AWS::Glue::Database')) as {
      Properties: { DatabaseInput: { Name: unknown } };
    }[];
    const nameIn = (stackId: string): string => evaluate(db!.Properties.DatabaseInput.Name, stackId);
    const first = nameIn(
      'arn:aws:cloudformation:eu-west-1:123456789012:stack/BatchInfer-dev/1c2fa620-982a-11e3-aff7-50e2416294e0',
    );
    // The same stack name, created again after a destroy that retained the first database.
    const second = nameIn(
      'arn:aws:cloudformation:eu-west-1:123456789012:stack/BatchInfer-dev/9b7e2c10-0d4f-11ef-8a1b-0a58a9feac02',
    );
    expect(first).toBe('batch_infer_dev_1c2fa620');
    expect(second).toBe('batch_infer_dev_9b7e2c10');
    expect(second).toMatch(/^[a-z0-9_]{1,255}$/);
  });

  it('starts each pipeline with its validated spec, the data bucket resolved at deploy time', () => {
    const [pipeline] = loadPipelines(path.join(REPO_ROOT, 'pipelines'));
    const bucket = onlyLogicalId('AWS::S3::Bucket', 'DataLakeBucket');
    const rule = Object.values(resources).find(
      (r) => r.Type === 'AWS::Events::Rule' && JSON.stringify(r.Properties).includes('"trigger\\":\\"s3\\"'),
    )!;
    const transformer = (rule.Properties.Targets as { InputTransformer: { InputTemplate: unknown } }[])[0]!
      .InputTransformer;
    const parts = (transformer.InputTemplate as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const text = parts
      .map((p) =>
        typeof p === 'string'
          ? p
          : JSON.stringify(p) === JSON.stringify({ Ref: bucket })
            ? DATA_BUCKET_STANDIN
            : '?',
      )
      .join('');
    const input = JSON.parse(text.replace('<detail>', '{}')) as { spec: unknown; stateMachineArn: string };
    expect(input.spec).toEqual(JSON.parse(JSON.stringify(pipeline!.spec)));
  });
});

describe('triggers', () => {
  const bucketRef = () => ({ Ref: onlyLogicalId('AWS::S3::Bucket', 'DataLakeBucket') });

  it('starts breast_cancer on each new incoming/breast_cancer/*.csv object of the data bucket', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: {
          bucket: { name: [bucketRef()] },
          object: { key: [{ wildcard: 'incoming/breast_cancer/*.csv' }], size: [{ numeric: ['>', 0] }] },
        },
      },
    });
  });

  it('schedules both pipelines with EventBridge Scheduler, passing the scheduled time', () => {
    const schedules = Object.values(template.findResources('AWS::Scheduler::Schedule')).map(
      (s) =>
        (
          s as {
            Properties: {
              ScheduleExpression: string;
              ScheduleExpressionTimezone: string;
              Target: { Input?: unknown };
            };
          }
        ).Properties,
    );
    const triggers = schedules.filter((s) => s.ScheduleExpression.startsWith('cron('));
    expect(triggers.map((s) => [s.ScheduleExpression, s.ScheduleExpressionTimezone]).sort()).toEqual([
      ['cron(0 6 ? * MON *)', 'Europe/Paris'],
      ['cron(30 2 * * ? *)', 'UTC'],
    ]);
    for (const s of triggers)
      expect(JSON.stringify(s.Target.Input)).toContain('<aws.scheduler.scheduled-time>');
  });

  it('counts bytes under landing/breast_cancer/ for the volume trigger of breast_cancer_daily', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({
        detail: {
          bucket: { name: [bucketRef()] },
          object: { key: [{ prefix: 'landing/breast_cancer/' }], size: [{ numeric: ['>', 0] }] },
        },
      }),
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^TriggersVolumeFunction'), 'Arn'] },
        }),
      ],
    });
  });
});

describe('security', () => {
  it('allows no wildcard action in any IAM policy or resource policy', () => {
    const allow = iamStatements(json).filter((s) => s.Effect === 'Allow');
    expect(allow.length).toBeGreaterThan(20);
    for (const statement of allow) {
      for (const action of actionsOf(statement)) expectIn(action, statement.policy).not.toContain('*');
    }
    // Resource policies too (bucket, topic, queue), except the KMS key policy's delegation to the account (see
    // below) and Deny statements (the TLS-only denies are s3:*, sns:*, sqs:* on purpose).
    for (const type of ['AWS::S3::BucketPolicy', 'AWS::SNS::TopicPolicy', 'AWS::SQS::QueuePolicy']) {
      for (const policy of Object.values(template.findResources(type))) {
        const doc = (
          policy as {
            Properties: { PolicyDocument: { Statement: { Effect: string; Action: string | string[] }[] } };
          }
        ).Properties.PolicyDocument;
        for (const s of doc.Statement.filter((x) => x.Effect === 'Allow')) {
          for (const action of actionsOf(s)) expectIn(action, type).not.toContain('*');
        }
      }
    }
  });

  it("grants each state machine's role exactly what its tasks call; '*' only for log delivery, X-Ray and terminating its jobs", () => {
    // Every revision of a job definition, by name (see test/lib/deploys-and-runs.test.ts).
    const jobDefinitionRevisions = (name: string) => {
      expect(
        Object.values(template.findResources('AWS::Batch::JobDefinition')).map(
          (d) => (d as { Properties: { JobDefinitionName?: string } }).Properties.JobDefinitionName,
        ),
      ).toContain(name);
      return `arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job-definition/${name}:*`;
    };
    const functionArn = (prefix: string) => ({
      'Fn::GetAtt': [onlyLogicalId('AWS::Lambda::Function', prefix), 'Arn'],
    });
    const queueArn = (prefix: string) => ({
      'Fn::GetAtt': [onlyLogicalId('AWS::Batch::JobQueue', prefix), 'JobQueueArn'],
    });
    for (const pipeline of PIPELINES) {
      const machine = resources[stateMachineId(pipeline)]!;
      const roleId = (machine.Properties.RoleArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      const statements = roleStatements(json, roleId);
      expectIn(statements.length, pipeline).toBeGreaterThan(0);
      for (const statement of statements) {
        expect(statement.Effect).toBe('Allow');
        for (const resource of resourcesOf(statement)) {
          const flat = flattenForNag(resource);
          if (!flat.includes('*')) continue;
          if (flat.includes(':job-definition/')) {
            // Every revision of one worker job definition: runs started before a deploy submit the old revision.
            expect(flat).toMatch(/:job-definition\/batch-infer-dev-(cpu-)?worker:\*$/);
            expect(actionsOf(statement)).toEqual(['batch:SubmitJob']);
            continue;
          }
          if (flat.endsWith(':job/*')) {
            // Job ids exist only at run time: stopping an execution terminates its jobs, and nothing else.
            expect(flat).toBe('arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job/*');
            expect(actionsOf(statement)).toEqual(['batch:TerminateJob']);
            continue;
          }
          // Log delivery (logging level ALL), X-Ray tracing and batch:DescribeJobs take no resource ARNs.
          for (const action of actionsOf(statement)) {
            expectIn(action, pipeline).toMatch(/^(logs:|xray:|batch:DescribeJobs$)/);
          }
        }
      }
      const resourcesFor = (action: string) =>
        statements.filter((s) => actionsOf(s).includes(action)).flatMap(resourcesOf);
      expect(resourcesFor('lambda:InvokeFunction')).toEqual(
        expect.arrayContaining(['PlanFunction', 'ReconcileFunction', 'FinalizeFunction'].map(functionArn)),
      );
      expect(resourcesFor('lambda:InvokeFunction')).toHaveLength(3);
      // The two job definitions, by name (batch-infer-<stage>-...), every revision, and the queues.
      expect(resourcesFor('batch:SubmitJob').map(flattenForNag)).toEqual(
        expect.arrayContaining([
          jobDefinitionRevisions('batch-infer-dev-worker'),
          jobDefinitionRevisions('batch-infer-dev-cpu-worker'),
          flattenForNag(queueArn('GpuComputeJobQueue')),
          flattenForNag(queueArn('GpuComputeCpuJobQueue')),
          // Retry rounds' On-Demand queues.
          flattenForNag(queueArn('GpuComputeOnDemandJobQueue')),
          flattenForNag(queueArn('GpuComputeCpuOnDemandJobQueue')),
        ]),
      );
      expect(resourcesFor('batch:SubmitJob')).toHaveLength(6);
      expectIn(resourcesFor('batch:TerminateJob').length, pipeline).toBeGreaterThan(0);
    }
  });

  it('keeps model artifacts read-only: no Allow to write or delete under models/ without a Deny on the same role', () => {
    const writes = ['s3:PutObject', 's3:DeleteObject'];
    const dataBucketObjects = (suffix: string) =>
      `<${onlyLogicalId('AWS::S3::Bucket', 'DataLakeBucket')}.Arn>/${suffix}`;
    const models = dataBucketObjects('models/');
    const roles = logicalIdsOfType(json, 'AWS::IAM::Role');
    let writers = 0;
    for (const role of roles) {
      const statements = roleStatements(json, role);
      const writesModels = statements.some(
        (s) =>
          s.Effect === 'Allow' &&
          actionsOf(s).some((a) => writes.includes(a)) &&
          resourcesOf(s).some((r) => {
            const arn = flattenForNag(r);
            // An object ARN pattern covers models/* when its part before the trailing `*` is a prefix of models/.
            return arn.endsWith('*') && models.startsWith(arn.slice(0, -1));
          }),
      );
      if (!writesModels) continue;
      writers += 1;
      const denied = statements.filter(
        (s) =>
          s.Effect === 'Deny' &&
          resourcesOf(s).some((r) => flattenForNag(r) === dataBucketObjects('models/*')),
      );
      expectIn(denied.flatMap(actionsOf), role).toEqual(
        expect.arrayContaining([...writes, 's3:AbortMultipartUpload']),
      );
    }
    // No role is granted writes that cover models/ (grants are by prefix, see s3-access-table.test.ts) ...
    expect(writers).toBe(0);
    // ... and Plan, Reconcile, Finalize and the workers, which write the data bucket, are denied it all the same.
    const deniedRoles = roles.filter((role) =>
      roleStatements(json, role).some(
        (s) =>
          s.Effect === 'Deny' &&
          actionsOf(s).includes('s3:PutObject') &&
          resourcesOf(s).some((r) => flattenForNag(r) === dataBucketObjects('models/*')),
      ),
    );
    expect(deniedRoles).toHaveLength(4);
  });

  it("the KMS key policy's only wildcard is the default delegation of the key to the account's IAM policies", () => {
    const key = Object.values(template.findResources('AWS::KMS::Key'))[0] as {
      Properties: { KeyPolicy: { Statement: { Action: string | string[]; Principal: unknown }[] } };
    };
    const wildcards = key.Properties.KeyPolicy.Statement.filter((s) =>
      actionsOf(s).some((a) => a.includes('*')),
    );
    expect(wildcards).toEqual([
      expect.objectContaining({
        Action: 'kms:*',
        Principal: {
          AWS: {
            'Fn::Join': [
              '',
              ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':root'],
            ],
          },
        },
      }),
    ]);
  });

  it('uses no AWS managed policy except the ECS agent policy on container instances', () => {
    const managed = Object.values(template.findResources('AWS::IAM::Role')).flatMap(
      (r) =>
        JSON.stringify(
          (r as { Properties: { ManagedPolicyArns?: unknown } }).Properties.ManagedPolicyArns ?? [],
        ).match(/policy\/[^"]+/g) ?? [],
    );
    expect(new Set(managed)).toEqual(new Set(['policy/service-role/AmazonEC2ContainerServiceforEC2Role']));
  });

  it('grants S3 with explicit actions only: read, write, delete and abort on objects, list on buckets', () => {
    const s3Actions = new Set(
      iamStatements(json)
        .flatMap((s) => actionsOf(s))
        .filter((a) => a.startsWith('s3:')),
    );
    expect(s3Actions).toEqual(
      new Set([
        's3:ListBucket',
        's3:GetObject',
        's3:PutObject',
        's3:DeleteObject',
        's3:AbortMultipartUpload',
      ]),
    );
  });

  it("scopes Finalize's Glue actions to the catalog, the stack's database and its tables", () => {
    const glue = iamStatements(json).filter((s) => actionsOf(s).some((a) => a.startsWith('glue:')));
    expect(glue).toHaveLength(1);
    expect(glue[0]!.policy).toMatch(/^FinalizeFunction/);
    const text = JSON.stringify(glue[0]!.Resource);
    expect(text).toContain(':catalog');
    const db = JSON.stringify({ Ref: onlyLogicalId('AWS::Glue::Database', 'DataLake') });
    expect(text).toContain(`":database/",${db}`);
    expect(text).toContain(`":table/",${db},"/*"`);
  });

  it('lets Plan describe only the model package groups the pipelines use', () => {
    const describe = iamStatements(json).filter((s) =>
      actionsOf(s).includes('sagemaker:DescribeModelPackage'),
    );
    expect(describe).toHaveLength(1);
    expect(JSON.stringify(describe[0]!.Resource)).toMatch(/model-package\/breast-cancer-mlp\/\*/);
    expect(describe[0]!.policy).toMatch(/^PlanFunction/);
  });

  it('lets trigger functions start only the pipelines state machines', () => {
    const starts = iamStatements(json).filter((s) => actionsOf(s).includes('states:StartExecution'));
    expect(starts.length).toBeGreaterThan(0);
    for (const s of starts) {
      for (const resource of [s.Resource].flat())
        // A batching S3 trigger's function starts its window timer, which starts nothing itself.
        expect(JSON.stringify(resource)).toMatch(
          /"Ref":"(Pipeline[A-Za-z]+StateMachine|TriggersWindowTimer)[0-9A-F]{8}"/,
        );
    }
  });

  it('encrypts and versions the buckets, denies non-TLS requests, blocks public access, logs access', () => {
    template.resourceCountIs('AWS::S3::Bucket', 2);
    template.allResourcesProperties('AWS::S3::Bucket', {
      BucketEncryption: Match.objectLike({}),
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'data/' }),
    });
    for (const policy of Object.values(template.findResources('AWS::S3::BucketPolicy'))) {
      expect(JSON.stringify(policy)).toContain('"aws:SecureTransport":"false"');
    }
  });
});

/**
 * Resource types that bill by the hour (or month) while they exist, whether or not a run is in flight, and when a
 * resource of the type does. The list is explicit: a new type that bills while idle must be added here to be caught.
 */
const HOURLY_BILLED: readonly {
  readonly type: string;
  readonly why: string;
  readonly billed: (properties: Record<string, unknown>) => boolean;
}[] = [
  { type: 'AWS::EC2::NatGateway', why: 'NAT gateway hours', billed: () => true },
  {
    type: 'AWS::EC2::VPCEndpoint',
    why: 'interface / Gateway Load Balancer endpoint hours per zone (gateway endpoints are free)',
    billed: (p) => p.VpcEndpointType !== 'Gateway',
  },
  { type: 'AWS::EC2::EIP', why: 'public IPv4 address hours', billed: () => true },
  { type: 'AWS::EC2::Instance', why: 'instance hours', billed: () => true },
  {
    type: 'AWS::Batch::ComputeEnvironment',
    why: 'instances kept for minvCpus > 0',
    billed: (p) => Number((p.ComputeResources as { MinvCpus?: unknown } | undefined)?.MinvCpus ?? 0) > 0,
  },
  {
    type: 'AWS::AutoScaling::AutoScalingGroup',
    why: 'instances kept for MinSize > 0',
    billed: (p) => Number(p.MinSize ?? 0) > 0,
  },
  { type: 'AWS::ElasticLoadBalancingV2::LoadBalancer', why: 'load balancer hours', billed: () => true },
  { type: 'AWS::ElasticLoadBalancing::LoadBalancer', why: 'load balancer hours', billed: () => true },
  { type: 'AWS::EC2::TransitGatewayAttachment', why: 'attachment hours', billed: () => true },
  { type: 'AWS::EC2::TransitGatewayVpcAttachment', why: 'attachment hours', billed: () => true },
  { type: 'AWS::EC2::VPNConnection', why: 'VPN connection hours', billed: () => true },
  { type: 'AWS::EC2::ClientVpnEndpoint', why: 'Client VPN association hours', billed: () => true },
  { type: 'AWS::NetworkFirewall::Firewall', why: 'firewall endpoint hours', billed: () => true },
  { type: 'AWS::RDS::DBInstance', why: 'database instance hours', billed: () => true },
  { type: 'AWS::ElastiCache::CacheCluster', why: 'node hours', billed: () => true },
  { type: 'AWS::OpenSearchService::Domain', why: 'instance hours', billed: () => true },
  { type: 'AWS::SageMaker::Endpoint', why: 'instance hours', billed: () => true },
  { type: 'AWS::Redshift::Cluster', why: 'node hours', billed: () => true },
  { type: 'AWS::ECS::Service', why: 'tasks kept running', billed: (p) => Number(p.DesiredCount ?? 1) > 0 },
];

describe('compute and network', () => {
  it('scales to zero: every compute environment has minvCpus 0', () => {
    for (const env of Object.values(template.findResources('AWS::Batch::ComputeEnvironment'))) {
      expect(env).toMatchObject({ Properties: { ComputeResources: { MinvCpus: 0 } } });
    }
  });

  it('has no resource billed by the hour in the default template (HOURLY_BILLED, explicit)', () => {
    const found: string[] = [];
    const resources = (json.Resources ?? {}) as Record<
      string,
      { Type: string; Properties?: Record<string, unknown> }
    >;
    for (const [id, resource] of Object.entries(resources)) {
      const rule = HOURLY_BILLED.find((r) => r.type === resource.Type);
      if (rule && rule.billed(resource.Properties ?? {})) found.push(`${id} (${resource.Type}: ${rule.why})`);
    }
    expect(found).toEqual([]);
  });

  it('counts what HOURLY_BILLED would catch: the isolated network has seven interface endpoints', () => {
    // The check above must be able to fail: the same rules find the endpoints of the isolated option.
    const rule = HOURLY_BILLED.find((r) => r.type === 'AWS::EC2::VPCEndpoint')!;
    expect(rule.billed({ VpcEndpointType: 'Interface' })).toBe(true);
    expect(rule.billed({ VpcEndpointType: 'Gateway' })).toBe(false);
    expect(
      HOURLY_BILLED.find((r) => r.type === 'AWS::Batch::ComputeEnvironment')!.billed({
        ComputeResources: { MinvCpus: 4 },
      }),
    ).toBe(true);
  });

  it('puts workers in public subnets of two zones, with no inbound access, and the S3 gateway endpoint only', () => {
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    template.allResourcesProperties('AWS::EC2::Subnet', { MapPublicIpOnLaunch: true });
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 1);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway' });
    for (const group of Object.values(template.findResources('AWS::EC2::SecurityGroup'))) {
      expect(
        (group as { Properties: Record<string, unknown> }).Properties.SecurityGroupIngress,
      ).toBeUndefined();
    }
    template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
  });

  it('retries spot reclaims and image pulls, exits otherwise, on both job definitions', () => {
    template.allResourcesProperties('AWS::Batch::JobDefinition', {
      RetryStrategy: {
        Attempts: 3,
        EvaluateOnExit: [
          { Action: 'EXIT', OnExitCode: '78' }, // DETERMINISTIC_EXIT_CODE: never retried
          { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
          { Action: 'RETRY', OnReason: 'CannotPullContainerError:*' },
          { Action: 'EXIT', OnReason: '*' },
        ],
      },
      Timeout: { AttemptDurationSeconds: 7200 },
    });
  });
});

describe('functions', () => {
  it('runs every function on Node 24 arm64, traced, with its own log group and the Powertools settings', () => {
    const functions = Object.values(template.findResources('AWS::Lambda::Function'));
    // plan, reconcile, finalize, trigger, volume, window, queue depth.
    expect(functions).toHaveLength(7);
    for (const fn of functions) {
      expect(fn).toMatchObject({
        Properties: {
          Runtime: 'nodejs24.x',
          Architectures: ['arm64'],
          TracingConfig: { Mode: 'Active' },
          LoggingConfig: { LogGroup: { Ref: expect.any(String) } },
          Environment: {
            Variables: expect.objectContaining({
              NODE_OPTIONS: '--enable-source-maps',
              POWERTOOLS_SERVICE_NAME: 'batch-infer',
              POWERTOOLS_METRICS_NAMESPACE: 'BatchInfer',
            }) as unknown,
          },
        },
      });
    }
  });

  it('tells Finalize the Glue database and where run records go', () => {
    const bucket = onlyLogicalId('AWS::S3::Bucket', 'DataLakeBucket');
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          GLUE_DATABASE_NAME: { Ref: onlyLogicalId('AWS::Glue::Database', 'DataLake') },
          AUDIT_RUNS_URI: { 'Fn::Join': ['', ['s3://', { Ref: bucket }, '/audit/runs/']] },
        }),
      },
    });
  });

  it('tells Finalize the code version and the worker image it records in each manifest', () => {
    const finalize = resources[onlyLogicalId('AWS::Lambda::Function', 'FinalizeFunction')]!;
    const variables = (finalize.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(variables[CODE_VERSION_ENV]).toMatch(/^batch-infer@\d+\.\d+\.\d+/);
    // The worker image asset's URI: the CDK assets repository, tagged with the image's hash.
    expect(JSON.stringify(variables[WORKER_IMAGE_ENV])).toMatch(/container-assets-.*:[0-9a-f]{64}/);
  });

  it('lets Reconcile list and describe Batch jobs (why the children of a failed round failed)', () => {
    const role = onlyLogicalId('AWS::IAM::Role', 'ReconcileFunctionRole');
    const actions = roleStatements(json, role)
      .filter((s) => s.Effect === 'Allow')
      .flatMap(actionsOf);
    expect(actions).toEqual(expect.arrayContaining(['batch:ListJobs', 'batch:DescribeJobs']));
  });

  it('skips function bundling when aws:cdk:bundling-stacks is []: function assets point at the sources', () => {
    const zips = Object.values(assetManifest().files).filter((file) => file.source.packaging === 'zip');
    expect(zips).toHaveLength(7);
    for (const zip of zips) expect(zip.source.path).toBe(REPO_ROOT);
  });
});

describe('monitoring', () => {
  it('alarms per pipeline on failed or timed-out runs, error rate and drift, per queue, function and dead letters', () => {
    const descriptions = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) =>
      String((a as { Properties: { AlarmDescription: string } }).Properties.AlarmDescription),
    );
    for (const pipeline of PIPELINES) {
      for (const what of ['failed or timed out', 'error rate above', 'drifted']) {
        expectIn(
          descriptions.filter((d) => d.includes(`pipeline ${pipeline} `) && d.includes(what)),
          `${pipeline} ${what}`,
        ).toHaveLength(1);
      }
    }
    // gpu, cpu and their On-Demand queues.
    expect(descriptions.filter((d) => d.includes('RUNNABLE'))).toHaveLength(4);
    expect(descriptions.filter((d) => d.includes('function reported errors'))).toHaveLength(7);
    expect(descriptions.filter((d) => d.includes('dead-letter queue'))).toHaveLength(1);
  });

  it('has a dashboard and sends finished runs to the run events topic', () => {
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'batch-infer-dev' });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
      }),
    });
  });
});

describe('outputs', () => {
  it("gives each pipeline's state machine and tables, the buckets, the database, the queues, topics and dashboard", () => {
    const outputs = template.findOutputs('*');
    const expected = [
      ...PIPELINES.flatMap((p) => Object.values(pipelineOutputKeys(p))),
      'DataBucketName',
      'AccessLogsBucketName',
      'GlueDatabaseName',
      'GpuJobQueueName',
      'CpuJobQueueName',
      'CpuOnDemandJobQueueName',
      'GpuOnDemandJobQueueName',
      'AlarmTopicArn',
      'RunEventsTopicArn',
      'DashboardName',
      'PipelineNames',
      ...PIPELINES.map((p) => pipelineOperateOutputKeys(p).operate),
      STACK_OUTPUT_KEYS.workerLogGroupName,
      STACK_OUTPUT_KEYS.functionLogGroupNames,
    ];
    expect(Object.keys(outputs).sort()).toEqual(expected.sort());
    expect(outputs.PipelineNames?.Value).toBe('breast_cancer,breast_cancer_daily');
    expect(outputs[pipelineOutputKeys('breast_cancer').stateMachineArn]?.Value).toEqual({
      Ref: stateMachineId('breast_cancer'),
    });
    expect(outputs[pipelineOutputKeys('breast_cancer_daily').runsTable]?.Value).toBe(
      'breast_cancer_daily_runs',
    );
  });
});

/**
 * An output's value as the deployed stack would give it, with each reference written `<Ref X>` / `<X.Attr>`: what
 * the CLI's AWS backend parses (src/operate/stack-outputs.ts).
 */
function renderOutput(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if ('Ref' in v) return `<Ref ${String(v.Ref)}>`;
  if ('Fn::GetAtt' in v) return `<${(v['Fn::GetAtt'] as string[]).join('.')}>`;
  if ('Fn::Join' in v) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(renderOutput).join(sep);
  }
  throw new Error(`unexpected output value ${JSON.stringify(value)}`);
}

describe('outputs the CLI reads (src/operate/stack-outputs.ts)', () => {
  it('names every key the AWS backend reads: stack-wide and per pipeline', () => {
    const outputs = template.findOutputs('*');
    const read = [
      STACK_OUTPUT_KEYS.pipelineNames,
      STACK_OUTPUT_KEYS.gpuJobQueueName,
      STACK_OUTPUT_KEYS.cpuJobQueueName,
      STACK_OUTPUT_KEYS.workerLogGroupName,
      STACK_OUTPUT_KEYS.functionLogGroupNames,
      ...PIPELINES.flatMap((p) => Object.values(pipelineOperateOutputKeys(p))),
    ];
    for (const key of read) expectIn(outputs[key], `output ${key}`).toBeDefined();
    // Not exported: no cross-stack name, no 1024-character export limit.
    for (const key of read) expectIn(outputs[key]?.Export, `output ${key}`).toBeUndefined();
    expect(outputs[STACK_OUTPUT_KEYS.workerLogGroupName]?.Value).toEqual({
      Ref: onlyLogicalId('AWS::Logs::LogGroup', 'GpuComputeLogs'),
    });
  });

  it("gives each pipeline's spec, run files, input prefixes and triggers in the shape the CLI parses", () => {
    const outputs = template.findOutputs('*');
    const value = renderOutput(outputs[pipelineOperateOutputKeys('breast_cancer').operate]?.Value);
    const operate = pipelineOperateSchema.parse(JSON.parse(value));
    const bucket = `<Ref ${onlyLogicalId('AWS::S3::Bucket', 'DataLakeBucket')}>`;
    expect(operate.outputUri).toBe(`s3://${bucket}/predictions/breast_cancer/`);
    expect(operate.inputPrefixes).toEqual([`s3://${bucket}/incoming/breast_cancer/`]);
    expect(operate.spec.name).toBe('breast_cancer');
    expect((operate.spec.input as { uri: string }).uri).toBe(`s3://${bucket}/incoming/breast_cancer/`);
    expect(operate.triggers).toEqual([
      expect.stringMatching(new RegExp(`^s3 s3://${bucket.replace(/[<>]/g, '.')}/incoming/breast_cancer/`)),
      'schedule cron(0 6 ? * MON *) Europe/Paris',
    ]);
    const groups = functionLogGroupsSchema.parse(
      JSON.parse(renderOutput(outputs[STACK_OUTPUT_KEYS.functionLogGroupNames]?.Value)),
    );
    expect(Object.keys(groups).sort()).toEqual(expect.arrayContaining(['finalize', 'plan', 'reconcile']));
  });
});

describe('worker image', () => {
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
