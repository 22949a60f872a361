/** Options and paths several commands share. */
import path from 'node:path';
import { Option } from 'commander';
import { UsageError } from './errors.js';
import type { CliIo } from './io.js';

export const STATE_DIR_ENV = 'BATCH_INFER_HOME';

export interface StateOptions {
  readonly stateDir?: string;
  readonly catalog?: string;
}

export function stateDirOption(): Option {
  return new Option(
    '--state-dir <dir>',
    `local state: catalogue, run records, logs (default: $${STATE_DIR_ENV} or ./.batch-infer)`,
  );
}

export function catalogOption(): Option {
  return new Option('--catalog <file>', 'local catalogue database (default: <state dir>/catalog.duckdb)');
}

export function jsonOption(): Option {
  return new Option('--json', 'print exactly one JSON object on stdout');
}

/** `--s3-endpoint`, for commands that read or write s3:// URIs (a local S3-compatible server, MinIO, s3rver). */
export function s3EndpointOption(): Option {
  return new Option(
    '--s3-endpoint <url>',
    'S3-compatible endpoint for s3:// URIs (default: $BATCH_INFER_S3_ENDPOINT)',
  );
}

/**
 * `--registry` of the commands that take a model by registry reference (`inspect`, `init`, `models`): without it a
 * group is looked up locally first, then in SageMaker.
 */
export function registryLookupOption(): Option {
  return new Option(
    '--registry <dir|uri>',
    'local model registry for <group> (default: $BATCH_INFER_REGISTRY, else ./registry if it holds the group, ' +
      'else SageMaker)',
  );
}

/** `--registry` of the commands that read a spec: the spec's own registry folder by default. */
export function specRegistryOption(): Option {
  return new Option('--registry <dir|uri>', 'local model registry (default: <spec dir>/registry)');
}

export function resolveStateDir(options: StateOptions, io: CliIo): string {
  return path.resolve(io.cwd, options.stateDir ?? io.env[STATE_DIR_ENV] ?? '.batch-infer');
}

export function resolveCatalogPath(options: StateOptions, io: CliIo): string {
  return path.resolve(io.cwd, options.catalog ?? path.join(resolveStateDir(options, io), 'catalog.duckdb'));
}

/** A positive integer option value, or a usage error naming the option. */
export function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`${flag} must be a positive integer (got "${value}")`);
  return n;
}

/** A non-negative integer option value, or a usage error naming the option. */
export function nonNegativeInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`${flag} must be a whole number >= 0 (got "${value}")`);
  return n;
}
