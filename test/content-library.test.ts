import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { DeployInput, DeployResult, DeployResultRow } from '../src/shared/deploy-input';
import type { PublishResult } from '../src/shared/publish-input';
import { VcenterConnection } from '../src/sddc/library-import';
import { itemDescription } from '../src/shared/target-kinds/content-library';
import type { ContentLibraryTarget } from '../src/shared/target-kinds/kind';
import { loadTopology } from '../src/topology/topology';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { isoImage, ovaFromDescriptor, type Member } from './images/build';
import { repositoryRoot, startWorld, workflowFailure, type TestWorld } from './helpers';

const MiB = 2 ** 20;

/** A descriptor vcsim can deploy a VM from: 4 CPUs, 8 GiB, one disk on a SCSI controller. */
const DESCRIPTOR = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:href="edge-disk1.vmdk" ovf:id="f1"/></References>
  <DiskSection><Info/><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="20" ovf:capacityAllocationUnits="byte * 2^30"/></DiskSection>
  <VirtualSystem ovf:id="edge"><Info/><Name>edge</Name>
    <ProductSection><Info/><Product>Edge</Product><Version>VERSION</Version></ProductSection>
    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest"><Info/></OperatingSystemSection>
    <VirtualHardwareSection><Info/>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType></System>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>8192</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>3</rasd:InstanceID><rasd:Parent>4</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>`;

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
  const loginEnv = (name: string) => `VMHUB_VC_${name.toUpperCase().replace(/-/g, '_')}`;

  function startAgent(name: string): WorkerProcess {
    const agent = spawnWorker(['agent', name], {
      VMHUB_AGENT_TASK_QUEUE: queues.get(name)!,
      VMHUB_DATASTORE: path.join(datastores, name),
      [`${loginEnv(name)}_USERNAME`]: 'vmhub-agent',
      [`${loginEnv(name)}_PASSWORD`]: password,
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
    const conn = await VcenterConnection.open(targets.get(name)!, { username: 'vmhub-test', password });
    try {
      return await fn(conn);
    } finally {
      await conn.close();
    }
  }

  /** An item's files as the vCenter serves them back through a download session: name → SHA-256. */
  async function readBack(name: string, itemId: string): Promise<Record<string, string>> {
    return vcenter(name, async (conn) => {
      const { session, endpoints } = await conn.library.downloadEndpoints(itemId);
      const digests: Record<string, string> = {};
      for (const [file, endpoint] of endpoints) {
        const hash = createHash('sha256');
        for await (const chunk of await conn.library.rest.download(endpoint, file)) hash.update(chunk as Buffer);
        digests[file] = hash.digest('hex');
      }
      await conn.library.endDownload(session);
      return digests;
    });
  }

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

  function writeOva(version: string, diskBytes: number): { file: string; members: Member[] } {
    const file = `edge-${version}.ova`;
    const { members } = ovaFromDescriptor(path.join(repositoryRoot(), file), DESCRIPTOR.replace('VERSION', version), {
      fileSize: diskBytes,
      manifest: 'sha256',
      descriptorName: 'edge.ovf',
    });
    return { file, members };
  }

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
    expect(row).toMatchObject({ status: 'already-present', instantiated: { cpus: 4, memoryMiB: 8192, removed: true } });
    expect(row.instantiated!.vm).toMatch(/^vm-\d+$/);
    const left = await vcenter('west-1', async (conn) => (await conn.vim()).objectsOfType('VirtualMachine', ['name']));
    expect(left.filter((vm) => vm.props.name.startsWith('vmhub-check-'))).toEqual([]);
    const [recorded] = (await world.deps.catalog.deployments.of('edge', '1.0.0')).filter((d) => d.sddc === 'west-1');
    expect(recorded.instantiated).toMatchObject({ vm: row.instantiated!.vm, cpus: 4, memoryMiB: 8192 });
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

  it('keeps the vCenter password out of every history and agent log', async () => {
    const workflows = world.client.workflow.list({ query: `VmImage="edge" OR VmImage="tools"` });
    let seen = 0;
    for await (const w of workflows) {
      const history = await world.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
      // Payloads are bytes: searched as text.
      const text = JSON.stringify(history, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v));
      expect(text).not.toContain(password);
      seen++;
    }
    expect(seen).toBeGreaterThan(5);
    for (const agent of agents.values()) expect(fs.readFileSync(agent.logFile, 'utf8')).not.toContain(password);
  });
});
