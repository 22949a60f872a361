/**
 * The local pool's worker as JavaScript files, bundled from the current sources and kept between runs.
 *
 * From source, the pool forks src/worker/main.ts through tsx's loader, and every worker process then transpiles the
 * worker's whole module graph, twice (its inference thread loads the same modules again). A local run of the demo
 * starts a worker per shard: measured on the shared 2-core build machine, 1.1-3.4 s more CPU per worker process
 * through tsx than from a bundle (docs/adr/0019-tabular-data-path.md). esbuild bundles the same entries (what the
 * worker image does, containers/worker/Dockerfile), so the workers run exactly the current sources and start like
 * the deployed worker does. The bundle is built once and reused while its sources are unchanged (bundle-cache.ts,
 * docs/adr/0022-cached-bundles.md): building it took 0.8 s of each run's wall time.
 *
 * The files (the worker and its threads' own entries, WORKER_BUNDLE_ENTRIES) go into a folder under the
 * repository's node_modules/.cache/: the native packages they leave external (onnxruntime-node, DuckDB, sharp,
 * tokenizers) resolve from there as they do from the sources. Installed from npm (dist/, plain JavaScript) there is
 * nothing to transpile and no bundle is made.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type * as Esbuild from 'esbuild';
import { WORKER_BUNDLE_ENTRIES } from '../worker/spawn-thread.js';
import { cachedBundle } from './bundle-cache.js';
import { workerEntry, type WorkerEntry } from './worker-pool.js';

export interface BundledWorker {
  readonly entry: WorkerEntry;
  /** Whether the bundle was reused from an earlier run (false: this call built it). */
  readonly reused: boolean;
}

/** Packages with native code (or files loaded at run time): loaded from node_modules, as in the worker image. */
const EXTERNAL = ['onnxruntime-node', '@duckdb/*', 'sharp', '@huggingface/*'];

/** esbuild's options for the worker bundle, apart from its entries and where it goes. */
const WORKER_BUILD = {
  bundle: true,
  platform: 'node',
  target: `node${process.versions.node.split('.')[0]}`,
  format: 'esm',
  external: EXTERNAL,
  // Bundled CommonJS code needs a `require` inside the ES module (as the Dockerfile's banner gives it).
  banner: {
    js: "import { createRequire as __batchInferCreateRequire } from 'node:module'; const require = __batchInferCreateRequire(import.meta.url);",
  },
  outExtension: { '.js': '.mjs' },
  logLevel: 'silent',
} satisfies Esbuild.BuildOptions;

/**
 * The bundled worker when the worker entry is a TypeScript source: reused when its sources are unchanged since it
 * was built, else built now. Undefined when the entry is already JavaScript, or when esbuild is not installed (the
 * pool then forks the source through tsx, as before).
 */
export async function bundleWorker(
  options: { readonly cacheRoot?: string } = {},
): Promise<BundledWorker | undefined> {
  const source = workerEntry();
  if (path.extname(source.file) !== '.ts') return undefined;
  const repo = path.join(path.dirname(source.file), '..', '..');
  const bundle = await cachedBundle({
    name: 'worker',
    cacheRoot: options.cacheRoot ?? path.join(repo, 'node_modules', '.cache', 'batch-infer'),
    projectRoot: repo,
    entryPoints: WORKER_BUNDLE_ENTRIES,
    build: WORKER_BUILD,
  });
  if (!bundle) return undefined;
  return {
    // The pool's Node options without tsx's loader: nothing left to transpile.
    entry: { file: path.join(bundle.dir, 'worker.mjs'), execArgv: withoutLoader(source.execArgv) },
    reused: bundle.reused,
  };
}

/**
 * Builds the worker and its threads' entries (WORKER_BUNDLE_ENTRIES) from the sources of the repository at `repo`
 * into `outdir`, which must lie where the external packages resolve (under the repository), every time; returns the
 * worker's file, or undefined when esbuild is not installed. The benchmarks' worker.
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
  await esbuild.build({ ...WORKER_BUILD, entryPoints, outdir });
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
