const base = require('./jest.config');

/**
 * `npm run test:quick`: the unit, image and workflow tests (the workflows on the SDK's time-skipping
 * test server), and every other test that needs none of the embedded services, so no service starts.
 * `npm test` runs these too, with everything else.
 */
const QUICK = [
  '<rootDir>/test/unit/**/*.test.ts',
  '<rootDir>/test/images/**/*.test.ts',
  '<rootDir>/test/workflows/**/*.test.ts',
  '<rootDir>/test/provenance/**/*.test.ts',
  '<rootDir>/test/cli/{commands,errors,interrupt,output}.test.ts',
  '<rootDir>/test/{compose,content-library-workflow,source-http}.test.ts',
  '<rootDir>/test/observability/artifacts.test.ts',
];

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  testMatch: QUICK,
  globalSetup: '<rootDir>/test/harness/quick-setup.ts',
  globalTeardown: '<rootDir>/test/harness/global-teardown.ts',
};
