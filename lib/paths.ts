/**
 * Filesystem anchors for the CDK app. Derived from this module's URL rather than `process.cwd()`, because the app
 * is started from the repository root by `cdk synth` but from anywhere by tests and the local CLI.
 */
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';

/** Absolute path of the repository root (the folder holding package.json and package-lock.json). */
export const REPO_ROOT: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Absolute path of a file or folder given relative to the repository root. */
export function fromRepoRoot(...segments: readonly string[]): string {
  return path.join(REPO_ROOT, ...segments);
}
