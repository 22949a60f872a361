/**
 * The bundled worker of a local run (worker-bundle.ts): built from the current sources, forked by the pool as plain
 * JavaScript (no tsx loader), producing the same shard output as the worker run from source, and reused by the next
 * run while the sources are unchanged (the cache itself: bundle-cache.test.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { bundleRunsProcessor, bundleWorker, type BundledWorker } from '../../src/local/worker-bundle.js';
import { LocalWorkerPool, workerEntry, type WorkerEntry } from '../../src/local/worker-pool.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { DECODE_THREADS_ENV } from '../../src/worker/env.js';
import { expectIn } from '../support/expect-in.js';
import {
  breastCancerInput,
  breastCancerSpec,
  planWorkerRun,
  readMarker,
  tempDir,
  type PlannedRun,
} from '../worker/helpers.js';

let tmp: { dir: string; cleanup: () => void };
let inputDir: string;
let bundled: BundledWorker;

beforeAll(async () => {
  tmp = tempDir('bundle-');
  inputDir = path.join(tmp.dir, 'in');
  await breastCancerInput(inputDir, 3_000, 1, 1_000);
  // A cache of this test's own: the first call builds, whatever earlier runs left in the repository's cache.
  const built = await bundleWorker({ cacheRoot: path.join(cacheRoot(), `test-${process.pid}`) });
  if (!built) throw new Error('bundleWorker() made no bundle from the TypeScript sources');
  bundled = built;
});
afterAll(async () => {
  await rm(path.join(cacheRoot(), `test-${process.pid}`), { recursive: true, force: true });
  tmp.cleanup();
});

/** The repository's cache folder (the bundle must lie under the repository, where its external packages resolve). */
function cacheRoot(): string {
  return path.join(path.dirname(workerEntry().file), '..', '..', 'node_modules', '.cache', 'batch-infer');
}

/** Runs shard 0 of `planned` in the pool with `entry`; the command line of each attempt's process. */
async function runShard(planned: PlannedRun, entry?: WorkerEntry): Promise<string[]> {
  const commandLines: string[] = [];
  const pool = new LocalWorkerPool({
    ...(entry ? { entry } : {}),
    concurrency: 1,
    logDir: path.join(tmp.dir, 'logs'),
    // Decode threads even for this one-block shard: the bundled run starts them from their own entry.
    environment: {
      [WORKER_ENV.executionProviders]: 'cpu',
      [WORKER_ENV.threads]: '1',
      [DECODE_THREADS_ENV]: '2',
    },
    onAttemptStart: ({ pid }) => {
      commandLines.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '));
    },
  });
  const result = await pool.runJob({
    jobName: `bundle-${planned.plan.runId}`,
    environment: { [WORKER_ENV.runUri]: planned.runUri },
  });
  expect(result.failed).toEqual([]);
  return commandLines;
}

describe('bundleWorker', () => {
  it("builds the worker and its threads' entries into a folder under the repository's node_modules, run without tsx", () => {
    expect(bundled.reused).toBe(false);
    expect(bundled.entry.file).toMatch(
      /node_modules\/\.cache\/batch-infer\/test-\d+\/worker-[0-9a-f]{16}\/worker\.mjs$/,
    );
    expect(readdirSync(path.dirname(bundled.entry.file)).sort()).toEqual([
      'decode-thread.mjs',
      'inference-thread.mjs',
      'worker.mjs',
    ]);
    expect(bundled.entry.execArgv).not.toContain('--import');
    expect(workerEntry().execArgv).toContain('--import');
  });

  it('is what the pool forks, and writes the same shard as the worker from source', async () => {
    const fromBundle = await planWorkerRun(breastCancerSpec(inputDir, path.join(tmp.dir, 'b')), 'bundled');
    const fromSource = await planWorkerRun(breastCancerSpec(inputDir, path.join(tmp.dir, 's')), 'source');
    const [bundleCommand] = await runShard(fromBundle, bundled.entry);
    const [sourceCommand] = await runShard(fromSource);
    expect(bundleCommand).toContain(bundled.entry.file);
    expect(bundleCommand).not.toContain('tsx');
    expect(sourceCommand).toContain(path.join('src', 'worker', 'main.ts'));
    const [a, b] = [await readMarker(fromBundle), await readMarker(fromSource)];
    expect([a.records, a.predictions, a.errors, a.errorsByReason, a.summaries]).toEqual([
      b.records,
      b.predictions,
      b.errors,
      b.errorsByReason,
      b.summaries,
    ]);
    expect(a.records).toBe(3_000);
    expect(a.errors).toBe(3);
  });

  it('is not used for a job whose processor module is TypeScript (only tsx can import it)', () => {
    expect(bundleRunsProcessor(undefined)).toBe(true);
    expect(bundleRunsProcessor('processors/sign.mjs')).toBe(true);
    expect(bundleRunsProcessor('s3://bucket/p/sign.js')).toBe(true);
    for (const module of ['sign.ts', 'dir/sign.mts', 'sign.cts', 'SIGN.TS']) {
      expectIn(bundleRunsProcessor(module), module).toBe(false);
    }
  });

  it('is reused by the next run while the sources are unchanged', async () => {
    const next = await bundleWorker({ cacheRoot: path.join(cacheRoot(), `test-${process.pid}`) });
    expect(next).toEqual({ entry: bundled.entry, reused: true });
  });
});
