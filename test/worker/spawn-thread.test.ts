/**
 * Which file a worker thread starts from (spawn-thread.ts): from source the module through tsx, from tsc's output
 * the module itself, from the bundle the thread's own entry beside the worker bundle (not the whole worker).
 */
import { describe, expect, it } from '@jest/globals';
import { threadTarget, WORKER_BUNDLE_ENTRIES } from '../../src/worker/spawn-thread.js';

const data = { role: 'test' };

describe('threadTarget', () => {
  it('from source: an eval bootstrap that registers tsx, then imports the .ts module', () => {
    const [target, options] = threadTarget('file:///repo/src/worker/decode-thread.ts', 'decode-thread', data);
    expect(options).toEqual({ eval: true, workerData: data });
    expect(typeof target).toBe('string');
    expect(target).toContain('tsx.register()');
    expect(target).toContain('"file:///repo/src/worker/decode-thread.ts"');
  });

  it("from tsc's output (one file per module): the module itself", () => {
    for (const file of ['decode-thread.js', 'decode-thread.mjs']) {
      const [target, options] = threadTarget(`file:///pkg/dist/src/worker/${file}`, 'decode-thread', data);
      expect(String(target)).toBe(`file:///pkg/dist/src/worker/${file}`);
      expect(options).toEqual({ workerData: data });
    }
  });

  it("from the bundle: the thread's own entry beside it, for each thread", () => {
    expect(threadTarget('file:///app/dist/worker.mjs', 'decode-thread', data)[0]).toEqual(
      new URL('file:///app/dist/decode-thread.mjs'),
    );
    expect(threadTarget('file:///app/dist/worker.mjs', 'inference-thread', data)[0]).toEqual(
      new URL('file:///app/dist/inference-thread.mjs'),
    );
  });

  it('names an entry for each thread module the worker starts', () => {
    expect(Object.keys(WORKER_BUNDLE_ENTRIES).sort()).toEqual([
      'decode-thread',
      'inference-thread',
      'worker',
    ]);
    expect(WORKER_BUNDLE_ENTRIES['decode-thread']).toBe('src/worker/decode-thread.ts');
    expect(WORKER_BUNDLE_ENTRIES['inference-thread']).toBe('src/worker/inference-thread.ts');
  });
});
