import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { agentPollers } from '../src/deploy/agent-liveness';
import type { RetireResult } from '../src/shared/lifecycle-input';
import { agentQuickTaskQueueOf } from '../src/shared/task-queues';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { filler } from './images/build';
import { startWorld, type TestWorld } from './helpers';
import { signBeside } from './harness/signing';

/**
 * An SDDC agent (a real worker process, both its queues) whose four long slots all hold downloads that
 * cannot finish (its storage answers nothing): its long queue stops polling, yet it is seen alive through
 * its quick queue, and a retire's removal on it completes meanwhile, the downloads still running.
 */
const SDDC = 'busy-1';
const LONG_SLOTS = 4;

describe('an agent whose long slots are all busy', () => {
  let world: TestWorld;
  let proxy: CountingProxy;
  let agent: WorkerProcess;
  const queue = `sddc-${SDDC}-${randomUUID().slice(0, 8)}`;
  const datastore = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-quick-'));
  const deploys: WorkflowHandle[] = [];

  /** An available version in the catalog whose blob is in the primary storage. */
  async function available(version: string): Promise<void> {
    const bytes = filler(1024 * 1024, 7);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const image = 'busy';
    const blob = `${image}/${version}/${image}-${version}.iso`;
    await world.deps.storage.store('east-primary').upload(blob, bytes, { metadata: { sha256 } });
    await signBeside(world.deps.storage.store('east-primary'), blob, {
      image,
      version,
      format: 'iso',
      sha256,
      sizeBytes: bytes.length,
      members: [],
    });
    const owner = { workflowId: `publish:${image}:${version}`, runId: 'seeded' };
    const location = { storage: 'east-primary', container: 'vm-images', blob };
    await world.deps.catalog.versions.claim(
      { image, version, format: 'iso', sizeBytes: bytes.length, location, blockSize: bytes.length, blockCount: 1 },
      owner,
    );
    const metadata = {
      kind: 'iso' as const,
      volumeId: 'BUSY',
      volumeSizeBytes: bytes.length,
      bootable: false,
      joliet: false,
      udf: false,
    };
    await world.deps.catalog.versions.markAvailable(image, version, owner, sha256, metadata);
  }

  /** When a queue was last polled for activities, in whole seconds as the server reports it (0 when never). */
  async function lastPollSeconds(taskQueue: string): Promise<number> {
    const response = await world.client.workflowService.describeTaskQueue({
      namespace: world.client.options.namespace,
      taskQueue: { name: taskQueue },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    return Math.max(0, ...(response.pollers ?? []).map((p) => Number(p.lastAccessTime?.seconds ?? 0)));
  }

  /** Whether a deploy's batch has its download running on the agent. */
  async function downloading(deploy: WorkflowHandle): Promise<boolean> {
    try {
      const batch = await world.client.workflow.getHandle(`${deploy.workflowId}:1-dc-east`).describe();
      return (batch.raw.pendingActivities ?? []).some(
        (a) =>
          a.activityType?.name === 'downloadImage' &&
          a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
      );
    } catch {
      return false;
    }
  }

  beforeAll(async () => {
    world = await startWorld();
    proxy = await startCountingProxy(Number(process.env.AZURITE_DC_EAST_PORT));
    proxy.held = true;
    await world.deps.catalog.sddcs.add({
      name: SDDC,
      dataCenter: 'dc-east',
      taskQueue: queue,
      capacity: { cpus: 64, memoryMiB: 262144, diskGiB: 2048 },
    });
    agent = spawnWorker(['agent', SDDC], {
      VMHUB_AGENT_TASK_QUEUE: queue,
      VMHUB_DATASTORE: datastore,
      // Its only storage answers nothing while the proxy holds: its downloads never finish.
      AZURITE_DC_EAST_PORT: String(proxy.port),
    });
    await until('the agent polling both its queues', async () => {
      const p = await agentPollers(world.deps.temporal, queue, 60_000);
      return p.long > 0 && p.quick > 0;
    });
  });
  afterAll(async () => {
    for (const d of deploys) await d.cancel().catch(() => undefined);
    if (proxy) proxy.held = false;
    for (const d of deploys) await d.result().catch(() => undefined);
    await agent?.stop();
    await proxy?.close();
    await world?.close();
    fs.rmSync(datastore, { recursive: true, force: true });
  });

  it('is alive through its quick queue after its long queue stopped polling, and removes a copy while the downloads run', async () => {
    for (let i = 1; i <= LONG_SLOTS; i++) {
      const version = `1.0.${i}`;
      await available(version);
      deploys.push(
        await world.client.workflow.start('DeployToSDDCs', {
          args: [{ image: 'busy', version, sddcs: [SDDC] }],
          taskQueue: world.config.taskQueue,
          workflowId: `deploy:busy:${version}:${randomUUID()}`,
        }),
      );
    }
    for (const d of deploys) await until(`${d.workflowId} downloading`, () => downloading(d));
    // Every slot holds a download: the long queue is polled no more.
    const longStopped = await lastPollSeconds(queue);

    // A copy of another version on the SDDC: retiring it has the agent remove the copy, a quick operation.
    await available('2.0.0');
    const copy = path.join(datastore, 'busy', '2.0.0', 'busy-2.0.0.iso');
    fs.mkdirSync(path.dirname(copy), { recursive: true });
    fs.writeFileSync(copy, filler(1024 * 1024, 7));
    await world.deps.catalog.deployments.record({
      image: 'busy',
      version: '2.0.0',
      sddc: SDDC,
      status: 'deployed',
      source: 'east-primary',
      path: copy,
      bytes: 1024 * 1024,
      run: { workflowId: 'seeded', runId: 'seeded' },
    });
    const retired = (await world.client.workflow.execute('RetireImage', {
      args: [{ image: 'busy', version: '2.0.0' }],
      taskQueue: world.config.taskQueue,
      workflowId: `retire:busy:2.0.0:${randomUUID()}`,
    })) as RetireResult;
    expect(retired).toMatchObject({
      status: 'retired',
      sddcs: [{ sddc: SDDC, files: [path.join(fs.realpathSync(datastore), 'busy', '2.0.0', 'busy-2.0.0.iso')] }],
    });
    expect(fs.existsSync(copy)).toBe(false);
    expect((await world.deps.catalog.deployments.of('busy', '2.0.0')).map((d) => d.status)).toEqual(['removed']);

    // The downloads still hold every slot, and the long queue has not polled since they took them.
    for (const d of deploys) expect(await downloading(d)).toBe(true);
    expect(await lastPollSeconds(queue)).toBe(longStopped);

    // The quick queue polled after the long queue stopped: within a window that starts after the long
    // queue's last poll, the agent is alive by its quick queue alone.
    await until(
      'the quick queue polling after the long queue stopped',
      async () => (await lastPollSeconds(agentQuickTaskQueueOf(queue))) > longStopped,
    );
    // Poll times have whole seconds: the window opens just after the long queue's last one, so the quick
    // queue's poll a second later stays inside it while the call that measures it takes under a second.
    const since = longStopped * 1000 + 1;
    const pollers = await agentPollers(world.deps.temporal, queue, Date.now() - since);
    expect(pollers.long).toBe(0);
    expect(pollers.quick).toBeGreaterThan(0);
  });
});
