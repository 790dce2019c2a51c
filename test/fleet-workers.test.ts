import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import type { PublishResult } from '../src/shared/publish-input';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { repositoryRoot, startWorld, writeImageFile, type TestWorld } from './helpers';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Marks a file as an ISO 9660 image, so the publish inspects it as one. */
function markIso(file: string): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from('\x01CD001\x01', 'latin1'), 0, 7, 32768);
  fs.closeSync(fd);
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 8 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The worker identities that completed each activity type in a run. */
async function completedBy(client: Client, workflowId: string): Promise<Map<string, Set<string>>> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const typeOf = new Map<string, string>();
  const by = new Map<string, Set<string>>();
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) typeOf.set(String(e.eventId), scheduled.activityType?.name ?? '');
    const completed = e.activityTaskCompletedEventAttributes;
    if (completed) {
      const type = typeOf.get(String(completed.scheduledEventId)) ?? '';
      by.set(type, (by.get(type) ?? new Set()).add(completed.identity ?? ''));
    }
  }
  return by;
}

/** Distinct identities polling a task queue for activities. */
async function pollers(client: Client, taskQueue: string): Promise<number> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue },
    taskQueueType: 2, // activity
  });
  return new Set((response.pollers ?? []).map((p) => p.identity)).size;
}

/** Workers scale out: transfers of one publish shared by two worker processes, and the overlap a new version notes. */
describe('worker processes at scale', () => {
  let world: TestWorld;
  const workers: WorkerProcess[] = [];
  const files: string[] = [];

  beforeAll(async () => {
    // This process only starts runs and reads results: worker processes on queues of their own do the work.
    world = await startWorld();
  });
  afterAll(async () => {
    for (const w of workers) await w.stop();
    for (const f of files) fs.rmSync(f, { force: true });
    await world.close();
  });

  it(
    'publishes one 2 GiB image with ranges staged by two worker processes, and the image verifies',
    async () => {
      const file = writeImageFile(path.join(repositoryRoot(), 'scale-out.iso'), 2 * GiB, 7);
      files.push(file);
      markIso(file);
      const taskQueue = `scale-${randomUUID()}`;
      const env = { VMHUB_TASK_QUEUE: taskQueue, MONGODB_URI: world.config.mongodbUri };
      // One process serves both queues; the other only transfers, as a scaled-out transfer worker would.
      workers.push(spawnWorker(['control', '--only', 'transfer'], env), spawnWorker(['control'], env));
      await until(
        'both workers to poll the transfer queue',
        async () => (await pollers(world.client, `${taskQueue}-transfer`)) >= 2,
        120_000,
      );

      const workflowId = `publish:scale-out:1.0.0:${randomUUID()}`;
      const result = (await world.client.workflow.execute('PublishImage', {
        args: [{ source: 'scale-out.iso', image: 'scale-out', version: '1.0.0' }],
        taskQueue,
        workflowId,
      })) as PublishResult;

      expect(result.sizeBytes).toBe(2 * GiB);
      expect(result.sha256).toBe(await sha256Of(file));
      const props = await world.deps.storage.store(result.location.storage).getProperties(result.location.blob);
      expect(props.contentLength).toBe(2 * GiB);
      const by = await completedBy(world.client, workflowId);
      const stagers = by.get('stageBlockRange') ?? new Set();
      expect(stagers.size).toBe(2);
      // Bookkeeping ran on the control queue, which only the full worker polls.
      expect(by.get('probeSource')?.size).toBe(1);
      process.stderr.write(`2 GiB publish on two workers: ranges staged by ${[...stagers].join(' and ')}\n`);
    },
    30 * 60_000,
  );

  it(
    'notes the blocks a new version shares with the previous one, and vmhub show prints it',
    async () => {
      const taskQueue = `overlap-${randomUUID()}`;
      const env = { VMHUB_TASK_QUEUE: taskQueue, MONGODB_URI: world.config.mongodbUri, VMHUB_BLOCK_SIZE_MIB: '4' };
      workers.push(spawnWorker(['control'], env));
      const first = writeImageFile(path.join(repositoryRoot(), 'overlap-1.iso'), 64 * MiB, 11);
      markIso(first);
      // 1.0.1 changes one of its sixteen 4 MiB blocks in place.
      const second = path.join(repositoryRoot(), 'overlap-2.iso');
      fs.copyFileSync(first, second);
      const fd = fs.openSync(second, 'r+');
      fs.writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, 5 * 4 * MiB + 100);
      fs.closeSync(fd);
      files.push(first, second);

      const publish = (source: string, version: string) =>
        world.client.workflow.execute('PublishImage', {
          args: [{ source, image: 'overlap', version }],
          taskQueue,
          workflowId: `publish:overlap:${version}:${randomUUID()}`,
        }) as Promise<PublishResult>;
      await publish('overlap-1.iso', '1.0.0');
      await publish('overlap-2.iso', '1.0.1');

      expect((await world.deps.catalog.versions.get('overlap', '1.0.0'))?.overlap).toBeUndefined();
      expect((await world.deps.catalog.versions.get('overlap', '1.0.1'))?.overlap).toEqual({
        previousVersion: '1.0.0',
        sharedBlocks: 15,
        blockCount: 16,
      });
      const shown = await run(process.execPath, [path.join(ROOT, 'bin', 'vmhub.js'), 'show', 'overlap@1.0.1'], {
        cwd: ROOT,
        env: { ...process.env, ...env, VMHUB_LOG_LEVEL: 'ERROR' },
      });
      expect(shown.stdout).toContain('overlap    15 of 16 blocks (93.8 %) shared with 1.0.0');
    },
    10 * 60_000,
  );
});
