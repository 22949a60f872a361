/**
 * Plan at scale: a JSONL list manifest (S3 Inventory style, size and etag on every line, so no HEADs) of many
 * objects, planned end to end. The objects need not exist for that.
 *
 * By default a small run keeps the suite quick; the full measurement is
 *   BATCH_INFER_PLAN_SCALE=1000000 npx vitest run test/planning/plan-scale.test.ts
 * which must plan in under 20 s and stay under 1 GiB of peak RSS.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { planRun } from '../../src/planning/plan-run.js';
import type { ModelRegistry } from '../../src/registry/model-registry.js';
import { LocalObjectStore } from '../../src/storage/local.js';

const COUNT = Number(process.env.BATCH_INFER_PLAN_SCALE ?? 20_000);
const FULL = COUNT >= 1_000_000;
let root: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'plan-scale-'));
  await writeFile(path.join(root, 'model.onnx'), 'model');
  const out = createWriteStream(path.join(root, 'inventory.jsonl'));
  const base = pathToFileURL(path.join(root, 'data')).href;
  for (let i = 0; i < COUNT; i++) {
    // Sizes from 1 KB to ~8 MB, deterministic; a reverse-ish order so the planner's sort has work to do.
    const n = COUNT - i;
    const line = `{"uri":"${base}/dt=${n % 30}/part-${String(n).padStart(8, '0')}.jsonl","size":${1000 + ((n * 7919) % 8_000_000)},"etag":"${(n * 2654435761).toString(16).padStart(12, '0')}"}\n`;
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

it(`plans ${COUNT} listed objects (time and memory budget checked with BATCH_INFER_PLAN_SCALE)`, async () => {
  const store = new LocalObjectStore();
  const registry: ModelRegistry = {
    resolve: () => Promise.reject(new Error('not used: the spec names model.uri')),
  };
  const url = (p: string): string => pathToFileURL(path.join(root, p)).href;
  const rssBefore = process.memoryUsage().rss;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const state = await planRun(
    {
      runId: 'scale',
      spec: {
        name: 'scale',
        input: { uri: url('inventory.jsonl'), format: 'jsonl', manifest: 'list' },
        model: {
          uri: url('model.onnx'),
          inputs: [{ tensor: 'x', from: { columns: ['a'] } }],
          outputs: [{ tensor: 'y' }],
        },
        output: { uri: `${url('out')}/` },
      },
    },
    { store, registry },
  );
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
