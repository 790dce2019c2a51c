import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import type { RolloutProgress } from '../src/shared/rollout-input';
import type { PublishResult } from '../src/shared/publish-input';
import { VcenterConnection } from '../src/sddc/library-import';
import type { ContentLibraryTarget } from '../src/shared/target-kinds/kind';
import { loadTopology } from '../src/topology/topology';
import { agentVcenterEnv, itemDigests, testVcenter } from './harness/vcenter';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { edgeOva, type Member } from './images/build';
import { repositoryRoot, startWorld, vmhubCli, type TestWorld } from './helpers';

const MiB = 2 ** 20;
const SDDCS = ['east-1', 'east-2', 'west-1'];
const IMAGE = 'gateway';
const ROLLOUT = `rollout:${IMAGE}:stable`;
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/**
 * Rollouts end to end on the embedded services: three content-library SDDCs on the vcsims, each with a
 * real agent process, the CLI as an operator runs it. Waves, an approval through a Temporal Update, the
 * health gate on each SDDC's new item, channel items whose IDs never change, a rollback that fetches
 * nothing, a gate that fails and halts, and an abort that cancels a wave and leaves no VM behind.
 */
describe('rollouts', () => {
  let world: TestWorld;
  let vmhub: (...args: string[]) => ReturnType<ReturnType<typeof vmhubCli>>;
  const agents: WorkerProcess[] = [];
  const targets = new Map<string, ContentLibraryTarget>();
  const run = randomUUID().slice(0, 6);
  const password = `pw-${randomUUID()}`;
  const members = new Map<string, Member[]>();

  async function vcenter<T>(name: string, fn: (conn: VcenterConnection) => Promise<T>): Promise<T> {
    const target = targets.get(name)!;
    const conn = await VcenterConnection.open(target, testVcenter(target.vcenter, { username: 'vmhub-test', password }));
    try {
      return await fn(conn);
    } finally {
      await conn.close();
    }
  }

  /** What each SDDC's channel item is and holds, as the vCenter serves it back. */
  async function channelItems(): Promise<Record<string, { itemId: string; digests: Record<string, string> }>> {
    const items = await world.deps.catalog.channels.itemsOf(IMAGE, 'stable');
    const out: Record<string, { itemId: string; digests: Record<string, string> }> = {};
    for (const i of items) {
      out[i.sddc] = {
        itemId: i.placement.itemId,
        digests: await vcenter(i.sddc, (c) => itemDigests(c.library, i.placement.itemId)),
      };
    }
    return out;
  }

  /** The SDDC's target asking its gate for a running guest, which vcsim's VMs never report. */
  function withoutPowerState(name: string): ContentLibraryTarget {
    const { guestCheck: _powerState, ...required } = targets.get(name)!;
    return required;
  }

  const digestsOf = (version: string) => Object.fromEntries(members.get(version)!.map((m) => [m.name, sha(m.bytes)]));
  const progress = () => world.client.workflow.getHandle(ROLLOUT).query<RolloutProgress>('rollout');
  const gateVms = (name: string) =>
    vcenter(name, async (c) =>
      (await (await c.vim()).objectsOfType('VirtualMachine', ['name']))
        .map((v) => v.props.name)
        .filter((n) => n.startsWith('vmhub-gate-')),
    );

  async function publish(version: string): Promise<void> {
    const { file, members: m } = edgeOva(repositoryRoot(), version, MiB, IMAGE);
    members.set(version, m);
    (await world.client.workflow.execute('PublishImage', {
      args: [{ source: file, image: IMAGE, version }],
      taskQueue: world.config.taskQueue,
      workflowId: `publish:${IMAGE}:${version}:${randomUUID()}`,
    })) as PublishResult;
  }

  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: 4 * MiB });
    vmhub = vmhubCli(world);
    const seeds = loadTopology(world.config.topologyPath).sddcs.filter((s) => SDDCS.includes(s.name));
    for (const seed of seeds) {
      // vcsim's guests never run VMware Tools: these SDDCs' gates stop at the power state.
      const target = { ...(seed.target as ContentLibraryTarget), library: `vmhub-ro-${run}`, guestCheck: 'power-state' as const };
      targets.set(seed.name, target);
      const taskQueue = `sddc-${seed.name}-${randomUUID().slice(0, 8)}`;
      await world.deps.catalog.sddcs.add({
        name: seed.name,
        dataCenter: seed.dataCenter,
        taskQueue,
        capacity: { cpus: 64, memoryMiB: 262144, diskGiB: 2048 },
        target,
      });
      agents.push(
        spawnWorker(['agent', seed.name], {
          VMHUB_AGENT_TASK_QUEUE: taskQueue,
          VMHUB_DATASTORE: path.join(repositoryRoot(), '..', `sddc-ro-${run}`, seed.name),
          ...agentVcenterEnv(target.vcenter, { username: `vmhub-agent-${run}`, password }),
        }),
      );
    }
    for (const name of SDDCS) {
      const { taskQueue } = (await world.deps.catalog.sddcs.get(name))!;
      await until(`agent ${name} polling`, async () => (await world.deps.temporal.recentPollers(taskQueue, 'activity')) > 0);
    }
    for (const version of ['1.0.0', '2.0.0', '3.0.0']) await publish(version);
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await world.close();
  });

  it('three waves, the second approved through an Update: every SDDC passes its gate and keeps its channel item ID', async () => {
    const first = await vmhub(
      'channel',
      'set',
      IMAGE,
      'stable',
      '1.0.0',
      '--wave',
      SDDCS.join(','),
      '--no-instantiate',
      '--by',
      'ci',
    );
    expect(first.code).toBe(0);
    const before = await channelItems();
    for (const name of SDDCS) expect(before[name].digests).toEqual(digestsOf('1.0.0'));

    const waves = SDDCS.flatMap((s) => ['--wave', s]);
    const rollout = vmhub('channel', 'set', IMAGE, 'stable', '2.0.0', ...waves, '--approve', '2', '--by', 'carol', '--json');
    await until(
      'wave 2 waiting for its approval',
      async () => (await progress().catch(() => undefined))?.waves[1]?.state === 'awaiting-approval',
    );
    const waiting = await progress();
    expect(waiting.waves.map((w) => w.state)).toEqual(['passed', 'awaiting-approval', 'pending']);
    const east1 = (await world.deps.catalog.deployments.of(IMAGE, '2.0.0')).map((d) => [d.sddc, d.gate?.passed]);
    expect(east1).toEqual([['east-1', true]]);

    const approved = await vmhub('rollout', 'approve', `${IMAGE}:stable`, '--by', 'alice');
    expect(approved.code).toBe(0);
    expect(approved.stdout).toContain('approved by alice');
    const done = await rollout;
    expect(done.code).toBe(0);
    const result = JSON.parse(done.stdout) as { progress: RolloutProgress };
    expect(result.progress.state).toBe('completed');
    expect(result.progress.actions).toEqual([expect.objectContaining({ action: 'approve', by: 'alice', wave: 2 })]);

    const after = await channelItems();
    for (const name of SDDCS) {
      expect(after[name].itemId).toBe(before[name].itemId);
      expect(after[name].digests).toEqual(digestsOf('2.0.0'));
    }
    for (const d of await world.deps.catalog.deployments.of(IMAGE, '2.0.0')) {
      expect(d.gate?.checks.map((c) => [c.check, c.passed])).toEqual(expect.arrayContaining([['power-on', true]]));
    }
    expect(await world.deps.catalog.channels.get(IMAGE, 'stable')).toMatchObject({ version: '2.0.0', previous: ['1.0.0'] });
    const history = await world.client.workflow.getHandle(ROLLOUT).fetchHistory();
    expect(history.events!.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes)).toHaveLength(1);
    for (const name of SDDCS) expect(await gateVms(name)).toEqual([]);
  });

  it('rollback puts every channel item back on the previous version from the copy it holds, fetching nothing', async () => {
    const ids = Object.fromEntries(Object.entries(await channelItems()).map(([s, i]) => [s, i.itemId]));
    const back = await vmhub('rollback', IMAGE, 'stable', '--by', 'dave');
    expect(back.code).toBe(0);
    const after = await channelItems();
    for (const name of SDDCS) {
      expect(after[name]).toEqual({ itemId: ids[name], digests: digestsOf('1.0.0') });
    }
    const items = await world.deps.catalog.channels.itemsOf(IMAGE, 'stable');
    expect(items.map((i) => [i.sddc, i.version, i.bytesFetched])).toEqual(SDDCS.map((s) => [s, '1.0.0', 0]));
    const shown = await vmhub('show', `${IMAGE}@1.0.0`);
    expect(shown.stdout).toMatch(/^channel +stable → 1\.0\.0 \(rolled back\)$/m);
    for (const name of SDDCS)
      expect(shown.stdout).toMatch(new RegExp(`stable on ${name}: item ${ids[name]}, .* nothing fetched`));
  });

  it('a gate that fails in wave 1 halts the rollout: later waves untouched, the channel unchanged, the CLI names the check and the SDDC', async () => {
    await world.deps.catalog.sddcs.update('east-1', { target: withoutPowerState('east-1') });
    const waves = SDDCS.flatMap((s) => ['--wave', s]);
    const halted = await vmhub('channel', 'set', IMAGE, 'stable', '3.0.0', ...waves, '--guest-timeout', '2s', '--by', 'erin');
    expect(halted.code).toBe(2);
    expect(halted.stdout).toMatch(
      /RolloutHalted: wave 1 \(east-1\) halted the rollout: .*east-1: gate guest failed on east-1: .*guestToolsNotRunning/,
    );
    expect((await world.deps.catalog.deployments.of(IMAGE, '3.0.0')).map((d) => [d.sddc, d.status])).toEqual([
      ['east-1', 'failed'],
    ]);
    expect(await world.deps.catalog.channels.get(IMAGE, 'stable')).toMatchObject({ version: '1.0.0' });
    expect((await channelItems())['east-1'].digests).toEqual(digestsOf('1.0.0'));
    expect(await gateVms('east-1')).toEqual([]);
  });

  it('deploy --retry of the halted wave re-runs only its failed SDDC, through the same gate, onto the channel item', async () => {
    // The version's item is there from the halted attempt: the retry runs the gate on it again, then moves the channel item.
    await world.deps.catalog.sddcs.update('east-1', { target: targets.get('east-1')! });
    const wave1 = (await progress()).waves[0].deployWorkflowId!;
    const retried = await vmhub('deploy', '--retry', wave1, '--json');
    expect(retried.code).toBe(0);
    const out = JSON.parse(retried.stdout) as {
      retried: Array<{ sddc: string }>;
      options: object;
      deploy: { workflowId: string };
    };
    expect(out.retried.map((r) => r.sddc)).toEqual(['east-1']);
    expect(out.options).toMatchObject({ channel: 'stable', gate: { instantiate: true } });
    const rows = await world.deps.catalog.deployments.of(IMAGE, '3.0.0');
    expect(rows.map((d) => [d.sddc, d.status, d.gate?.passed])).toEqual([['east-1', 'already-present', true]]);
    expect((await channelItems())['east-1'].digests).toEqual(digestsOf('3.0.0'));
    await world.deps.catalog.sddcs.update('east-1', { target: withoutPowerState('east-1') });
  });

  it('abort mid-wave cancels the gate and removes its VM; later waves never start', async () => {
    const waves = SDDCS.flatMap((s) => ['--wave', s]);
    const rollout = vmhub('channel', 'set', IMAGE, 'stable', '3.0.0', ...waves, '--guest-timeout', '10m', '--by', 'erin');
    await until('the gate VM of east-1 up', async () => (await gateVms('east-1').catch(() => [])).length > 0);
    const aborted = await vmhub('rollout', 'abort', `${IMAGE}:stable`, '--by', 'frank', '--reason', 'canary looks wrong');
    expect(aborted.code).toBe(0);
    const ended = await rollout;
    expect(ended.code).toBe(2);
    expect(ended.stdout).toContain('RolloutAborted: rollout aborted by frank: canary looks wrong');
    expect(ended.stdout).toMatch(/2\. east-2: not-started/);
    expect(await gateVms('east-1')).toEqual([]);
    expect((await world.deps.catalog.deployments.of(IMAGE, '3.0.0')).map((d) => d.sddc)).toEqual(['east-1']);
    expect(await world.deps.catalog.channels.get(IMAGE, 'stable')).toMatchObject({ version: '1.0.0' });
  });
});
