import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { PublishProgress, PublishResult } from '../src/shared/publish-input';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { readBlob, repositoryRoot, startWorld, writeIsoFile, type TestWorld } from './helpers';

const MiB = 1024 * 1024;
const BLOCKS = 32;
const CONCURRENCY = 2;
const FAN_OUT = 2;

describe('PublishImage after a worker is killed mid-upload', () => {
  let world: TestWorld;
  let proxy: CountingProxy;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    // This process only reads results; the publishing is done by worker processes on their own queue.
    world = await startWorld();
    proxy = await startCountingProxy(Number(process.env.AZURITE_DC_EAST_PORT), 120);
  });
  afterAll(async () => {
    for (const w of workers) await w.stop();
    await proxy.close();
    await world.close();
  });

  it('resumes on a new worker, re-sending only the blocks that were in flight', async () => {
    const file = writeIsoFile(path.join(repositoryRoot(), 'resume.bin'), BLOCKS * 4 * MiB, 99);
    const taskQueue = `resume-${randomUUID()}`;
    const env = {
      VMHUB_TASK_QUEUE: taskQueue,
      AZURITE_DC_EAST_PORT: String(proxy.port),
      VMHUB_BLOCK_SIZE_MIB: '4',
      VMHUB_TRANSFER_CONCURRENCY: String(CONCURRENCY),
      VMHUB_RANGE_FAN_OUT: String(FAN_OUT),
    };
    workers.push(spawnWorker(['control'], env));
    const handle = await world.client.workflow.start('PublishImage', {
      args: [{ source: 'resume.bin', image: 'resume', version: '1.0.0' }],
      taskQueue,
      workflowId: `publish:resume:1.0.0:${randomUUID()}`,
    });

    await until('a third of the blocks to be staged', () => proxy.blockPuts >= BLOCKS / 3, 90_000);
    await workers[0].kill();
    const sentBeforeCrash = proxy.blockPuts;
    proxy.delayMs = 0;
    const killedAt = Date.now();

    workers.push(spawnWorker(['control'], env));
    const result = (await handle.result()) as PublishResult;
    const resumeSeconds = (Date.now() - killedAt) / 1000;

    expect(result.sha256).toBe(createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
    expect(result.blockCount).toBe(BLOCKS);
    const blob = await readBlob(world.deps.storage.store('east-primary'), result.location.blob);
    expect(blob.equals(fs.readFileSync(file))).toBe(true);

    const resent = proxy.blockPuts - BLOCKS;
    expect(sentBeforeCrash).toBeLessThan(BLOCKS);
    expect(resent).toBeGreaterThanOrEqual(0);
    expect(resent).toBeLessThanOrEqual(CONCURRENCY * FAN_OUT);
    const progress = await handle.query<PublishProgress>('progress');
    expect(progress.blocksReused).toBeGreaterThan(0);

    const report = {
      blocks: BLOCKS,
      sentBeforeCrash,
      totalBlockPuts: proxy.blockPuts,
      resent,
      inFlightBound: CONCURRENCY * FAN_OUT,
      resumeSeconds,
    };
    fs.mkdirSync('test-output', { recursive: true });
    fs.writeFileSync('test-output/publish-resume.json', JSON.stringify(report, null, 2));
    process.stderr.write(`publish crash-resume: ${JSON.stringify(report)}\n`);
  });
});
