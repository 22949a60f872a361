/** Preflight in Plan and in `batch-infer validate`: a spec that does not fit its model fails before any worker. */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { planRun } from '../../src/planning/plan-run.js';
import { preflightResolved, PreflightError } from '../../src/preflight/index.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { specFolderUri } from '../../src/spec/load.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { expectIn } from '../support/expect-in.js';
import { edit } from './helpers.js';

const store = new LocalObjectStore();
let root: string;
let job: Record<string, unknown>;

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'plan-preflight-'));
  cpSync(path.resolve('examples/breast-cancer'), root, {
    recursive: true,
    filter: (src) => !/(generated|[\\/]out)$/.test(src),
  });
  job = parseYaml(readFileSync(path.join(root, 'job.yaml'), 'utf8')) as Record<string, unknown>;
  edit(job, ['input', 'uri'], pathToFileURL(path.join(root, 'data')).href + '/');
  edit(job, ['output', 'uri'], pathToFileURL(path.join(root, 'out')).href + '/');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('Plan with preflight', () => {
  const deps = () => ({
    store,
    registry: new LocalModelRegistry(store, pathToFileURL(path.join(root, 'registry')).href + '/'),
    specFolderUri: specFolderUri(path.join(root, 'job.yaml')),
    preflight: preflightResolved,
  });

  it('plans the example as shipped', async () => {
    const state = await planRun({ runId: 'ok-run', spec: job }, deps());
    expect(state.shardCount).toBeGreaterThan(1);
  });

  it('fails a wrong tensor name with a PreflightError before writing a plan', async () => {
    const bad = structuredClone(job);
    edit(bad, ['model', 'inputs', 0, 'tensor'], 'featurez');
    const err = await planRun({ runId: 'bad-run', spec: bad }, deps()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PreflightError);
    expect((err as PreflightError).name).toBe('PreflightError');
    expect((err as PreflightError).message).toContain('did you mean "features"?');
    expect(
      await store.tryHead(pathToFileURL(path.join(root, 'out/_runs/bad-run/plan.json')).href),
    ).toBeUndefined();
  });
});

describe('batch-infer validate', () => {
  const bin = path.resolve('bin/batch-infer.js');
  it('exits 2 with one line per problem, naming what the model has, and no stack trace', () => {
    const bad = readFileSync(path.join(root, 'job.yaml'), 'utf8')
      .replace('tensor: features', 'tensor: featurez')
      .replace('label: string', 'label: int');
    writeFileSync(path.join(root, 'bad.yaml'), bad);
    const result = spawnSync(process.execPath, [bin, 'validate', 'bad.yaml'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expectIn(result.status, result.stderr).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expectIn(lines, result.stderr).toHaveLength(4);
    expect(lines[0]).toBe('bad.yaml does not fit its model or input (3 problems):');
    expect(lines[1]).toContain('model.inputs[0].tensor "featurez": the model has no input by that name');
    expect(lines[3]).toContain('output.schema.label int: the job writes "label" as string');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stdout).toBe('');
  });

  it('run fails in Plan with zero worker attempts, the reason in --json', () => {
    const bad = readFileSync(path.join(root, 'job.yaml'), 'utf8').replace(
      'tensor: features',
      'tensor: featurez',
    );
    writeFileSync(path.join(root, 'bad-run.yaml'), bad);
    const state = path.join(root, 'state');
    const result = spawnSync(process.execPath, [bin, 'run', 'bad-run.yaml', '--json', '--state-dir', state], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expectIn(result.status, result.stderr).toBe(1);
    const summary = JSON.parse(result.stdout.trim()) as {
      status: string;
      runId: string;
      error: { code: string; message: string };
    };
    expect(summary.status).toBe('FAILED');
    expect(summary.error.code).toBe('PlanFailed');
    expect(summary.error.message).toContain('model.inputs[0].tensor "featurez"');
    expect(summary.error.message).toContain('did you mean "features"?');
    // No worker ran: no log folder has any attempt's log.
    expect(
      existsSync(path.join(state, 'logs', summary.runId))
        ? readdirSync(path.join(state, 'logs', summary.runId))
        : [],
    ).toEqual([]);
  });
});
