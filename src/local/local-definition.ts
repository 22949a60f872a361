/**
 * The state machine definition a local run executes (src/local/run-local.ts): the one `cdk synth` produces, rendered
 * from the same construct, with the one adaptation the interpreter needs.
 *
 * Rendering loads aws-cdk-lib and synthesizes an app: about a second of CPU before a run can plan. The definition
 * depends on nothing but the code (ours and aws-cdk-lib's), so a run from the CLI's bundle (ADR 0022) keeps it in the
 * bundle's folder, whose name is a hash of the bundled code, under a name with aws-cdk-lib's version: each new build
 * of the code, and each other aws-cdk-lib, renders it again once.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * How a local run builds its interpreter: without validating the definition. The definition is the package's own
 * (rendered from the CDK construct, not from user input) and test/e2e/definition.test.ts validates exactly it, with
 * every check but the ARN check; validating it again costs each run about a second of CPU (the schema check).
 */
export const LOCAL_VALIDATION_OPTIONS = { noValidate: true } as const;

/** The global bin/batch-infer.js sets to the folder of the CLI bundle it runs. */
const CLI_BUNDLE_DIR = '__batchInferCliBundleDir';

export interface LocalDefinitionOptions {
  /**
   * Where the rendered definition is kept between runs.
   * @default the folder of the CLI bundle this process runs; none (render every time) from source or dist/
   */
  readonly cacheDir?: string;
}

/**
 * The definition a local run executes: the synthesized one, with AWS's task timeout default made explicit. Read from
 * `cacheDir` when it was rendered there before by the same code; else rendered (and kept there).
 */
export async function localWorkflowDefinition(
  options: LocalDefinitionOptions = {},
): Promise<Record<string, unknown>> {
  const bundleDir = (globalThis as { [CLI_BUNDLE_DIR]?: unknown })[CLI_BUNDLE_DIR];
  const cacheDir = options.cacheDir ?? (typeof bundleDir === 'string' ? bundleDir : undefined);
  const file = cacheDir ? path.join(cacheDir, keptDefinitionName()) : undefined;
  if (file) {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch {
      // Not rendered yet, or damaged: rendered again below.
    }
  }
  const { renderWorkflowDefinition } = await import('../../lib/workflow-definition.js');
  const definition = withAwsTaskTimeouts(renderWorkflowDefinition());
  if (file) {
    // Whole or not at all: another run may read it while this one writes.
    const scratch = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(scratch, JSON.stringify(definition));
      renameSync(scratch, file);
    } catch {
      // Not kept: the next run renders it again.
    }
  }
  return definition;
}

/** The kept definition's file name: aws-cdk-lib's version in it (the bundle's folder covers our code). */
export function keptDefinitionName(): string {
  const require = createRequire(import.meta.url);
  const { version } = require('aws-cdk-lib/package.json') as { version: string };
  return `workflow-definition-aws-cdk-lib-${version}.json`;
}

/**
 * The one adaptation of the definition for the interpreter. A Task without `TimeoutSeconds` runs until the execution
 * times out in AWS (its default is 99999999 s), but the interpreter applies the States Language default of 60 s,
 * which would cut every Batch round short. Such tasks get the execution's own timeout, AWS's effective bound.
 */
export function withAwsTaskTimeouts(definition: Record<string, unknown>): Record<string, unknown> {
  const executionTimeout =
    typeof definition.TimeoutSeconds === 'number' ? definition.TimeoutSeconds : 99_999_999;
  const states = definition.States as Record<string, Record<string, unknown>>;
  const adapted: Record<string, Record<string, unknown>> = {};
  for (const [name, state] of Object.entries(states)) {
    const untimed =
      state.Type === 'Task' && state.TimeoutSeconds === undefined && state.TimeoutSecondsPath === undefined;
    adapted[name] = untimed ? { ...state, TimeoutSeconds: executionTimeout } : state;
  }
  return { ...definition, States: adapted };
}
