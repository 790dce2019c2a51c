import { createPublicKey, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { DeployInput, DeployResult } from '../src/shared/deploy-input';
import type { PublishResult } from '../src/shared/publish-input';
import { startCountingProxy, type CountingProxy } from './harness/counting-proxy';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { filler, ovaFromDescriptor } from './images/build';
import { readBlob, repositoryRoot, startWorld, type TestWorld, workflowFailure } from './helpers';
import { readProgress } from '../src/cli/run-progress';
import { keyIdOf, loadSigningKey } from '../src/provenance/keys';
import { envelopeBlobOf } from '../src/provenance/stored';
import { blockListDigest } from '../src/storage/block-ids';
import { verifyWithSecuresystemslib } from './harness/signing';

const MiB = 2 ** 20;

const DESCRIPTOR = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="edge-disk1.vmdk" ovf:id="f1"/></References>
  <DiskSection><Info/><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="20" ovf:capacityAllocationUnits="byte * 2^30"/></DiskSection>
  <VirtualSystem ovf:id="edge"><Info/><Name>edge</Name>
    <ProductSection><Info/><Product>Edge</Product><Version>VERSION</Version></ProductSection>
    <VirtualHardwareSection><Info/>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>8192</rasd:VirtualQuantity></Item>
      <Item><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>`;

/**
 * DeployToSDDCs on the real services, with each SDDC agent a real worker process on its own task queue:
 * east-1 and east-2 in dc-east (primary storage), west-1 in dc-west (replica storage).
 */
describe('replication and DeployToSDDCs', () => {
  let world: TestWorld;
  const agents = new Map<string, WorkerProcess>();
  const queues = new Map<string, string>();
  const datastores = path.join(repositoryRoot(), '..', `sddc-${randomUUID().slice(0, 6)}`);

  function startAgent(name: string, env: NodeJS.ProcessEnv = {}): WorkerProcess {
    const agent = spawnWorker(['agent', name], {
      VMHUB_AGENT_TASK_QUEUE: queues.get(name)!,
      VMHUB_DATASTORE: path.join(datastores, name),
      VMHUB_TRANSFER_CONCURRENCY: '2',
      ...env,
    });
    agents.set(name, agent);
    return agent;
  }

  async function register(
    name: string,
    dataCenter: string,
    capacity = { cpus: 64, memoryMiB: 262144, diskGiB: 2048 },
  ): Promise<void> {
    queues.set(name, `sddc-${name}-${randomUUID().slice(0, 8)}`);
    await world.deps.catalog.sddcs.add({
      name,
      dataCenter,
      taskQueue: queues.get(name)!,
      capacity,
    });
  }

  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: 4 * MiB });
    await register('east-1', 'dc-east');
    await register('east-2', 'dc-east');
    await register('west-1', 'dc-west');
    await register('tiny', 'dc-east', { cpus: 2, memoryMiB: 4096, diskGiB: 10 });
    await register('ghost', 'dc-west');
    for (const name of ['east-1', 'east-2', 'west-1']) startAgent(name);
    // A deploy skips an SDDC at once when no agent of it has polled yet.
    for (const name of ['east-1', 'east-2', 'west-1']) {
      await until(
        `${name}'s agent polling`,
        async () => (await world.deps.temporal.recentPollers(queues.get(name)!, 'activity')) > 0,
      );
    }
  });
  afterAll(async () => {
    for (const a of agents.values()) await a.stop();
    await world.close();
  });

  async function publish(version: string, diskBytes = 6 * MiB): Promise<PublishResult> {
    const file = `edge-${version}.ova`;
    ovaFromDescriptor(path.join(repositoryRoot(), file), DESCRIPTOR.replace('VERSION', version), {
      fileSize: diskBytes,
      manifest: 'sha256',
    });
    return (await world.client.workflow.execute('PublishImage', {
      args: [{ source: file, image: 'edge', version }],
      taskQueue: world.config.taskQueue,
      workflowId: `publish:edge:${version}:${randomUUID()}`,
    })) as PublishResult;
  }

  const deploy = (input: DeployInput) =>
    world.client.workflow.start('DeployToSDDCs', {
      args: [input],
      taskQueue: world.config.taskQueue,
      workflowId: `deploy:${input.image}:${input.version}:${randomUUID()}`,
    });

  const rows = (r: DeployResult) => Object.fromEntries(r.results.map((x) => [x.sddc, x]));
  const replicaStore = () => world.deps.storage.store('west-replica');
  const replicaStatus = async (p: PublishResult) =>
    (await world.deps.catalog.versions.get(p.image, p.version))?.replicas.find((r) => r.location === 'west-replica');

  it('replicates on publish, and each SDDC reads from the copy in its own data center', async () => {
    const published = await publish('1.0.0');
    const replica = await replicaStatus(published);
    expect(replica).toMatchObject({ status: 'verified', sha256: published.sha256 });
    expect(
      (await readBlob(replicaStore(), published.location.blob)).equals(
        await readBlob(world.deps.storage.store('east-primary'), published.location.blob),
      ),
    ).toBe(true);

    const handle = await deploy({ image: 'edge', version: '1.0.0', sddcs: ['east-1', 'east-2', 'west-1'] });
    const result = (await handle.result()) as DeployResult;
    const r = rows(result);
    expect(r['west-1']).toMatchObject({ status: 'deployed', source: 'west-replica', dataCenter: 'dc-west' });
    expect(r['east-1']).toMatchObject({ status: 'deployed', source: 'east-primary' });
    expect(r['east-2']).toMatchObject({ status: 'deployed', source: 'east-primary' });
    const original = fs.readFileSync(path.join(repositoryRoot(), 'edge-1.0.0.ova'));
    for (const name of ['east-1', 'east-2', 'west-1']) {
      expect(r[name].path).toBe(path.join(datastores, name, 'edge', '1.0.0', 'edge-1.0.0.ova'));
      expect(fs.readFileSync(r[name].path!).equals(original)).toBe(true);
      expect(fs.readdirSync(path.dirname(r[name].path!)).filter((f) => f.includes('partial'))).toEqual([]);
    }
    const recorded = await world.deps.catalog.deployments.of('edge', '1.0.0');
    expect(recorded.map((d) => [d.sddc, d.status, d.source])).toEqual([
      ['east-1', 'deployed', 'east-primary'],
      ['east-2', 'deployed', 'east-primary'],
      ['west-1', 'deployed', 'west-replica'],
    ]);
    // Its progress has a row per SDDC, which its batches (one per data center here) handed back.
    const reading = await readProgress(world.client, handle.workflowId);
    expect(reading.kind === 'deploy' && reading.sddcs.find((s) => s.sddc === 'west-1')).toMatchObject({
      phase: 'done',
      status: 'deployed',
      source: 'west-replica',
      bytesDone: published.sizeBytes,
    });
    const described = await handle.describe();
    expect(described.searchAttributes.VmSddc).toEqual(['east-1', 'east-2', 'west-1']);

    const again = (await (
      await deploy({ image: 'edge', version: 'latest', sddcs: ['east-1', 'west-1'] })
    ).result()) as DeployResult;
    expect(again.version).toBe('1.0.0');
    expect(again.results.map((x) => x.status)).toEqual(['already-present', 'already-present']);
  });

  it('signs what it publishes; the envelope travels to the replica, verifies with securesystemslib, and outweighs the catalog', async () => {
    const published = await publish('1.9.0', 1 * MiB);
    const record = await world.deps.catalog.versions.get('edge', '1.9.0');
    const envelope = JSON.parse((await readBlob(replicaStore(), envelopeBlobOf(published.location.blob))).toString('utf8'));
    const keyFile = process.env.VMHUB_SIGNING_KEY_FILE!;
    const pem = createPublicKey(fs.readFileSync(keyFile)).export({ type: 'spki', format: 'pem' }).toString();
    const keyid = keyIdOf(loadSigningKey(keyFile));
    expect(record?.provenance).toMatchObject({ keyid, envelopeBlob: envelopeBlobOf(published.location.blob) });
    const verdict = verifyWithSecuresystemslib({ pem, scheme: 'ed25519', keyid, envelope });
    expect(verdict.keyids).toEqual([keyid]);
    expect(verdict.statement.subject).toEqual([{ name: 'edge@1.9.0', digest: { sha256: published.sha256 } }]);
    const files = published.metadata.kind === 'ova' ? published.metadata.archive.files : [];
    expect(verdict.statement.predicate).toMatchObject({
      source: 'edge-1.9.0.ova',
      sizeBytes: published.sizeBytes,
      members: files.map((f) => ({ name: f.name, sha256: f.sha256, size: f.size })),
    });
    expect(files.length).toBeGreaterThan(2);
    // The blocks it committed, by the SHA-256 of their IDs: what lets a replica be proven by its blocks.
    const committed = await world.deps.storage.store('east-primary').committedBlocks(published.location.blob);
    expect(verdict.statement.predicate).toMatchObject({
      blocks: { size: record!.blockSize, listSha256: blockListDigest(committed.map((b) => b.name)) },
    });

    // The catalog says the version's SHA-256 is another file's: the agent goes by the signed statement.
    const other = await world.deps.catalog.versions.get('edge', '1.0.0');
    await world.deps.catalog.db
      .collection('image_versions')
      .updateOne({ image: 'edge', version: '1.9.0' }, { $set: { sha256: other!.sha256 } });
    const failure = await workflowFailure((await deploy({ image: 'edge', version: '1.9.0', sddcs: ['east-2'] })).result());
    const row = rows(failure.details![0] as DeployResult)['east-2'];
    expect(row.status).toBe('failed');
    expect(row.reason).toMatch(/^ProvenanceMismatch: the task names SHA-256 .* the signed statement says/);
    expect(fs.readdirSync(path.join(datastores, 'east-2', 'edge', '1.9.0'))).toEqual([]);
  });

  it('falls back to the primary when the replica blob is missing, and marks the replica', async () => {
    const published = await publish('1.1.0');
    expect(await replicaStore().deleteIfExists(published.location.blob)).toBe(true);
    const result = (await (await deploy({ image: 'edge', version: '1.1.0', sddcs: ['west-1'] })).result()) as DeployResult;
    expect(rows(result)['west-1']).toMatchObject({ status: 'deployed', source: 'east-primary' });
    expect(await replicaStatus(published)).toMatchObject({ status: 'failed', reason: 'blob is missing' });
  });

  it('detects replica bytes altered in place, falls back, and marks the replica', async () => {
    const published = await publish('1.2.0');
    const tampered = filler(published.sizeBytes, 99);
    await replicaStore().upload(published.location.blob, tampered, { metadata: { sha256: published.sha256 } });
    const result = (await (await deploy({ image: 'edge', version: '1.2.0', sddcs: ['west-1'] })).result()) as DeployResult;
    expect(rows(result)['west-1']).toMatchObject({ status: 'deployed', source: 'east-primary' });
    expect((await replicaStatus(published))?.status).toBe('stale');

    // Even with the catalog fooled into trusting the altered blob, its bytes fail the SHA-256 check.
    const etag = (await replicaStore().getProperties(published.location.blob)).etag;
    await world.deps.catalog.versions.setReplica('edge', '1.2.0', {
      location: 'west-replica',
      status: 'verified',
      etag,
      sha256: published.sha256,
    });
    fs.rmSync(path.join(datastores, 'west-1', 'edge', '1.2.0'), { recursive: true });
    const second = (await (await deploy({ image: 'edge', version: '1.2.0', sddcs: ['west-1'] })).result()) as DeployResult;
    expect(rows(second)['west-1']).toMatchObject({ status: 'deployed', source: 'east-primary' });
    expect(await replicaStatus(published)).toMatchObject({ status: 'failed' });
    expect((await replicaStatus(published))?.reason).toMatch(/SHA-256/);
  });

  it('falls back to the primary when the replica storage is down', async () => {
    const published = await publish('1.3.0');
    await agents.get('west-1')!.stop();
    // This agent sees dc-west's storage at an address where nothing answers.
    const down = await startCountingProxy(1);
    await down.close();
    startAgent('west-1', { AZURITE_DC_WEST_PORT: String(down.port) });
    try {
      const result = (await (await deploy({ image: 'edge', version: '1.3.0', sddcs: ['west-1'] })).result()) as DeployResult;
      expect(rows(result)['west-1']).toMatchObject({ status: 'deployed', source: 'east-primary' });
      // Unreachable is transient: the replica stays verified in the catalog.
      expect(await replicaStatus(published)).toMatchObject({ status: 'verified' });
    } finally {
      await agents.get('west-1')!.stop();
      startAgent('west-1');
    }
  });

  it('resumes a download on a new agent after the first is killed, fetching again at most what was in flight', async () => {
    const published = await publish('2.0.0', 60 * MiB);
    const proxy: CountingProxy = await startCountingProxy(Number(process.env.AZURITE_DC_EAST_PORT), 2000);
    await agents.get('east-2')!.stop();
    const slow = startAgent('east-2', { AZURITE_DC_EAST_PORT: String(proxy.port) });
    try {
      const handle = await deploy({ image: 'edge', version: '2.0.0', sddcs: ['east-2'] });
      const state = path.join(datastores, 'east-2', 'edge', '2.0.0', '.edge-2.0.0.ova.partial.json');
      const onDisk = () =>
        fs.existsSync(state) ? (JSON.parse(fs.readFileSync(state, 'utf8')) as { doneBelow: number }).doneBelow : 0;
      await until('a few chunks checkpointed on disk', () => onDisk() >= 2, 120_000);
      await slow.kill();
      const fetchedBeforeKill = proxy.getBytes;
      proxy.delayMs = 0;
      startAgent('east-2', { AZURITE_DC_EAST_PORT: String(proxy.port) });
      const result = (await handle.result()) as DeployResult;
      const row = rows(result)['east-2'];
      expect(row).toMatchObject({ status: 'deployed', source: 'east-primary', bytes: published.sizeBytes });
      expect(fs.readFileSync(row.path!).equals(fs.readFileSync(path.join(repositoryRoot(), 'edge-2.0.0.ova')))).toBe(true);
      const fetchedTwice = proxy.getBytes - published.sizeBytes;
      const inFlight = 2 * 8 * MiB;
      expect(fetchedBeforeKill).toBeLessThan(published.sizeBytes);
      expect(fetchedTwice).toBeLessThanOrEqual(inFlight + 1024 * 1024);
      fs.mkdirSync('test-output', { recursive: true });
      const report = {
        sizeBytes: published.sizeBytes,
        fetchedBeforeKill,
        totalFetched: proxy.getBytes,
        fetchedTwice,
        inFlightBound: inFlight,
      };
      fs.writeFileSync('test-output/deploy-resume.json', JSON.stringify(report, null, 2));
      process.stderr.write(`deploy crash-resume: ${JSON.stringify(report)}\n`);
    } finally {
      await agents.get('east-2')!.stop();
      await proxy.close();
      startAgent('east-2');
    }
  });

  it('stops a cancelled download on the agent, which removes its partial, state and lock files', async () => {
    await publish('2.1.0', 60 * MiB);
    const proxy = await startCountingProxy(Number(process.env.AZURITE_DC_EAST_PORT), 1000);
    await agents.get('east-1')!.stop();
    startAgent('east-1', { AZURITE_DC_EAST_PORT: String(proxy.port) });
    const dir = path.join(datastores, 'east-1', 'edge', '2.1.0');
    try {
      const handle = await deploy({ image: 'edge', version: '2.1.0', sddcs: ['east-1'] });
      await until('a chunk checkpointed on disk', () => fs.existsSync(path.join(dir, '.edge-2.1.0.ova.partial.json')), 120_000);
      expect(fs.existsSync(path.join(dir, '.edge-2.1.0.ova.lock'))).toBe(true);
      // The reads still to come hang, so the cancel finds the download running.
      proxy.delayMs = 30_000;
      await handle.cancel();
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect(fs.readdirSync(dir)).toEqual([]);
      const [row] = await world.deps.catalog.deployments.of('edge', '2.1.0');
      expect(row).toMatchObject({ sddc: 'east-1', status: 'failed', error: expect.stringMatching(/cancelled/) });
    } finally {
      await agents.get('east-1')!.stop();
      await proxy.close();
      startAgent('east-1');
    }
  });

  /** A deploy of `version` to east-1 whose agent reads through a slow proxy, stopped with a partial file on disk. */
  async function slowDeploy(version: string) {
    await publish(version, 60 * MiB);
    const proxy = await startCountingProxy(Number(process.env.AZURITE_DC_EAST_PORT), 1000);
    await agents.get('east-1')!.stop();
    const agent = startAgent('east-1', { AZURITE_DC_EAST_PORT: String(proxy.port) });
    const dir = path.join(datastores, 'east-1', 'edge', version);
    const handle = await deploy({ image: 'edge', version, sddcs: ['east-1'] });
    await until(
      'a chunk checkpointed on disk',
      () => fs.existsSync(path.join(dir, `.edge-${version}.ova.partial.json`)),
      120_000,
    );
    // The reads still to come hang, so the download is running when the deploy is stopped.
    proxy.delayMs = 30_000;
    const batch = world.client.workflow.getHandle(`${handle.workflowId}:1-dc-east`);
    const restore = async () => {
      await agents.get('east-1')!.stop();
      await proxy.close();
      startAgent('east-1');
    };
    return { handle, batch, agent, dir, restore };
  }

  it('a terminated deploy cancels its batch rather than killing it: the agent removes its partial download', async () => {
    const { handle, batch, dir, restore } = await slowDeploy('2.3.0');
    try {
      await handle.terminate('an operator stopped it');
      const err = await batch.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect(fs.readdirSync(dir)).toEqual([]);
      const [row] = await world.deps.catalog.deployments.of('edge', '2.3.0');
      expect(row).toMatchObject({ sddc: 'east-1', status: 'failed', error: expect.stringMatching(/^cancelled/) });
    } finally {
      await restore();
    }
  });

  it('a cancel with the agent killed ends Cancelled, and the agent back removes the partial download', async () => {
    const { handle, batch, agent, dir, restore } = await slowDeploy('2.4.0');
    try {
      await agent.kill();
      await handle.cancel();
      // No agent hears the cancel: the download ends by its heartbeat timeout, then the discard waits for one.
      await until(
        'the discard of the partial download scheduled',
        async () =>
          ((await batch.describe()).raw.pendingActivities ?? []).some((a) => a.activityType?.name === 'discardDownload'),
        120_000,
      );
      expect(fs.existsSync(path.join(dir, '.edge-2.4.0.ova.partial.json'))).toBe(true);
      startAgent('east-1');
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect(fs.readdirSync(dir)).toEqual([]);
      const events = (await batch.fetchHistory()).events ?? [];
      expect(events.some((e) => e.activityTaskTimedOutEventAttributes)).toBe(true);
      const [row] = await world.deps.catalog.deployments.of('edge', '2.4.0');
      expect(row).toMatchObject({ sddc: 'east-1', status: 'failed', error: expect.stringMatching(/^cancelled/) });
    } finally {
      await restore();
    }
  });

  it('writes only where its own configuration says, and refuses a link in its datastore that leads out', async () => {
    await publish('2.2.0');
    const outside = fs.mkdtempSync(path.join(datastores, '..', 'outside-'));
    fs.mkdirSync(path.join(datastores, 'west-1', 'edge'), { recursive: true });
    fs.symlinkSync(outside, path.join(datastores, 'west-1', 'edge', '2.2.0'));
    const failure = await workflowFailure(
      (await deploy({ image: 'edge', version: '2.2.0', sddcs: ['west-1', 'east-2'] })).result(),
    );
    expect(failure.type).toBe('DeployIncomplete');
    const r = rows(failure.details![0] as DeployResult);
    expect(r['west-1'].reason).toMatch(/^InvalidInput: .*2\.2\.0 is a link/);
    expect(r['east-2']).toMatchObject({
      status: 'deployed',
      path: path.join(datastores, 'east-2', 'edge', '2.2.0', 'edge-2.2.0.ova'),
    });
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it('skips an SDDC the version does not fit and one with no agent, says why, and completes for the others', async () => {
    await publish('3.0.0');
    const result = (await (
      await deploy({ image: 'edge', version: '3.0.0', sddcs: ['tiny', 'ghost', 'east-1'] })
    ).result()) as DeployResult;
    const r = rows(result);
    expect(r.tiny).toMatchObject({ status: 'skipped', source: null });
    expect(r.tiny.reason).toMatch(
      /4 CPUs needed, 2 available.*8192 MiB memory needed, 4096 MiB available.*20 GiB disk needed, 10 GiB available/,
    );
    expect(r.ghost).toMatchObject({ status: 'skipped', source: null });
    expect(r.ghost.reason).toMatch(/^no agent: nothing polled task queue sddc-ghost-.*`npm run agent -- ghost`/);
    expect(r['east-1'].status).toBe('deployed');
  });

  it.each([
    [{ image: 'edge', version: '1.0.0', sddcs: ['nowhere'] }, 'UnknownSddc'],
    [{ image: 'edge', version: '9.9.9', sddcs: ['east-1'] }, 'UnknownImage'],
    [{ image: 'edge', version: 'newest', sddcs: ['east-1'] }, 'InvalidInput'],
    [{ image: 'edge', version: '1.0.0', sddcs: [] }, 'InvalidInput'],
  ] as Array<[DeployInput, string]>)('rejects %j with %s', async (input, type) => {
    expect((await workflowFailure((await deploy(input)).result())).type).toBe(type);
  });
});
