/**
 * A price before and after, end to end through the `batch-infer` bin (a child process, the local pipeline):
 * - the first run of a job prints that there is nothing to estimate from yet, the next one an estimate from it;
 * - every marker records its instance (`local`) and seconds, and the manifest, the local catalogue's runs table and
 *   `batch-infer runs` carry the run's cost, priced with the spec's `run.prices` (the local machine at $3600/hour,
 *   so a run costs as many dollars as its shards took seconds: never 0);
 * - `run.maxCost` stops a multi-round run after its first round: the first round's shard 1 fails (a module preloaded
 *   into the workers exits in round 0 for array index 1, as in capacity-rounds.test.ts), and instead of retrying it
 *   the run fails with SpendCapReached, in the summary, its --json and the manifest.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { runCostSchema } from '../../src/cost/cost.js';
import { costEstimateSchema } from '../../src/cost/estimate.js';
import { parseManifest } from '../../src/results/manifest.js';
import { reconcileRecordSchema } from '../../src/results/reconcile.js';
import { shardMarkerSchema } from '../../src/runs/types.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { expectIn } from '../support/expect-in.js';
import { taskFaultOptions } from '../support/worker-tasks.js';

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
const bin = path.join(repo, 'bin/batch-infer.js');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'run-cost-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(env: NodeJS.ProcessEnv, ...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 150_000,
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
}

/** A job over `records` JSONL rows with the affine test model; `run` is the spec's run section. */
function writeJob(name: string, records: number, run: Record<string, unknown>): string {
  const job = path.join(dir, name);
  mkdirSync(path.join(job, 'in'), { recursive: true });
  const rows = Array.from({ length: records }, (_, i) => JSON.stringify({ id: `r${i}`, v: i % 7 }));
  writeFileSync(path.join(job, 'in', 'rows.jsonl'), `${rows.join('\n')}\n`);
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
      `name: ${name}`,
      'input: { uri: in/, format: jsonl, id: id }',
      'model:',
      `  uri: ${path.join(repo, 'test/fixtures/models/affine.onnx')}`,
      '  processor: { module: sign.mjs, columns: { sign: string } }',
      'output: { uri: out/, format: jsonl }',
      `run: ${JSON.stringify(run)}`,
    ].join('\n'),
  );
  return path.join(job, 'job.yaml');
}

const summaryOf = (stdout: string) =>
  JSON.parse(stdout.trim()) as {
    runId: string;
    status: string;
    records: number;
    manifestUri: string;
    estimate?: unknown;
    cost?: unknown;
    error?: { code: string; message: string };
  };

describe('the price of a local run', () => {
  it('estimates from the last run, and records the cost in markers, manifest, runs table and `runs`', () => {
    // $3600 an hour: a dollar per second of shard time.
    const specFile = writeJob('cost_e2e', 40, { prices: { local: { onDemand: 3600 } } });
    const state = path.join(dir, 'state');

    const first = cli({}, 'run', specFile, '--json', '--state-dir', state);
    expectIn(first.status, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/Estimate: about \d+ records in 1 shard/);
    expect(first.stderr).toMatch(/cost +unknown: no succeeded run of cost_e2e to measure/);
    const one = summaryOf(first.stdout);
    expect(costEstimateSchema.parse(one.estimate)).toMatchObject({
      speedSource: 'none',
      instanceType: 'local',
    });

    const cost = runCostSchema.parse(one.cost);
    const manifest = parseManifest(JSON.parse(readFileSync(fileURLToPath(one.manifestUri), 'utf8')));
    expect(manifest.cost).toEqual(cost);
    expect(cost.currency).toBe('USD');
    expect(cost.total).toBeGreaterThan(0);
    // A dollar per second: the cost is the shard seconds.
    expect(cost.total).toBeCloseTo(cost.shardSeconds, 6);
    expect(cost.byLifecycle.local).toMatchObject({ shards: 1 });
    expect(cost.byRound).toEqual([expect.objectContaining({ round: 0, queue: 'first', shards: 1 })]);

    const markersDir = path.join(path.dirname(fileURLToPath(one.manifestUri)), 'shards');
    const markers = readdirSync(markersDir).map((f) =>
      shardMarkerSchema.parse(JSON.parse(readFileSync(path.join(markersDir, f), 'utf8'))),
    );
    expect(markers.map((m) => m.instance)).toEqual([{ type: 'local', lifecycle: 'local', source: 'local' }]);
    expect(markers[0]!.seconds).toBeCloseTo(cost.shardSeconds, 6);

    const table = cli(
      {},
      'query',
      '--state-dir',
      state,
      `select cost, cost_currency from _runs where run_id = '${one.runId}'`,
      '--json',
    );
    expectIn(table.status, table.stderr).toBe(0);
    const result = JSON.parse(table.stdout) as { columns: string[]; rows: unknown[][] };
    expect(result.rows).toEqual([[expect.closeTo(cost.total, 6), 'USD']]);

    const runs = cli({}, 'runs', '--json', '--state-dir', state);
    expectIn(runs.status, runs.stderr).toBe(0);
    const listed = (
      JSON.parse(runs.stdout) as { runs: { runId: string; cost?: number; costCurrency?: string }[] }
    ).runs;
    expect(listed.find((r) => r.runId === one.runId)).toMatchObject({
      cost: cost.total,
      costCurrency: 'USD',
    });
    const text = cli({}, 'runs', '--state-dir', state);
    expect(text.stdout).toMatch(/COST/);

    const second = cli({}, 'run', specFile, '--json', '--state-dir', state);
    expectIn(second.status, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/speed +\S+ ms per record \(measured in the last 1 succeeded run\(s\)\)/);
    const estimate = costEstimateSchema.parse(summaryOf(second.stdout).estimate);
    expect(estimate).toMatchObject({ speedSource: 'history', historyRunIds: [one.runId], records: 40 });
    // The first run's seconds per record, times this run's records, at $1 a second.
    expect(estimate.secondsPerRecord).toBeCloseTo(cost.shardSeconds / one.records, 9);
    expect(estimate.cost).toBeCloseTo(40 * (cost.shardSeconds / one.records), 6);
  }, 300_000);

  it('stops a multi-round run at run.maxCost and fails it with that reason', () => {
    const specFile = writeJob('cost_cap_e2e', 400, {
      prices: { local: { onDemand: 3600 } },
      shards: { targetRecords: 200 },
      maxRounds: 2,
      maxCost: 0.001,
    });
    const nodeOptions = taskFaultOptions(path.join(dir, 'shard-1-fails-in-round-0.mjs'), {
      when: `env.${WORKER_ENV.round} === '0' && env.${WORKER_ENV.arrayIndex} === '1'`,
      action: 'fail',
      message: 'injected: shard 1 lost in round 0',
    });
    const result = cli(
      { NODE_OPTIONS: nodeOptions },
      'run',
      specFile,
      '--json',
      '--state-dir',
      path.join(dir, 'state-cap'),
    );
    expectIn(result.status, result.stderr).toBe(1);
    expect(result.stderr).toContain('spend cap    $0.0010 (run.maxCost)');
    const summary = summaryOf(result.stdout);
    expect(summary.status).toBe('FAILED');
    expect(summary.error?.code).toBe('SpendCapReached');
    expect(summary.error?.message).toMatch(/^run\.maxCost \$0\.0010 reached after round 0: spent \$\d/);

    const manifest = parseManifest(JSON.parse(readFileSync(fileURLToPath(summary.manifestUri), 'utf8')));
    expect(manifest.counts.shards).toBe(2);
    // No retry round ran: shard 1 was never retried.
    expect(manifest.timings.rounds).toBe(1);
    expect(manifest.counts.failedShards.ids).toEqual([1]);
    expect(manifest.error?.code).toBe('SpendCapReached');
    expect(manifest.message).toContain('run.maxCost $0.0010 reached');
    expect(manifest.cost?.spendCap).toMatchObject({ maxCost: 0.001, round: 0 });
    const record = reconcileRecordSchema.parse(
      JSON.parse(
        readFileSync(
          path.join(path.dirname(fileURLToPath(summary.manifestUri)), 'rounds', '0.reconcile.json'),
          'utf8',
        ),
      ),
    );
    expect(record).toMatchObject({ next: 'finalize', missing: [1], spendCap: { stopped: true } });
  }, 300_000);
});
