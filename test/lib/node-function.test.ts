/**
 * NodeFunction's defaults, on a one-function stack with bundling skipped.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import { afterEach, describe, expect, it } from 'vitest';
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
  it('defaults to Node 22 on arm64, 1024 MiB, 1 minute, active tracing', () => {
    synth().hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      MemorySize: 1024,
      Timeout: 60,
      TracingConfig: { Mode: 'Active' },
      Handler: 'index.handler',
    });
  });

  it('enables source maps and names the service in the environment', () => {
    synth().hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: { NODE_OPTIONS: '--enable-source-maps', POWERTOOLS_SERVICE_NAME: 'batch-infer' },
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

  it('takes memory, timeout, retention, service name and extra environment from props', () => {
    const template = synth({
      memorySize: 2048,
      timeout: Duration.minutes(5),
      logRetention: logs.RetentionDays.ONE_WEEK,
      serviceName: 'planner',
      environment: { EXTRA: '1' },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 2048,
      Timeout: 300,
      Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: 'planner', EXTRA: '1' }) },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 7 });
  });

  it('fails at synth when the entry does not exist', () => {
    expect(() => synth({ entry: 'lambdas/nope/handler.ts' })).toThrow(/nope/);
  });
});
