/**
 * `cdk synth`, in-process and offline: the app as bin/app.ts builds it (cdk-nag included), with esbuild bundling the
 * six handlers (no Docker) and CDK's CloudFormation validation on. Then each bundle is loaded by plain Node, as
 * Lambda would.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { App, Stack } from 'aws-cdk-lib';
import { CfnBucket } from 'aws-cdk-lib/aws-s3';
import { expectIn } from '../support/expect-in.js';
import { readValidationReport, violationsOf } from '../support/validation-report.js';
import { ESM_REQUIRE_BANNER } from '../../lib/constructs/node-function.js';
import { cdkJsonContext, synthApp } from './helpers.js';
import type { SynthesizedApp } from './helpers.js';

/** The entry each function was bundled from, by logical id prefix. */
const HANDLERS = {
  PlanFunction: 'lambdas/plan/handler.ts',
  ReconcileFunction: 'lambdas/reconcile/handler.ts',
  FinalizeFunction: 'lambdas/finalize/handler.ts',
  TriggersTriggerFunction: 'lambdas/trigger/handler.ts',
  TriggersVolumeFunction: 'lambdas/volume/handler.ts',
  MonitoringQueueDepthFunction: 'lambdas/queue-depth/handler.ts',
} as const;

/** Handlers that take an event to validate (the queue-depth function ignores its scheduled invocation's event). */
const EVENT_HANDLERS = Object.keys(HANDLERS).filter((id) => id !== 'MonitoringQueueDepthFunction');

/** What Lambda and the stack would set; the values only have to pass the handlers' environment checks. */
const FUNCTION_ENVIRONMENT = {
  AWS_REGION: 'us-east-1',
  GLUE_DATABASE_NAME: 'batch_infer_test',
  AUDIT_RUNS_URI: 's3://data-bucket/audit/runs/',
  VOLUME_STATE_BUCKET: 'data-bucket',
  VOLUME_STATE_PREFIX: 'state/volume/',
};

/** Imports a bundle in a fresh Node process and runs `script` (which sees `handler` and `BUNDLE_URL`). */
function runBundle(dir: string, script: string, env: Record<string, string> = FUNCTION_ENVIRONMENT): string {
  return execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH, ...env, BUNDLE_URL: pathToFileURL(path.join(dir, 'index.mjs')).href },
    encoding: 'utf8',
    // The SDK warns on stderr about Node 20 (Lambda runs 24): keep it out of the test output.
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

describe('cdk synth with bundling (offline, no Docker)', () => {
  let synthesized: SynthesizedApp;
  /** Logical id prefix -> folder of the function's bundle. */
  const bundles = new Map<string, string>();

  beforeAll(() => {
    synthesized = synthApp({ bundling: true, validation: true });
    const resources = synthesized.template.Resources as Record<
      string,
      { Type: string; Metadata?: Record<string, unknown>; Properties: { Code?: { S3Key?: unknown } } }
    >;
    for (const [id, resource] of Object.entries(resources)) {
      if (resource.Type !== 'AWS::Lambda::Function') continue;
      const prefix = Object.keys(HANDLERS).find((p) => id.startsWith(p));
      const key = resource.Properties.Code?.S3Key;
      if (!prefix || typeof key !== 'string') continue;
      // The S3 key is `<asset hash>.zip`, and the bundle is staged as `asset.<asset hash>`.
      bundles.set(prefix, path.join(synthesized.outdir, `asset.${key.replace(/\.zip$/, '')}`));
    }
  }, 240_000);

  afterAll(() => synthesized?.cleanup());

  it('bundles every handler into an ESM file with the require banner and a source map', () => {
    expect([...bundles.keys()].sort()).toEqual(Object.keys(HANDLERS).sort());
    for (const dir of bundles.values()) {
      const code = fs.readFileSync(path.join(dir, 'index.mjs'), 'utf8');
      expect(code.startsWith(ESM_REQUIRE_BANNER)).toBe(true);
      expect(fs.existsSync(path.join(dir, 'index.mjs.map'))).toBe(true);
    }
  });

  it('bundles the AWS SDK: a bundle imports nothing but Node built-ins', () => {
    const builtins = new Set(builtinModules);
    for (const dir of bundles.values()) {
      const code = fs.readFileSync(path.join(dir, 'index.mjs'), 'utf8');
      const specifiers = [
        ...code.matchAll(/(?:^|[;\s}])import\s*(?:[\w${},\s*]+from\s*)?["']([^"']+)["']/g),
      ].map((m) => m[1]!);
      for (const specifier of specifiers) {
        expectIn(specifier.startsWith('node:') || builtins.has(specifier), specifier).toBe(true);
      }
    }
  });

  it.each(EVENT_HANDLERS)(
    'the %s bundle loads in Node and rejects a malformed event as InvalidEvent',
    (id) => {
      const script = [
        'const { handler } = await import(process.env.BUNDLE_URL);',
        'try { await handler({ not: "an event" }); console.log(JSON.stringify({ ok: true })); }',
        'catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message })); }',
      ].join('\n');
      const lastLine = runBundle(bundles.get(id)!, script).trim().split('\n').at(-1)!;
      expect(JSON.parse(lastLine)).toMatchObject({ name: 'InvalidEvent' });
    },
  );

  it('bundles Powertools into every function: its logger everywhere, its metrics where metrics are emitted', () => {
    for (const [id, dir] of bundles) {
      const code = fs.readFileSync(path.join(dir, 'index.mjs'), 'utf8');
      // Keys only the Powertools Logger writes, and the EMF directive only Powertools Metrics writes.
      expectIn(code, id).toContain('sampling_rate');
      expectIn(code, id).toContain('function_request_id');
      const emitsMetrics = id === 'FinalizeFunction' || id === 'MonitoringQueueDepthFunction';
      expectIn(code.includes('CloudWatchMetrics'), id).toBe(emitsMetrics);
    }
  });

  it('the reconcile bundle hands the engine the AWS Batch job inspector (a BatchClient), not the local one', () => {
    const script = [
      'const { deps } = await import(process.env.BUNDLE_URL);',
      'const client = deps.inspector.client;',
      'console.log(JSON.stringify({ serviceId: client?.config?.serviceId, send: typeof client?.send }));',
    ].join('\n');
    const lastLine = runBundle(bundles.get('ReconcileFunction')!, script).trim().split('\n').at(-1)!;
    expect(JSON.parse(lastLine)).toEqual({ serviceId: 'Batch', send: 'function' });
  });

  it('the queue-depth bundle loads in Node and refuses to start without its queues (ConfigurationError)', () => {
    const script = [
      'try { await import(process.env.BUNDLE_URL); console.log(JSON.stringify({ ok: true })); }',
      'catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message })); }',
    ].join('\n');
    const lastLine = runBundle(bundles.get('MonitoringQueueDepthFunction')!, script)
      .trim()
      .split('\n')
      .at(-1)!;
    expect(JSON.parse(lastLine)).toMatchObject({
      name: 'ConfigurationError',
      message: expect.stringContaining('JOB_QUEUES') as unknown,
    });
  });

  it("passes CDK's built-in CloudFormation validation: the report exists and lists no violation of any severity", () => {
    // With cdk.json's `@aws-cdk/core:validateAgainstDefaultRules` an error already fails the synthesis above;
    // warnings (which the flag leaves as warnings) must be absent too, and a missing report is a failure.
    expect(violationsOf(readValidationReport(synthesized.outdir))).toEqual([]);
  });
});

describe('the CloudFormation validation check can fail', () => {
  /** A stack with one invalid resource property, synthesized with the deployment's context as `cdk synth` would. */
  function synthInvalidStack(context: Record<string, unknown>): { outdir: string; error: unknown } {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-invalid-'));
    const app = new App({
      outdir,
      context,
      builtinCloudFormationValidation: true,
      analyticsReporting: false,
    });
    const bucket = new CfnBucket(new Stack(app, 'Invalid'), 'Bucket');
    bucket.addPropertyOverride('NotAProperty', 1);
    try {
      app.synth();
      return { outdir, error: undefined };
    } catch (error) {
      return { outdir, error };
    }
  }

  it('cdk.json turns CloudFormation validation findings into errors', () => {
    expect(cdkJsonContext()['@aws-cdk/core:validateAgainstDefaultRules']).toBe(true);
  });

  it('an unknown resource property fails synthesis with the deployment context, and the report names it', () => {
    const { outdir, error } = synthInvalidStack(cdkJsonContext());
    try {
      expect(String(error)).toMatch(/ValidationFailed[\s\S]*NotAProperty/);
      expect(violationsOf(readValidationReport(outdir))).toEqual([
        expect.stringMatching(/^CloudFormation Validate: F3002 \(error\) NotAProperty.* at Invalid\/Bucket$/),
      ]);
    } finally {
      fs.rmSync(outdir, { recursive: true, force: true });
    }
  });

  it('without the flag the same finding is only a warning, which the report check still counts', () => {
    const context = cdkJsonContext();
    delete context['@aws-cdk/core:validateAgainstDefaultRules'];
    const { outdir, error } = synthInvalidStack(context);
    try {
      expect(error).toBeUndefined();
      expect(violationsOf(readValidationReport(outdir))).toEqual([
        expect.stringMatching(/^CloudFormation Validate: F3002 \(warning\) NotAProperty/),
      ]);
    } finally {
      fs.rmSync(outdir, { recursive: true, force: true });
    }
  });

  it('a missing report is an error, not a pass', () => {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-empty-'));
    try {
      expect(() => readValidationReport(outdir)).toThrow(/validation-report\.json does not exist/);
    } finally {
      fs.rmSync(outdir, { recursive: true, force: true });
    }
  });
});
