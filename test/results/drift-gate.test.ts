/**
 * The drift gate end to end through Finalize (local store, local catalogue, real Parquet files): with
 * `validation.drift: { maxPsi, gate: true }` a run whose predictions drifted from the previous succeeded run fails
 * validation and is not published; the same drift without the gate is published, and a first run passes the gate.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { LocalCatalog, queryCatalog } from '../../src/catalog/local.js';
import { readHistory } from '../../src/results/drift.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { manifestSchema } from '../../src/results/manifest.js';
import { getJson } from '../../src/storage/object-store.js';
import { completeShard } from '../report/report-fixture.js';
import { makeRun, tempDir, type RunFixture } from './run-fixture.js';
import { rm } from 'node:fs/promises';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** Two runs of one job: the first as given, the second with its scores shifted by 0.5 and other labels. */
async function twoRuns(gate: boolean): Promise<{ first: RunFixture; second: RunFixture; dbPath: string }> {
  const dir = await tempDir();
  dirs.push(dir);
  const dbPath = path.join(dir, 'catalog', 'catalog.duckdb');
  const catalog = new LocalCatalog({ path: dbPath });
  const spec = { validation: { drift: { maxPsi: 0.25, gate } } };
  const first = await makeRun({
    dir,
    shardCount: 2,
    runId: 'run-0001',
    runDate: '2024-05-06',
    spec,
    recordsPerShard: 40,
  });
  for (const id of [0, 1]) await completeShard(first, id, { rows: 40 });
  const firstResult = await finalizeRun(first.state, {
    store: first.store,
    catalog,
    now: () => new Date('2024-05-06T12:00:00.000Z'),
  });
  // A first run has no baseline: the gate passes it.
  expect(firstResult.status).toBe('SUCCEEDED');

  const second = await makeRun({
    dir,
    shardCount: 2,
    runId: 'run-0002',
    runDate: '2024-05-07',
    spec,
    recordsPerShard: 40,
  });
  for (const id of [0, 1]) await completeShard(second, id, { rows: 40, labels: ['fish'], offset: 0.5 });
  await finalizeRun(second.state, {
    store: second.store,
    catalog,
    now: () => new Date('2024-05-07T12:00:00.000Z'),
  });
  return { first, second, dbPath };
}

describe('the drift gate', () => {
  it('fails a drifted run and keeps it out of the catalogue and the history', async () => {
    const { first, second, dbPath } = await twoRuns(true);
    const manifest = manifestSchema.parse(await getJson(second.store, second.layout.manifestUri));
    expect(manifest).toMatchObject({ status: 'FAILED', reason: 'ValidationFailed' });
    expect(manifest.catalog.published).toBe(false);
    expect(manifest.drift?.baselineRunId).toBe('run-0001');
    expect(manifest.validation.checks.find((c) => c.name === 'drift')).toMatchObject({
      passed: false,
      threshold: 0.25,
      actual: manifest.drift?.maxPsi,
      message: expect.stringContaining('beyond validation.drift.maxPsi (0.25): label'),
    });
    const runs = await queryCatalog(dbPath, 'SELECT run_id, status FROM _runs ORDER BY run_id');
    expect(runs.rows).toEqual([['run-0001', 'SUCCEEDED']]);
    // The next run still compares against the last good one.
    expect((await readHistory(first.store, first.layout)).runs.map((r) => r.runId)).toEqual(['run-0001']);
    // The report says why.
    const html = new TextDecoder().decode(await second.store.get(`${second.layout.runUri}report.html`));
    expect(html).toContain('data-status="FAILED"');
    expect(html).toMatch(/<tr class="fail"><td>FAILED<\/td><td>drift<\/td>/);
  });

  it('publishes the same drift when the gate is off', async () => {
    const { second, dbPath } = await twoRuns(false);
    const manifest = manifestSchema.parse(await getJson(second.store, second.layout.manifestUri));
    expect(manifest.status).toBe('SUCCEEDED');
    expect(manifest.drift?.maxPsi).toBeGreaterThan(0.25);
    expect(manifest.validation.checks.map((c) => c.name)).not.toContain('drift');
    const runs = await queryCatalog(dbPath, 'SELECT run_id FROM _runs ORDER BY run_id');
    expect(runs.rows).toEqual([['run-0001'], ['run-0002']]);
  });
});
