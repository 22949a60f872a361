/**
 * Which build of this code finalized a run, for the audit manifest: `$BATCH_INFER_CODE_VERSION` when the
 * deployment sets it (e.g. the git commit and the worker image tag), else the package version from package.json,
 * else `unknown` (a bundled Lambda carries no package.json).
 */
import { readFileSync } from 'node:fs';

export const CODE_VERSION_ENV = 'BATCH_INFER_CODE_VERSION';
/** The worker image (URI with tag or digest) the run's jobs used, when the deployment says. */
export const WORKER_IMAGE_ENV = 'BATCH_INFER_WORKER_IMAGE';

let packageVersion: string | undefined | null = null;

export function resolveCodeVersion(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[CODE_VERSION_ENV]?.trim();
  if (fromEnv) return fromEnv;
  if (packageVersion === null) packageVersion = readPackageVersion();
  return packageVersion ?? 'unknown';
}

export function resolveWorkerImage(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env[WORKER_IMAGE_ENV]?.trim() || undefined;
}

function readPackageVersion(): string | undefined {
  // src/results/ -> the repository root: two levels up in the source tree, three from dist/src/results/ (ADR 0011).
  for (const relative of [
    '../../package.json',
    '../../../package.json',
    '../package.json',
    './package.json',
  ]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'batch-infer' && typeof pkg.version === 'string') return `batch-infer@${pkg.version}`;
    } catch {
      // Not there (a bundle): try the next place.
    }
  }
  return undefined;
}
