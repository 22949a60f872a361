/**
 * History checks written by Finalize into the manifest (local store, local catalogue, real Parquet files): a job's
 * first run says "not enough history"; a run after three succeeded ones carries the comparison, and a run whose
 * record count fell to a quarter of the usual differs from history.
 */
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from '@jest/globals';
import { LocalCatalog } from '../../src/catalog/local.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { MIN_HISTORY } from '../../src/results/history-checks.js';
import { manifestSchema, type Manifest } from '../../src/results/manifest.js';
import { getJson } from '../../src/storage/object-store.js';
import { completeShard } from '../report/report-fixture.js';
import { expectIn } from '../support/expect-in.js';
import { makeRun, tempDir } from './run-fixture.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** Finalizes runs of one job on successive days, `rowsPerShard[i]` rows in each of two shards; their manifests. */
async function runsOfOneJob(rowsPerShard: readonly number[]): Promise<Manifest[]> {
  const dir = await tempDir();
  dirs.push(dir);
  const catalog = new LocalCatalog({ path: path.join(dir, 'catalog', 'catalog.duckdb') });
  const manifests: Manifest[] = [];
  for (const [i, rows] of rowsPerShard.entries()) {
    const runDate = `2024-05-0${i + 1}`;
    const fx = await makeRun({
      dir,
      shardCount: 2,
      runId: `run-000${i + 1}`,
      runDate,
      recordsPerShard: rows,
    });
    for (const id of [0, 1]) await completeShard(fx, id, { rows });
    // Planned at 10:00 (the fixture), finalized at 12:00: every run takes two hours.
    await finalizeRun(fx.state, {
      store: fx.store,
      catalog,
      now: () => new Date(`${runDate}T12:00:00.000Z`),
    });
    manifests.push(manifestSchema.parse(await getJson(fx.store, fx.layout.manifestUri)));
  }
  return manifests;
}

describe('Finalize history checks', () => {
  it('says "not enough history" for a job\'s first run', async () => {
    const [first] = await runsOfOneJob([40]);
    expect(first!.status).toBe('SUCCEEDED');
    expect(first!.history).toEqual({
      status: 'notEnoughHistory',
      runs: 0,
      required: MIN_HISTORY,
      message: expect.stringContaining('not enough history: 0 succeeded run(s) of job churn_scores'),
    });
    expect(first!.historyError).toBeUndefined();
  });

  it('compares a run with the last succeeded runs and flags a record count that fell to a quarter', async () => {
    const manifests = await runsOfOneJob([40, 40, 40, 40, 10]);
    const usual = manifests[3]!;
    expectIn(usual.history, 'the fourth run, like the three before it').toMatchObject({
      status: 'compared',
      runIds: ['run-0001', 'run-0002', 'run-0003'],
      differs: false,
    });
    const odd = manifests[4]!;
    expectIn(odd.history, 'the fifth run, a quarter of the records').toMatchObject({
      status: 'compared',
      runIds: ['run-0001', 'run-0002', 'run-0003', 'run-0004'],
      differs: true,
    });
    if (odd.history?.status !== 'compared') throw new Error('expected a comparison');
    const byMetric = Object.fromEntries(odd.history.checks.map((c) => [c.metric, c]));
    expect(byMetric.records).toMatchObject({ value: 20, median: 80, mad: 0, differs: true });
    expect(byMetric.durationMs).toMatchObject({ value: 7_200_000, median: 7_200_000, differs: false });
  });
});
