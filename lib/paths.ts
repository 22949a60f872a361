/**
 * Filesystem anchors for the CDK app. Derived from this module's URL rather than `process.cwd()`, because the app
 * is started from the repository root by `cdk synth` but from anywhere by tests, the local CLI and other CDK apps
 * that install the package.
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';

/**
 * The nearest folder at or above `start` holding a package.json: the repository root when this module runs from
 * lib/, the package root when it runs compiled from dist/lib/ (in the repository or installed under node_modules).
 */
function packageRootAbove(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(start, '..');
  }
}

/**
 * Absolute path of the package root: the repository root (the folder holding package.json and package-lock.json),
 * or the installed package's folder. The Lambda handlers, the worker's build context and the schemas are found here.
 */
export const REPO_ROOT: string = packageRootAbove(path.dirname(fileURLToPath(import.meta.url)));

/** Absolute path of a file or folder given relative to the repository root. */
export function fromRepoRoot(...segments: readonly string[]): string {
  return path.join(REPO_ROOT, ...segments);
}
