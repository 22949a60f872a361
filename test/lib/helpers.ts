/**
 * Shared by the CDK tests: synthesizing the real app in-process the way `cdk synth` does, and reading the state
 * machine definition out of a template.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import type { BatchInferenceStack } from '../../lib/batch-inference-stack.js';
import { addDeployment } from '../../lib/deployment.js';
import { REPO_ROOT } from '../../lib/paths.js';
import { definitionFromTemplate, definitionsFromTemplate } from '../../lib/workflow-definition.js';

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
  /** Run the cdk-nag checks, as `cdk synth` does. @default true */
  readonly nag?: boolean;
  /** Replaces keys of cdk.json's `batchInfer` configuration. */
  readonly config?: Record<string, unknown>;
}

/** Synthesizes bin/app.ts's app (same deployment: config, pipelines, stack, cdk-nag) into a temporary folder. */
export function synthApp(options: SynthOptions): SynthesizedApp {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-cdk-'));
  const context = cdkJsonContext();
  if (!options.bundling) context['aws:cdk:bundling-stacks'] = [];
  if (options.config) {
    context.batchInfer = { ...(context.batchInfer as Record<string, unknown>), ...options.config };
  }
  const app = new App({
    outdir,
    context,
    builtinCloudFormationValidation: options.validation ?? false,
    analyticsReporting: false,
  });
  let stack: BatchInferenceStack;
  let assembly: CloudAssembly;
  try {
    stack = addDeployment(app, { nag: options.nag ?? true });
    assembly = app.synth();
  } catch (error) {
    fs.rmSync(outdir, { recursive: true, force: true });
    throw error;
  }
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
  return definitionFromTemplate(template, READABLE_REFERENCES);
}

const READABLE_REFERENCES = {
  ref: (logicalId: string) => `\${Ref:${logicalId}}`,
  getAtt: (logicalId: string, attribute: string) => `\${${logicalId}.${attribute}}`,
};

/** Every state machine's definition, by logical id, with references made readable as in `deployedDefinition`. */
export function deployedDefinitions(template: unknown): Record<string, Record<string, unknown>> {
  return definitionsFromTemplate(template, READABLE_REFERENCES);
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

/**
 * Synthesizes one construct in a stack of its own, without bundling or CloudFormation validation (fast), for the
 * per-construct tests.
 */
export function synthConstruct(
  build: (stack: Stack) => void,
  options: { readonly env?: { readonly account: string; readonly region: string } } = {},
): Template {
  const app = new App({
    context: { 'aws:cdk:bundling-stacks': [], '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true },
    builtinCloudFormationValidation: false,
    analyticsReporting: false,
  });
  const stack = new Stack(app, 'Test', options.env ? { env: options.env } : {});
  build(stack);
  return Template.fromJSON(app.synth().getStackByName('Test').template as Record<string, unknown>);
}

/** Every IAM statement of a template (policies, roles' inline policies), flattened. */
export interface IamStatement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource?: unknown;
  readonly Condition?: unknown;
  readonly Principal?: unknown;
}

export function iamStatements(
  template: Record<string, unknown>,
): (IamStatement & { readonly policy: string })[] {
  const resources = template.Resources as Record<
    string,
    { Type: string; Properties?: Record<string, unknown> }
  >;
  const out: (IamStatement & { policy: string })[] = [];
  for (const [id, resource] of Object.entries(resources)) {
    const documents: unknown[] = [];
    if (resource.Type === 'AWS::IAM::Policy' || resource.Type === 'AWS::IAM::ManagedPolicy') {
      documents.push(resource.Properties?.PolicyDocument);
    }
    if (resource.Type === 'AWS::IAM::Role') {
      for (const p of (resource.Properties?.Policies as { PolicyDocument: unknown }[] | undefined) ?? []) {
        documents.push(p.PolicyDocument);
      }
    }
    for (const doc of documents) {
      for (const s of (doc as { Statement: IamStatement[] }).Statement) out.push({ ...s, policy: id });
    }
  }
  return out;
}

/** The actions of a statement as a list. */
export function actionsOf(statement: { readonly Action: string | string[] }): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

/** The statements of every policy attached to a role (its AWS::IAM::Policy resources and inline policies). */
export function roleStatements(template: Record<string, unknown>, roleLogicalId: string): IamStatement[] {
  const resources = template.Resources as Record<
    string,
    { Type: string; Properties?: Record<string, unknown> }
  >;
  const out: IamStatement[] = [];
  for (const [id, resource] of Object.entries(resources)) {
    const documents: unknown[] = [];
    if (resource.Type === 'AWS::IAM::Policy') {
      const roles = (resource.Properties?.Roles as unknown[] | undefined) ?? [];
      if (roles.some((r) => JSON.stringify(r) === JSON.stringify({ Ref: roleLogicalId }))) {
        documents.push(resource.Properties?.PolicyDocument);
      }
    }
    if (resource.Type === 'AWS::IAM::Role' && id === roleLogicalId) {
      for (const p of (resource.Properties?.Policies as { PolicyDocument: unknown }[] | undefined) ?? []) {
        documents.push(p.PolicyDocument);
      }
    }
    for (const doc of documents) out.push(...(doc as { Statement: IamStatement[] }).Statement);
  }
  return out;
}

/** The resources of a statement as a list. */
export function resourcesOf(statement: { readonly Resource?: unknown }): unknown[] {
  return statement.Resource === undefined ? [] : [statement.Resource].flat();
}
