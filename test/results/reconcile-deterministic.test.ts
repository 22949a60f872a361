/** Reconcile and failure records: a shard whose worker said a retry cannot help is not retried. */
import { afterEach, describe, expect, it } from '@jest/globals';
import { reconcileRecordSchema, reconcileRun } from '../../src/results/reconcile.js';
import { reconcileRecordUri } from '../../src/results/run-files.js';
import { failureUri, writeFailureRecord, type FailureRecord } from '../../src/runs/failures.js';
import { roundSchema } from '../../src/runs/types.js';
import { getJson } from '../../src/storage/object-store.js';
import { makeMarker, makeRun, writeMarker, type RunFixture } from './run-fixture.js';

let fx: RunFixture | undefined;
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
});

const failure = (f: RunFixture, shardId: number, deterministic = true): Omit<FailureRecord, 'version'> => ({
  runId: f.state.runId,
  shardId,
  round: 0,
  arrayIndex: shardId,
  attempt: 1,
  errorClass: 'ModelError',
  message: `model.inputs declares tensor "featurez" but the model's inputs are features`,
  deterministic,
  log: `/logs/job-${shardId}-attempt1.log`,
  failedAt: '2024-05-06T11:00:00.000Z',
});

describe('reconcileRun with failure records', () => {
  it('goes to finalize without another round when every missing shard failed deterministically', async () => {
    fx = await makeRun({ shardCount: 3 });
    for (let id = 0; id < 3; id++) await writeFailureRecord(fx.store, fx.state.runUri, failure(fx, id));

    const next = await reconcileRun(fx.state, { store: fx.store });

    expect(next).toEqual({ ...fx.state, pending: 3, next: 'finalize' });
    expect(await fx.store.tryHead(fx.layout.roundUri(1))).toBeUndefined();
    const record = reconcileRecordSchema.parse(await getJson(fx.store, reconcileRecordUri(fx.layout, 0)));
    expect(record.next).toBe('finalize');
    expect(record.deterministicFailures?.map((f) => [f.shardId, f.errorClass])).toEqual([
      [0, 'ModelError'],
      [1, 'ModelError'],
      [2, 'ModelError'],
    ]);
  });

  it('retries only the shards whose failure was not deterministic', async () => {
    fx = await makeRun({ shardCount: 4 });
    await writeMarker(fx, makeMarker(fx.layout, 0));
    await writeFailureRecord(fx.store, fx.state.runUri, failure(fx, 1));
    await writeFailureRecord(fx.store, fx.state.runUri, failure(fx, 2, false));
    // Shard 3 failed without a record (a crash, a reclaimed host): retried as before.

    const next = await reconcileRun(fx.state, { store: fx.store });

    expect(next).toEqual({ ...fx.state, round: 1, pending: 2, next: 'infer' });
    const round = roundSchema.parse(await getJson(fx.store, fx.layout.roundUri(1)));
    expect(round.shardIds).toEqual([2, 3]);
  });

  it('ignores a failure record that does not parse', async () => {
    fx = await makeRun({ shardCount: 2 });
    await fx.store.put(failureUri(fx.state.runUri, 0), '{"version": 1,');
    await writeFailureRecord(fx.store, fx.state.runUri, failure(fx, 1));
    const next = await reconcileRun(fx.state, { store: fx.store });
    expect(next).toMatchObject({ round: 1, pending: 1, next: 'infer' });
  });
});
