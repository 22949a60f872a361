/** Modules imported on first use (src/runtime/lazy-module.ts): once, early on request, and again after a failure. */
import { describe, expect, it } from '@jest/globals';
import { lazyModule } from '../../src/runtime/lazy-module.js';

describe('lazyModule', () => {
  it('imports on the first load or preload, once', async () => {
    let imports = 0;
    const lazy = lazyModule(async () => ({ n: ++imports }));
    expect(imports).toBe(0);
    lazy.preload();
    expect(imports).toBe(1);
    expect(await lazy.load()).toEqual({ n: 1 });
    expect(await lazy.load()).toEqual({ n: 1 });
    expect(imports).toBe(1);
  });

  it('forgets a preload that failed: the next load imports again and reports its own outcome', async () => {
    let imports = 0;
    const lazy = lazyModule(async () => {
      imports++;
      if (imports === 1) throw new Error('not yet');
      return 'loaded';
    });
    lazy.preload();
    // Let the failed import settle (its error is swallowed, not unhandled).
    await new Promise((resolve) => setImmediate(resolve));
    expect(await lazy.load()).toBe('loaded');
    expect(imports).toBe(2);
  });

  it('rejects a load whose import fails, with the import’s error', async () => {
    const lazy = lazyModule(async () => {
      throw new Error('package missing');
    });
    await expect(lazy.load()).rejects.toThrow('package missing');
  });
});
