import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createDeployActivities } from '../src/activities/deploy';
import { createLifecycleActivities } from '../src/activities/lifecycle';
import { createPublishActivities, type PublishDeps } from '../src/activities/publish';
import { Catalog } from '../src/catalog/catalog';
import { RETIRED_WHILE_DEPLOYING } from '../src/catalog/deployment-records';
import type { RunRef } from '../src/catalog/image-records';
import { loadConfig } from '../src/config';
import type { ImageMetadata } from '../src/images/inspect';
import type { BlockStores } from '../src/storage/block-store';
import { MemoryBlockStore } from '../src/storage/memory-block-store';
import type { TemporalView } from '../src/temporal/connection';
import { agentQuickTaskQueueOf } from '../src/shared/task-queues';

/**
 * The retire claim on the real catalog server: who may claim and take it over, what a refusal leaves,
 * and what a check or a deploy finishing after the claim may still write. Temporal is a stand-in whose
 * answers each test sets: which queues have pollers, which runs have closed, which deploys still run.
 */
let catalog: Catalog;
beforeAll(async () => {
  const uri = loadConfig().mongodbUri.replace(/\/[^/?]*(\?|$)/, `/vmhub_retire_${randomUUID().slice(0, 8)}$1`);
  catalog = await Catalog.connect(uri);
});
afterAll(async () => {
  await catalog.db.dropDatabase();
  await catalog.close();
});

const temporal = {
  silentQueues: new Set<string>(),
  /** Quick queues an agent polls, its long queue being silent while every download slot is busy. */
  quickQueues: new Set<string>(),
  openRuns: new Set<string>(),
  runningDeploys: new Set<string>(),
  supersededRuns: new Set<string>(),
};
const polling = (taskQueue: string) =>
  temporal.quickQueues.has(taskQueue) ? 1 : temporal.silentQueues.has(taskQueue) || taskQueue.endsWith('-quick') ? 0 : 1;
const view: TemporalView = {
  isClosed: async (run) => !temporal.openRuns.has(run.runId),
  // Every agent polls its long queue only (a build before the quick queue) unless its queue is silent.
  recentPollers: async (taskQueue) => polling(taskQueue),
  pollersWithin: async (taskQueue, _kind, windowsMs) => windowsMs.map(() => polling(taskQueue)),
  isRunning: async (workflowId) => temporal.runningDeploys.has(workflowId),
  isSuperseded: async (run) => temporal.supersededRuns.has(run.runId),
};
beforeEach(() => {
  temporal.silentQueues.clear();
  temporal.quickQueues.clear();
  temporal.openRuns.clear();
  temporal.runningDeploys.clear();
  temporal.supersededRuns.clear();
});

const memoryStore = new MemoryBlockStore();

function deps(): PublishDeps {
  const storage = {
    topology: {
      storage: [
        { id: 'east-primary', role: 'primary' },
        { id: 'west-replica', role: 'replica' },
      ],
    },
    store: () => memoryStore,
  } as unknown as BlockStores;
  return { storage, catalog, temporal: view, config: loadConfig() };
}

const newRun = (image: string): RunRef => ({ workflowId: `retire:${image}:1.0.0`, runId: randomUUID() });

/** Runs one lifecycle activity as `run` would. */
function asRun<T>(run: RunRef, fn: (a: ReturnType<typeof createLifecycleActivities>) => Promise<T>): Promise<T> {
  const activities = createLifecycleActivities(deps());
  return new MockActivityEnvironment({ workflowExecution: run }).run(() => fn(activities));
}

/** The deploy activity that leases a version, as the deploy `run` calls it. */
function holdLease(run: RunRef, ref: { image: string; version: string }): Promise<void> {
  return new MockActivityEnvironment({ workflowExecution: run }).run(() =>
    createDeployActivities(deps()).holdDeployLease({ ...ref, run }),
  );
}

/** An available image@1.0.0, deployed to one SDDC of its own. */
async function published(image: string): Promise<{ ref: { image: string; version: string }; queue: string }> {
  const owner = { workflowId: `publish:${image}`, runId: randomUUID() };
  const location = { storage: 'east-primary', container: 'vm-images', blob: `${image}/1.0.0/${image}-1.0.0.iso` };
  const v = { image, version: '1.0.0', format: 'iso' as const, sizeBytes: 1, blockSize: 4 << 20, blockCount: 1, location };
  expect(await catalog.versions.claim(v, owner)).toEqual({ state: 'claimed' });
  expect(
    await catalog.versions.markAvailable(image, '1.0.0', owner, 'a'.repeat(64), { kind: 'iso' } as ImageMetadata),
  ).toBeDefined();
  const queue = `sddc-${image}-${randomUUID().slice(0, 6)}`;
  await catalog.sddcs.add({
    name: `${image}-sddc`,
    dataCenter: 'dc-east',
    taskQueue: queue,
    capacity: { cpus: 8, memoryMiB: 8192, diskGiB: 100 },
  });
  await catalog.deployments.record({ image, version: '1.0.0', sddc: `${image}-sddc`, status: 'deployed' });
  return { ref: { image, version: '1.0.0' }, queue };
}

describe('beginRetire', () => {
  it('refuses with NoAgent, before claiming anything, while an SDDC holding a copy has no live agent', async () => {
    const { ref, queue } = await published('silent');
    temporal.silentQueues.add(queue);
    await expect(asRun(newRun('silent'), (a) => a.beginRetire(ref))).rejects.toMatchObject({
      type: 'NoAgent',
      message: expect.stringContaining('silent-sddc'),
    });
    const record = await catalog.versions.get('silent', '1.0.0');
    expect(record?.status).toBe('available');
    expect(record?.retired).toBeUndefined();
  });

  it('claims while the agent polls only its quick queue: its long slots are busy, it is alive', async () => {
    const { ref, queue } = await published('quick-only');
    temporal.silentQueues.add(queue);
    temporal.quickQueues.add(agentQuickTaskQueueOf(queue));
    const plan = await asRun(newRun('quick-only'), (a) => a.beginRetire(ref));
    expect(plan).toMatchObject({ state: 'retiring', sddcs: [{ sddc: 'quick-only-sddc', taskQueue: queue }] });
    expect((await catalog.versions.get('quick-only', '1.0.0'))?.status).toBe('retiring');
  });

  it('a claim held by an open run is a VersionConflict; once that run has closed another run takes it over', async () => {
    const { ref } = await published('owned');
    const first = newRun('owned');
    const plan = await asRun(first, (a) => a.beginRetire(ref));
    expect(plan).toMatchObject({ state: 'retiring', previous: 'available', sddcs: [{ sddc: 'owned-sddc' }] });

    temporal.openRuns.add(first.runId);
    const second = newRun('owned');
    await expect(asRun(second, (a) => a.beginRetire(ref))).rejects.toMatchObject({
      type: 'VersionConflict',
      message: expect.stringContaining(first.workflowId),
    });
    expect((await catalog.versions.get('owned', '1.0.0'))?.retired?.by).toEqual(first);
    // The run's own claim is taken again (a retried claim), and still knows the version was available.
    expect(await asRun(first, (a) => a.beginRetire(ref))).toMatchObject({ state: 'retiring', previous: 'available' });

    temporal.openRuns.clear();
    expect(await asRun(second, (a) => a.beginRetire(ref))).toMatchObject({ state: 'retiring', previous: 'retiring' });
    expect((await catalog.versions.get('owned', '1.0.0'))?.retired?.by).toEqual(second);
    // The run that lost the claim can neither leave the tombstone nor give the version back, and is told so.
    await expect(catalog.versions.finishRetire('owned', '1.0.0', first)).rejects.toMatchObject({ type: 'VersionConflict' });
    await expect(asRun(first, (a) => a.abandonRetire(ref))).rejects.toMatchObject({
      type: 'VersionConflict',
      message: expect.stringContaining(second.runId),
    });
    expect((await catalog.versions.get('owned', '1.0.0'))?.status).toBe('retiring');
    await asRun(second, (a) => a.finishRetire(ref));
    expect(await catalog.versions.get('owned', '1.0.0')).toMatchObject({ status: 'retired', retired: { by: second } });
    // A retried tombstone by its owner is no error; the loser still cannot claim it left it.
    await asRun(second, (a) => a.finishRetire(ref));
    await expect(asRun(first, (a) => a.finishRetire(ref))).rejects.toMatchObject({ type: 'VersionConflict' });
  });

  it('takes over only from the holder it saw', async () => {
    await published('seen');
    const holder = newRun('seen');
    expect(await catalog.versions.beginRetire('seen', '1.0.0', holder)).toMatchObject({
      state: 'claimed',
      previous: 'available',
    });
    expect(await catalog.versions.beginRetire('seen', '1.0.0', newRun('seen'))).toEqual({ state: 'owned', owner: holder });
    expect(await catalog.versions.takeOverRetire('seen', '1.0.0', newRun('seen'), newRun('seen'))).toBe(false);
    expect((await catalog.versions.get('seen', '1.0.0'))?.retired?.by).toEqual(holder);
  });

  it('a running deploy’s lease gives the claim back: the version is available again', async () => {
    const { ref } = await published('busy');
    const deploy = { workflowId: 'deploy:busy:1.0.0:x', runId: randomUUID() };
    await holdLease(deploy, ref);
    temporal.runningDeploys.add(deploy.workflowId);
    await expect(asRun(newRun('busy'), (a) => a.beginRetire(ref))).rejects.toMatchObject({
      type: 'DeployRunning',
      message: expect.stringContaining(deploy.workflowId),
    });
    const record = await catalog.versions.get('busy', '1.0.0');
    expect(record?.status).toBe('available');
    expect(record?.retired).toBeUndefined();
    expect(await catalog.deployLeases.of('busy', '1.0.0')).toHaveLength(1);
  });

  it('a lease left by a deploy that no longer runs does not block, and is dropped', async () => {
    const { ref } = await published('stale');
    await holdLease({ workflowId: 'deploy:stale:1.0.0:x', runId: randomUUID() }, ref);
    expect(await asRun(newRun('stale'), (a) => a.beginRetire(ref))).toMatchObject({ state: 'retiring' });
    expect(await catalog.deployLeases.of('stale', '1.0.0')).toEqual([]);
  });

  it('a deploy leasing a version a retire has claimed fails ImageRetired and leaves no lease', async () => {
    const { ref } = await published('late');
    expect(await asRun(newRun('late'), (a) => a.beginRetire(ref))).toMatchObject({ state: 'retiring' });
    const deploy = { workflowId: 'deploy:late:1.0.0:x', runId: randomUUID() };
    await expect(holdLease(deploy, ref)).rejects.toMatchObject({ type: 'ImageRetired' });
    expect(await catalog.deployLeases.of('late', '1.0.0')).toEqual([]);
  });
});

describe('finishRetire and abandonRetire', () => {
  it('name the owner the workflow passes, not the activity’s run: a reset run (a new run ID) still owns the claim', async () => {
    const { ref } = await published('reset');
    const owner = newRun('reset');
    const afterReset = newRun('reset');
    expect(await asRun(owner, (a) => a.beginRetire({ ...ref, owner }))).toMatchObject({ state: 'retiring' });
    await asRun(afterReset, (a) => a.finishRetire({ ...ref, owner }));
    expect(await catalog.versions.get('reset', '1.0.0')).toMatchObject({ status: 'retired', retired: { by: owner } });
  });

  it('a claim given back already is no error; a version retired meanwhile is a VersionConflict', async () => {
    const { ref } = await published('given');
    const owner = newRun('given');
    await asRun(owner, (a) => a.beginRetire({ ...ref, owner }));
    await asRun(owner, (a) => a.abandonRetire({ ...ref, owner }));
    await asRun(owner, (a) => a.abandonRetire({ ...ref, owner }));
    expect((await catalog.versions.get('given', '1.0.0'))?.status).toBe('available');
    const other = newRun('given');
    await catalog.versions.beginRetire('given', '1.0.0', other);
    await catalog.versions.finishRetire('given', '1.0.0', other);
    await expect(asRun(owner, (a) => a.abandonRetire({ ...ref, owner }))).rejects.toMatchObject({ type: 'VersionConflict' });
  });

  it('a run replaced by a reset gives nothing back: its late give-back would undo the retire its successor goes on with', async () => {
    const { ref } = await published('replaced');
    const owner = newRun('replaced');
    await asRun(owner, (a) => a.beginRetire({ ...ref, owner }));
    const replaced = newRun('replaced');
    temporal.supersededRuns.add(replaced.runId);
    await asRun(replaced, (a) => a.abandonRetire({ ...ref, owner }));
    expect((await catalog.versions.get('replaced', '1.0.0'))?.status).toBe('retiring');
    await asRun(newRun('replaced'), (a) => a.abandonRetire({ ...ref, owner }));
    expect((await catalog.versions.get('replaced', '1.0.0'))?.status).toBe('available');
  });
});

describe('abandonPublish', () => {
  it('a publish run replaced by a reset leaves the claim its successor goes on with', async () => {
    const owner = { workflowId: 'publish:handed:1.0.0', runId: randomUUID() };
    const location = { storage: 'east-primary', container: 'vm-images', blob: 'handed/1.0.0/handed-1.0.0.iso' };
    const v = {
      image: 'handed',
      version: '1.0.0',
      format: 'iso' as const,
      sizeBytes: 1,
      blockSize: 4 << 20,
      blockCount: 1,
      location,
    };
    expect(await catalog.versions.claim(v, owner)).toEqual({ state: 'claimed' });
    const abandon = { image: 'handed', version: '1.0.0', location, status: 'cancelled' as const, error: 'cancelled', owner };
    const replaced = { ...owner, runId: randomUUID() };
    temporal.supersededRuns.add(replaced.runId);
    const asPublish = (run: RunRef) =>
      new MockActivityEnvironment({ workflowExecution: run }).run(() => createPublishActivities(deps()).abandonPublish(abandon));
    expect(await asPublish(replaced)).toEqual({ owned: false, removed: [] });
    expect((await catalog.versions.get('handed', '1.0.0'))?.status).toBe('uploading');
    expect(await asPublish({ ...owner, runId: randomUUID() })).toMatchObject({ owned: true });
    expect((await catalog.versions.get('handed', '1.0.0'))?.status).toBe('cancelled');
  });
});

describe('recordRemoval and recordRemovals', () => {
  it('a retried removal by the same owner is one attempt; another owner’s is another', async () => {
    const { ref } = await published('removal');
    const owner = newRun('removal');
    const attempts = async () =>
      (await catalog.deployments.of('removal', '1.0.0'))
        .find((d) => d.sddc === 'removal-sddc')!
        .attempts!.filter((a) => a.status === 'removed');
    await asRun(owner, (a) => a.recordRemoval({ ...ref, sddc: 'removal-sddc', owner }));
    await asRun(newRun('removal'), (a) => a.recordRemoval({ ...ref, sddc: 'removal-sddc', owner }));
    expect(await attempts()).toHaveLength(1);
    await asRun(owner, (a) => a.recordRemovals({ ...ref, sddcs: ['removal-sddc'], owner }));
    expect(await attempts()).toHaveLength(1);
    const [row] = await catalog.deployments.of('removal', '1.0.0');
    expect(row).toMatchObject({ sddc: 'removal-sddc', status: 'removed', run: owner });
    expect(row.origin).toBeUndefined();
    await asRun(owner, (a) => a.recordRemovals({ ...ref, sddcs: ['removal-sddc'], owner: newRun('removal') }));
    expect(await attempts()).toHaveLength(2);
  });
});

describe('after a retire claim', () => {
  it('a replica check cannot bring back the replica record the retire removed', async () => {
    await published('replica');
    expect(await catalog.versions.setReplica('replica', '1.0.0', { location: 'west-replica', status: 'verified' })).toBe(true);
    await catalog.versions.beginRetire('replica', '1.0.0', newRun('replica'));
    await catalog.replicas.remove('replica', '1.0.0', 'west-replica');
    expect(await catalog.versions.setReplica('replica', '1.0.0', { location: 'west-replica', status: 'verified' })).toBe(false);
    expect(await catalog.versions.setReplica('replica', '1.0.0', { location: 'west-replica', status: 'stale' })).toBe(false);
    expect((await catalog.versions.get('replica', '1.0.0'))?.replicas).toEqual([]);
  });

  it('a deploy that lands its copy is recorded failed (reason: retired); the retire’s removal is recorded as it is', async () => {
    await published('landing');
    await catalog.versions.beginRetire('landing', '1.0.0', newRun('landing'));
    await catalog.deployments.record({ image: 'landing', version: '1.0.0', sddc: 'late-sddc', status: 'deployed' });
    await catalog.deployments.record({ image: 'landing', version: '1.0.0', sddc: 'landing-sddc', status: 'removed' });
    const rows = Object.fromEntries((await catalog.deployments.of('landing', '1.0.0')).map((d) => [d.sddc, d]));
    expect(rows['late-sddc']).toMatchObject({ status: 'failed', error: RETIRED_WHILE_DEPLOYING });
    expect(rows['late-sddc'].deployedAt).toBeUndefined();
    expect(rows['landing-sddc'].status).toBe('removed');
  });

  it("a deploy's agents check fails with ImageRetired once a retire has claimed the version", async () => {
    const { ref, queue } = await published('checked');
    const deploy = createDeployActivities(deps());
    expect(await deploy.agentsPolling({ taskQueue: queue, ...ref })).toBe(1);
    const run = newRun('checked');
    await catalog.versions.beginRetire('checked', '1.0.0', run);
    await expect(deploy.agentsPolling({ taskQueue: queue, ...ref })).rejects.toMatchObject({ type: 'ImageRetired' });
    await catalog.versions.finishRetire('checked', '1.0.0', run);
    await expect(deploy.agentsPolling({ taskQueue: queue, ...ref })).rejects.toMatchObject({ type: 'ImageRetired' });
    expect(await deploy.agentsPolling({ taskQueue: queue })).toBe(1);
  });
});

describe('retentionPlan', () => {
  it('takes up a version left retiring by a closed run first, with a retention policy or without', async () => {
    await published('stuck');
    await catalog.versions.beginRetire('stuck', '1.0.0', newRun('stuck'));
    const plan = await asRun(newRun('retention'), (a) => a.retentionPlan({ limit: 100 }));
    expect(plan).toContainEqual({ image: 'stuck', version: '1.0.0' });
    expect(await asRun(newRun('retention'), (a) => a.retentionPlan({ image: 'stuck', limit: 100 }))).toEqual([
      { image: 'stuck', version: '1.0.0' },
    ]);
  });

  it('leaves a version to the retire still running on it', async () => {
    const image = `busy-${randomUUID().slice(0, 8)}`;
    await published(image);
    const retire = newRun(image);
    await catalog.versions.beginRetire(image, '1.0.0', retire);
    temporal.openRuns.add(retire.runId);
    expect(await asRun(newRun('retention'), (a) => a.retentionPlan({ image, limit: 100 }))).toEqual([]);
    temporal.openRuns.clear();
    expect(await asRun(newRun('retention'), (a) => a.retentionPlan({ image, limit: 100 }))).toEqual([
      { image, version: '1.0.0' },
    ]);
  });
});
