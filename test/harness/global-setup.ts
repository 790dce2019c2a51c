import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildBundle } from '../../scripts/build-bundle';
import { loadConfig } from '../../src/config';
import { ensureDevKeys } from '../../src/provenance/dev-keys';
import { startServices, stopServices } from '../../src/dev-services/embedded';
import { freeLoopbackPort } from '../../src/engine/free-port';

/** Services left by a test run that was killed before its teardown: stop them and drop their data. */
async function sweepAbandonedRuns(): Promise<void> {
  for (const name of fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('vmhub-test-'))) {
    const dir = path.join(os.tmpdir(), name);
    const owner = Number(fs.existsSync(path.join(dir, 'owner.pid')) ? fs.readFileSync(path.join(dir, 'owner.pid'), 'utf8') : NaN);
    if (!Number.isInteger(owner)) continue;
    try {
      process.kill(owner, 0);
      continue;
    } catch {
      // the run that owned this folder is gone
    }
    await stopServices(loadConfig({ ...process.env, VMHUB_DATA_DIR: dir }));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function startOnFreePorts(dataDir: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const [temporal, ui, catalog, east, west, vcEast1, vcEast2, vcWest1] = await Promise.all(
      Array.from({ length: 8 }, () => freeLoopbackPort()),
    );
    Object.assign(process.env, {
      VMHUB_DATA_DIR: dataDir,
      TEMPORAL_ADDRESS: `127.0.0.1:${temporal}`,
      TEMPORAL_UI_PORT: String(ui),
      MONGODB_URI: `mongodb://127.0.0.1:${catalog}/vmhub`,
      AZURITE_DC_EAST_PORT: String(east),
      AZURITE_DC_WEST_PORT: String(west),
      VCSIM_EAST_1_PORT: String(vcEast1),
      VCSIM_EAST_2_PORT: String(vcEast2),
      VCSIM_WEST_1_PORT: String(vcWest1),
    });
    try {
      const started = await startServices(loadConfig());
      process.stderr.write(`\ntest services: ${started.map((s) => `${s.name} ${s.url}`).join('; ')}\n`);
      return;
    } catch (err) {
      // A port found free can be taken before the service binds it; try other ports.
      await stopServices(loadConfig());
      if (attempt === 3) throw err;
      process.stderr.write(`test services did not start (${(err as Error).message.split('\n')[0]}); trying other ports\n`);
    }
  }
}

/**
 * Brings up the embedded services on free ports in a throwaway data folder for this test run, and
 * bundles the workflow code once. VMHUB_TEST_REUSE_SERVICES=1 uses the services the environment
 * already points at (e.g. `npm run services -- start`) instead.
 */
export default async function globalSetup(): Promise<void> {
  await sweepAbandonedRuns();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-test-'));
  fs.writeFileSync(path.join(dataDir, 'owner.pid'), String(process.pid));
  process.env.VMHUB_TEST_DATA_DIR = dataDir;
  process.env.VMHUB_REPOSITORY_ROOTS = path.join(dataDir, 'repository');
  fs.mkdirSync(process.env.VMHUB_REPOSITORY_ROOTS, { recursive: true });
  // Every worker the tests start signs with this key, and every agent trusts it.
  const keys = ensureDevKeys(dataDir);
  process.env.VMHUB_SIGNING_KEY_FILE = keys.signingKey;
  process.env.VMHUB_TRUSTED_KEYS = keys.trusted;
  if (process.env.VMHUB_TEST_REUSE_SERVICES !== '1') {
    process.env.VMHUB_TEST_OWNS_SERVICES = '1';
    // An idle worker's long poll ends every 5 s instead of every minute: liveness read from poll times, and
    // workers stopping, need not wait out a minute-long poll.
    process.env.VMHUB_TEMPORAL_DYNAMIC_CONFIG ??= 'matching.longPollExpirationInterval="5s"';
    await startOnFreePorts(dataDir);
  }

  const bundlePath = path.join(dataDir, 'workflow-bundle.js');
  await buildBundle(bundlePath);
  process.env.VMHUB_WORKFLOW_BUNDLE = bundlePath;
}
