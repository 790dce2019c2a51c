/**
 * Every test, on the embedded services globalSetup starts. Files run three at a time (most of a file's time is spent waiting on the services), each with a
 * catalog database and task queues of its own (files that share names take turns:
 * jest.environment.js); then the files the runner's `serial` option matches run alone: `zz-*`, last
 * (jest.runner.js, jest.sequencer.js).
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: '<rootDir>/jest.environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': 'ts-jest' },
  globalSetup: '<rootDir>/test/harness/global-setup.ts',
  globalTeardown: '<rootDir>/test/harness/global-teardown.ts',
  testSequencer: '<rootDir>/jest.sequencer.js',
  runner: ['<rootDir>/jest.runner.js', { serial: ['/zz-[^/]*\\.test\\.ts$'] }],
  maxWorkers: 3,
  testTimeout: 180000,
  verbose: true,
};
