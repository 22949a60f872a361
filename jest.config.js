/**
 * Jest, as `cdk init` sets it up, for an ESM TypeScript project: @swc/jest strips types (no type check here; `npm run
 * typecheck` does that once for the whole tree) and keeps ES modules, which Jest runs under --experimental-vm-modules.
 * See docs/adr/0008-jest-with-swc.md.
 */
export default {
  testEnvironment: '<rootDir>/test/support/node-environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
        module: { type: 'es6' },
      },
    ],
  },
  setupFiles: ['<rootDir>/src/runtime/polyfills.ts'],
  reporters: ['default', '<rootDir>/test/support/skip-reporter.js'],
  // A hang detector, not a speed check: tests that start worker processes take ten times longer on a 2-core machine
  // shared with another CPU-heavy process than alone (docs/adr/0015-tests-without-clocks.md).
  testTimeout: 180_000,
  maxWorkers: 2,
};
