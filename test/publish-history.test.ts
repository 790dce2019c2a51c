import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../src/activities';
import type { PublishResult } from '../src/publish/input';
import { planBlocks } from '../src/storage/block-plan';
import { connectWorker } from '../src/temporal';
import { workflowSource } from '../src/worker';
import { startWorld, type TestWorld } from './helpers';

const TiB = 1024 ** 4;

/**
 * History stays bounded for a 1 TiB image: the real PublishImage workflow on the real Temporal server,
 * with activities that only account bytes instead of moving a terabyte.
 */
describe('PublishImage history size', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(() => world.close());

  it('stays within a few thousand events for a simulated 1 TiB image', async () => {
    const plan = planBlocks(TiB, 8 * 1024 * 1024);
    let bytesAccounted = 0;
    const location = { storage: 'east-primary', container: 'vm-images', blob: 'big/1.0.0/big-1.0.0.iso' };
    const accounting: Partial<Activities> = {
      probeSource: async () => ({ format: 'iso', plan, rangeFanOut: 4, origin: 'repository' }),
      claimVersion: async () => ({ state: 'claimed', location }),
      inspectSource: async () => ({
        sha256: 'f'.repeat(64),
        blockListDigest: 'e'.repeat(64),
        metadata: { kind: 'iso', volumeId: 'BIG', volumeSizeBytes: plan.sizeBytes, bootable: false, joliet: false, udf: false },
      }),
      stageBlockRange: async ({ range }) => {
        const bytes = Math.min(plan.sizeBytes, (range.first + range.count) * plan.blockSize) - range.first * plan.blockSize;
        bytesAccounted += bytes;
        return { uploaded: range.count, reused: 0, bytesUploaded: bytes };
      },
      commitBlocks: async () => ({ etag: '"simulated"' }),
      markAvailable: async (i) => ({
        ...i,
        format: 'iso',
        sizeBytes: plan.sizeBytes,
        blockSize: plan.blockSize,
        blockCount: plan.blockCount,
        location,
      }),
      abandonPublish: async () => undefined,
      replicaLocations: async () => ({ replicas: [] }),
    };
    const taskQueue = `history-${randomUUID()}`;
    const workflowId = `publish:big:1.0.0:${randomUUID()}`;
    const connection = await connectWorker(world.config.temporal);
    const worker = await Worker.create({ connection, taskQueue, ...workflowSource(), activities: accounting });
    const result = (await worker.runUntil(
      world.client.workflow.execute('PublishImage', {
        args: [{ source: 'big.iso', image: 'big', version: '1.0.0' }],
        taskQueue,
        workflowId,
      }),
    )) as PublishResult;
    await connection.close();

    expect(result.sizeBytes).toBe(TiB);
    expect(plan.blockCount).toBeLessThanOrEqual(50_000);
    expect(bytesAccounted).toBe(TiB);
    const eventCount = (await world.client.workflow.getHandle(workflowId).fetchHistory()).events!.length;
    expect(eventCount).toBeLessThan(3000);

    fs.mkdirSync('test-output', { recursive: true });
    fs.writeFileSync('test-output/publish-history.json', JSON.stringify({ ...plan, eventCount }, null, 2));
    process.stderr.write(
      `1 TiB publish (simulated): ${plan.blockCount} blocks of ${plan.blockSize} bytes, ${eventCount} history events\n`,
    );
  });
});
