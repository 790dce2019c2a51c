import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildBundle } from '../../scripts/build-bundle';

/**
 * `npm run test:quick` (jest.quick.config.js): the tests that need none of the embedded services, so
 * only the workflow bundle is built, once. The services' addresses point where nothing listens, so
 * a test of the quick set that reaches for a service fails here instead of passing on services a
 * developer left running.
 */
export default async function quickSetup(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-test-quick-'));
  fs.writeFileSync(path.join(dataDir, 'owner.pid'), String(process.pid));
  process.env.VMHUB_TEST_DATA_DIR = dataDir;
  process.env.VMHUB_DATA_DIR = dataDir;
  process.env.VMHUB_REPOSITORY_ROOTS = path.join(dataDir, 'repository');
  fs.mkdirSync(process.env.VMHUB_REPOSITORY_ROOTS, { recursive: true });
  const nowhere = '1';
  Object.assign(process.env, {
    TEMPORAL_ADDRESS: `127.0.0.1:${nowhere}`,
    MONGODB_URI: `mongodb://127.0.0.1:${nowhere}/vmhub`,
    AZURITE_DC_EAST_PORT: nowhere,
    AZURITE_DC_WEST_PORT: nowhere,
    VCSIM_EAST_1_PORT: nowhere,
    VCSIM_EAST_2_PORT: nowhere,
    VCSIM_WEST_1_PORT: nowhere,
  });
  delete process.env.VMHUB_TEST_OWNS_SERVICES;

  const bundlePath = path.join(dataDir, 'workflow-bundle.js');
  await buildBundle(bundlePath);
  process.env.VMHUB_WORKFLOW_BUNDLE = bundlePath;
}
