/**
 * The local pool's worker as one JavaScript file, built at the start of a run from the current sources.
 *
 * From source, the pool forks src/worker/main.ts through tsx's loader, and every worker process then transpiles the
 * worker's whole module graph, twice (its inference thread loads the same modules again). A local run of the demo
 * starts a worker per shard: measured on the shared 2-core build machine, 1.1-3.4 s more CPU per worker process
 * through tsx than from a bundle (docs/adr/0019-tabular-data-path.md). esbuild bundles the same entry once per run
 * (what the worker image does, containers/worker/Dockerfile), so the workers run exactly the current sources and
 * start like the deployed worker does.
 *
 * The files (the worker and its threads' own entries, WORKER_BUNDLE_ENTRIES) go into a folder of their own under the
 * repository's node_modules/.cache/: the native packages they leave external (onnxruntime-node, DuckDB, sharp,
 * tokenizers) resolve from there as they do from the sources. Installed from npm (dist/, plain JavaScript) there is
 * nothing to transpile and no bundle is made.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type * as Esbuild from 'esbuild';
import { WORKER_BUNDLE_ENTRIES } from '../worker/spawn-thread.js';
import { workerEntry, type WorkerEntry } from './worker-pool.js';

export interface BundledWorker {
  readonly entry: WorkerEntry;
  /** Removes the bundle (after the run). */
  dispose(): Promise<void>;
}

/** Packages with native code (or files loaded at run time): loaded from node_modules, as in the worker image. */
const EXTERNAL = ['onnxruntime-node', '@duckdb/*', 'sharp', '@huggingface/*'];

/**
 * Bundles the worker entry when it is a TypeScript source; undefined when it is already JavaScript, or when esbuild
 * is not installed (the pool then forks the source through tsx, as before).
 */
export async function bundleWorker(): Promise<BundledWorker | undefined> {
  const source = workerEntry();
  if (path.extname(source.file) !== '.ts') return undefined;
  const repo = path.join(path.dirname(source.file), '..', '..');
  const outdir = path.join(
    repo,
    'node_modules',
    '.cache',
    'batch-infer',
    `worker-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  const file = await buildWorkerBundle(repo, outdir);
  if (!file) return undefined;
  return {
    // The pool's Node options without tsx's loader: nothing left to transpile.
    entry: { file, execArgv: withoutLoader(source.execArgv) },
    dispose: () => rm(outdir, { recursive: true, force: true }),
  };
}

/**
 * Builds the worker and its threads' entries (WORKER_BUNDLE_ENTRIES) from the sources of the repository at `repo`
 * into `outdir`, which must lie where the external packages resolve (under the repository); returns the worker's
 * file, or undefined when esbuild is not installed. The local run's bundle and the benchmarks' worker.
 */
export async function buildWorkerBundle(repo: string, outdir: string): Promise<string | undefined> {
  let esbuild: typeof Esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    return undefined;
  }
  await mkdir(outdir, { recursive: true });
  const entryPoints = Object.fromEntries(
    Object.entries(WORKER_BUNDLE_ENTRIES).map(([name, file]) => [name, path.join(repo, file)]),
  );
  await esbuild.build({
    entryPoints,
    bundle: true,
    platform: 'node',
    target: `node${process.versions.node.split('.')[0]}`,
    format: 'esm',
    external: EXTERNAL,
    // Bundled CommonJS code needs a `require` inside the ES module (as the Dockerfile's banner gives it).
    banner: {
      js: "import { createRequire as __batchInferCreateRequire } from 'node:module'; const require = __batchInferCreateRequire(import.meta.url);",
    },
    outdir,
    outExtension: { '.js': '.mjs' },
    logLevel: 'silent',
  });
  return path.join(outdir, 'worker.mjs');
}

/**
 * Whether a bundled worker can run a job with this processor module: the worker imports the module itself, and a
 * TypeScript one (.ts, .mts, .cts) only runs through tsx's loader, which the bundle is forked without.
 */
export function bundleRunsProcessor(module: string | undefined): boolean {
  return module === undefined || !/\.[cm]?ts$/i.test(module);
}

/** execArgv without `--import <loader>`. */
function withoutLoader(execArgv: readonly string[]): string[] {
  return execArgv.filter((a, k, all) => a !== '--import' && all[k - 1] !== '--import');
}
