import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { buildBundle } from '../scripts/build-bundle';
import * as replayCheck from '../src/cli/replay-check';
import type { CliDeps } from '../src/cli/deps';
import type { DeployInput, DeployResult } from '../src/shared/deploy-input';
import type { PublishInput, PublishResult } from '../src/shared/publish-input';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy';
import { BUILD_B_PATCH, BUILD_MEMO } from './harness/upgrade-builds/patch';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { readBlob, repositoryRoot, startWorld, writeIsoFile, type TestWorld } from './helpers';

const MiB = 1024 * 1024;
const BLOCKS = 32;

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

async function eventsOf(client: Client, workflowId: string): Promise<HistoryEvent[]> {
  return (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
}

const { EVENT_TYPE_WORKFLOW_TASK_FAILED, EVENT_TYPE_WORKFLOW_TASK_COMPLETED } = temporal.api.enums.v1.EventType;

/** The patches the run's markers record, by ID. */
function patchIds(events: HistoryEvent[]): string[] {
  return events
    .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
    .map((e) => {
      const data = e.markerRecordedEventAttributes!.details!['patch-data'].payloads![0].data!;
      return (JSON.parse(Buffer.from(data).toString('utf8')) as { id: string }).id;
    });
}

/** The process IDs of the workers that completed the run's workflow tasks, in order (identity is `pid@host`). */
function workflowTaskPids(events: HistoryEvent[]): number[] {
  return events
    .filter((e) => e.eventType === EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    .map((e) => Number((e.workflowTaskCompletedEventAttributes!.identity ?? '').split('@')[0]));
}

const writeIso = (name: string, sizeBytes: number, seed: number) =>
  writeIsoFile(path.join(repositoryRoot(), name), sizeBytes, seed);

/** A run not started yet, to a wait that polls it; any other error stands. */
function notYet(err: unknown): undefined {
  if (err instanceof WorkflowNotFoundError) return undefined;
  throw err;
}

/** A run's pending children (by workflow ID) and pending activities (by type), from describe. */
async function pendingOf(client: Client, workflowId: string): Promise<{ children: string[]; activities: string[] }> {
  const { raw } = await client.workflow.getHandle(workflowId).describe();
  return {
    children: (raw.pendingChildren ?? []).map((c) => c.workflowId ?? ''),
    activities: (raw.pendingActivities ?? []).map((a) => a.activityType?.name ?? ''),
  };
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/**
 * The upgrade procedure of docs/operations.md, on the real services: a publish is mid-staging on build A's
 * worker; the replay check passes build B (its change is behind patched()) and refuses a build with the
 * same change unpatched; A is stopped with SIGTERM and B started; the run finishes on B with no failed
 * workflow task, and a run started after the upgrade runs B's code.
 */
describe('a new worker build takes over a publish and a deploy in flight', () => {
  let world: TestWorld;
  let proxy: CountingProxy;
  let bundles: { a: string; b: string; unpatched: string };
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    world = await startWorld();
    proxy = await startCountingProxy(Number(process.env.AZURITE_DC_EAST_PORT), 120);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-builds-'));
    bundles = { a: path.join(dir, 'a.js'), b: path.join(dir, 'b.js'), unpatched: path.join(dir, 'unpatched.js') };
    await buildBundle(bundles.a);
    await buildBundle(bundles.b, require.resolve('./harness/upgrade-builds/build-b'));
    await buildBundle(bundles.unpatched, require.resolve('./harness/upgrade-builds/build-unpatched'));
  }, 180_000);
  afterAll(async () => {
    for (const w of workers) await w.stop();
    await proxy.close();
    await world.close();
  });

  it('finishes a publish and a deploy in flight on build B without a non-determinism error, and new runs use B', async () => {
    const file = writeIso('upgrade.bin', BLOCKS * 4 * MiB, 23);
    writeIso('upgrade-prior.bin', 2 * 4 * MiB, 22);
    writeIso('upgrade-next.bin', 2 * 4 * MiB, 24);
    const taskQueue = `upgrade-${randomUUID()}`;
    const agentQueue = `sddc-east-1-${randomUUID().slice(0, 8)}`;
    const env = {
      VMHUB_TASK_QUEUE: taskQueue,
      AZURITE_DC_EAST_PORT: String(proxy.port),
      VMHUB_BLOCK_SIZE_MIB: '4',
      VMHUB_TRANSFER_CONCURRENCY: '2',
      VMHUB_RANGE_FAN_OUT: '2',
    };
    const cli: CliDeps = {
      config: { ...world.config, taskQueue },
      temporal: async () => world.client,
      catalog: async () => world.deps.catalog,
    };
    const check = (bundle: string) => replayCheck.run({ bundle, closedWithinHours: 1, closedLimit: 20 }, cli);
    const publish = (input: PublishInput) =>
      world.client.workflow.start('PublishImage', {
        args: [input],
        taskQueue,
        workflowId: `publish:${input.image}:${input.version}:${randomUUID()}`,
      });

    // The agent has no workflow code: it keeps running across the upgrade, reading dc-east through the proxy.
    await world.deps.catalog.sddcs.add({
      name: 'east-1',
      dataCenter: 'dc-east',
      taskQueue: agentQueue,
      capacity: { cpus: 64, memoryMiB: 262144, diskGiB: 2048 },
    });
    workers.push(
      spawnWorker(['agent', 'east-1'], {
        ...env,
        VMHUB_AGENT_TASK_QUEUE: agentQueue,
        VMHUB_DATASTORE: fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-upgrade-sddc-')),
      }),
    );
    const buildA = spawnWorker(['control'], { ...env, VMHUB_WORKFLOW_BUNDLE: bundles.a });
    workers.push(buildA);
    await until('the agent polling', async () => (await world.deps.temporal.recentPollers(agentQueue, 'activity')) > 0);
    const prior = await publish({ source: 'upgrade-prior.bin', image: 'upgrade', version: '0.9.0' });
    await prior.result();

    const inFlight = await publish({ source: 'upgrade.bin', image: 'upgrade', version: '1.0.0' });
    await until('a third of the blocks to be staged on build A', () => proxy.blockPuts >= BLOCKS / 3, 90_000);
    // Held here, the transfers stay in flight for as long as the upgrade takes.
    proxy.held = true;
    const deploy = await world.client.workflow.start('DeployToSDDCs', {
      args: [{ image: 'upgrade', version: '0.9.0', sddcs: ['east-1'] } satisfies DeployInput],
      taskQueue,
      workflowId: `deploy:upgrade:0.9.0:${randomUUID()}`,
    });
    let batchId = '';
    await until('the deploy to be downloading on the agent', async () => {
      batchId = (await pendingOf(world.client, deploy.workflowId)).children[0] ?? '';
      // A child is listed as pending from its start's initiation on, a moment before the server knows it.
      const batch = batchId && (await pendingOf(world.client, batchId).catch(notYet));
      return !!batch && batch.activities.includes('downloadImage');
    });

    // The pre-upgrade check, against the runs in flight and the one closed: B replays them all; the
    // unpatched build refuses both publishes by workflow ID, the one in flight and the one that has ended.
    expect(await check(bundles.b)).toMatchObject({ open: 3, closed: 1, failures: [] });
    const refused = await check(bundles.unpatched);
    expect(refused).toMatchObject({ open: 3, closed: 1 });
    expect(refused.failures.map((f) => [f.workflowId, f.type, f.open]).sort()).toEqual(
      [
        [inFlight.workflowId, 'PublishImage', true],
        [prior.workflowId, 'PublishImage', false],
      ].sort(),
    );
    for (const f of refused.failures) expect(f.reason).toMatch(/^\[TMPRL1100\] Nondeterminism error/);
    process.stderr.write(`replay-check of the unpatched build:\n${replayCheck.renderText(refused, 1).join('\n')}\n`);
    expect(replayCheck.renderText(refused, 1).join('\n')).toContain(inFlight.workflowId);

    await buildA.stop();
    expect(proxy.blockPuts).toBeLessThan(BLOCKS);
    for (const run of [inFlight, deploy]) expect((await run.describe()).status.name).toBe('RUNNING');
    const buildB = spawnWorker(['control'], { ...env, VMHUB_WORKFLOW_BUNDLE: bundles.b });
    workers.push(buildB);
    proxy.delayMs = 0;
    proxy.held = false;

    const result = (await inFlight.result()) as PublishResult;
    expect(result.sha256).toBe(sha256(file));
    expect(result.blockCount).toBe(BLOCKS);
    const blob = await readBlob(world.deps.storage.store('east-primary'), result.location.blob);
    expect(blob.equals(fs.readFileSync(file))).toBe(true);
    expect(await world.deps.catalog.versions.get('upgrade', '1.0.0')).toMatchObject({
      status: 'available',
      sha256: result.sha256,
    });
    const deployed = (await deploy.result()) as DeployResult;
    expect(deployed.results).toEqual([expect.objectContaining({ sddc: 'east-1', status: 'deployed' })]);

    for (const workflowId of [inFlight.workflowId, deploy.workflowId, batchId]) {
      const events = await eventsOf(world.client, workflowId);
      expect(events.filter((e) => e.eventType === EVENT_TYPE_WORKFLOW_TASK_FAILED)).toEqual([]);
      const pids = workflowTaskPids(events);
      expect(pids[0]).toBe(buildA.child.pid);
      expect(pids[pids.length - 1]).toBe(buildB.child.pid);
      // Begun on A, so B's change stays out of them.
      expect(patchIds(events)).not.toContain(BUILD_B_PATCH);
    }
    expect(patchIds(await eventsOf(world.client, inFlight.workflowId))).toContain('transfer-task-queue');
    expect((await inFlight.describe()).memo?.[BUILD_MEMO]).toBeUndefined();

    const next = await publish({ source: 'upgrade-next.bin', image: 'upgrade', version: '1.1.0', deployTo: ['east-1'] });
    const nextResult = (await next.result()) as PublishResult;
    expect(nextResult.deploy?.results).toEqual([expect.objectContaining({ sddc: 'east-1', status: 'deployed' })]);
    for (const workflowId of [next.workflowId, nextResult.deploy!.workflowId]) {
      const events = await eventsOf(world.client, workflowId);
      expect(patchIds(events)).toContain(BUILD_B_PATCH);
      expect((await world.client.workflow.getHandle(workflowId).describe()).memo?.[BUILD_MEMO]).toBe('B');
      expect(workflowTaskPids(events).every((pid) => pid === buildB.child.pid)).toBe(true);
    }

    // After the upgrade, every run (made by A, by A then B, or by B) replays on B.
    const after = await check(bundles.b);
    expect(after).toMatchObject({ open: 0, failures: [] });
    expect(after.closed).toBeGreaterThanOrEqual(7);
    // Going back to A is not: the runs begun on B carry B's patch marker, which A's code never asks for.
    const rollback = await check(bundles.a);
    expect(rollback.failures.map((f) => f.workflowId).sort()).toEqual([next.workflowId, nextResult.deploy!.workflowId].sort());
  }, 300_000);
});
