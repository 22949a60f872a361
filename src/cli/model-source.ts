/**
 * Where `inspect`, `init` and `models` find a model: a model file (or URI), or a reference to a registry version.
 *
 * A reference is one of
 * - a SageMaker model package ARN: `arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>`;
 * - `<group>` (its latest approved version, the job spec's default) or `<group>:<version>`, the version being
 *   `latest-approved`, `latest` or a number, as `model.registry` names them in a job spec.
 * Anything with a URI scheme, a path separator or a model file's extension, or that names an existing file, is a
 * model file.
 *
 * Which registry a group reference means: `--registry <dir|uri>` or $BATCH_INFER_REGISTRY (the local registry, as
 * `run` and `validate` take it); else `./registry/` when that folder holds the group (the layout the examples use);
 * else the SageMaker Model Registry of the AWS environment's region and credentials.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { LocalModelRegistry } from '../registry/local.js';
import type { ListableModelRegistry, VersionSelector } from '../registry/model-registry.js';
import type { SageMakerModelRegistry } from '../registry/sagemaker.js';
import type { ObjectStore } from '../storage/object-store.js';
import { normalizeUri } from '../storage/uri.js';
import { CliError, UsageError } from './errors.js';
import type { CliIo } from './io.js';
import { awsHttpOptions } from '../runtime/aws-http.js';

export const REGISTRY_ENV = 'BATCH_INFER_REGISTRY';

/** SageMaker's model package ARN; the group and version are the last two path segments. */
const PACKAGE_ARN =
  /^arn:aws[a-z-]*:sagemaker:([a-z0-9-]{9,16}):([0-9]{12}):model-package\/([A-Za-z0-9](?:-*[A-Za-z0-9]){0,62})\/([1-9][0-9]*)$/;
/** A group name: SageMaker's pattern, plus `_` and `.` that a local registry's folder names may hold. */
const GROUP = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Names that say "a model file", not a group. */
const MODEL_FILE = /\.(onnx|tar\.gz|tgz)$/i;

export type ModelRef =
  | { readonly kind: 'file'; readonly uri: string; readonly given: string }
  | { readonly kind: 'registry'; readonly group: string; readonly selector: VersionSelector }
  | {
      readonly kind: 'arn';
      readonly arn: string;
      readonly region: string;
      readonly group: string;
      readonly version: number;
    };

/** Parses the `<model>` argument of inspect and init; a malformed reference is a usage error saying the forms. */
export function parseModelRef(arg: string, cwd: string): ModelRef {
  if (arg.startsWith('arn:')) {
    const match = PACKAGE_ARN.exec(arg);
    if (!match) {
      throw new UsageError(
        `"${arg}" is not a versioned SageMaker model package ARN ` +
          '(arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)',
      );
    }
    return { kind: 'arn', arn: arg, region: match[1]!, group: match[3]!, version: Number(match[4]) };
  }
  const local = path.resolve(cwd, arg);
  const isFile = existsSync(local) && statSync(local).isFile();
  if (isFile || /^[a-z][a-z0-9+.-]*:\/\//i.test(arg) || arg.includes('/') || MODEL_FILE.test(arg)) {
    return { kind: 'file', uri: normalizeUri(arg, cwd), given: arg };
  }
  const colon = arg.lastIndexOf(':');
  const group = colon < 0 ? arg : arg.slice(0, colon);
  const version = colon < 0 ? undefined : arg.slice(colon + 1);
  if (!GROUP.test(group)) {
    throw new UsageError(
      `"${arg}" is neither a model file nor a registry reference (<group>, <group>:<version>, or a model package ARN)`,
    );
  }
  return { kind: 'registry', group, selector: parseSelector(version, arg) };
}

function parseSelector(version: string | undefined, arg: string): VersionSelector {
  if (version === undefined || version === 'latest-approved') return 'latest-approved';
  if (version === 'latest') return 'latest';
  if (/^[1-9][0-9]*$/.test(version)) return Number(version);
  throw new UsageError(
    `"${arg}": the version after ":" must be latest-approved, latest or a version number (got "${version}")`,
  );
}

export interface RegistryOptions {
  readonly registry?: string;
}

/** What the CLI talks to for registry references; injectable for tests. */
export interface RegistryDeps {
  readonly store: ObjectStore;
  /** The SageMaker client for a region (the ARN's), or the environment's when `region` is undefined. */
  readonly sagemaker?: (region: string | undefined) => SageMakerClient;
}

/** Where versions were looked up, for output: the local registry's URI, or SageMaker and its region. */
export type RegistryLocation =
  { readonly kind: 'local'; readonly uri: string } | { readonly kind: 'sagemaker'; readonly region: string };

export interface ChosenRegistry {
  readonly registry: ListableModelRegistry;
  readonly location: RegistryLocation;
}

export function describeLocation(location: RegistryLocation): string {
  return location.kind === 'local'
    ? `the local registry ${location.uri}`
    : `SageMaker Model Registry (${location.region})`;
}

/** The registry a group reference means (see the module comment for the order). */
export async function registryFor(
  group: string,
  options: RegistryOptions,
  io: CliIo,
  deps: RegistryDeps,
): Promise<ChosenRegistry> {
  const configured = options.registry ?? io.env[REGISTRY_ENV];
  if (configured !== undefined && configured !== '') {
    const uri = normalizeUri(configured, io.cwd);
    return { registry: new LocalModelRegistry(deps.store, uri), location: { kind: 'local', uri } };
  }
  const nearby = path.join(io.cwd, 'registry');
  if (existsSync(path.join(nearby, group))) {
    const local = new LocalModelRegistry(deps.store, normalizeUri(`${nearby}/`, io.cwd));
    if ((await local.groupNames()).includes(group)) {
      return { registry: local, location: { kind: 'local', uri: local.rootUri } };
    }
  }
  return sageMakerRegistry(undefined, deps);
}

/** The SageMaker Model Registry of `region` (the environment's when undefined); no region is one actionable line. */
export async function sageMakerRegistry(
  region: string | undefined,
  deps: RegistryDeps,
): Promise<ChosenRegistry & { registry: SageMakerModelRegistry }> {
  // Loaded here, for SageMaker references only: the client costs every other start about 0.2 s.
  // One after the other: jest's ESM loader fails concurrent imports of graphs that share modules.
  const { SageMakerClient } = await import('@aws-sdk/client-sagemaker');
  const { SageMakerModelRegistry } = await import('../registry/sagemaker.js');
  const client = deps.sagemaker
    ? deps.sagemaker(region)
    : new SageMakerClient({ ...(region ? { region } : {}), ...awsHttpOptions() });
  const resolved = await client.config.region().catch(() => undefined);
  if (!resolved) {
    throw new CliError(
      'No AWS region for the SageMaker Model Registry: set AWS_REGION (or a region in ~/.aws/config for ' +
        `AWS_PROFILE), or pass --registry <dir> for a local registry`,
    );
  }
  return {
    registry: new SageMakerModelRegistry(client),
    location: { kind: 'sagemaker', region: resolved },
  };
}

/** Missing credentials as one actionable line; other errors as they are. */
export function explainAwsError(err: unknown): unknown {
  if ((err as { name?: string }).name === 'CredentialsProviderError') {
    return new CliError(
      'No AWS credentials for the SageMaker Model Registry: set AWS_PROFILE (aws configure / aws sso login) or ' +
        'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --registry <dir> for a local registry',
    );
  }
  return err;
}
