import fs from 'node:fs';
import { loadConfig } from '../../src/config';
import { stopServices } from '../../src/dev-services/embedded';

export default async function globalTeardown(): Promise<void> {
  if (process.env.VMHUB_TEST_OWNS_SERVICES === '1') await stopServices(loadConfig());
  const dir = process.env.VMHUB_TEST_DATA_DIR;
  if (dir && process.env.VMHUB_TEST_KEEP_DATA !== '1') fs.rmSync(dir, { recursive: true, force: true });
}
