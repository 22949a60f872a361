/**
 * NodeFunction's defaults, on a one-function stack with bundling skipped.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import { afterEach, describe, expect, it } from '@jest/globals';
import { NodeFunction } from '../../lib/constructs/node-function.js';
import type { NodeFunctionProps } from '../../lib/constructs/node-function.js';

const outdirs: string[] = [];
afterEach(() => {
  for (const dir of outdirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function synth(props: Partial<NodeFunctionProps> = {}): Template {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-function-'));
  outdirs.push(outdir);
  const app = new App({
    outdir,
    context: { 'aws:cdk:bundling-stacks': [] },
    builtinCloudFormationValidation: false,
  });
  const stack = new Stack(app, 'Fn');
  new NodeFunction(stack, 'Handler', { entry: 'lambdas/reconcile/handler.ts', ...props });
  return Template.fromJSON(app.synth().getStackByName('Fn').template as Record<string, unknown>);
}

describe('NodeFunction', () => {
  it('defaults to Node 24 (the newest Lambda Node runtime) on arm64, 1024 MiB, 1 minute, active tracing', () => {
    synth().hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      MemorySize: 1024,
      Timeout: 60,
      TracingConfig: { Mode: 'Active' },
      Handler: 'index.handler',
    });
  });

  it('enables source maps and sets the Powertools service name and metrics namespace', () => {
    synth().hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: {
          NODE_OPTIONS: '--enable-source-maps',
          POWERTOOLS_SERVICE_NAME: 'batch-infer',
          POWERTOOLS_METRICS_NAMESPACE: 'BatchInfer',
        },
      },
    });
  });

  it('logs to its own log group kept one month by default', () => {
    const template = synth();
    const [logGroupId] = Object.keys(template.findResources('AWS::Logs::LogGroup'));
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    template.hasResourceProperties('AWS::Lambda::Function', {
      LoggingConfig: { LogGroup: { Ref: logGroupId } },
    });
  });

  it('runs as its own role, which may write its own log group and traces, and uses no managed policy', () => {
    const template = synth();
    const [logGroupId] = Object.keys(template.findResources('AWS::Logs::LogGroup'));
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'lambda.amazonaws.com' } })],
      },
      ManagedPolicyArns: Match.absent(),
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [
          {
            Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
            Effect: 'Allow',
            Resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] },
          },
          { Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Effect: 'Allow', Resource: '*' },
        ],
      },
    });
  });

  it('takes memory, timeout, retention, service name, concurrency and extra environment from props', () => {
    const template = synth({
      memorySize: 2048,
      timeout: Duration.minutes(5),
      logRetention: logs.RetentionDays.ONE_WEEK,
      serviceName: 'planner',
      environment: { EXTRA: '1' },
      reservedConcurrentExecutions: 5,
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 2048,
      Timeout: 300,
      ReservedConcurrentExecutions: 5,
      Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: 'planner', EXTRA: '1' }) },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 7 });
  });

  it('rule: the entry exists', () => {
    expect(() => synth({ entry: 'lambdas/nope/handler.ts' })).toThrow(/nope/);
  });

  it('rule: memorySize is 128 to 10240 MiB', () => {
    expect(() => synth({ memorySize: 64 })).toThrow(/memorySize must be from 128 to 10240 MiB, got 64/);
  });

  it('rule: timeout is 1 second to 15 minutes', () => {
    expect(() => synth({ timeout: Duration.minutes(20) })).toThrow(
      /timeout must be from 1 second to 15 minutes/,
    );
  });

  it('rule: reservedConcurrentExecutions is a whole number of at least 1', () => {
    expect(() => synth({ reservedConcurrentExecutions: 0 })).toThrow(
      /reservedConcurrentExecutions must be a whole number of at least 1/,
    );
  });
});
