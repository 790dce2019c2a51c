import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CancelledFailure, WorkflowFailedError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import * as cancelCommand from '../src/cli/cancel';
import type { CliDeps } from '../src/cli/deps';
import type { PublishResult } from '../src/shared/publish-input';
import { unlessNotFound } from '../src/storage/block-store';
import { temporalView } from '../src/temporal/connection';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { readBlob, repositoryRoot, startWorld, workflowFailure, writeIsoFile, type TestWorld } from './helpers';

const MiB = 1024 * 1024;
const BLOCKS = 24;
const EventType = temporal.api.enums.v1.EventType;

/** An ISO of BLOCKS 4 MiB blocks, its bytes fixed by the seed. */
function isoFile(name: string, seed: number): string {
  return writeIsoFile(path.join(repositoryRoot(), name), BLOCKS * 4 * MiB, seed);
}

/**
 * Ownership and cancellation of a publish on the real services: a Workflow Reset keeps the claim, and a
 * cancel whose transfer worker is dead still ends Cancelled with what it wrote removed.
 */
describe('PublishImage reset and cancel', () => {
  let world: TestWorld;
  let proxy: CountingProxy;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    // This process only reads results; the publishing is done by worker processes on their own queues.
    world = await startWorld();
    proxy = await startCountingProxy(Number(process.env.AZURITE_DC_EAST_PORT));
  });
  afterAll(async () => {
    for (const w of workers) await w.stop();
    await proxy.close();
    await world.close();
  });

  /** Worker processes' settings: storage through the proxy, small blocks, a few at a time. */
  const workerEnv = (taskQueue: string) => ({
    VMHUB_TASK_QUEUE: taskQueue,
    MONGODB_URI: world.config.mongodbUri,
    AZURITE_DC_EAST_PORT: String(proxy.port),
    VMHUB_BLOCK_SIZE_MIB: '4',
    VMHUB_TRANSFER_CONCURRENCY: '2',
    VMHUB_RANGE_FAN_OUT: '2',
  });

  it('a reset to the last workflow task mid-staging still owns its claim and publishes with no debris', async () => {
    const file = isoFile('reset.bin', 7);
    const taskQueue = `reset-${randomUUID()}`;
    proxy.delayMs = 150;
    const before = proxy.blockPuts;
    workers.push(spawnWorker(['control'], workerEnv(taskQueue)));
    const workflowId = `publish:reset:1.0.0:${randomUUID()}`;
    const first = await world.client.workflow.start('PublishImage', {
      args: [{ source: 'reset.bin', image: 'reset', version: '1.0.0' }],
      taskQueue,
      workflowId,
    });
    await until('a third of the blocks to be staged', () => proxy.blockPuts - before >= BLOCKS / 3, 120_000);

    // What `temporal workflow reset --type LastWorkflowTask` does.
    const { events } = await first.fetchHistory();
    const lastTask = [...(events ?? [])].reverse().find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
    expect(lastTask).toBeDefined();
    const { runId } = await world.client.workflowService.resetWorkflowExecution({
      namespace: world.config.temporal.namespace,
      workflowExecution: { workflowId, runId: first.firstExecutionRunId },
      workflowTaskFinishEventId: lastTask!.eventId,
      requestId: randomUUID(),
      reason: 'reset mid-staging',
    });
    expect(runId).toBeTruthy();
    expect(runId).not.toBe(first.firstExecutionRunId);
    // The first run is terminated, but its owner still runs: another publish must not take the claim over.
    const owner = { workflowId, runId: first.firstExecutionRunId };
    const view = temporalView(world.client);
    expect(await view.isClosed(owner)).toBe(false);
    proxy.delayMs = 0;

    const reset = world.client.workflow.getHandle(workflowId, runId!);
    const result = (await reset.result()) as PublishResult;
    expect(await view.isClosed(owner)).toBe(true);
    const description = await reset.describe();
    expect(description.status.name).toBe('COMPLETED');
    // The reset run names the first run of its chain: the owner of the claim the first run made.
    expect(description.raw.workflowExecutionInfo?.firstRunId).toBe(first.firstExecutionRunId);

    const bytes = fs.readFileSync(file);
    expect(result.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    const store = world.deps.storage.store('east-primary');
    expect((await readBlob(store, result.location.blob)).equals(bytes)).toBe(true);
    expect((await unlessNotFound(store.uncommittedBlocks(result.location.blob))) ?? []).toEqual([]);
    const record = await world.deps.catalog.versions.get('reset', '1.0.0');
    expect(record).toMatchObject({
      status: 'available',
      sha256: result.sha256,
      owner,
    });
  });

  it('a cancel whose transfer worker is dead ends Cancelled, the version cancelled and its staged blocks removed', async () => {
    isoFile('cancel-dead.bin', 8);
    const taskQueue = `cancel-dead-${randomUUID()}`;
    proxy.delayMs = 150;
    const before = proxy.blockPuts;
    const transfer = spawnWorker(['control', '--only', 'transfer'], workerEnv(taskQueue));
    workers.push(transfer, spawnWorker(['control', '--only', 'control'], workerEnv(taskQueue)));
    const workflowId = `publish:cancel-dead:1.0.0:${randomUUID()}`;
    const handle = await world.client.workflow.start('PublishImage', {
      args: [{ source: 'cancel-dead.bin', image: 'cancel-dead', version: '1.0.0' }],
      taskQueue,
      workflowId,
    });
    await until('a third of the blocks to be staged', () => proxy.blockPuts - before >= BLOCKS / 3, 120_000);
    // The transfer worker dies: its staging never heartbeats again, so the cancel cannot reach it.
    await transfer.kill();
    proxy.delayMs = 0;
    const record = await world.deps.catalog.versions.get('cancel-dead', '1.0.0');
    expect(record?.status).toBe('uploading');
    const store = world.deps.storage.store(record!.location.storage);
    const blob = record!.location.blob;
    expect(((await unlessNotFound(store.uncommittedBlocks(blob))) ?? []).length).toBeGreaterThan(0);

    const deps: CliDeps = {
      config: world.config,
      temporal: async () => world.client,
      catalog: async () => world.deps.catalog,
    };
    const cancelled = await cancelCommand.run({ workflowId }, deps);
    expect(cancelled).toMatchObject({ status: 'cancelled', stopped: true });
    expect(cancelled.cleanup).toEqual(expect.arrayContaining([expect.stringMatching(/staged blocks$/)]));

    const ended = await handle.result().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(ended).toBeInstanceOf(WorkflowFailedError);
    expect((ended as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(await world.deps.catalog.versions.status('cancel-dead', '1.0.0')).toBe('cancelled');
    expect(await unlessNotFound(store.getProperties(blob))).toBeUndefined();
    expect((await unlessNotFound(store.uncommittedBlocks(blob))) ?? []).toEqual([]);
  });

  it('a publish no transfer worker polls for fails NoTransferWorker at once, having claimed and written nothing', async () => {
    isoFile('unserved.bin', 11);
    const taskQueue = `unserved-${randomUUID()}`;
    workers.push(spawnWorker(['control', '--only', 'control'], workerEnv(taskQueue)));
    const run = world.client.workflow.execute('PublishImage', {
      args: [{ source: 'unserved.bin', image: 'unserved', version: '1.0.0' }],
      taskQueue,
      workflowId: `publish:unserved:1.0.0:${randomUUID()}`,
    });
    const failure = await workflowFailure(run);
    expect(failure.type).toBe('NoTransferWorker');
    expect(failure.message).toContain(`${taskQueue}-transfer`);
    expect(await world.deps.catalog.versions.get('unserved', '1.0.0')).toBeNull();
  });
});
