/**
 * Plan at scale: a JSONL list manifest (S3 Inventory style, size and etag on every line, so no HEADs) of many
 * objects, planned end to end. The objects need not exist for that.
 *
 * By default a small run keeps the suite quick; the full measurement is
 *   BATCH_INFER_PLAN_SCALE=1000000 npx jest test/planning/plan-scale.test.ts
 * which must plan in under 20 s and stay under 1 GiB of peak RSS.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { planRun } from '../../src/planning/plan-run.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import {
  listManifestPlanRequest,
  UNUSED_REGISTRY,
  writeListManifestInput,
} from '../support/list-manifest.js';

const COUNT = Number(process.env.BATCH_INFER_PLAN_SCALE ?? 20_000);
const FULL = COUNT >= 1_000_000;
let root: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'plan-scale-'));
  await writeListManifestInput(root, COUNT);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

it(`plans ${COUNT} listed objects (time and memory budget checked with BATCH_INFER_PLAN_SCALE)`, async () => {
  const rssBefore = process.memoryUsage().rss;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const state = await planRun(listManifestPlanRequest(root, 'scale'), {
    store: new LocalObjectStore(),
    registry: UNUSED_REGISTRY,
  });
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  const sizes = await Promise.all(
    ['input.jsonl', 'shards.jsonl', 'plan.json'].map(
      async (f) => (await stat(path.join(root, 'out/_runs/scale', f))).size,
    ),
  );
  console.log(
    `plan of ${COUNT} objects: ${seconds.toFixed(2)} s wall, ${cpuSeconds.toFixed(2)} s CPU, ${state.shardCount} shards, peak RSS ${peakRssMiB.toFixed(0)} MiB ` +
      `(${(rssBefore / 2 ** 20).toFixed(0)} MiB before), input.jsonl ${(sizes[0]! / 2 ** 20).toFixed(1)} MiB, ` +
      `shards.jsonl ${(sizes[1]! / 2 ** 20).toFixed(1)} MiB`,
  );
  expect(state.shardCount).toBeGreaterThan(0);
  expect(state.shardCount).toBeLessThanOrEqual(10_000);
  if (FULL) {
    // Wall time on a quiet machine; CPU time is the figure to trust on a shared, loaded one.
    expect(Math.min(seconds, cpuSeconds)).toBeLessThan(20);
    expect(peakRssMiB).toBeLessThan(1024);
  }
});
