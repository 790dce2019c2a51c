import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { NativeConnection, Worker } from '@temporalio/worker';
import type { PublishResult } from '../../src/shared/publish-input';
import { connectWorker } from '../../src/temporal/connection';
import { createAgentWorker } from '../../src/temporal/worker';
import { requireAgents, requireControlWorkers } from '../../src/cli/checks';
import { until } from '../harness/worker-process';
import { tarArchive } from '../images/build';
import { runCli } from '../harness/cli-io';
import { repositoryRoot, startWorld, type TestWorld } from '../helpers';

/** An OVA whose descriptor declares version 2.2.0 for itself. */
const DESCRIPTOR = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References/>
  <VirtualSystem ovf:id="box"><Info/><Name>box</Name>
    <ProductSection><Info/><Product>Box</Product><Version>2.2.0</Version></ProductSection>
  </VirtualSystem>
</Envelope>`;

/** What the CLI says on the real services, where what it said used to mislead (issue 26, point 10). */
describe('the CLI says what happened', () => {
  let world: TestWorld;
  let agent: { connection: NativeConnection; worker: Worker; running: Promise<void> };
  const id = randomUUID().slice(0, 6);
  const image = `truth-${id}`;
  const sddc = `truth-sddc-${id}`;
  const ova = `truth-${id}.ova`;
  const previousQueue = process.env.VMHUB_TASK_QUEUE;

  beforeAll(async () => {
    world = await startWorld();
    process.env.VMHUB_TASK_QUEUE = world.config.taskQueue;
    const record = await world.deps.catalog.sddcs.add({
      name: sddc,
      dataCenter: 'dc-west',
      taskQueue: `sddc-${sddc}`,
      capacity: { cpus: 8, memoryMiB: 16384, diskGiB: 100 },
    });
    const connection = await connectWorker(world.config.temporal);
    const datastore = path.join(repositoryRoot(), '..', `truth-ds-${id}`);
    const worker = await createAgentWorker(connection, { ...world.config, datastore }, sddc);
    agent = { connection, worker, running: worker.run() };
    tarArchive(path.join(repositoryRoot(), ova), [{ name: 'box.ovf', bytes: Buffer.from(DESCRIPTOR) }]);
    // The CLI refuses to start work no worker or agent would take: wait until each has polled.
    await until('the control workers and the agent polling', () =>
      requireControlWorkers(world.client, world.config)
        .then(() => requireAgents(world.client, [record]))
        .then(
          () => true,
          () => false,
        ),
    );
  });

  afterAll(async () => {
    agent.worker.shutdown();
    await agent.running;
    await agent.connection.close();
    await world.close();
    if (previousQueue === undefined) delete process.env.VMHUB_TASK_QUEUE;
    else process.env.VMHUB_TASK_QUEUE = previousQueue;
  });

  it('--version 2.5.0 on an image that declares 2.2.0 publishes 2.5.0 and warns, naming both', async () => {
    const r = await runCli('publish', ova, '--image', image, '--version', '2.5.0');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^published ${image}@2\\.5\\.0 \\(ova, .*1 block of`));
    expect(r.stderr).toBe(`vmhub: warning: ${image} was published as version 2.5.0, but the image declares version 2.2.0\n`);
  });

  it('a republish of the same bytes says it was already published, and its result says so', async () => {
    const again = await runCli('publish', ova, '--image', image, '--version', '2.5.0');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already published/);
    expect(again.stdout).not.toMatch(/^published /m);
    // A start from other tools (the Temporal CLI) gets the same word in the workflow's result.
    const result = (await world.client.workflow.execute('PublishImage', {
      args: [{ source: ova, image, version: '2.5.0' }],
      taskQueue: world.config.taskQueue,
      workflowId: `publish:${image}:2.5.0:again-${id}`,
    })) as PublishResult;
    expect(result).toMatchObject({ image, version: '2.5.0', alreadyPublished: true });
  });

  it('a copy already on the SDDC is said to come from its local copy, and show says since when it is known', async () => {
    expect((await runCli('deploy', `${image}@2.5.0`, '--to', sddc)).code).toBe(0);
    const again = await runCli('deploy', `${image}@2.5.0`, '--to', sddc);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^${sddc} +dc-west +already-present +local copy +nothing \\(local copy\\)`, 'm'));
    const shown = await runCli('show', `${image}@2.5.0`);
    const { updatedAt } = (await world.deps.catalog.deployments.of(image, '2.5.0'))[0];
    const since = updatedAt.toISOString().replace(/\.\d{3}Z$/, 'Z');
    expect(shown.stdout).toMatch(
      new RegExp(
        `^${sddc} +already-present \\(not checked since ${since}\\) +2 +local copy \\(originally from west-replica\\)`,
        'm',
      ),
    );
  });

  it('show of a retired version says its blob is gone', async () => {
    const retired = `${image}-old`;
    expect((await runCli('publish', ova, '--image', retired, '--version', '1.0.0')).code).toBe(0);
    await world.client.workflow.execute('RetireImage', {
      args: [{ image: retired, version: '1.0.0' }],
      taskQueue: world.config.taskQueue,
      workflowId: `retire:${retired}:1.0.0`,
    });
    const shown = await runCli('show', `${retired}@1.0.0`);
    expect(shown.stdout).toMatch(/^blob {7}none: removed by the retire \(was .*\)$/m);
    expect(shown.stdout.match(/^blob/gm)).toHaveLength(1);
  });
});
