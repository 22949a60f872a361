/**
 * Finalize and Reconcile over a large run, with real marker files, real Parquet files and the real local
 * catalogue. Guards the "lists once, reads with bounded concurrency, stays linear" design: a per-shard HEAD, an
 * O(n²) step or unbounded parallelism shows up here.
 *
 * By default 2,000 shards (a few seconds on two cores); BATCH_INFER_SCALE=1 runs the largest run the planner
 * makes (MAX_SHARDS = 10,000). Requests are counted through the store and bounded; times are logged, not asserted:
 * `npm run bench` (plan-finalize) measures them.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LocalCatalog, queryCatalog } from '../../src/catalog/local.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { reconcileRun } from '../../src/results/reconcile.js';
import { DEFAULT_READ_CONCURRENCY, forEachLimit } from '../../src/results/run-files.js';
import { MAX_SHARDS } from '../../src/spec/schema.js';
import { countingStore, type RequestCounts } from '../support/counting-store.js';
import { expectIn } from '../support/expect-in.js';
import { makeMarker, makeRun, writeMarker, type RunFixture } from './run-fixture.js';
import { writeScores } from './parquet-fixture.js';

const SHARDS = process.env.BATCH_INFER_SCALE ? MAX_SHARDS : 2_000;
let fx: RunFixture;

beforeAll(async () => {
  fx = await makeRun({ shardCount: SHARDS });
  // One real Parquet file, copied per shard: every marker points at a readable file of the right row count.
  const template = path.join(fx.dir, 'template.parquet');
  await writeScores(`file://${template}`, [
    { label: 'a', score: 0.5 },
    { label: 'b', score: 0.25 },
    { label: 'c', score: 1 },
  ]);
  // Workers write staged parts (docs/adr/0014 §9); Finalize moves them into the partition.
  await mkdir(fileURLToPath(fx.layout.stagingUri), { recursive: true });
  const ids = Array.from({ length: SHARDS }, (_, i) => i);
  await forEachLimit(ids, 64, async (id) => {
    await copyFile(template, fileURLToPath(fx.layout.partUri(id, 0)));
    await writeMarker(fx, makeMarker(fx.layout, id));
  });
}, 120_000);

afterAll(async () => {
  await fx.cleanup();
});

/**
 * The design's request budget, counted through the store: one GET per marker plus a constant (plan, shard list,
 * state), a constant number of listings, no HEAD per shard (the markers carry sizes and ETags), and never more
 * than DEFAULT_READ_CONCURRENCY requests at once. A per-shard HEAD adds SHARDS requests, a quadratic step re-reads
 * markers (SHARDS² GETs), unbounded parallelism puts hundreds in flight: each fails here, whatever the machine's
 * speed. Publishing moves each staged file once (docs/adr/0014 §9): `moves` is that count, 0 for Reconcile.
 */
function expectLinearRequests(counts: RequestCounts, moves = 0): void {
  const context = JSON.stringify(counts);
  const { get = 0, head = 0, tryHead = 0, list = 0, listPrefixes = 0, move = 0, ...others } = counts.calls;
  expectIn(move, context).toBe(moves);
  expectIn(get, context).toBeGreaterThanOrEqual(SHARDS);
  expectIn(get, context).toBeLessThanOrEqual(SHARDS + 16);
  expectIn(head + tryHead, context).toBeLessThanOrEqual(8);
  expectIn(list + listPrefixes, context).toBeLessThanOrEqual(8);
  expectIn(
    Object.values(others).reduce((n, c) => n + c, 0),
    context,
  ).toBeLessThanOrEqual(16);
  expectIn(counts.maxInFlight, context).toBeLessThanOrEqual(DEFAULT_READ_CONCURRENCY);
}

describe(`a run of ${SHARDS} shards`, () => {
  it('reconciles every shard as complete', async () => {
    const started = performance.now();
    const { store, counts } = countingStore(fx.store);
    const next = await reconcileRun(fx.state, { store });
    const ms = performance.now() - started;
    console.log(`reconcile of ${SHARDS} markers: ${ms.toFixed(0)} ms`);
    expect(next).toMatchObject({ pending: 0, next: 'finalize' });
    expectLinearRequests(counts());
  });

  it('finalizes every shard, catalogue included', async () => {
    const dbPath = path.join(fx.dir, 'catalog.duckdb');
    const started = performance.now();
    const { store, counts } = countingStore(fx.store);
    const result = await finalizeRun(fx.state, {
      store,
      catalog: new LocalCatalog({ path: dbPath }),
    });
    const ms = performance.now() - started;
    console.log(`finalize of ${SHARDS} markers (incl. publishing ${SHARDS} files): ${ms.toFixed(0)} ms`);
    expect(result).toMatchObject({ status: 'SUCCEEDED', records: 3 * SHARDS, failedShards: 0 });
    expectLinearRequests(counts(), SHARDS);
    const rows = await queryCatalog(dbPath, 'SELECT count(*) FROM churn_scores');
    expect(rows.rows).toEqual([[3 * SHARDS]]);
  });
});
