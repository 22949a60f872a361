/** Starting a worker thread on a module of the worker, whether it runs from source or from the bundle. */
import { Worker } from 'node:worker_threads';

/**
 * A Worker running `moduleUrl` (the caller's `import.meta.url`) with `workerData`. From source (`.ts`) the thread
 * registers tsx first, because a Worker does not inherit the loader; from the bundle the module is the bundle itself.
 */
export function spawnModuleThread(moduleUrl: string, workerData: unknown): Worker {
  if (moduleUrl.endsWith('.ts')) {
    const api = import.meta.resolve('tsx/esm/api');
    const bootstrap =
      `import(${JSON.stringify(api)})` +
      `.then((tsx) => { tsx.register(); return import(${JSON.stringify(moduleUrl)}); })`;
    return new Worker(bootstrap, { eval: true, workerData });
  }
  return new Worker(new URL(moduleUrl), { workerData });
}
