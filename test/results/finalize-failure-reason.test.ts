/** The first failed shard's reason (its failure record) reaches the run result and the manifest. */
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { LocalCatalog } from '../../src/catalog/local.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { manifestSchema } from '../../src/results/manifest.js';
import { writeFailureRecord } from '../../src/runs/failures.js';
import { getJson } from '../../src/storage/object-store.js';
import { makeMarker, makeRun, writeCompletedShard, type RunFixture } from './run-fixture.js';

let fx: RunFixture | undefined;
let catalog: LocalCatalog | undefined;
afterEach(async () => {
  await catalog?.close();
  await fx?.cleanup();
  fx = catalog = undefined;
});

describe('finalizeRun with failure records', () => {
  it('names the first failed shard, its error class, message and log, in the result and the manifest', async () => {
    fx = await makeRun({ shardCount: 3 });
    catalog = new LocalCatalog({ path: path.join(fx.dir, 'catalog.duckdb') });
    await writeCompletedShard(fx, makeMarker(fx.layout, 0, { records: 3 }));
    for (const shardId of [2, 1]) {
      await writeFailureRecord(fx.store, fx.state.runUri, {
        runId: fx.state.runId,
        shardId,
        round: 0,
        arrayIndex: shardId,
        attempt: 1,
        errorClass: 'ModelError',
        message: `The model could not be loaded by ONNX Runtime: protobuf parsing failed (shard ${shardId})`,
        deterministic: true,
        log: `/logs/infer-${shardId}-attempt1.log`,
        failedAt: '2024-05-06T11:00:00.000Z',
      });
    }

    const result = await finalizeRun(fx.state, { store: fx.store, catalog, codeVersion: 't' });

    const error = {
      code: 'ModelError',
      message: 'The model could not be loaded by ONNX Runtime: protobuf parsing failed (shard 1)',
      shard: 1,
      log: '/logs/infer-1-attempt1.log',
    };
    expect(result).toMatchObject({ status: 'FAILED', reason: 'ShardsFailed', error });
    expect(result.message).toContain('ModelError: The model could not be loaded');
    expect(result.message).not.toContain('no completion marker');
    const manifest = manifestSchema.parse(await getJson(fx.store, fx.layout.manifestUri));
    expect(manifest.error).toEqual(error);
    expect(manifest.counts.failedShards.details.map((s) => s.problem)).toEqual([
      expect.stringContaining('(round 0, attempt 1, log /logs/infer-1-attempt1.log)'),
      expect.stringContaining('protobuf parsing failed (shard 2)'),
    ]);
  });
});
