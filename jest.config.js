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
  // Postgres, Redis, chromium), and with two workers a clean-clone run used 0.9 of a core on average
  // (`/usr/bin/time` over `.ci/run`, 2026-12-06). The suite passed at load averages of 9-17.
  maxWorkers: 3,
  // Prisma's WebAssembly schema engine and PGlite keep internal handles alive
  // after they are closed; tests close what they open, then Jest exits.
  forceExit: true,
};
