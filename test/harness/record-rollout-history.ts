import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../src/activities';
import type { AgentActivities } from '../../src/activities/agent';
import type { ChannelItemActivities } from '../../src/activities/channel-item';
import type { ContentLibraryActivities } from '../../src/activities/content-library';
import type { HealthGateActivities } from '../../src/activities/health-gate';
import type { LibraryStreamActivities } from '../../src/activities/library-stream';
import type { FleetProgress } from '../../src/shared/deploy-input';
import type { RolloutPlan, RolloutProgress } from '../../src/shared/rollout-input';
import type { ContentLibraryTarget, LibraryPlacement } from '../../src/shared/target-kinds/kind';
import { deployedDownload, fleetPlanOf, libraryDeployPlan, runWorker, streamedToLibrary } from './mock-activities';
import type { Save } from './record-v2-histories';

const MiB = 1024 * 1024;
const library: ContentLibraryTarget = { kind: 'content-library', vcenter: 'https://vc.example.com/', library: 'vmhub' };
const item = (sddc: string, name: string): LibraryPlacement => ({
  kind: 'content-library',
  vcenter: library.vcenter,
  library: library.library,
  itemId: `${name}-${sddc}`,
  itemName: name,
});

/**
 * `rollout-approved`: a Rollout of app@1.0.0 to channel stable in two waves, the second held for an
 * approval given through the `approve` Update; and `rollout-wave-batch`, the batch of its first wave, where
 * the SDDC's new item passes the health gate (VM made, operator check, VM removed) before the channel's item
 * takes the version.
 */
export async function recordRolloutApproved(env: TestWorkflowEnvironment, save: Save, suffix = ''): Promise<void> {
  const agentQueue = `sddc-${randomUUID()}`;
  const names = ['lib-1', 'lib-2'];
  const plan = (sddcs: string[]) =>
    libraryDeployPlan(agentQueue, sddcs, library, { cpus: 2, memoryMiB: 2048, diskBytes: 2 ** 34 });
  const rollout: RolloutPlan = {
    image: 'app',
    version: '1.0.0',
    channel: 'stable',
    channelBefore: '0.9.0',
    waves: names.map((sddc, k) => ({ name: sddc, sddcs: [sddc], approval: k === 1, gate: { operatorCheck: 'smoke' } })),
  };
  const control: Partial<Activities> = {
    planRollout: async () => rollout,
    planFleet: async (input) => fleetPlanOf(plan(input.sddcs === 'all' ? names : input.sddcs)),
    planDeployment: async (input) => plan(input.sddcs === 'all' ? names : input.sddcs),
    agentsPolling: async () => 1,
    recordDeployment: async () => undefined,
    markSourceFailures: async () => undefined,
    holdDeployLease: async () => undefined,
    releaseDeployLease: async () => undefined,
    runOperatorCheck: async () => ({ check: 'operator', passed: true, detail: 'smoke: 200 OK' }),
    pointChannel: async (input) => ({ version: input.version, previous: ['0.9.0'] }),
  };
  const agent: Partial<
    AgentActivities & ContentLibraryActivities & LibraryStreamActivities & HealthGateActivities & ChannelItemActivities
  > = {
    findLibraryItem: async () => ({ state: 'absent' }),
    // Runs from before the library-stream-import patch download, then import; later ones stream.
    downloadImage: deployedDownload,
    streamToLibrary: streamedToLibrary((sddc) => item(sddc, 'app-1.0.0')),
    importToLibrary: async ({ sddc }) => ({
      status: 'deployed',
      target: item(sddc, 'app-1.0.0'),
      bytesSent: 64 * MiB,
      bytesSkipped: 0,
    }),
    startGate: async () => ({
      passed: true,
      vm: 'vm-42',
      vmName: 'vmhub-gate-app-1.0.0',
      checks: [
        { check: 'instantiate', passed: true, detail: 'vm-42' },
        { check: 'hardware', passed: true, detail: '2 CPUs, 2048 MiB' },
        { check: 'power-on', passed: true, detail: 'poweredOn' },
        { check: 'guest', passed: true, detail: 'guestToolsRunning' },
      ],
    }),
    removeGateVm: async () => ({ removed: true }),
    syncChannelItem: async ({ sddc }) => ({ status: 'updated', placement: item(sddc, 'app-stable'), bytesCopied: 64 * MiB }),
  };
  const workflowId = `rollout:app:stable:${randomUUID().slice(0, 8)}`;
  const batch = await runWorker(
    env,
    control,
    async (taskQueue) => {
      const handle = await env.client.workflow.start('Rollout', {
        args: [{ image: 'app', version: '1.0.0', channel: 'stable', waves: [], by: 'ops' }],
        taskQueue,
        workflowId,
      });
      await waitingForApproval(handle);
      await handle.executeUpdate('approve', { args: [{ by: 'alice' }] });
      const done = (await handle.result()) as RolloutProgress;
      if (done.state !== 'completed') throw new Error(`the rollout ended ${done.state}`);
      const wave = await env.client.workflow.getHandle(done.waves[0].deployWorkflowId!).query<FleetProgress>('progress');
      return wave.batches[0].workflowId;
    },
    { taskQueue: agentQueue, activities: agent as Partial<AgentActivities> },
  );
  await save(`rollout-approved${suffix}`, workflowId);
  await save(`rollout-wave-batch${suffix}`, batch);
}

async function waitingForApproval(handle: WorkflowHandle): Promise<void> {
  for (;;) {
    const p = await handle.query<RolloutProgress>('rollout');
    if (p.waves[1]?.state === 'awaiting-approval') return;
    if (p.state !== 'running' && p.state !== 'planning') throw new Error(`the rollout is ${p.state}: ${JSON.stringify(p.waves)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
