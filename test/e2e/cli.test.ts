/** The `batch-infer` command as a user runs it: the package bin, in a child process. */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';

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

function cliWithEnv(env: NodeJS.ProcessEnv, ...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ...env },
  });
}

describe('batch-infer CLI', () => {
  it('run finds a processor module next to the job spec when the model does not ship one', () => {
    const job = path.join(dir, 'job-with-processor');
    mkdirSync(path.join(job, 'in'), { recursive: true });
    writeFileSync(path.join(job, 'in', 'rows.jsonl'), '{"id":"a","v":1}\n{"id":"b","v":-20}\n');
    // affine.onnx: y = [x0 + 3 x2 + 10, 2 x0 - x1 + x2 - 5]; the processor feeds x = [v, 0, 0].
    writeFileSync(
      path.join(job, 'sign.mjs'),
      [
        'export function preprocess(records, { Tensor }) {',
        '  const x = Float32Array.from(records.flatMap((r) => [r.values.v, 0, 0]));',
        "  return { feeds: { x: new Tensor('float32', x, [records.length, 3]) }, errors: [] };",
        '}',
        'export function postprocess(outputs, records) {',
        "  return records.map((_, i) => ({ sign: outputs.y.data[2 * i] > 0 ? 'up' : 'down' }));",
        '}',
      ].join('\n'),
    );
    writeFileSync(
      path.join(job, 'job.yaml'),
      [
        'name: signs',
        'input: { uri: in/, format: jsonl, id: id }',
        'model:',
        `  uri: ${path.join(repo, 'test/fixtures/models/affine.onnx')}`,
        '  processor: { module: sign.mjs, columns: { sign: string } }',
        'output: { uri: out/, format: jsonl }',
      ].join('\n'),
    );
    const result = cli('run', path.join(job, 'job.yaml'), '--json', '--state-dir', path.join(dir, 'state'));
    expectIn(result.status, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout.trim()) as {
      runId: string;
      status: string;
      predictions: number;
    };
    expect(summary).toMatchObject({ status: 'SUCCEEDED', predictions: 2 });
    const rows = cli(
      'query',
      '--state-dir',
      path.join(dir, 'state'),
      `select id, sign from signs where run_id = '${summary.runId}' order by id`,
    );
    expectIn(rows.status, rows.stderr).toBe(0);
    // y0 = v + 10: up for v = 1, down for v = -20.
    expect(rows.stdout).toMatch(/a\s+\|\s+up/);
    expect(rows.stdout).toMatch(/b\s+\|\s+down/);
  });

  it('run --json prints exactly one JSON object with the run result, from any working directory', () => {
    const result = cli('run', 'example/job.yaml', '--json', '--state-dir', path.join(dir, 'state'));
    expectIn(result.status, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const summary = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(Object.keys(summary).sort()).toEqual(
      [
        'cost',
        'errors',
        'estimate',
        'manifestUri',
        'outputUri',
        'predictions',
        'records',
        'runId',
        'status',
        'wallMs',
      ].sort(),
    );
    expect(summary).toMatchObject({ status: 'SUCCEEDED', records: 569, predictions: 569, errors: 0 });
    expect(summary.manifestUri).toMatch(/\/example\/out\/_runs\/.+\/manifest\.json$/);

    const query = cli(
      'query',
      '--state-dir',
      path.join(dir, 'state'),
      `select label, count(*) as n from breast_cancer where run_id = '${String(summary.runId)}' group by all order by label`,
    );
    expectIn(query.status, query.stderr).toBe(0);
    expect(query.stdout).toMatch(/benign\s+\|\s+357/);
    expect(query.stdout).toMatch(/malignant\s+\|\s+212/);

    // The run's report, rebuilt from its run files: one line (where it is), a self-contained page with charts.
    rmSync(fileURLToPath(new URL('report.html', new URL('.', String(summary.manifestUri)))), { force: true });
    const report = cli('report', String(summary.runId), '--json', '--state-dir', path.join(dir, 'state'));
    expectIn(report.status, report.stderr).toBe(0);
    const written = JSON.parse(report.stdout) as { runId: string; reportUri: string };
    expect(written).toEqual({
      runId: summary.runId,
      reportUri: String(summary.manifestUri).replace(/manifest\.json$/, 'report.html'),
    });
    const html = readFileSync(fileURLToPath(written.reportUri), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain(String(summary.runId));
    const unknown = cli('report', 'no-such-run', '--state-dir', path.join(dir, 'state'));
    expect(unknown.status).toBe(2);
    expect(unknown.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^No local run "no-such-run"/)]);
  });

  it('a run after earlier output files were deleted succeeds, says which run the view leaves out, and queries', () => {
    const example = path.join(dir, 'example-cleaned');
    cpSync(path.join(dir, 'example'), example, { recursive: true, filter: (src) => !/[\\/]out$/.test(src) });
    const state = path.join(dir, 'state-cleaned');
    const run = () => cli('run', path.join(example, 'job.yaml'), '--json', '--state-dir', state);
    const first = run();
    expectIn(first.status, first.stderr).toBe(0);
    const firstId = String((JSON.parse(first.stdout) as { runId: string }).runId);
    // The user cleans old outputs but keeps the state folder (and with it the catalogue).
    rmSync(path.join(example, 'out'), { recursive: true, force: true });

    const second = run();
    expectIn(second.status, second.stderr).toBe(0);
    const summary = JSON.parse(second.stdout) as { runId: string; status: string };
    expect(summary.status).toBe('SUCCEEDED');
    expect(second.stderr).toContain(`run ${firstId} of breast_cancer is left out of the view breast_cancer`);
    const query = cli(
      'query',
      '--state-dir',
      state,
      'select run_id, count(*) as n from breast_cancer group by all',
    );
    expectIn(query.status, query.stderr).toBe(0);
    expect(query.stdout).toMatch(new RegExp(`${summary.runId}\\s+\\|\\s+569`));
    expect(query.stdout).not.toContain(firstId);
  });

  it('rejects an invalid spec with exit code 2, naming the field, the value and the fix', () => {
    writeFileSync(path.join(dir, 'bad.yaml'), 'name: Bad-Name\ninput: { uri: data/, format: xlsx }\n');
    const result = cli('validate', 'bad.yaml');
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/name: must start with a lowercase letter.*\(got "Bad-Name"\)/);
    expect(result.stderr).toMatch(/input\.format: must be one of parquet, jsonl, csv.*\(got "xlsx"\)/);
  });

  it('run refuses a mistyped worker setting in the environment up front: exit 2, one line naming it, nothing started', () => {
    const state = path.join(dir, 'state-bad-env');
    const result = cliWithEnv(
      { BATCH_INFER_DECODE_THREADS: 'lots' },
      'run',
      'example/job.yaml',
      '--state-dir',
      state,
    );
    expect(result.status).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([
      'Invalid worker setting in the environment (fix or unset it): BATCH_INFER_DECODE_THREADS="lots": must be a ' +
        'whole number of threads from 0 to 64 (0 decodes on the main thread)',
    ]);
    // Before: every worker of every round failed on it, the reason only in their logs.
    expect(existsSync(state)).toBe(false);
  });

  it('a run that fails at planning says why, and does not send the user to worker logs that do not exist', () => {
    // A spec mistake a person makes: the format says parquet, the folder holds CSV files.
    const job = readFileSync(path.join(dir, 'example/job.yaml'), 'utf8').replace(
      /format: csv/,
      'format: parquet',
    );
    writeFileSync(path.join(dir, 'example/parquet-by-mistake.yaml'), job);
    const result = cli(
      'run',
      'example/parquet-by-mistake.yaml',
      '--state-dir',
      path.join(dir, 'state-plan-fail'),
    );
    expectIn(result.status, result.stderr).toBe(1);
    const output = result.stdout + result.stderr;
    expect(output).toMatch(/FAILED in .*\(PlanFailed\)/);
    expect(output).toMatch(/holds no parquet input .*Set input\.format to the format of those files/);
    expect(output).not.toContain('Why a shard failed');
  });

  it('reports usage errors with exit code 2', () => {
    const result = cli('frobnicate');
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('--version prints the package version on stdout and exits 0', () => {
    const result = cli('--version');
    expectIn(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(result.stderr).toBe('');
  });

  it("help <command> prints that command's usage and options on stdout", () => {
    const result = cli('help', 'run');
    expectIn(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Usage: batch-infer run \[options\] \[job\.yaml\]/);
    expect(result.stdout).toMatch(/--resume <runId>/);
    expect(result.stdout).not.toMatch(/Usage: batch-infer validate/);
  });

  it('help lists the exit codes', () => {
    const result = cli('help');
    expectIn(result.status, result.stderr).toBe(0);
    for (const line of [
      /^\s+0\s+ok/m,
      /^\s+1\s+the run failed/m,
      /^\s+2\s+bad usage/m,
      /^\s+130\s+interrupted/m,
    ]) {
      expect(result.stdout).toMatch(line);
    }
  });

  it("an unknown flag prints the command's usage on stderr with exit code 2, nothing on stdout", () => {
    const result = cli('query', '--frob', 'select 1');
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/unknown option '--frob'/);
    expect(result.stderr).toMatch(/Usage: batch-infer query \[options\] <sql>/);
    expect(result.stdout).toBe('');
  });

  it('query with no catalogue says so in one line, with what to do, and no stack trace', () => {
    const result = cli('query', '--state-dir', path.join(dir, 'no-state'), 'select 1');
    expect(result.status).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expectIn(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^No catalogue at .*no-state.*catalog\.duckdb.*--state-dir <dir> or --catalog <file>$/,
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('a bad SQL statement is one line that says how to list the tables', () => {
    // The catalogue exists after the runs above in this file; a table that does not exist is an error the user fixes.
    const result = cli('query', '--state-dir', path.join(dir, 'state'), 'select * from no_such_table');
    expect(result.status).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^Query failed: .*no_such_table.*batch-infer query "show tables"/);
  });

  it('NO_COLOR wins over FORCE_COLOR: no escape codes on stdout or stderr', () => {
    const plain = cliWithEnv(
      { NO_COLOR: '1', FORCE_COLOR: '1' },
      'run',
      'example/job.yaml',
      '--state-dir',
      path.join(dir, 'state'),
    );
    expectIn(plain.status, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/Run \S+ SUCCEEDED/);
    expect(plain.stdout + plain.stderr).not.toMatch(/\x1b\[/);
  });
});
