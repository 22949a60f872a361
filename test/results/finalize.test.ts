import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { LocalCatalog, queryCatalog } from '../../src/catalog/local.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { manifestSchema, type Manifest } from '../../src/results/manifest.js';
import { reconcileRun } from '../../src/results/reconcile.js';
import type { ShardMarker } from '../../src/runs/types.js';
import { getJson } from '../../src/storage/object-store.js';
import {
  makeMarker,
  makeRun,
  SHA,
  writeCompletedShard,
  writeMarker,
  type RunFixture,
  type RunFixtureOptions,
} from './run-fixture.js';
import { writeScores } from './parquet-fixture.js';

const NOW = () => new Date('2024-05-06T12:00:00.000Z');

let fixtures: RunFixture[] = [];
afterEach(async () => {
  await Promise.all(fixtures.map((f) => f.cleanup()));
  fixtures = [];
});

async function run(options: RunFixtureOptions): Promise<RunFixture> {
  const fx = await makeRun(options);
  fixtures.push(fx);
  return fx;
}

function catalogOf(fx: RunFixture): { catalog: LocalCatalog; dbPath: string } {
  const dbPath = path.join(fx.dir, 'catalog', 'catalog.duckdb');
  return { catalog: new LocalCatalog({ path: dbPath }), dbPath };
}

async function readManifest(fx: RunFixture): Promise<Manifest> {
  return manifestSchema.parse(await getJson(fx.store, fx.layout.manifestUri));
}

describe('finalizeRun', () => {
  it('publishes a run that passes and writes a manifest for both a passing and a failing run', async () => {
    // run-0001 keeps the default bar (maxErrorRate 0.001): one error in nine records fails it.
    const fx = await run({ shardCount: 3, runId: 'run-0001' });
    // run-0002, same job and output prefix, allows 20% errors and passes.
    const lenient = await run({
      shardCount: 3,
      runId: 'run-0002',
      dir: fx.dir,
      spec: { validation: { maxErrorRate: 0.2 } },
    });
    const { catalog, dbPath } = catalogOf(fx);
    for (const f of [fx, lenient]) {
      await writeCompletedShard(f, makeMarker(f.layout, 0, { records: 3 }));
      await writeCompletedShard(f, makeMarker(f.layout, 1, { records: 3, errors: 1 }));
      await writeCompletedShard(f, makeMarker(f.layout, 2, { records: 3 }));
    }

    const rejected = await finalizeRun(fx.state, {
      store: fx.store,
      catalog,
      now: NOW,
      codeVersion: 'test-1',
    });
    const ok = await finalizeRun(lenient.state, {
      store: lenient.store,
      catalog,
      now: NOW,
      codeVersion: 'test-1',
    });

    expect(rejected).toMatchObject({ status: 'FAILED', reason: 'ValidationFailed' });
    expect(ok).toEqual({
      runId: 'run-0002',
      status: 'SUCCEEDED',
      message: expect.stringContaining('published to table churn_scores') as unknown,
      records: 9,
      predictions: 8,
      errors: 1,
      failedShards: 0,
      outputUri: lenient.layout.partitionUri,
      manifestUri: lenient.layout.manifestUri,
    });

    const manifest = await readManifest(lenient);
    expect(manifest).toMatchObject({
      runId: 'run-0002',
      runDate: '2024-05-06',
      status: 'SUCCEEDED',
      model: { name: 'model', sha256: SHA, artifactUri: 's3://models-bucket/churn/model.onnx' },
      input: { objects: 3, bytes: 300, snapshotSha256: 'b'.repeat(64) },
      counts: {
        shards: 3,
        completedShards: 3,
        records: 9,
        predictions: 8,
        errors: 1,
        errorsByReason: { INVALID_VALUE: 1 },
        failedShards: { count: 0, ids: [], details: [], detailsOmitted: 0 },
      },
      timings: {
        plannedAt: '2024-05-06T10:00:00.000Z',
        finalizedAt: '2024-05-06T12:00:00.000Z',
        wallMs: 2 * 3600 * 1000,
        rounds: 1,
        firstShardStartedAt: '2024-05-06T10:00:00.000Z',
        lastShardFinishedAt: '2024-05-06T10:02:30.000Z',
        shards: { readMs: 3, decodeMs: 6, inferMs: 9, writeMs: 12, totalMs: 30 },
      },
      outputs: {
        partitionUri: lenient.layout.partitionUri,
        columns: { label: 'STRING', score: 'FLOAT' },
      },
      validation: { passed: true },
      catalog: { table: 'churn_scores', published: true, publishedAt: '2024-05-06T12:00:00.000Z' },
      codeVersion: 'test-1',
    });
    expect(manifest.reason).toBeUndefined();
    expect(manifest.outputs.files.map((f) => [f.shardId, f.rows])).toEqual([
      [0, 3],
      [1, 2],
      [2, 3],
    ]);
    const errorsFile = await lenient.store.head(lenient.layout.errorsUri(1));
    expect(manifest.outputs.errorsFiles).toEqual([
      {
        uri: lenient.layout.errorsUri(1),
        shardId: 1,
        rows: 1,
        bytes: errorsFile.size,
        etag: errorsFile.etag,
      },
    ]);
    expect(manifest.validation.checks.map((c) => [c.name, c.threshold, c.actual, c.passed])).toEqual([
      ['failedShards', 0, 0, true],
      ['errorRate', 0.2, 1 / 9, true],
      ['columnTypesConsistent', 0, 0, true],
      ['schema.label', 'string', 'STRING', true],
      ['schema.score', 'float', 'FLOAT', true],
      ['writtenSchema', 0, 0, true],
    ]);

    // Only the validated run is visible: run-0001 failed, its files exist on disk but are not in the view.
    const rows = await queryCatalog(
      dbPath,
      'SELECT run_date, run_id, label, score FROM churn_scores ORDER BY label',
    );
    expect(rows.columns).toEqual(['run_date', 'run_id', 'label', 'score']);
    expect(rows.rows).toEqual([
      ['2024-05-06', 'run-0002', 'label-0-0', 0],
      ['2024-05-06', 'run-0002', 'label-0-1', 0.25],
      ['2024-05-06', 'run-0002', 'label-0-2', 0.5],
      ['2024-05-06', 'run-0002', 'label-1-0', 0],
      ['2024-05-06', 'run-0002', 'label-1-1', 0.25],
      ['2024-05-06', 'run-0002', 'label-2-0', 0],
      ['2024-05-06', 'run-0002', 'label-2-1', 0.25],
      ['2024-05-06', 'run-0002', 'label-2-2', 0.5],
    ]);
    const runs = await queryCatalog(
      dbPath,
      'SELECT table_name, run_id, status, model_name, model_sha256, records, predictions, errors, manifest_uri FROM _runs',
    );
    expect(runs.rows).toEqual([
      ['churn_scores', 'run-0002', 'SUCCEEDED', 'model', SHA, 9, 8, 1, lenient.layout.manifestUri],
    ]);

    // The failed run still has its manifest, saying why.
    const failed = await readManifest(fx);
    expect(failed).toMatchObject({
      status: 'FAILED',
      reason: 'ValidationFailed',
      catalog: { published: false },
    });
    expect(failed.message).toMatch(
      /error rate 11\.1% \(1 errors in 9 records\) exceeds validation\.maxErrorRate 0\.1%/,
    );
  });

  it('fails with ShardsFailed, explains the failed shard from the reconcile record, and publishes nothing', async () => {
    const fx = await run({ shardCount: 3, maxRounds: 0 });
    await writeCompletedShard(fx, makeMarker(fx.layout, 0));
    await writeCompletedShard(fx, makeMarker(fx.layout, 2));
    const inferError = {
      Error: 'States.TaskFailed',
      Cause: JSON.stringify({ Status: 'FAILED', StatusReason: 'Array Child Job failed', JobId: 'job-1' }),
    };
    const state = await reconcileRun({ ...fx.state, inferError }, { store: fx.store });
    expect(state).toMatchObject({ next: 'finalize', pending: 1 });
    const { catalog, dbPath } = catalogOf(fx);

    const result = await finalizeRun(state, { store: fx.store, catalog, now: NOW });

    expect(result).toMatchObject({ status: 'FAILED', reason: 'ShardsFailed', failedShards: 1, records: 6 });
    expect(result.message).toMatch(/1 of 3 shards failed, more than validation\.maxFailedShards \(0\)/);
    const manifest = await readManifest(fx);
    expect(manifest.status).toBe('FAILED');
    expect(manifest.reason).toBe('ShardsFailed');
    expect(manifest.counts.failedShards).toEqual({
      count: 1,
      ids: [1],
      details: [
        {
          shardId: 1,
          problem: 'no completion marker',
          lastRound: 0,
          lastError:
            'no marker after round 0; Batch: States.TaskFailed: FAILED (Array Child Job failed); job job-1',
        },
      ],
      detailsOmitted: 0,
    });
    expect(manifest.catalog).toEqual({ table: 'churn_scores', published: false });
    await expect(queryCatalog(dbPath, 'SELECT 1')).rejects.toThrow(/No catalogue/);
  });

  it('tolerates failed shards up to maxFailedShards and publishes only the completed shards', async () => {
    const fx = await run({ shardCount: 3, spec: { validation: { maxFailedShards: 1 } } });
    await writeCompletedShard(fx, makeMarker(fx.layout, 0));
    await writeCompletedShard(fx, makeMarker(fx.layout, 1));
    // Shard 2 wrote its file but its marker is corrupt JSON: its rows must not show.
    await writeScores(fx.layout.partUri(2, 0), [{ label: 'stray', score: 1 }]);
    await writeMarker(fx, '{"version":', 2);
    const { catalog, dbPath } = catalogOf(fx);

    const result = await finalizeRun(fx.state, { store: fx.store, catalog, now: NOW });

    expect(result).toMatchObject({ status: 'SUCCEEDED', failedShards: 1, records: 6 });
    const manifest = await readManifest(fx);
    expect(manifest.counts.failedShards.details[0]?.problem).toMatch(/not valid JSON/);
    const rows = await queryCatalog(
      dbPath,
      "SELECT count(*) AS n, count(*) FILTER (label = 'stray') AS stray FROM churn_scores",
    );
    expect(rows.rows).toEqual([[6, 0]]);
  });

  it.each([
    [
      'records != predictions + errors',
      (m: ShardMarker): ShardMarker => ({ ...m, records: 4 }),
      /records \(4\) != predictions \(3\) \+ errors \(0\) in shard 1/,
    ],
    [
      'output rows != predictions',
      (m: ShardMarker): ShardMarker => ({ ...m, outputs: m.outputs.map((f) => ({ ...f, rows: 2 })) }),
      /output files of shard 1 hold 2 rows but the marker reports 3 predictions/,
    ],
    [
      'records != the exact planned count',
      (m: ShardMarker): ShardMarker => ({
        ...m,
        records: 2,
        predictions: 2,
        outputs: [{ ...m.outputs[0]!, rows: 2 }],
      }),
      /shard 1 processed 2 records but the plan counted exactly 3/,
    ],
  ])('counts a shard whose marker does not add up (%s) as failed', async (_name, corrupt, message) => {
    const fx = await run({ shardCount: 2 });
    await writeCompletedShard(fx, makeMarker(fx.layout, 0));
    await writeCompletedShard(fx, corrupt(makeMarker(fx.layout, 1)));
    const { catalog, dbPath } = catalogOf(fx);

    const result = await finalizeRun(fx.state, { store: fx.store, catalog, now: NOW });

    expect(result).toMatchObject({ status: 'FAILED', reason: 'ShardsFailed', failedShards: 1, records: 3 });
    expect(result.message).toMatch(message);
    expect((await readManifest(fx)).counts.failedShards.details[0]?.problem).toMatch(/^corrupt marker: /);
    await expect(queryCatalog(dbPath, 'SELECT 1')).rejects.toThrow(/No catalogue/);
  });

  it('accepts an estimated shard whose record count differs from the estimate', async () => {
    const fx = await run({ shardCount: 1, recordsExact: false, recordsPerShard: 1000 });
    await writeCompletedShard(fx, makeMarker(fx.layout, 0, { records: 3 }));
    const { catalog } = catalogOf(fx);
    expect(await finalizeRun(fx.state, { store: fx.store, catalog, now: NOW })).toMatchObject({
      status: 'SUCCEEDED',
    });
  });

  it('fails with ValidationFailed when a declared column has another type, naming column, declared and actual', async () => {
    const fx = await run({ shardCount: 2 });
    const columns = { label: 'STRING', score: 'DOUBLE' };
    await writeCompletedShard(fx, makeMarker(fx.layout, 0, { columns }));
    await writeCompletedShard(fx, makeMarker(fx.layout, 1, { columns }));
    const { catalog, dbPath } = catalogOf(fx);

    const result = await finalizeRun(fx.state, { store: fx.store, catalog, now: NOW });

    expect(result).toMatchObject({ status: 'FAILED', reason: 'ValidationFailed', failedShards: 0 });
    // The markers say DOUBLE while the files (writeScores) really hold FLOAT: both checks fail, the schema first.
    expect(result.message.split('\n')).toEqual([
      'column "score" is declared as float in output.schema but was written as DOUBLE (double)',
      expect.stringMatching(
        /^written files do not match their markers: .* stores "score" as FLOAT; shard 0's marker reports DOUBLE/,
      ),
    ]);
    const check = (await readManifest(fx)).validation.checks.find((c) => c.name === 'schema.score');
    expect(check).toMatchObject({ threshold: 'float', actual: 'DOUBLE', passed: false });
    await expect(queryCatalog(dbPath, 'SELECT 1')).rejects.toThrow(/No catalogue/);
  });

  it('writes the manifest and rethrows when the catalogue fails', async () => {
    const fx = await run({ shardCount: 1 });
    await writeCompletedShard(fx, makeMarker(fx.layout, 0));
    // A directory is not a database file: DuckDB refuses to open it.
    const catalog = new LocalCatalog({ path: fx.dir });

    await expect(finalizeRun(fx.state, { store: fx.store, catalog, now: NOW })).rejects.toThrow();

    const manifest = await readManifest(fx);
    expect(manifest).toMatchObject({
      status: 'FAILED',
      reason: 'PublishFailed',
      validation: { passed: true },
      catalog: { published: false },
    });
    expect(manifest.catalog.error).toBeTruthy();
  });

  it('is idempotent: finalizing twice publishes the run once', async () => {
    const fx = await run({ shardCount: 2 });
    await writeCompletedShard(fx, makeMarker(fx.layout, 0));
    await writeCompletedShard(fx, makeMarker(fx.layout, 1));
    const { catalog, dbPath } = catalogOf(fx);

    const first = await finalizeRun(fx.state, { store: fx.store, catalog, now: NOW });
    const second = await finalizeRun(fx.state, { store: fx.store, catalog, now: NOW });

    expect(second).toEqual(first);
    const counts = await queryCatalog(
      dbPath,
      'SELECT (SELECT count(*) FROM _runs) AS runs, (SELECT count(*) FROM churn_scores) AS rows',
    );
    expect(counts.rows).toEqual([[1, 6]]);
  });

  it('records the scheduled time of a run a schedule started, and none otherwise', async () => {
    const fx = await run({ shardCount: 1 });
    await writeCompletedShard(fx, makeMarker(fx.layout, 0));
    const { catalog } = catalogOf(fx);
    const scheduledTime = '2024-05-06T02:00:00.000Z';

    await finalizeRun({ ...fx.state, scheduledTime }, { store: fx.store, catalog, now: NOW });
    expect((await readManifest(fx)).scheduledTime).toBe(scheduledTime);

    await finalizeRun(fx.state, { store: fx.store, catalog, now: NOW });
    expect(await readManifest(fx)).not.toHaveProperty('scheduledTime');
  });
});
