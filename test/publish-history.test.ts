import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { Worker } from '@temporalio/worker';
import type { PublishResult } from '../src/shared/publish-input';
import { planBlocks } from '../src/shared/block-plan';
import { transferTaskQueueOf } from '../src/shared/task-queues';
import { connectWorker } from '../src/temporal/connection';
import { workflowSource } from '../src/temporal/worker';
import { accountingActivities } from './harness/simulated-publish';
import { startWorld, type TestWorld } from './helpers';

const TiB = 1024 ** 4;

/** History stays bounded for a 1 TiB image: the real PublishImage workflow, activities that only account bytes. */
describe('PublishImage history size', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(() => world.close());

  it('stays within a few thousand events for a simulated 1 TiB image', async () => {
    const plan = planBlocks(TiB, 8 * 1024 * 1024);
    const { activities, bytesAccounted } = accountingActivities(plan);
    const taskQueue = `history-${randomUUID()}`;
    const workflowId = `publish:simulated:1.0.0:${randomUUID()}`;
    const connection = await connectWorker(world.config.temporal);
    const worker = await Worker.create({ connection, taskQueue, ...workflowSource(), activities });
    const transfers = await Worker.create({ connection, taskQueue: transferTaskQueueOf(taskQueue), activities });
    const result = (await transfers.runUntil(() =>
      worker.runUntil(
        world.client.workflow.execute('PublishImage', {
          args: [{ source: 'simulated.iso', image: 'simulated', version: '1.0.0' }],
          taskQueue,
          workflowId,
        }),
      ),
    )) as PublishResult;
    await connection.close();

    expect(result.sizeBytes).toBe(TiB);
    expect(plan.blockCount).toBeLessThanOrEqual(50_000);
    expect(bytesAccounted()).toBe(TiB);
    const eventCount = (await world.client.workflow.getHandle(workflowId).fetchHistory()).events!.length;
    expect(eventCount).toBeLessThan(3000);

    fs.mkdirSync('test-output', { recursive: true });
    fs.writeFileSync('test-output/publish-history.json', JSON.stringify({ ...plan, eventCount }, null, 2));
    process.stderr.write(
      `1 TiB publish (simulated): ${plan.blockCount} blocks of ${plan.blockSize} bytes, ${eventCount} history events\n`,
    );
  });
});
