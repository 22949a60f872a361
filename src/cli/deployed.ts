/**
 * `--stack <name>` / `--stage <stage>`: the commands act on a deployed stack (the AWS backend) instead of the local
 * state directory. Region, profile and credentials come from the standard AWS environment and config files (the
 * SDK's default provider chain).
 */
import { Option } from 'commander';
import type { OperateBackend } from '../operate/backend.js';
import type { AwsBackend } from '../operate/aws-backend.js';
import { stackNameOfStage } from '../operate/stack-outputs.js';
import { createObjectStore } from '../storage/index.js';
import { UsageError } from './errors.js';
import type { CliIo } from './io.js';
import { localBackend, type BackendOptions } from './local-backend.js';

export interface StackOptions {
  readonly stack?: string;
  readonly stage?: string;
}

export function stackOption(): Option {
  return new Option(
    '--stack <name>',
    'act on this deployed stack (region and profile: AWS_REGION, AWS_PROFILE)',
  );
}

export function stageOption(): Option {
  return new Option(
    '--stage <stage>',
    'act on the deployed stack of this stage (batch-infer-<stage>)',
  ).conflicts('stack');
}

/** The deployed stack's name the options ask for; undefined for the local backend. */
export function stackNameOf(options: StackOptions): string | undefined {
  if (options.stack !== undefined) return options.stack;
  if (options.stage !== undefined) return stackNameOfStage(options.stage);
  return undefined;
}

/** The AWS backend for `--stack` / `--stage`; a usage error without them. */
export async function deployedBackend(options: StackOptions, what: string): Promise<AwsBackend> {
  const stackName = stackNameOf(options);
  if (stackName === undefined) {
    throw new UsageError(`${what} acts on a deployed stack: pass --stack <name> or --stage <stage>`);
  }
  // Loaded here: the AWS SDK's clients cost every other command's start about 0.4 s.
  const { awsBackendFor } = await import('../operate/aws-backend.js');
  return awsBackendFor(stackName, createObjectStore());
}

/** The AWS backend with `--stack` / `--stage`, the local one otherwise. */
export async function backendFor(options: BackendOptions & StackOptions, io: CliIo): Promise<OperateBackend> {
  if (stackNameOf(options) === undefined) return localBackend(options, io);
  return deployedBackend(options, 'this command');
}
