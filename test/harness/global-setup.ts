import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { startServices } from '../../src/services/embedded';

/**
 * Brings up the embedded services on free ports in a throwaway data folder for this test run, and
 * bundles the workflow code once. VMHUB_TEST_REUSE_SERVICES=1 uses the services the environment
 * already points at (e.g. `npm run services -- start`) instead.
 */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export default async function globalSetup(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-test-'));
  process.env.VMHUB_TEST_DATA_DIR = dataDir;
  if (process.env.VMHUB_TEST_REUSE_SERVICES !== '1') {
    const [temporal, ui, catalog, east, west] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    Object.assign(process.env, {
      VMHUB_DATA_DIR: dataDir,
      TEMPORAL_ADDRESS: `127.0.0.1:${temporal}`,
      TEMPORAL_UI_PORT: String(ui),
      MONGODB_URI: `mongodb://127.0.0.1:${catalog}/vmhub`,
      AZURITE_DC_EAST_PORT: String(east),
      AZURITE_DC_WEST_PORT: String(west),
    });
    process.env.VMHUB_TEST_OWNS_SERVICES = '1';
  }
  process.env.VMHUB_REPOSITORY_ROOTS = path.join(dataDir, 'repository');
  fs.mkdirSync(process.env.VMHUB_REPOSITORY_ROOTS, { recursive: true });
  if (process.env.VMHUB_TEST_OWNS_SERVICES === '1') {
    const started = await startServices(loadConfig());
    process.stderr.write(`\ntest services: ${started.map((s) => `${s.name} ${s.url}`).join('; ')}\n`);
  }

  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: quietLogger });
  const bundlePath = path.join(dataDir, 'workflow-bundle.js');
  fs.writeFileSync(bundlePath, bundle.code);
  process.env.VMHUB_WORKFLOW_BUNDLE = bundlePath;
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string) => process.stderr.write(`bundler: ${message}\n`),
  error: (message: string) => process.stderr.write(`bundler: ${message}\n`),
};
