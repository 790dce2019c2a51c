import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHealthGateActivities, type GateInput } from '../src/activities/health-gate';
import type { GateVerdict } from '../src/shared/health-gate';
import type { DeployInput, DeployResult, DeployResultRow } from '../src/shared/deploy-input';
import type { PublishResult } from '../src/shared/publish-input';
import { VcenterConnection } from '../src/sddc/library-import';
import { itemDescription, withNetworkMap } from '../src/shared/target-kinds/content-library';
import type { ContentLibraryTarget } from '../src/shared/target-kinds/kind';
import { loadTopology } from '../src/topology/topology';
import { agentVcenterEnv, itemDigests, testVcenter } from './harness/vcenter';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { EDGE_DESCRIPTOR, edgeOva, isoImage, ovaFromDescriptor } from './images/build';
import { repositoryRoot, startWorld, workflowFailure, type TestWorld } from './helpers';

const MiB = 2 ** 20;

const DEFAULT_SDDCS = ['east-1', 'east-2', 'west-1'];
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A TCP relay to a vcsim (TLS passes through untouched) that counts the bytes sent to it and can slow them. */
async function relay(
  targetPort: number,
): Promise<{ port: number; sent: number; bytesPerSecond: number; close(): Promise<void> }> {
  const state = { sent: 0, bytesPerSecond: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => [client, upstream].forEach((x) => x.destroy()));
      s.on('close', () => [client, upstream].forEach((x) => x.destroy()));
    }
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      state.sent += chunk.length;
      upstream.write(chunk);
      if (state.bytesPerSecond > 0) {
        client.pause();
        setTimeout(() => client.resume(), (chunk.length / state.bytesPerSecond) * 1000);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(state, {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => r());
      }),
  });
}

/**
 * DeployToSDDCs into the content libraries of the embedded vcsims, one per default SDDC, each SDDC's
 * agent a real worker process that logs in with a password from its own environment.
 */
describe('content library targets', () => {
  let world: TestWorld;
  const agents = new Map<string, WorkerProcess>();
  const queues = new Map<string, string>();
  const targets = new Map<string, ContentLibraryTarget>();
  const run = randomUUID().slice(0, 6);
  const datastores = path.join(repositoryRoot(), '..', `sddc-cl-${run}`);
  const password = `pw-${randomUUID()}`;
  const username = `vmhub-agent-${run}`;

  /** An SDDC's agent, holding its own vCenter (the one its target names at registration) and login. */
  function startAgent(name: string): WorkerProcess {
    const agent = spawnWorker(['agent', name], {
      VMHUB_AGENT_TASK_QUEUE: queues.get(name)!,
      VMHUB_DATASTORE: path.join(datastores, name),
      ...agentVcenterEnv(targets.get(name)!.vcenter, { username, password }),
    });
    agents.set(name, agent);
    return agent;
  }

  /** A deploy skips an SDDC whose agent has not polled yet: wait for a new one to poll. */
  async function polling(name: string): Promise<void> {
    await until(
      `agent ${name} polling`,
      async () => (await world.deps.temporal.recentPollers(queues.get(name)!, 'activity')) > 0,
    );
  }

  async function register(name: string, dataCenter: string, target: ContentLibraryTarget): Promise<void> {
    queues.set(name, `sddc-${name}-${randomUUID().slice(0, 8)}`);
    targets.set(name, target);
    await world.deps.catalog.sddcs.add({
      name,
      dataCenter,
      taskQueue: queues.get(name)!,
      capacity: { cpus: 64, memoryMiB: 262144, diskGiB: 2048 },
      target,
    });
  }

  /** The vCenter of an SDDC, logged in as its agent would. */
  async function vcenter<T>(name: string, fn: (conn: VcenterConnection) => Promise<T>): Promise<T> {
    const conn = await VcenterConnection.open(
      targets.get(name)!,
      testVcenter(targets.get(name)!.vcenter, { username: 'vmhub-test', password }),
    );
    try {
      return await fn(conn);
    } finally {
      await conn.close();
    }
  }

  /** An item's files as the vCenter serves them back through a download session: name → SHA-256. */
  const readBack = (name: string, itemId: string) => vcenter(name, (conn) => itemDigests(conn.library, itemId));

  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: 4 * MiB });
    // The default topology's SDDCs and vCenters, each library new to this run.
    for (const seed of loadTopology(world.config.topologyPath).sddcs.filter((s) => DEFAULT_SDDCS.includes(s.name))) {
      expect(seed.target.kind).toBe('content-library');
      await register(seed.name, seed.dataCenter, { ...(seed.target as ContentLibraryTarget), library: `vmhub-${run}` });
    }
    expect([...targets.keys()].sort()).toEqual(DEFAULT_SDDCS);
    for (const name of DEFAULT_SDDCS) startAgent(name);
    for (const name of DEFAULT_SDDCS) await polling(name);
  });
  afterAll(async () => {
    for (const a of agents.values()) await a.stop();
    await world.close();
  });

  const writeOva = (version: string, diskBytes: number) => edgeOva(repositoryRoot(), version, diskBytes);

  const publish = (source: string, image: string, version: string, deployTo?: string[]) =>
    world.client.workflow.execute('PublishImage', {
      args: [{ source, image, version, deployTo }],
      taskQueue: world.config.taskQueue,
      workflowId: `publish:${image}:${version}:${randomUUID()}`,
    }) as Promise<PublishResult>;

  const deploy = (input: DeployInput) =>
    world.client.workflow.start('DeployToSDDCs', {
      args: [input],
      taskQueue: world.config.taskQueue,
      workflowId: `deploy:${input.image}:${input.version}:${randomUUID()}`,
    });

  const rows = (results: DeployResultRow[]) => Object.fromEntries(results.map((r) => [r.sddc, r]));

  it('publishing with a deploy leaves an OVF template in each vCenter whose files are the OVA’s members', async () => {
    const { file, members } = writeOva('1.0.0', 3 * MiB);
    const published = await publish(file, 'edge', '1.0.0', DEFAULT_SDDCS);
    const r = rows(published.deploy!.results);
    for (const name of DEFAULT_SDDCS) {
      expect(r[name]).toMatchObject({
        status: 'deployed',
        target: { kind: 'content-library', vcenter: targets.get(name)!.vcenter, library: `vmhub-${run}`, itemName: 'edge-1.0.0' },
      });
      expect(r[name].path).toBeUndefined();
      const item = await vcenter(name, (conn) => conn.library.getItem(r[name].target!.itemId));
      expect(item).toMatchObject({ type: 'ovf', description: itemDescription('edge', '1.0.0', published.sha256, false) });
      // Descriptor, manifest and disk, each byte for byte.
      expect(await readBack(name, r[name].target!.itemId)).toEqual(
        Object.fromEntries(members.map((m) => [m.name, sha(m.bytes)])),
      );
      // The verified copy stays, with its block index, only as the base of the next version's delta deploy.
      expect(fs.readdirSync(path.join(datastores, name, 'edge'))).toEqual(['1.0.0']);
      expect(fs.existsSync(path.join(datastores, name, 'edge', '1.0.0', 'edge-1.0.0.ova.blocks.json'))).toBe(true);
    }
    expect(r['west-1'].source).toBe('west-replica');
    const recorded = await world.deps.catalog.deployments.of('edge', '1.0.0');
    expect(recorded.map((d) => [d.sddc, d.status, d.target?.itemName])).toEqual(
      DEFAULT_SDDCS.map((n) => [n, 'deployed', 'edge-1.0.0']),
    );
  });

  it('a redeploy finds the items already there and downloads nothing', async () => {
    const result = (await (await deploy({ image: 'edge', version: '1.0.0', sddcs: DEFAULT_SDDCS })).result()) as DeployResult;
    for (const row of result.results) {
      expect(row).toMatchObject({ status: 'already-present', source: null, target: { itemName: 'edge-1.0.0' } });
    }
    for (const name of DEFAULT_SDDCS) expect(fs.readdirSync(path.join(datastores, name, 'edge'))).toEqual(['1.0.0']);
  });

  it('imports an ISO as an iso item', async () => {
    const file = 'tools-2.0.0.iso';
    isoImage(path.join(repositoryRoot(), file), { volumeId: 'TOOLS', extraBytes: 2 * MiB });
    const published = await publish(file, 'tools', '2.0.0', ['east-2']);
    const [row] = published.deploy!.results;
    expect(row).toMatchObject({ status: 'deployed', target: { itemName: 'tools-2.0.0' } });
    const item = await vcenter('east-2', (conn) => conn.library.getItem(row.target!.itemId));
    expect(item).toMatchObject({ type: 'iso', description: itemDescription('tools', '2.0.0', published.sha256, false) });
    expect(await readBack('east-2', row.target!.itemId)).toEqual({ 'tools-2.0.0.iso': published.sha256 });
  });

  it.each([
    ['a byte of its disk', '1.4.0', (ova: Buffer) => Math.floor(ova.length / 2)],
    // The follower cannot split the archive there, and fails once the fill has ended: the bytes' SHA-256 still
    // decides, not the follower's failure.
    ["a byte of its disk's tar header", '1.4.1', (ova: Buffer) => ova.lastIndexOf(Buffer.from('edge-disk1.vmdk'))],
  ])(
    'a streamed deploy whose source bytes do not verify (%s) fails its update sessions and leaves no item; good bytes land the item',
    async (_what, version, at) => {
      const { file, members } = writeOva(version, 2 * MiB);
      const published = await publish(file, 'edge', version);
      const good = fs.readFileSync(path.join(repositoryRoot(), file));
      // One byte changed in every copy once replicated, the catalog's SHA-256 kept: only the bytes tell.
      await until('the replica verified', async () =>
        ((await world.deps.catalog.versions.get('edge', version))?.replicas ?? []).some((r) => r.status === 'verified'),
      );
      const bad = Buffer.from(good);
      expect(at(good)).toBeGreaterThan(0);
      bad[at(good)] ^= 0xff;
      const [primary, replica] = ['east-primary', 'west-replica'].map((l) => world.deps.storage.store(l));
      for (const store of [primary, replica])
        await store.upload(published.location.blob, bad, { metadata: { sha256: published.sha256 } });
      const sessionIds = () =>
        vcenter('east-1', (conn) => conn.library.rest.get<string[]>('/rest/com/vmware/content/library/item/update-session'));
      const before = new Set(await sessionIds());

      const failure = await workflowFailure((await deploy({ image: 'edge', version, sddcs: ['east-1'] })).result());
      const [row] = (failure.details![0] as DeployResult).results;
      expect(row).toMatchObject({ sddc: 'east-1', status: 'failed', source: null });
      expect(row.reason).toMatch(
        new RegExp(
          `^NoSource: no source could deliver edge@${version}: east-primary yielded bytes with SHA-256 [0-9a-f]{64}, expected `,
        ),
      );
      await vcenter('east-1', async (conn) => {
        const library = await conn.library.findLibrary(`vmhub-${run}`);
        expect(await conn.library.findItem(library!.id, `edge-${version}`)).toBeUndefined();
        // Each source's session that took its bytes was failed: none completed, none left open. Other test files
        // use this vCenter meanwhile: their sessions are of items still held in their own libraries.
        const fresh = (await sessionIds()).filter((id) => !before.has(id));
        const sessions = await Promise.all(fresh.map((id) => conn.library.updateSession(id)));
        const ours = await Promise.all(
          sessions.map(async (x) => {
            const item = x && (await conn.library.getItem(x.library_item_id));
            return !item || item.library_id === library!.id;
          }),
        );
        const states = sessions.filter((_, i) => ours[i]).map((x) => x?.state);
        expect(states.length).toBeGreaterThan(0);
        expect(new Set(states)).toEqual(new Set(['ERROR']));
      });
      expect(fs.existsSync(path.join(datastores, 'east-1', 'edge', version, `edge-${version}.ova`))).toBe(false);

      await primary.upload(published.location.blob, good, { metadata: { sha256: published.sha256 } });
      const result = (await (await deploy({ image: 'edge', version, sddcs: ['east-1'] })).result()) as DeployResult;
      const [landed] = result.results;
      expect(landed).toMatchObject({ status: 'deployed', source: 'east-primary', target: { itemName: `edge-${version}` } });
      expect(await readBack('east-1', landed.target!.itemId)).toEqual(
        Object.fromEntries(members.map((m) => [m.name, sha(m.bytes)])),
      );
      const sessions = await vcenter('east-1', (conn) => conn.library.updateSessionsOf(landed.target!.itemId));
      expect(sessions.map((x) => x.state)).toEqual(['DONE']);
    },
  );

  it('never overwrites an item holding other bytes under the name: VersionConflict there, deployed elsewhere', async () => {
    const { file } = writeOva('1.1.0', MiB);
    await publish(file, 'edge', '1.1.0');
    const other = await vcenter('east-1', async (conn) => {
      const library = await conn.library.findLibrary(`vmhub-${run}`);
      const id = await conn.library.createItem(
        library!.id,
        'edge-1.1.0',
        'ovf',
        itemDescription('edge', '1.1.0', 'f'.repeat(64), false),
      );
      return id;
    });
    const failure = await workflowFailure(
      (await deploy({ image: 'edge', version: '1.1.0', sddcs: ['east-1', 'east-2'] })).result(),
    );
    expect(failure.type).toBe('DeployIncomplete');
    const r = rows((failure.details![0] as DeployResult).results);
    expect(r['east-1']).toMatchObject({ status: 'failed' });
    expect(r['east-1'].reason).toMatch(/^VersionConflict: .*edge-1\.1\.0 with SHA-256 f{64}.*not overwritten/);
    expect(r['east-2']).toMatchObject({ status: 'deployed', target: { itemName: 'edge-1.1.0' } });
    const untouched = await vcenter('east-1', (conn) => conn.library.getItem(other));
    expect(untouched?.description).toBe(itemDescription('edge', '1.1.0', 'f'.repeat(64), false));
    expect(await vcenter('east-1', (conn) => conn.library.itemFiles(other))).toEqual([]);
  });

  it('instantiate makes a VM with the descriptor’s CPUs and memory from the item, and removes it', async () => {
    const result = (await (
      await deploy({ image: 'edge', version: '1.0.0', sddcs: ['west-1'], instantiate: true })
    ).result()) as DeployResult;
    const [row] = result.results;
    expect(row).toMatchObject({ status: 'already-present', instantiated: { cpus: 2, memoryMiB: 2048, removed: true } });
    expect(row.instantiated!.vm).toMatch(/^vm-\d+$/);
    const left = await vcenter('west-1', async (conn) => (await conn.vim()).objectsOfType('VirtualMachine', ['name']));
    expect(left.filter((vm) => vm.props.name.startsWith('vmhub-check-'))).toEqual([]);
    const [recorded] = (await world.deps.catalog.deployments.of('edge', '1.0.0')).filter((d) => d.sddc === 'west-1');
    expect(recorded.instantiated).toMatchObject({ vm: row.instantiated!.vm, cpus: 2, memoryMiB: 2048 });
  });

  it('preflight skips a version whose network the vCenter lacks, before any download, and deploys and instantiates it once the network is mapped', async () => {
    // A NIC on network "prod", which vcsim does not have (it has VM Network and DC0_DVPG0).
    const descriptor = EDGE_DESCRIPTOR.replace('VERSION', '3.0.0')
      .replace(
        '<DiskSection>',
        '<NetworkSection><Info/><Network ovf:name="prod"><Description/></Network></NetworkSection><DiskSection>',
      )
      .replace(
        '</VirtualHardwareSection>',
        '<Item><rasd:Connection>prod</rasd:Connection><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item></VirtualHardwareSection>',
      );
    const file = 'edge-3.0.0.ova';
    ovaFromDescriptor(path.join(repositoryRoot(), file), descriptor, { fileSize: MiB, descriptorName: 'edge.ovf' });
    await publish(file, 'edge', '3.0.0');
    const refused = (await (await deploy({ image: 'edge', version: '3.0.0', sddcs: ['east-2'] })).result()) as DeployResult;
    const [row] = refused.results;
    expect(row).toMatchObject({ sddc: 'east-2', status: 'skipped', source: null });
    expect(row.reason).toMatch(
      /^preflight: network "prod" of edge@3\.0\.0 does not exist in east-2 \(networks: .*VM Network.*\); map it with vmhub sddc update east-2 --network-map prod=<network>$/,
    );
    expect(row.bytesFetched).toBeUndefined();
    expect(fs.existsSync(path.join(datastores, 'east-2', 'edge', '3.0.0'))).toBe(false);

    const target = targets.get('east-2')!;
    await world.deps.catalog.sddcs.update('east-2', { target: withNetworkMap(target, ['prod=VM Network']) });
    try {
      // The instantiate check deploys its VM with the mapped network (the deploy spec's network_mappings).
      const mapped = (await (
        await deploy({ image: 'edge', version: '3.0.0', sddcs: ['east-2'], instantiate: true })
      ).result()) as DeployResult;
      expect(mapped.results[0]).toMatchObject({
        status: 'deployed',
        target: { itemName: 'edge-3.0.0' },
        instantiated: { cpus: 2, memoryMiB: 2048, removed: true },
      });
      expect(mapped.results[0].bytesFetched).toBeGreaterThan(0);
    } finally {
      await world.deps.catalog.sddcs.update('east-2', { target });
    }
  });

  it('a health gate passes on power state, fails at the guest when required and at the hardware when it differs, a cancel removes its VM; no VM is left', async () => {
    const west = targets.get('west-1')!;
    const [deployed] = (await world.deps.catalog.deployments.of('edge', '1.0.0')).filter((d) => d.sddc === 'west-1');
    const record = (await world.deps.catalog.versions.get('edge', '1.0.0'))!;
    const powerState = { ...west, guestCheck: 'power-state' as const };
    const base: GateInput = {
      sddc: 'west-1',
      image: 'edge',
      version: '1.0.0',
      format: record.format,
      sha256: record.sha256!,
      sizeBytes: record.sizeBytes,
      target: powerState,
      placement: deployed.target!,
      expected: { cpus: 2, memoryMiB: 2048 },
      guestTimeoutSeconds: 1,
    };
    // The agent's activities in this process, with the agent's own vCenter configuration.
    const gate = createHealthGateActivities({ sddc: 'west-1', env: agentVcenterEnv(west.vcenter, { username, password }) });
    const activity = () => new MockActivityEnvironment({ activityId: randomUUID().slice(0, 8) });
    const startGate = (input: GateInput) => activity().run(gate.startGate, input) as Promise<GateVerdict>;
    const removeGateVm = (vm: string) => activity().run(gate.removeGateVm, { ...base, vm }) as Promise<{ removed: boolean }>;
    const gateVms = () =>
      vcenter('west-1', async (conn) =>
        (await (await conn.vim()).objectsOfType('VirtualMachine', ['name', 'runtime.powerState'])).filter((vm) =>
          vm.props.name.startsWith('vmhub-gate-edge-1.0.0-'),
        ),
      );

    const passed = await startGate(base);
    expect(passed).toMatchObject({
      passed: true,
      vm: expect.stringMatching(/^vm-\d+$/),
      vmName: expect.stringMatching(/^vmhub-gate-edge-1\.0\.0-[0-9a-z-]{1,8}-[0-9a-f]{8}$/),
    });
    expect(passed.checks.map((c) => [c.check, c.passed])).toEqual([
      ['instantiate', true],
      ['hardware', true],
      ['power-on', true],
    ]);
    expect((await gateVms()).map((vm) => [vm.obj.id, vm.props['runtime.powerState']])).toEqual([[passed.vm, 'poweredOn']]);
    expect(await removeGateVm(passed.vm!)).toEqual({ removed: true });
    expect(await gateVms()).toEqual([]);
    expect(await removeGateVm(passed.vm!)).toEqual({ removed: false });

    const required = await startGate({ ...base, target: west });
    expect(required.passed).toBe(false);
    expect(required).not.toHaveProperty('vm');
    expect(required.checks.map((c) => [c.check, c.passed])).toEqual([
      ['instantiate', true],
      ['hardware', true],
      ['power-on', true],
      ['guest', false],
    ]);
    expect(required.checks[3].detail).toMatch(
      /guest\.toolsRunningStatus is guestToolsNotRunning after \d+ s; want guestToolsRunning/,
    );
    expect(await gateVms()).toEqual([]);

    const wrong = await startGate({ ...base, expected: { cpus: 1, memoryMiB: 2048 } });
    expect(wrong.passed).toBe(false);
    expect(wrong).not.toHaveProperty('vm');
    expect(wrong.checks.map((c) => [c.check, c.passed])).toEqual([
      ['instantiate', true],
      ['hardware', false],
    ]);
    expect(wrong.checks[1].detail).toBe('the VM has 2 CPUs and 2048 MiB; the catalog says 1 CPU and 2048 MiB');
    expect(await gateVms()).toEqual([]);

    // A cancel while the guest is awaited removes the running VM.
    const cancelled = activity();
    const poweredOn = new Promise<void>((resolve) =>
      cancelled.on('heartbeat', (d: { phase?: string }) => d.phase === 'power-on passed' && resolve()),
    );
    const waiting = cancelled.run(gate.startGate, { ...base, target: west, guestTimeoutSeconds: 600 }) as Promise<GateVerdict>;
    await poweredOn;
    expect((await gateVms()).map((vm) => vm.props['runtime.powerState'])).toEqual(['poweredOn']);
    cancelled.cancel();
    expect(await waiting.catch((e: unknown) => e)).toBeInstanceOf(CancelledFailure);
    expect(await gateVms()).toEqual([]);
  });

  it('a vCenter that is down fails its own SDDC only', async () => {
    const closed = await relay(1);
    await closed.close();
    await register('east-down', 'dc-east', { ...targets.get('east-1')!, vcenter: `https://127.0.0.1:${closed.port}/` });
    startAgent('east-down');
    await polling('east-down');
    const failure = await workflowFailure(
      (await deploy({ image: 'edge', version: '1.0.0', sddcs: ['east-down', 'east-2'] })).result(),
    );
    expect(failure.type).toBe('DeployIncomplete');
    const r = rows((failure.details![0] as DeployResult).results);
    expect(r['east-down'].status).toBe('failed');
    expect(r['east-down'].reason).toMatch(/unreachable: ECONNREFUSED/);
    expect(r['east-2']).toMatchObject({ status: 'already-present' });
  }, 150_000);

  it('an agent killed mid-import finishes it on restart, in the same update session', async () => {
    const { file, members } = writeOva('2.0.0', 24 * MiB);
    await publish(file, 'edge', '2.0.0');
    // east-slow is east-2's vCenter seen through a relay that can slow the upload down.
    const slow = await relay(Number(new URL(targets.get('east-2')!.vcenter).port));
    await register('east-slow', 'dc-east', {
      ...targets.get('east-2')!,
      vcenter: `https://127.0.0.1:${slow.port}/`,
      library: `slow-${run}`,
    });
    let agent = startAgent('east-slow');
    await polling('east-slow');
    try {
      slow.bytesPerSecond = 2 * MiB;
      const handle = await deploy({ image: 'edge', version: '2.0.0', sddcs: ['east-slow'] });
      await until('some of the disk sent to the vCenter', () => slow.sent > 6 * MiB, 120_000);
      await agent.kill();
      const sentBeforeKill = slow.sent;
      slow.bytesPerSecond = 0;
      agent = startAgent('east-slow');
      const result = (await handle.result()) as DeployResult;
      const [row] = result.results;
      expect(row).toMatchObject({ status: 'deployed', target: { itemName: 'edge-2.0.0' } });
      expect(await readBack('east-slow', row.target!.itemId)).toEqual(
        Object.fromEntries(members.map((m) => [m.name, sha(m.bytes)])),
      );
      const sessions = await vcenter('east-slow', (conn) => conn.library.updateSessionsOf(row.target!.itemId));
      expect(sessions.map((s) => s.state)).toEqual(['DONE']);
      process.stderr.write(`content library crash-resume: ${JSON.stringify({ sentBeforeKill, sentInAll: slow.sent })}\n`);
    } finally {
      await agent.stop();
      await slow.close();
    }
  }, 240_000);

  it('a cancel during the import gives it up: no update session left open, no half item', async () => {
    await publish(writeOva('2.1.0', 24 * MiB).file, 'edge', '2.1.0');
    const slow = await relay(Number(new URL(targets.get('east-1')!.vcenter).port));
    await register('east-cancel', 'dc-east', { ...targets.get('east-1')!, vcenter: `https://127.0.0.1:${slow.port}/` });
    startAgent('east-cancel');
    await polling('east-cancel');
    try {
      slow.bytesPerSecond = MiB;
      const handle = await deploy({ image: 'edge', version: '2.1.0', sddcs: ['east-cancel'] });
      await until('some of the disk sent to the vCenter', () => slow.sent > 4 * MiB, 120_000);
      await handle.cancel();
      const err = await handle.result().catch((e: unknown) => e);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      const [recorded] = await world.deps.catalog.deployments.of('edge', '2.1.0');
      expect(recorded).toMatchObject({ sddc: 'east-cancel', status: 'failed', error: expect.stringMatching(/^cancelled/) });
      await vcenter('east-1', async (conn) => {
        const library = await conn.library.findLibrary(`vmhub-${run}`);
        expect(await conn.library.findItem(library!.id, 'edge-2.1.0')).toBeUndefined();
        // Every other import into this vCenter has finished: no session may still be open.
        const ids = await conn.library.rest.get<string[]>('/rest/com/vmware/content/library/item/update-session');
        const states = await Promise.all(ids.map(async (id) => (await conn.library.updateSession(id))?.state));
        expect(states).toContain('CANCELED');
        expect(states).not.toContain('ACTIVE');
      });
    } finally {
      await agents.get('east-cancel')!.stop();
      await slow.close();
    }
  }, 180_000);

  it('a catalog edit pointing an SDDC at another vCenter is refused before any connection: nothing imported, no login sent', async () => {
    // The attacker's listener: it must see no connection at all.
    const connections: net.Socket[] = [];
    const listener = net.createServer((socket) => connections.push(socket.destroy()));
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const honest = targets.get('west-1')!;
    const forged = {
      ...honest,
      vcenter: `https://127.0.0.1:${(listener.address() as net.AddressInfo).port}/`,
      insecureTls: true,
      usernameEnv: 'VMHUB_VC_EAST_1_USERNAME',
      passwordEnv: 'VMHUB_VC_EAST_1_PASSWORD',
    };
    // Written to the catalog directly, as anyone with write access to it could.
    await world.deps.catalog.sddcs.update('west-1', { target: forged as ContentLibraryTarget });
    try {
      // tools@2.0.0 went to east-2 only: west-1 would have to download and import it.
      const handle = await deploy({ image: 'tools', version: '2.0.0', sddcs: ['west-1'] });
      const failure = await workflowFailure(handle.result());
      expect(failure.type).toBe('DeployIncomplete');
      const [row] = (failure.details![0] as DeployResult).results;
      expect(row).toMatchObject({ sddc: 'west-1', status: 'failed' });
      expect(row.reason).toMatch(
        /^VcenterMismatch: SDDC west-1: the catalog's target names the vCenter https:\/\/127\.0\.0\.1:\d+\//,
      );
      expect(row.reason).toContain(`but this agent serves ${honest.vcenter}; nothing was sent to either`);
      expect(connections).toEqual([]);
      expect(fs.existsSync(path.join(datastores, 'west-1', 'tools'))).toBe(false);
      const item = await vcenter('west-1', async (conn) => {
        const library = await conn.library.findLibrary(`vmhub-${run}`);
        return conn.library.findItem(library!.id, 'tools-2.0.0');
      });
      expect(item).toBeUndefined();
      const [recorded] = (await world.deps.catalog.deployments.of('tools', '2.0.0')).filter((d) => d.sddc === 'west-1');
      expect(recorded).toMatchObject({ status: 'failed', error: expect.stringMatching(/^VcenterMismatch/) });
      const history = await handle.fetchHistory();
      const text = JSON.stringify(history, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v));
      expect(text).toContain('VcenterMismatch');
      for (const secret of [username, password]) {
        expect(text).not.toContain(secret);
        expect(JSON.stringify(row)).not.toContain(secret);
        expect(JSON.stringify(recorded)).not.toContain(secret);
      }
    } finally {
      await world.deps.catalog.sddcs.update('west-1', { target: honest });
      await new Promise<void>((r) => listener.close(() => r()));
    }
  });

  it('keeps the vCenter login out of every history and agent log', async () => {
    const workflows = world.client.workflow.list({ query: `VmImage="edge" OR VmImage="tools"` });
    let seen = 0;
    for await (const w of workflows) {
      const history = await world.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
      // Payloads are bytes: searched as text.
      const text = JSON.stringify(history, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v));
      expect(text).not.toContain(password);
      expect(text).not.toContain(username);
      seen++;
    }
    expect(seen).toBeGreaterThan(5);
    for (const agent of agents.values()) {
      const log = fs.readFileSync(agent.logFile, 'utf8');
      expect(log).not.toContain(password);
      expect(log).not.toContain(username);
    }
  });
});
