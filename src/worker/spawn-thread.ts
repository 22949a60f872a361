/** Starting a worker thread on a module of the worker, whether it runs from source, from tsc's output or bundled. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * The worker bundle's entry points (output name -> source, relative to the repository root), built side by side into
 * one folder as `<name>.mjs`: the process, and each thread's own entry. A thread loads only what it needs (the decode
 * thread 36 KB of CSV decoding, the inference thread ONNX Runtime) instead of the whole 3 MB worker with DuckDB and
 * the AWS SDK: measured 0.7 s of CPU and about 110 MiB of memory saved per thread (docs/adr/0019). The worker image
 * (containers/worker/Dockerfile) and the local run's bundle (src/local/worker-bundle.ts) both build these.
 */
export const WORKER_BUNDLE_ENTRIES = {
  worker: 'src/worker/main.ts',
  'decode-thread': 'src/worker/decode-thread.ts',
  'inference-thread': 'src/worker/inference-thread.ts',
} as const;

export type ThreadEntry = Exclude<keyof typeof WORKER_BUNDLE_ENTRIES, 'worker'>;

/**
 * A Worker running the thread module `entry`, whose own `import.meta.url` is `moduleUrl`, with `workerData`:
 * - from source (`.ts`, under tsx or jest): the module through tsx, which the thread registers first (a Worker does
 *   not inherit the loader);
 * - from tsc's output (dist/, one file per module): the module itself;
 * - from the bundle (`moduleUrl` is the worker bundle): the thread's own entry, `<entry>.mjs` beside it.
 */
export function spawnModuleThread(moduleUrl: string, entry: ThreadEntry, workerData: unknown): Worker {
  return new Worker(...threadTarget(moduleUrl, entry, workerData));
}

/** The Worker constructor's arguments for `spawnModuleThread` (apart, to be tested without starting a thread). */
export function threadTarget(
  moduleUrl: string,
  entry: ThreadEntry,
  workerData: unknown,
): [string | URL, { eval?: true; workerData: unknown }] {
  if (moduleUrl.endsWith('.ts')) {
    const api = import.meta.resolve('tsx/esm/api');
    const bootstrap =
      `import(${JSON.stringify(api)})` +
      `.then((tsx) => { tsx.register(); return import(${JSON.stringify(moduleUrl)}); })`;
    return [bootstrap, { eval: true, workerData }];
  }
  const file = path.basename(fileURLToPath(moduleUrl));
  if (file.replace(/\.[cm]?js$/, '') === entry) return [new URL(moduleUrl), { workerData }];
  return [new URL(`./${entry}.mjs`, moduleUrl), { workerData }];
}
