import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { deployWorkflowId, type FleetProgress } from '../../src/shared/deploy-input';
import { connectWorker } from '../../src/temporal/connection';
import { createAgentWorkers, runWorkers } from '../../src/temporal/worker';
import { startHttpProxy, type Gate, type HttpProxy } from '../harness/faults';
import { until } from '../harness/worker-process';
import { isoImage } from '../images/build';
import { repositoryRoot, startWorld, type TestWorld } from '../helpers';
import { runVmhub, type Ran } from './run-vmhub';

const MiB = 2 ** 20;

/** Runs fn with the primary storage's port in the environment set to `port`: the stores made meanwhile reach it there. */
async function withEastPort<T>(port: number, fn: () => Promise<T>): Promise<T> {
  const real = process.env.AZURITE_DC_EAST_PORT;
  process.env.AZURITE_DC_EAST_PORT = String(port);
  try {
    return await fn();
  } finally {
    process.env.AZURITE_DC_EAST_PORT = real;
  }
}

/**
 * `vmhub cancel` and `vmhub status` on runs cancelled part way, on the real services. The control
 * workers read the primary storage through one proxy, the agents through another, so a test can hold a
 * replication's reads, or one agent's download, at a gate until the cancel has landed.
 */
describe('cancels that report what happened', () => {
  let world: TestWorld;
  let env: NodeJS.ProcessEnv;
  let control: HttpProxy;
  let agents: HttpProxy;
  const gates: Gate[] = [];
  const agentConnections: NativeConnection[] = [];
  const agentWorkers: Worker[] = [];
  const agentRuns: Array<Promise<void>> = [];
  const id = randomUUID().slice(0, 6);
  const westOk = `cw-${id}`;
  const eastOk = `ce-${id}`;
  const slowEast = `cs-${id}`;
  const file = `cancel-${id}.iso`;
  const datastores = path.join(repositoryRoot(), '..', `cancel-ds-${id}`);

  const vmhub = (...args: string[]): Promise<Ran> => runVmhub(args, env);

  /** Holds every read of the primary that passes `proxy` until the test ends. */
  const holdReads = (proxy: HttpProxy): Gate => {
    const gate = proxy.gate((q) => q.kind === 'read', 'request');
    gates.push(gate);
    return gate;
  };

  const deployedTo = async (image: string, sddc: string, status: string): Promise<boolean> =>
    (await world.deps.catalog.deployments.of(image, '1.0.0')).some((d) => d.sddc === sddc && d.status === status);

  /** Whether the batch of `sddc` has ended and handed its row back to the deploy (false while the deploy has not started). */
  const batchDone = async (deployId: string, sddc: string): Promise<boolean> => {
    const progress = await world.client.workflow
      .getHandle(deployId)
      .query<FleetProgress>('progress')
      .catch(() => undefined);
    return progress?.results?.some((r) => r.sddc === sddc) === true;
  };

  beforeAll(async () => {
    const east = Number(process.env.AZURITE_DC_EAST_PORT);
    control = await startHttpProxy(east);
    agents = await startHttpProxy(east);
    world = await withEastPort(control.port, () => startWorld({ blockSizeBytes: MiB }));
    env = {
      ...process.env,
      VMHUB_TASK_QUEUE: world.config.taskQueue,
      MONGODB_URI: world.config.mongodbUri,
      VMHUB_LOG_LEVEL: 'ERROR',
    };
    for (const [name, dataCenter] of [
      [westOk, 'dc-west'],
      [eastOk, 'dc-east'],
      [slowEast, 'dc-east'],
    ]) {
      await world.deps.catalog.sddcs.add({
        name,
        dataCenter,
        taskQueue: `sddc-${name}`,
        capacity: { cpus: 8, memoryMiB: 16384, diskGiB: 100 },
      });
      const connection = await connectWorker(world.config.temporal);
      const workers = await withEastPort(agents.port, () =>
        createAgentWorkers(connection, { ...world.config, datastore: path.join(datastores, name) }, name),
      );
      agentConnections.push(connection);
      agentWorkers.push(...workers);
      agentRuns.push(runWorkers(workers));
    }
    for (const name of [westOk, eastOk, slowEast]) {
      await until(
        `${name}'s agent polling`,
        async () => (await world.deps.temporal.recentPollers(`sddc-${name}`, 'activity')) > 0,
      );
    }
    isoImage(path.join(repositoryRoot(), file), { volumeId: 'CANCEL', extraBytes: 2 * MiB });
  });

  // What a test held goes on once it is done: the proxy forwards it, to a client that has long gone.
  afterEach(() => {
    for (const gate of gates.splice(0)) gate.open();
  });

  afterAll(async () => {
    for (const w of agentWorkers) w.shutdown();
    await Promise.all(agentRuns);
    await Promise.all(agentConnections.map((c) => c.close()));
    await world.close();
    await Promise.all([control.close(), agents.close()]);
  });

  it('a publish cancelled while it replicates says it published, and leaves its replica stale for `verify`, not pending', async () => {
    const image = `cancel-rep-${id}`;
    const ref = `${image}@1.0.0`;
    const workflowId = `publish:${image}:1.0.0`;
    const held = holdReads(control);
    expect((await vmhub('publish', file, '--image', image, '--version', '1.0.0', '--no-wait')).code).toBe(0);
    // The copy to west-replica reads the primary block by block: its first read waits at the gate.
    await held.reached;

    const cancelled = await vmhub('cancel', workflowId);
    expect(cancelled.code).toBe(0);
    const verify = `\`vmhub verify ${ref}\` copies it again`;
    expect(cancelled.stdout.split('\n')).toEqual([
      `${workflowId}: cancelled`,
      `  done: published ${ref}: available`,
      '  cleaned up: nothing; what is done stays',
      `  left: west-replica: stale, blob is missing (replication cancelled by ${workflowId}; ${verify})`,
      '',
    ]);
    const shown = await vmhub('show', ref);
    expect(shown.stdout).toMatch(/^cancel-rep-\S+ +available /);
    expect(shown.stdout.split('\n').find((l) => l.startsWith('west-replica'))).toBe(
      `west-replica  stale   blob is missing (replication cancelled by ${workflowId}; ${verify})`,
    );

    // As the report says: the next verify copies it.
    held.open();
    const verified = await vmhub('verify', ref);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/west-replica +replicated again: blob is missing/);
    const record = await world.deps.catalog.versions.get(image, '1.0.0');
    expect(record?.replicas).toEqual([expect.objectContaining({ location: 'west-replica', status: 'verified' })]);
  });

  it('a cancelled deploy lists every SDDC with how it ended, in the cancel and in `status` once closed', async () => {
    const image = `cancel-dep-${id}`;
    const ref = `${image}@1.0.0`;
    expect((await vmhub('publish', file, '--image', image, '--version', '1.0.0', '--deploy', eastOk)).code).toBe(0);
    // eastOk has the image and slowEast's download waits at the gate, in one batch; westOk is a batch of its own.
    const held = holdReads(agents);
    const started = await vmhub('deploy', ref, '--to', `${westOk},${eastOk},${slowEast}`, '--no-wait', '--json');
    const { workflowId } = JSON.parse(started.stdout) as { workflowId: string };
    await held.reached;
    await until(
      `${westOk}'s batch done and ${eastOk} already present`,
      async () => (await batchDone(workflowId, westOk)) && (await deployedTo(image, eastOk, 'already-present')),
    );

    const cancelled = await vmhub('cancel', workflowId);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout.split('\n')).toEqual([
      `${workflowId}: cancelled`,
      '  SDDC       STATUS           REASON',
      `  ${westOk}  deployed`,
      `  ${eastOk}  already-present`,
      `  ${slowEast}  cancelled        the agent stopped and removed its partial download`,
      `  left: not deployed to ${slowEast}; \`vmhub deploy ${ref} --to ${slowEast}\` deploys it`,
      '',
    ]);

    const status = await vmhub('status', workflowId);
    expect(status.code).toBe(0);
    const rows = status.stdout.split('\n').slice(status.stdout.split('\n').findIndex((l) => l.startsWith('SDDC')));
    expect(rows).toEqual([
      expect.stringMatching(/^SDDC +STATE +SOURCE +DONE +REASON$/),
      expect.stringMatching(new RegExp(`^${westOk} +deployed +west-replica +2\\.4 MiB / 2\\.4 MiB$`)),
      expect.stringMatching(new RegExp(`^${eastOk} +already-present +- +2\\.4 MiB / 2\\.4 MiB$`)),
      expect.stringMatching(
        new RegExp(`^${slowEast} +cancelled +- +0 B / 2\\.4 MiB +the agent stopped and removed its partial download$`),
      ),
      '',
    ]);
  });

  it('a publish cancelled while it deploys lists its SDDCs, in the cancel and in `status` once closed', async () => {
    const image = `cancel-pubdep-${id}`;
    const ref = `${image}@1.0.0`;
    const workflowId = `publish:${image}:1.0.0`;
    const held = holdReads(agents);
    const started = await vmhub(
      'publish',
      file,
      '--image',
      image,
      '--version',
      '1.0.0',
      '--deploy',
      `${westOk},${slowEast}`,
      '--no-wait',
    );
    expect(started.code).toBe(0);
    await held.reached;
    await until(`${westOk}'s batch to be done`, () => batchDone(deployWorkflowId(image, '1.0.0', workflowId), westOk));

    const cancelled = await vmhub('cancel', workflowId, '--json');
    expect(cancelled.code).toBe(0);
    expect(JSON.parse(cancelled.stdout)).toEqual({
      workflowId,
      status: 'cancelled',
      stopped: true,
      done: [`published ${ref}: available`, 'replicated to west-replica'],
      cleanup: [`${slowEast}: cancelled: the agent stopped and removed its partial download`],
      left: [`not deployed to ${slowEast}; \`vmhub deploy ${ref} --to ${slowEast}\` deploys it`],
      sddcs: [
        { sddc: westOk, status: 'deployed', reason: null },
        { sddc: slowEast, status: 'cancelled', reason: 'the agent stopped and removed its partial download' },
      ],
      resolvedFrom: null,
      taskQueue: expect.any(String),
      workerPolling: null,
    });

    const status = await vmhub('status', workflowId, '--json');
    expect(JSON.parse(status.stdout)).toMatchObject({
      type: 'PublishImage',
      status: 'cancelled',
      progress: { phase: 'cancelled' },
      sddcs: [
        expect.objectContaining({ sddc: westOk, status: 'deployed' }),
        expect.objectContaining({ sddc: slowEast, status: 'failed', reason: expect.stringMatching(/^cancelled: /) }),
      ],
    });
  });
});
