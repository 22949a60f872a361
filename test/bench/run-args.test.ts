/** `npm run bench` refuses a mistaken command line with exit 2 and one line, before measuring or writing anything. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '../../lib/paths.js';

function bench(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench/run.ts'), ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
}

describe('npm run bench arguments', () => {
  const results = (): string => readFileSync(path.join(REPO_ROOT, 'bench/results.json'), 'utf8');

  it('refuses an unknown suite (even beside a known one), naming the suites there are', () => {
    const before = results();
    const run = bench('worker-tabular', 'worker-tabluar');
    expect(run.status).toBe(2);
    expect(run.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^npm run bench: unknown suite\(s\) worker-tabluar\. Usage: .*suites: pipeline-tabular, .*worker-tabular/,
      ),
    ]);
    expect(results()).toBe(before);
  }, 60_000);

  it('refuses an unknown option by name, with no stack trace', () => {
    const run = bench('worker-tabular', '--quik');
    expect(run.status).toBe(2);
    expect(run.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^npm run bench: unknown option --quik\. Usage: npm run bench \[-- <suite>\.\.\. \[--quick\]\]/,
      ),
    ]);
  }, 60_000);
});
