/**
 * `cdk synth`, in-process and offline: the app as bin/app.ts builds it, with esbuild bundling the three handlers
 * (no Docker) and CDK's CloudFormation validation on. Then each bundle is loaded by plain Node, as Lambda would.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ESM_REQUIRE_BANNER } from '../../lib/constructs/node-function.js';
import { REPO_ROOT } from '../../lib/paths.js';
import { synthApp } from './helpers.js';
import type { SynthesizedApp } from './helpers.js';

/**
 * The modules the handlers import that other work streams provide. Until they exist the handlers cannot be
 * bundled, so this suite is skipped (not failed) and says why.
 */
const HANDLER_DEPENDENCIES = [
  'src/planning/plan-run.ts',
  'src/results/reconcile.ts',
  'src/results/finalize.ts',
  'src/storage/index.ts',
  'src/catalog/glue.ts',
  'src/registry/sagemaker.ts',
];
const missing = HANDLER_DEPENDENCIES.filter((file) => !fs.existsSync(path.join(REPO_ROOT, file)));
if (missing.length > 0) console.warn(`Skipping the bundling synth test: missing ${missing.join(', ')}`);

/** The entry each function was bundled from, by logical id prefix. */
const HANDLERS = {
  PlanFunction: 'lambdas/plan/handler.ts',
  ReconcileFunction: 'lambdas/reconcile/handler.ts',
  FinalizeFunction: 'lambdas/finalize/handler.ts',
} as const;

describe.skipIf(missing.length > 0)('cdk synth with bundling (offline, no Docker)', () => {
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
        expect(specifier.startsWith('node:') || builtins.has(specifier), specifier).toBe(true);
      }
    }
  });

  it.each(Object.keys(HANDLERS))(
    'the %s bundle loads in Node and rejects a malformed event as InvalidEvent',
    (id) => {
      const dir = bundles.get(id)!;
      const script = [
        'const { handler } = await import(process.env.BUNDLE_URL);',
        'try { await handler({ not: "an event" }); console.log(JSON.stringify({ ok: true })); }',
        'catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message })); }',
      ].join('\n');
      const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        env: {
          PATH: process.env.PATH,
          AWS_REGION: 'us-east-1',
          GLUE_DATABASE_NAME: 'batch_infer_test',
          BUNDLE_URL: pathToFileURL(path.join(dir, 'index.mjs')).href,
        },
        encoding: 'utf8',
        // The SDK warns on stderr about Node 20 (Lambda runs 22): keep it out of the test output.
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const lastLine = stdout.trim().split('\n').at(-1)!;
      expect(JSON.parse(lastLine)).toMatchObject({ name: 'InvalidEvent' });
    },
  );

  it("passes CDK's built-in CloudFormation validation", () => {
    const report = path.join(synthesized.outdir, 'validation-report.json');
    if (fs.existsSync(report)) {
      const { pluginReports } = JSON.parse(fs.readFileSync(report, 'utf8')) as {
        pluginReports: { violations?: { severity?: string }[] }[];
      };
      const errors = pluginReports.flatMap((r) => r.violations ?? []).filter((v) => v.severity === 'error');
      expect(errors).toEqual([]);
    }
  });
});
