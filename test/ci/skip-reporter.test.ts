/**
 * The skip reporter: a run with a skipped test that test/skips.json does not list fails; the same run with only
 * passing tests succeeds. Runs jest itself on two throwaway test files, with this project's reporter.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from '@jest/globals';

const reporter = fileURLToPath(new URL('../support/skip-reporter.js', import.meta.url));
const jestBin = fileURLToPath(new URL('../../node_modules/jest/bin/jest.js', import.meta.url));
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function runJestOn(testSource: string): { status: number | null; output: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'skip-reporter-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'sample.test.cjs'), testSource);
  const config = { rootDir: dir, testMatch: ['**/*.test.cjs'], reporters: ['default', reporter] };
  const run = spawnSync(process.execPath, [jestBin, '--config', JSON.stringify(config)], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, CI: 'true' },
  });
  return { status: run.status, output: run.stdout + run.stderr };
}

describe('the skip reporter', () => {
  it('fails a run that skips a test test/skips.json does not list, and names it', () => {
    // The `it.skip` below is the fixture's text, run by a child jest: the skip the reporter must catch, on purpose.
    // Nothing in this suite is skipped by it.
    const run = runJestOn("it.skip('a silently skipped check', () => {});\nit('a check', () => {});\n");
    expect(run.output).toContain('"a silently skipped check" (pending)');
    expect(run.status).toBe(1);
  });

  it('fails a run with a todo, and passes one with no skips', () => {
    expect(runJestOn("it.todo('later');\nit('a check', () => {});\n").status).toBe(1);
    expect(runJestOn("it('a check', () => {});\n").status).toBe(0);
  });
});
