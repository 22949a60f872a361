/**
 * Shared by the CDK tests: synthesizing the real app in-process the way `cdk synth` does, and reading the state
 * machine definition out of a template.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { BatchInferenceStack } from '../../lib/batch-inference-stack.js';
import { loadDeployConfig, stackName } from '../../lib/config.js';
import { REPO_ROOT } from '../../lib/paths.js';
import { definitionFromTemplate } from '../../lib/workflow-definition.js';

/** The context `cdk synth` passes the app: cdk.json's `context` (feature flags, `batchInfer`). */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
    readonly context?: Record<string, unknown>;
  };
  return { ...cdkJson.context };
}

export interface SynthesizedApp {
  readonly assembly: CloudAssembly;
  readonly stack: BatchInferenceStack;
  readonly template: Record<string, unknown>;
  readonly outdir: string;
  /** Removes the cloud assembly folder. */
  cleanup(): void;
}

export interface SynthOptions {
  /** Run esbuild for the functions (what `cdk synth` does) or skip it via `aws:cdk:bundling-stacks: []`. */
  readonly bundling: boolean;
  /** Run CDK's built-in CloudFormation validation, as `cdk synth` does. @default false */
  readonly validation?: boolean;
}

/** Synthesizes bin/app.ts's app (same config loading, same stack) into a temporary folder. */
export function synthApp(options: SynthOptions): SynthesizedApp {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-cdk-'));
  const context = cdkJsonContext();
  if (!options.bundling) context['aws:cdk:bundling-stacks'] = [];
  const app = new App({
    outdir,
    context,
    builtinCloudFormationValidation: options.validation ?? false,
    analyticsReporting: false,
  });
  const config = loadDeployConfig(app);
  const stack = new BatchInferenceStack(app, stackName(config), { config });
  const assembly = app.synth();
  const template = assembly.getStackArtifact(stack.artifactId).template as Record<string, unknown>;
  return {
    assembly,
    stack,
    template,
    outdir,
    cleanup: () => fs.rmSync(outdir, { recursive: true, force: true }),
  };
}

/**
 * The deployed definition with references made readable: `{ Ref: X }` -> `${Ref:X}`, `{ Fn::GetAtt: [X, A] }`
 * -> `${X.A}`, pseudo parameters -> the placeholder values.
 */
export function deployedDefinition(template: unknown): Record<string, unknown> {
  return definitionFromTemplate(template, {
    ref: (logicalId) => `\${Ref:${logicalId}}`,
    getAtt: (logicalId, attribute) => `\${${logicalId}.${attribute}}`,
  });
}

/** A state of a definition, typed loosely enough to assert on. */
export type AslState = Record<string, unknown> & {
  readonly Type: string;
  readonly Next?: string;
  readonly Default?: string;
  readonly Parameters?: Record<string, unknown>;
  readonly Retry?: readonly { readonly ErrorEquals: readonly string[]; readonly [key: string]: unknown }[];
  readonly Catch?: readonly {
    readonly ErrorEquals: readonly string[];
    readonly Next: string;
    readonly ResultPath?: string;
  }[];
  readonly Choices?: readonly (Record<string, unknown> & { readonly Next: string })[];
};

export function statesOf(definition: Record<string, unknown>): Record<string, AslState> {
  return definition.States as Record<string, AslState>;
}

/** The logical ids of the template's resources of one type. */
export function logicalIdsOfType(template: Record<string, unknown>, type: string): string[] {
  const resources = template.Resources as Record<string, { readonly Type: string }>;
  return Object.entries(resources)
    .filter(([, resource]) => resource.Type === type)
    .map(([id]) => id);
}
