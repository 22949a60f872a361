/**
 * The first failure's reason of a failed run, wherever it comes from: a stop record (canary, early stop), a failure
 * record, the reconcile records (a shard killed without a record), or a failing check. "no completion marker" never
 * stands alone.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { LocalCatalog } from '../../src/catalog/local.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { manifestSchema } from '../../src/results/manifest.js';
import { reconcileRun } from '../../src/results/reconcile.js';
import { describeRunError, runErrorOf, withFirstError } from '../../src/results/run-error.js';
import { writeRunStop } from '../../src/runs/stop.js';
import { getJson } from '../../src/storage/object-store.js';
import { makeMarker, makeRun, writeCompletedShard, type RunFixture } from './run-fixture.js';

let fx: RunFixture | undefined;
let catalog: LocalCatalog | undefined;
afterEach(async () => {
  await catalog?.close();
  await fx?.cleanup();
  fx = catalog = undefined;
});

describe('runErrorOf', () => {
  const base = { passed: false, reason: 'ShardsFailed', message: 'x', failures: new Map() };

  it('explains a shard without a failure record by its last round, not "no completion marker" alone', () => {
    const error = runErrorOf({
      ...base,
      failedShards: [
        {
          shardId: 4,
          problem: 'no completion marker',
          lastError: 'no marker after round 2; Batch job failed: exit code 137 (OutOfMemoryError)',
          logStream: 'worker/default/abc',
        },
      ],
    });
    expect(error).toEqual({
      code: 'ShardFailed',
      message:
        'no completion marker: no marker after round 2; Batch job failed: exit code 137 (OutOfMemoryError)',
      shard: 4,
      log: 'worker/default/abc',
    });
  });

  it('says where to look when no round recorded anything', () => {
    const error = runErrorOf({ ...base, failedShards: [{ shardId: 0, problem: 'no completion marker' }] });
    expect(error?.message).toMatch(
      /^no completion marker: the worker left no failure record .* batch-infer logs/,
    );
  });

  it('takes a stop over everything, and nothing for a passed run', () => {
    const stopped = { code: 'CanaryFailed', message: 'canary: 5 of 5 records failed' };
    expect(runErrorOf({ ...base, passed: true, failedShards: [], stopped })).toEqual(stopped);
    expect(runErrorOf({ ...base, passed: true, failedShards: [] })).toBeUndefined();
  });

  it('puts the error first in the message unless its first line already says it', () => {
    const error = { code: 'ShardFailed', message: 'killed', shard: 2, log: '/l' };
    expect(describeRunError(error)).toBe('ShardFailed in shard 2: killed (log /l)');
    expect(withFirstError('1 of 3 shards failed', error)).toBe(
      'first error: ShardFailed in shard 2: killed (log /l)\n1 of 3 shards failed',
    );
    expect(
      withFirstError('error rate 5% exceeds', { code: 'ValidationFailed', message: 'error rate 5% exceeds' }),
    ).toBe('error rate 5% exceeds');
  });
});

describe('finalizeRun explains every failed run', () => {
  it('a shard killed without a failure record: manifest.error and the first line of the message name its Batch error', async () => {
    fx = await makeRun({ shardCount: 2, maxRounds: 0 });
    catalog = new LocalCatalog({ path: path.join(fx.dir, 'catalog.duckdb') });
    await writeCompletedShard(fx, makeMarker(fx.layout, 0));
    const inferError = {
      Error: 'States.TaskFailed',
      Cause: JSON.stringify({
        Status: 'FAILED',
        StatusReason: 'Essential container in task exited',
        JobId: 'j-9',
      }),
    };
    const state = await reconcileRun({ ...fx.state, inferError }, { store: fx.store });

    const result = await finalizeRun(state, { store: fx.store, catalog, codeVersion: 't' });

    expect(result.error).toMatchObject({ code: 'ShardFailed', shard: 1 });
    expect(result.error?.message).toContain('Essential container in task exited');
    const [first] = result.message.split('\n');
    expect(first).toMatch(
      /^first error: ShardFailed in shard 1: no completion marker: no marker after round 0; Batch:/,
    );
    const manifest = manifestSchema.parse(await getJson(fx.store, fx.layout.manifestUri));
    expect(manifest.error).toEqual(result.error);
    expect(manifest.message).toBe(result.message);
  });

  it('a stopped run fails with its stop reason even when every check passed', async () => {
    fx = await makeRun({ shardCount: 1, spec: { validation: { maxFailedShards: 1 } } });
    catalog = new LocalCatalog({ path: path.join(fx.dir, 'catalog.duckdb') });
    await writeRunStop(fx.store, fx.state.runUri, {
      runId: fx.state.runId,
      code: 'CanaryFailed',
      message: 'the canary (first 4 records of shard 0) failed: 4 of 4 records are error rows',
      round: 0,
      shard: 0,
      stoppedAt: '2024-05-06T11:00:00.000Z',
    });

    const result = await finalizeRun(fx.state, { store: fx.store, catalog, codeVersion: 't' });

    expect(result).toMatchObject({
      status: 'FAILED',
      reason: 'ValidationFailed',
      error: { code: 'CanaryFailed', shard: 0 },
    });
    expect(result.message.split('\n')[0]).toBe(
      'run stopped: the canary (first 4 records of shard 0) failed: 4 of 4 records are error rows',
    );
    const manifest = manifestSchema.parse(await getJson(fx.store, fx.layout.manifestUri));
    expect(manifest.validation.checks.find((c) => c.name === 'runStopped')).toMatchObject({ passed: false });
  });
});
