/** The `batch-infer` command as a user runs it: the package bin, in a child process. */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
const bin = path.join(repo, 'bin/batch-infer.js');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'cli-'));
  // A copy of the shipped example, so its out/ stays out of the repository.
  cpSync(path.join(repo, 'examples/breast-cancer'), path.join(dir, 'example'), {
    recursive: true,
    filter: (src) => !/(generated|[\\/]out)$/.test(src),
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
}

describe('batch-infer CLI', () => {
  it('run --json prints exactly one JSON object with the run result, from any working directory', () => {
    const result = cli('run', 'example/job.yaml', '--json', '--state-dir', path.join(dir, 'state'));
    expect(result.status, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const summary = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(Object.keys(summary).sort()).toEqual(
      ['errors', 'manifestUri', 'outputUri', 'predictions', 'records', 'runId', 'status', 'wallMs'].sort(),
    );
    expect(summary).toMatchObject({ status: 'SUCCEEDED', records: 569, predictions: 569, errors: 0 });
    expect(summary.manifestUri).toMatch(/\/example\/out\/_runs\/.+\/manifest\.json$/);

    const query = cli(
      'query',
      '--state-dir',
      path.join(dir, 'state'),
      `select label, count(*) as n from breast_cancer where run_id = '${String(summary.runId)}' group by all order by label`,
    );
    expect(query.status, query.stderr).toBe(0);
    expect(query.stdout).toMatch(/benign\s+\|\s+357/);
    expect(query.stdout).toMatch(/malignant\s+\|\s+212/);
  });

  it('rejects an invalid spec with exit code 2, naming the field, the value and the fix', () => {
    writeFileSync(path.join(dir, 'bad.yaml'), 'name: Bad-Name\ninput: { uri: data/, format: xlsx }\n');
    const result = cli('validate', 'bad.yaml');
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/name: must start with a lowercase letter.*\(got "Bad-Name"\)/);
    expect(result.stderr).toMatch(/input\.format: must be one of parquet, jsonl, csv.*\(got "xlsx"\)/);
  });

  it('reports usage errors with exit code 2', () => {
    const result = cli('frobnicate');
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/unknown command "frobnicate"/);
  });
});
