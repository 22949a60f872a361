import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['src/runtime/polyfills.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests spawn worker processes and servers; two cores do not benefit from more than two forks.
    pool: 'forks',
    maxWorkers: 2,
  },
});
