/** Jest runs TypeScript through ts-jest (type-graphql needs decorator metadata, which esbuild-based runners do not emit). */
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }],
  },
  // The generated Prisma client imports './x.js' (ESM-style specifiers) from .ts files.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  globalSetup: '<rootDir>/test/setup/global-setup.ts',
  globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
  setupFiles: ['reflect-metadata'],
  testTimeout: 60000,
  // Three suites at a time on two cores: most suites wait on what they start (production gateways,
  // Postgres, Redis, chromium). Measured on clean clones of `.ci/run` (2026-12-06): two workers beside
  // two busy-loop processes took 0.91 of a core and 885 s of jest time; three workers alone took 1.44
  // cores and 525 s. The suite also passed at load averages of 9-17 (issue #22's CPU-hog runs).
  maxWorkers: 3,
  // Prisma's WebAssembly schema engine and PGlite keep internal handles alive
  // after they are closed; tests close what they open, then Jest exits.
  forceExit: true,
};
