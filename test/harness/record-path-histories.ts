import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { buildBundle } from '../../scripts/build-bundle';
import type { Activities } from '../../src/activities';
import type { AgentActivities } from '../../src/activities/agent';
import type { ContentLibraryActivities } from '../../src/activities/content-library';
import type { LibraryStreamActivities } from '../../src/activities/library-stream';
import { planBlocks } from '../../src/shared/block-plan';
import type { FleetProgress } from '../../src/shared/deploy-input';
import type { ContentLibraryTarget, LibraryPlacement } from '../../src/shared/target-kinds/kind';
import { patchesIn, V2_PATCHES } from './history-patches';
import { retireAgent, retireControl, retirePlan, staleReplicaControl } from './lifecycle-mocks';
import {
  deployedDownload,
  fleetPlanOf,
  libraryDeployPlan,
  location,
  metadata,
  plan,
  runWorker,
  startTestEnvironment,
  streamedToLibrary,
} from './mock-activities';
import { publishOf, v2Recordings, type Recording, type Save } from './record-v2-histories';
import { recordRolloutApproved } from './record-rollout-history';

/**
 * Records, with the workflow code as it is now, the histories of the paths the first recordings never
 * took, beside them in test/histories (test/workflows/replay.test.ts replays every one):
 * - `publish-multi-range`: a 1 TiB publish whose plan has as many ranges as MAX_RANGES allows, replicated to two
 *   locations (test/workflows/replay-catches.test.ts shows that a change of MAX_RANGES breaks its replay);
 * - `publish-restage`: a publish whose first commit finds blocks of one range lost and stages that range again;
 * - `publish-republish`: a publish of a version already available with the same bytes, replicated again;
 * - `deploy-content-library` and its batch `deploy-content-library-batch`: one SDDC's library already holds the
 *   item, the other's gets it downloaded and imported; both instantiate a VM from it;
 * - `apply-retention`: one version retired by a RetireImage child, one refused because it is being deployed;
 * - `check-services`: the round trip through every service;
 * - `rollout-approved` and its first wave's batch `rollout-wave-batch`: two waves, the second approved through
 *   an Update; the batch's SDDC passes the health gate and its channel item takes the version;
 * - `deploy-content-library-v2` and `rollout-approved-v2` with their batches: the same, the item filled by one
 *   streamed download (the library-stream-import patch); `deploy-content-library` and `rollout-approved`,
 *   kept from before it, download then import, which a recording made today no longer does;
 * - `verify-recopied`: a VerifyReplicas page where one replica differs and is copied again;
 * - the `-v2` histories of test/harness/record-v2-histories.ts, made with the newest patches; each must hold
 *   the patch markers test/harness/history-patches.ts names for it, or it is not kept.
 * `npx tsx test/harness/record-path-histories.ts` records only the histories not kept yet: the kept ones are what
 * running workflows look like, and must keep replaying.
 */
const TiB = 1024 ** 4;
const MiB = 1024 * 1024;

async function main(): Promise<void> {
  const bundlePath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-record-')), 'bundle.js');
  await buildBundle(bundlePath);
  process.env.VMHUB_WORKFLOW_BUNDLE = bundlePath;
  const env = await startTestEnvironment();
  const out = path.join(__dirname, '..', 'histories');
  // A replay must run under the recorded workflow ID: children are named after it.
  const indexFile = path.join(out, 'workflow-ids.json');
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as Record<string, string>;
  const save: Save = async (name, workflowId) => {
    const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
    const patches = patchesIn(history);
    const missing = (V2_PATCHES[`${name}.binpb`] ?? []).filter((p) => !patches.includes(p));
    if (missing.length > 0) {
      throw new Error(`${name} did not take the patches ${missing.join(', ')}; it took ${patches.join(', ')}`);
    }
    fs.writeFileSync(path.join(out, `${name}.binpb`), temporal.api.history.v1.History.encode(history).finish());
    index[`${name}.binpb`] = workflowId;
    fs.writeFileSync(indexFile, `${JSON.stringify(index, null, 2)}\n`);
    process.stderr.write(`recorded ${name}: ${history.events?.length} events, patches ${patches.join(', ') || 'none'}\n`);
  };
  const recordings: Record<string, Recording> = {
    'publish-multi-range': recordMultiRange,
    'publish-restage': recordRestage,
    'publish-republish': recordRepublish,
    'deploy-content-library': recordContentLibrary,
    'apply-retention': recordRetention,
    'check-services': recordCheckServices,
    'verify-recopied': recordVerifyRecopied,
    'rollout-approved': recordRolloutApproved,
    'deploy-content-library-v2': (env, save) => recordContentLibrary(env, save, '-v2'),
    'rollout-approved-v2': (env, save) => recordRolloutApproved(env, save, '-v2'),
    ...v2Recordings,
  };
  try {
    for (const [name, record] of Object.entries(recordings)) {
      if (fs.existsSync(path.join(out, `${name}.binpb`))) continue;
      await record(env, save);
    }
  } finally {
    await env.teardown();
  }
}

async function publish(env: TestWorkflowEnvironment, activities: Partial<Activities>, version: string): Promise<string> {
  const workflowId = `publish:app:${version}:${randomUUID()}`;
  await runWorker(env, activities, (taskQueue) =>
    env.client.workflow.execute('PublishImage', {
      args: [{ source: 'app.ova', image: 'app', version }],
      taskQueue,
      workflowId,
    }),
  );
  return workflowId;
}

async function recordMultiRange(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  // 1 TiB needs larger blocks than 8 MiB to stay under 50,000 blocks: far more than MAX_RANGES ranges of 16 blocks.
  const plan = planBlocks(TiB, 8 * MiB);
  const id = await publish(env, publishOf(plan, ['west-replica', 'north-replica']), '3.0.0');
  await save('publish-multi-range', id);
}

async function recordRestage(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const plan = planBlocks(256 * MiB, 4 * MiB); // 64 blocks: four ranges
  let commits = 0;
  const activities = publishOf(plan, [], {
    // Storage lost blocks 35 and 36 (in the third range) before the first commit; the second commit finds them all.
    commitBlocks: async () =>
      commits++ === 0 ? { committed: false, missing: [{ first: 35, count: 2 }] } : { committed: true, etag: '"2"' },
  });
  const id = await publish(env, activities, '3.1.0');
  if (commits !== 2) throw new Error(`the publish committed ${commits} times, not twice`);
  await save('publish-restage', id);
}

/** The mocks' 64 MiB image (16 blocks) published already, with the same bytes. */
async function recordRepublish(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const sha256 = 'a'.repeat(64);
  const existing = {
    image: 'app',
    version: '1.0.0',
    format: 'ova' as const,
    sizeBytes: plan.sizeBytes,
    sha256,
    blockSize: plan.blockSize,
    blockCount: plan.blockCount,
    location,
    metadata,
  };
  const activities = publishOf(plan, ['west-replica'], {
    claimVersion: async () => ({ state: 'available', existing }),
    inspectSource: async () => ({ sha256, blockListDigest: 'b'.repeat(64), metadata }),
  });
  const id = await publish(env, activities, '1.0.0');
  await save('publish-republish', id);
}

const library: ContentLibraryTarget = {
  kind: 'content-library',
  vcenter: 'https://vc.example.com/',
  library: 'vmhub',
};

const placement = (sddc: string): LibraryPlacement => ({
  kind: 'content-library',
  vcenter: library.vcenter,
  library: library.library,
  itemId: `item-${sddc}`,
  itemName: 'app-1.0.0',
});

async function recordContentLibrary(env: TestWorkflowEnvironment, save: Save, suffix = ''): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const names = ['lib-1', 'lib-2'];
  const plan = libraryDeployPlan(agentQueue, names, library, { cpus: 4, memoryMiB: 8192, diskBytes: 2 ** 34 });
  const control: Partial<Activities> = {
    planFleet: async () => fleetPlanOf(plan),
    planDeployment: async () => plan,
    agentsPolling: async () => 1,
    recordDeployment: async () => undefined,
    markSourceFailures: async () => undefined,
    holdDeployLease: async () => undefined,
    releaseDeployLease: async () => undefined,
  };
  const agent: Partial<AgentActivities & ContentLibraryActivities & LibraryStreamActivities> = {
    findLibraryItem: async ({ sddc }) => (sddc === 'lib-1' ? { state: 'present', target: placement(sddc) } : { state: 'absent' }),
    // Runs from before the library-stream-import patch download, then import; later ones stream.
    downloadImage: deployedDownload,
    streamToLibrary: streamedToLibrary(placement),
    importToLibrary: async ({ sddc }) => ({
      status: 'deployed',
      target: placement(sddc),
      bytesSent: plan.sizeBytes,
      bytesSkipped: 0,
    }),
    instantiateFromLibrary: async () => ({ vm: 'vm-42', cpus: 4, memoryMiB: 8192, removed: true }),
  };
  const workflowId = `deploy:app:1.0.0:${randomUUID()}`;
  const batch = await runWorker(
    env,
    control,
    async (taskQueue) => {
      const deploy = await env.client.workflow.start('DeployToSDDCs', {
        args: [{ image: 'app', version: '1.0.0', sddcs: names, instantiate: true }],
        taskQueue,
        workflowId,
      });
      await deploy.result();
      return (await deploy.query<FleetProgress>('progress')).batches[0].workflowId;
    },
    // The agent worker takes both activity families, as a real agent registers both.
    { taskQueue: agentQueue, activities: agent as Partial<AgentActivities> },
  );
  await save(`deploy-content-library${suffix}`, workflowId);
  await save(`deploy-content-library-batch${suffix}`, batch);
}

async function recordRetention(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const control: Partial<Activities> = {
    ...retireControl([], agentQueue, async ({ version }) => {
      if (version === '1.1.0') throw ApplicationFailure.nonRetryable('app@1.1.0 is being deployed', 'DeployRunning');
      return retirePlan(agentQueue);
    }),
    retentionPlan: async () => [
      { image: 'app', version: '1.0.0' },
      { image: 'app', version: '1.1.0' },
    ],
  };
  const workflowId = `retention:${randomUUID()}`;
  await runWorker(
    env,
    control,
    (taskQueue) => env.client.workflow.execute('ApplyRetention', { args: [{}], taskQueue, workflowId }),
    { taskQueue: agentQueue, activities: retireAgent([]) },
  );
  await save('apply-retention', workflowId);
}

async function recordCheckServices(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const checkServices = async (token: string) => ({
    token,
    blobs: [{ storage: 'east-primary', container: 'vm-images', blob: `_vmhub/health/${token}.json`, etag: '"1"' }],
    catalogCollection: 'health',
  });
  const workflowId = `check-services:${randomUUID()}`;
  await runWorker(env, { checkServices }, (taskQueue) =>
    env.client.workflow.execute('CheckServices', { args: ['health-check'], taskQueue, workflowId }),
  );
  await save('check-services', workflowId);
}

async function recordVerifyRecopied(env: TestWorkflowEnvironment, save: Save): Promise<void> {
  const replicated: string[] = [];
  const control = staleReplicaControl('west-replica', replicated);
  const workflowId = `verify:all:${randomUUID().slice(0, 8)}`;
  await runWorker(env, control, (taskQueue) =>
    env.client.workflow.execute('VerifyReplicas', { args: [{}], taskQueue, workflowId }),
  );
  if (replicated.join() !== '2.0.0 west-replica') throw new Error(`replicated ${replicated.join(', ') || 'nothing'}`);
  await save('verify-recopied', workflowId);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
