/**
 * Input feature drift: the worker summarises the tabular columns the model reads (`model.inputs[].from.columns`)
 * into each shard marker's `inputSummaries`; Finalize merges them into the manifest and drift reports their PSI as
 * `input.<column>` in `drift.columns`, next to the prediction columns (so maxPsi, the metric and the gate cover them).
 */
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { LocalCatalog } from '../../src/catalog/local.js';
import { computeDrift, withInputSummaries } from '../../src/results/drift.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { manifestSchema, runSummaries } from '../../src/results/manifest.js';
import { NumericAccumulator, type NumericSummary, type OutputSummaries } from '../../src/runs/stats.js';
import type { ShardMarker } from '../../src/runs/types.js';
import { getJson } from '../../src/storage/object-store.js';
import { completeShard } from '../report/report-fixture.js';
import { makeRun, tempDir, writeMarker, type RunFixture } from './run-fixture.js';

const DRIFT_THRESHOLD = 0.25;

const numeric = (values: readonly number[]): NumericSummary => {
  const acc = new NumericAccumulator();
  for (const v of values) acc.add(v);
  return acc.summary();
};

/** Shard `shardId` of 2, 200 rows: `age` 20..59 (shifted by `ageShift`), `income` 1000..2990, never shifted. */
function shardInputs(shardId: number, ageShift: number): OutputSummaries {
  const rows = [...Array(200).keys()].map((i) => i + 200 * shardId);
  return {
    age: numeric(rows.map((i) => 20 + (i % 40) + ageShift)),
    income: numeric(rows.map((i) => 1000 + 5 * (i % 400))),
  };
}

const withInputs = (marker: ShardMarker, inputs: OutputSummaries): ShardMarker => ({
  ...marker,
  inputSummaries: inputs,
});

describe('input summaries: merged per run, compared as input.<column>', () => {
  it('reports PSI above the threshold for the shifted input column and ~0 for the unchanged one', () => {
    const outputs: OutputSummaries = { score: numeric([0.1, 0.2, 0.3, 0.4]) };
    const marker = (shardId: number, shift: number): ShardMarker =>
      ({
        shardId,
        summaries: outputs,
        inputSummaries: shardInputs(shardId, shift),
      }) as unknown as ShardMarker;
    const before = runSummaries([marker(0, 0), marker(1, 0)]);
    const after = runSummaries([marker(0, 30), marker(1, 30)]);
    // The shards' summaries merge into the run's: every row of both shards counted.
    const age = before.inputSummaries?.age;
    expectIn(age?.kind === 'numeric' ? age.count : undefined, before).toBe(400);

    const drift = computeDrift(
      'run-0001',
      withInputSummaries(before.summaries!, before.inputSummaries),
      withInputSummaries(after.summaries!, after.inputSummaries),
    );
    expectIn(drift?.columns['input.age'], drift).toBeGreaterThan(DRIFT_THRESHOLD);
    expectIn(drift?.columns['input.income'], drift).toBeCloseTo(0, 6);
    expectIn(drift?.columns.score, drift).toBeCloseTo(0, 6);
    expect(drift?.maxPsi).toBe(drift?.columns['input.age']);
  });

  it('keeps input and output columns of the same name apart, and adds nothing without input summaries', () => {
    const outputs: OutputSummaries = { x: numeric([1, 2, 3]) };
    const both = withInputSummaries(outputs, { x: numeric([7]) });
    expect(Object.keys(both).sort()).toEqual(['input.x', 'x']);
    expect(withInputSummaries(outputs, undefined)).toEqual(outputs);
  });

  it('reports shards whose input summaries cannot be merged, without losing the output summaries', () => {
    const outputs: OutputSummaries = { score: numeric([0.5]) };
    const a = { shardId: 0, summaries: outputs, inputSummaries: { age: numeric([1]) } };
    const b = {
      shardId: 1,
      summaries: outputs,
      inputSummaries: { age: { kind: 'categorical', count: 1, missing: 0, counts: { a: 1 }, other: 0 } },
    };
    const merged = runSummaries([a, b] as unknown as ShardMarker[]);
    expect(merged.summaries?.score).toBeDefined();
    expect(merged.inputSummaries).toBeUndefined();
    expect(merged.inputSummariesError).toMatch(
      /column "age" is summarised as numeric on one side and categorical/,
    );
  });
});

describe('Finalize: input drift against the previous succeeded run', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  async function runWithInputs(
    dir: string,
    catalog: LocalCatalog,
    runId: string,
    runDate: string,
    ageShift: number,
  ): Promise<RunFixture> {
    const fx = await makeRun({
      dir,
      shardCount: 2,
      runId,
      runDate,
      spec: { validation: { drift: { maxPsi: DRIFT_THRESHOLD, gate: true } } },
      recordsPerShard: 40,
    });
    for (const id of [0, 1]) {
      // Same predictions in both runs: only the inputs move.
      const marker = await completeShard(fx, id, { rows: 40 });
      await writeMarker(fx, withInputs(marker, shardInputs(id, ageShift)), id, { files: 'as-is' });
    }
    await finalizeRun(fx.state, {
      store: fx.store,
      catalog,
      now: () => new Date(`${runDate}T12:00:00.000Z`),
    });
    return fx;
  }

  it('writes inputSummaries and input.<column> PSI to the manifest; the gate stops a run whose inputs drifted', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const catalog = new LocalCatalog({ path: path.join(dir, 'catalog', 'catalog.duckdb') });
    const first = await runWithInputs(dir, catalog, 'run-0001', '2024-05-06', 0);
    const firstManifest = manifestSchema.parse(await getJson(first.store, first.layout.manifestUri));
    expect(firstManifest.status).toBe('SUCCEEDED');
    expect(Object.keys(firstManifest.inputSummaries ?? {}).sort()).toEqual(['age', 'income']);
    const firstAge = firstManifest.inputSummaries?.age;
    expectIn(firstAge?.kind === 'numeric' ? firstAge.count : undefined, firstManifest).toBe(400);

    const second = await runWithInputs(dir, catalog, 'run-0002', '2024-05-07', 30);
    const manifest = manifestSchema.parse(await getJson(second.store, second.layout.manifestUri));
    const columns = manifest.drift?.columns ?? {};
    expectIn(manifest.drift?.baselineRunId, manifest.drift).toBe('run-0001');
    expectIn(columns['input.age'], manifest.drift).toBeGreaterThan(DRIFT_THRESHOLD);
    expectIn(columns['input.income'], manifest.drift).toBeCloseTo(0, 6);
    expectIn(columns.score, manifest.drift).toBeCloseTo(0, 6);
    expect(manifest.drift?.maxPsi).toBe(columns['input.age']);
    expect(manifest).toMatchObject({ status: 'FAILED', reason: 'ValidationFailed' });
    expect(manifest.validation.checks.find((c) => c.name === 'drift')).toMatchObject({
      passed: false,
      message: expect.stringContaining('input.age'),
    });
  });
});
