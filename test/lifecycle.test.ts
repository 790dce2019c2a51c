import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ScheduleNotFoundError } from '@temporalio/client';
import { screenshotSchedules, webUiUrl } from '../scripts/screenshot-schedules';
import type { DeployInput, DeployResult } from '../src/shared/deploy-input';
import type { CliDeps } from '../src/cli/deps';
import * as deprecateCommand from '../src/cli/deprecate';
import * as retireCommand from '../src/cli/retire';
import * as retentionCommand from '../src/cli/retention';
import * as schedulesCommand from '../src/cli/schedules';
import * as verifyCommand from '../src/cli/verify';
import * as verifySddcsCommand from '../src/cli/verify-sddcs';
import type { RetentionResult } from '../src/shared/lifecycle-input';
import type { PublishResult } from '../src/shared/publish-input';
import { ensureSchedules, RETENTION_SCHEDULE_ID, VERIFY_SCHEDULE_ID, VERIFY_SDDCS_SCHEDULE_ID } from '../src/temporal/schedules';
import { unlessNotFound, type BlockStore } from '../src/storage/block-store';
import { VcenterConnection } from '../src/sddc/library-import';
import { libraryItemName } from '../src/shared/target-kinds/content-library';
import type { ContentLibraryTarget } from '../src/shared/target-kinds/kind';
import { findLocation, loadTopology } from '../src/topology/topology';
import { leasedDeploys } from '../src/lifecycle/deploy-leases';
import { agentVcenterEnv, testVcenter } from './harness/vcenter';
import { replicateImage } from '../src/publish/replicate';
import { commitAsPublished, signAsPublished } from './harness/committed-blocks';
import { keyIdOf, type TrustedKey } from '../src/provenance/keys';
import { spawnWorker, until, type WorkerProcess } from './harness/worker-process';
import { filler, isoImage } from './images/build';
import { readBlob, repositoryRoot, startWorld, workflowFailure, type TestWorld } from './helpers';

const MiB = 2 ** 20;
const ROOT = path.resolve(__dirname, '..');
const exec = promisify(execFile);

/**
 * The image lifecycle on the real services: deprecation and end of life, RetireImage (blobs, an agent's
 * directory, a vcsim content library, the tombstone), retention by ApplyRetention, VerifyReplicas
 * repairing a replica altered in place, and the schedules. Each command is driven through its CLI
 * module's `run`, as `vmhub` would.
 */
describe('image lifecycle', () => {
  let world: TestWorld;
  let deps: CliDeps;
  const agents: WorkerProcess[] = [];
  const queues = new Map<string, string>();
  const run = randomUUID().slice(0, 6);
  const datastores = path.join(repositoryRoot(), '..', `sddc-lc-${run}`);
  const password = `pw-${randomUUID()}`;
  let library: ContentLibraryTarget;

  /** dir-1 deploys into its agent's directory; east-1 into the content library of its vcsim. */
  function startAgent(name: string, env: NodeJS.ProcessEnv = {}): WorkerProcess {
    const agent = spawnWorker(['agent', name], {
      VMHUB_AGENT_TASK_QUEUE: queues.get(name)!,
      VMHUB_DATASTORE: path.join(datastores, name),
      ...env,
    });
    agents.push(agent);
    return agent;
  }

  async function register(name: string, dataCenter: string, target?: ContentLibraryTarget): Promise<void> {
    queues.set(name, `sddc-${name}-${randomUUID().slice(0, 8)}`);
    await world.deps.catalog.sddcs.add({
      name,
      dataCenter,
      taskQueue: queues.get(name)!,
      capacity: { cpus: 64, memoryMiB: 262144, diskGiB: 2048 },
      target,
    });
  }

  const polling = (name: string) =>
    until(`agent ${name} polling`, async () => (await world.deps.temporal.recentPollers(queues.get(name)!, 'activity')) > 0);

  beforeAll(async () => {
    world = await startWorld({ blockSizeBytes: 4 * MiB }, { ownNamespace: true });
    deps = { config: world.config, temporal: async () => world.client, catalog: async () => world.deps.catalog };
    const seed = loadTopology(world.config.topologyPath).sddcs.find((s) => s.name === 'east-1')!;
    library = { ...(seed.target as ContentLibraryTarget), library: `vmhub-lc-${run}` };
    await register('dir-1', 'dc-west');
    await register('east-1', 'dc-east', library);
    startAgent('dir-1');
    startAgent('east-1', agentVcenterEnv(library.vcenter, { username: 'vmhub-agent', password }));
    await polling('dir-1');
    await polling('east-1');
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await world?.close();
  });

  async function publish(image: string, version: string, deployTo?: string[]): Promise<PublishResult> {
    const file = `${image}-${version}-${run}.iso`;
    isoImage(path.join(repositoryRoot(), file), { volumeId: `V${version.replace(/\./g, '')}`, extraBytes: 2 * MiB });
    return (await world.client.workflow.execute('PublishImage', {
      args: [{ source: file, image, version, ...(deployTo ? { deployTo } : {}) }],
      taskQueue: world.config.taskQueue,
      workflowId: `publish:${image}:${version}:${randomUUID()}`,
    })) as PublishResult;
  }

  const startDeploy = (input: DeployInput) =>
    world.client.workflow.start('DeployToSDDCs', {
      args: [input],
      taskQueue: world.config.taskQueue,
      workflowId: `deploy:${input.image}:${input.version}:${randomUUID()}`,
    });
  const deploy = async (input: DeployInput) => (await (await startDeploy(input)).result()) as DeployResult;

  const exists = async (location: string, p: PublishResult) =>
    (await unlessNotFound(world.deps.storage.store(location).getProperties(p.location.blob))) !== undefined;
  const blobBytes = (location: string, p: PublishResult) => readBlob(world.deps.storage.store(location), p.location.blob);
  const deployedFile = (sddc: string, image: string, version: string) =>
    path.join(datastores, sddc, image, version, `${image}-${version}.iso`);

  async function onVcenter<T>(fn: (conn: VcenterConnection) => Promise<T>): Promise<T> {
    const conn = await VcenterConnection.open(library, testVcenter(library.vcenter, { username: 'vmhub-test', password }));
    try {
      return await fn(conn);
    } finally {
      await conn.close();
    }
  }

  const libraryItem = (image: string, version: string) =>
    onVcenter(async (conn) => {
      const lib = await conn.library.findLibrary(library.library);
      return lib && (await conn.library.findItem(lib.id, libraryItemName(image, version)));
    });

  it('a deprecated version leaves latest; past its end of life a deploy is refused with ImageRetired unless forced', async () => {
    await publish('app', '1.0.0');
    await publish('app', '1.1.0');
    expect((await world.deps.catalog.versions.latest('app'))?.version).toBe('1.1.0');

    const deprecated = await deprecateCommand.run({ image: 'app', version: '1.1.0', message: 'use 1.0.0', undo: false }, deps);
    expect(deprecated).toMatchObject({ status: 'deprecated', message: 'use 1.0.0', endOfLife: null, latest: '1.0.0' });
    expect((await world.deps.catalog.versions.latest('app'))?.version).toBe('1.0.0');
    expect(deprecateCommand.renderText(deprecated)).toEqual(['app@1.1.0 is deprecated: use 1.0.0', 'app@latest is 1.0.0']);
    // Deprecated but before its end of life: still deployable by its version.
    expect((await deploy({ image: 'app', version: '1.1.0', sddcs: ['dir-1'] })).results[0].status).toBe('deployed');

    const yesterday = new Date(Date.now() - 86_400_000);
    const eol = await deprecateCommand.run({ image: 'app', version: '1.1.0', endOfLife: yesterday, undo: false }, deps);
    expect(eol).toMatchObject({ status: 'end-of-life', endOfLife: yesterday.toISOString() });
    const refused = await workflowFailure(deploy({ image: 'app', version: '1.1.0', sddcs: ['dir-1'] }));
    expect(refused.type).toBe('ImageRetired');
    expect(refused.nonRetryable).toBe(true);
    expect(refused.message).toContain('--force');

    const forced = await deploy({ image: 'app', version: '1.1.0', sddcs: ['dir-1'], force: true });
    expect(forced.results[0].status).toBe('already-present');

    const undone = await deprecateCommand.run({ image: 'app', version: '1.1.0', undo: true }, deps);
    expect(undone).toMatchObject({ status: 'current', endOfLife: null, latest: '1.1.0' });
    await expect(deprecateCommand.run({ image: 'app', version: '9.9.9', undo: false }, deps)).rejects.toMatchObject({
      type: 'UnknownImage',
    });
  });

  it('retire removes the blobs, the agent’s file and the library item, leaves a tombstone, and a second retire does nothing', async () => {
    const published = await publish('gone', '1.0.0');
    const deployed = await deploy({ image: 'gone', version: '1.0.0', sddcs: ['dir-1', 'east-1'] });
    expect(deployed.results.map((r) => r.status)).toEqual(['deployed', 'deployed']);
    expect(fs.existsSync(deployedFile('dir-1', 'gone', '1.0.0'))).toBe(true);
    expect(await libraryItem('gone', '1.0.0')).toBeDefined();
    expect(await exists('west-replica', published)).toBe(true);

    const retired = await retireCommand.run({ image: 'gone', version: '1.0.0', yes: true }, deps);
    expect(retired).toMatchObject({
      workflowId: 'retire:gone:1.0.0',
      status: 'retired',
      blobsRemoved: ['east-primary', 'west-replica'],
    });
    const bySddc = Object.fromEntries(retired.sddcs.map((s) => [s.sddc, s]));
    expect(bySddc['dir-1'].files).toEqual(
      expect.arrayContaining([deployedFile('dir-1', 'gone', '1.0.0'), `${deployedFile('dir-1', 'gone', '1.0.0')}.sha256`]),
    );
    expect(bySddc['east-1'].libraryItem).toBe(deployed.results.find((r) => r.sddc === 'east-1')!.target!.itemId);

    expect(await exists('east-primary', published)).toBe(false);
    expect(await exists('west-replica', published)).toBe(false);
    expect(fs.existsSync(path.join(datastores, 'dir-1', 'gone'))).toBe(false);
    expect(await libraryItem('gone', '1.0.0')).toBeUndefined();

    const tombstone = await world.deps.catalog.versions.get('gone', '1.0.0');
    expect(tombstone).toMatchObject({ status: 'retired', replicas: [], retired: { by: { workflowId: 'retire:gone:1.0.0' } } });
    expect(tombstone?.retired?.at).toBeInstanceOf(Date);
    expect((await world.deps.catalog.deployments.of('gone', '1.0.0')).map((d) => d.status)).toEqual(['removed', 'removed']);

    const again = await retireCommand.run({ image: 'gone', version: '1.0.0', yes: true }, deps);
    expect(again).toMatchObject({ status: 'already-retired', sddcs: [], blobsRemoved: [] });
    expect(retireCommand.renderText(again)[0]).toContain('nothing to do');

    expect((await workflowFailure(deploy({ image: 'gone', version: '1.0.0', sddcs: ['dir-1'], force: true }))).type).toBe(
      'ImageRetired',
    );
    expect((await workflowFailure(publish('gone', '1.0.0'))).type).toBe('VersionConflict');
  });

  it('retire is refused while a deploy of the version runs, and the version stays available', async () => {
    await publish('busy', '1.0.0');
    // An SDDC whose agent polled a moment ago and stopped: the deploy waits for it.
    await register('stalled', 'dc-east');
    const agent = startAgent('stalled');
    await polling('stalled');
    await agent.stop();
    const running = await startDeploy({ image: 'busy', version: '1.0.0', sddcs: ['stalled'] });
    // The deploy's lease in the catalog is what the retire reads, not Temporal's visibility.
    const leases = () => world.deps.catalog.deployLeases.of('busy', '1.0.0');
    await until('the deploy’s lease in the catalog', async () =>
      (await leases()).some((l) => l.workflowId === running.workflowId),
    );

    await expect(retireCommand.run({ image: 'busy', version: '1.0.0', yes: true }, deps)).rejects.toMatchObject({
      cause: { type: 'DeployRunning', message: expect.stringContaining(running.workflowId) },
    });
    expect((await world.deps.catalog.versions.get('busy', '1.0.0'))?.status).toBe('available');

    // A run terminated mid-deploy never releases its lease: the retire finds the run closed and drops it.
    await running.terminate('an operator stopped it');
    expect(await leases()).toHaveLength(1);
    expect(await leasedDeploys(world.deps, { image: 'busy', version: '1.0.0' })).toEqual([]);
    expect(await leases()).toEqual([]);
  });

  it('retention retires the versions beyond the newest N that no SDDC holds', async () => {
    for (const v of ['1.0.0', '1.1.0', '1.2.0', '2.0.0']) await publish('kept', v);
    await deploy({ image: 'kept', version: '1.0.0', sddcs: ['dir-1'] });

    const set = await retentionCommand.run({ action: 'set', image: 'kept', keep: 2 }, deps);
    expect(set).toMatchObject({ policies: [{ image: 'kept', keep: 2 }], schedule: RETENTION_SCHEDULE_ID });
    expect(await retentionCommand.run({ action: 'show', image: 'kept' }, deps)).toMatchObject({
      policies: [{ image: 'kept', keep: 2 }],
    });

    const applied = (await world.client.workflow.execute('ApplyRetention', {
      args: [{ image: 'kept' }],
      taskQueue: world.config.taskQueue,
      workflowId: `retention:${randomUUID()}`,
    })) as RetentionResult;
    expect(applied).toEqual({ retired: ['kept@1.1.0'], failed: [] });
    const statuses = Object.fromEntries((await world.deps.catalog.versions.list('kept')).map((r) => [r.version, r.status]));
    expect(statuses).toEqual({ '2.0.0': 'available', '1.2.0': 'available', '1.1.0': 'retired', '1.0.0': 'available' });

    expect(await retentionCommand.run({ action: 'clear', image: 'kept' }, deps)).toMatchObject({ cleared: true });
    expect(await retentionCommand.run({ action: 'show', image: 'kept' }, deps)).toMatchObject({ policies: [] });
  });

  it('retention finishes a version a crashed retire left retiring: the new run takes the claim over from the closed one', async () => {
    const published = await publish('left', '1.0.0');
    // A run the server does not know has closed, as a crashed retire's run has.
    const crashed = { workflowId: 'retire:left:1.0.0', runId: randomUUID() };
    expect(await world.deps.catalog.versions.beginRetire('left', '1.0.0', crashed)).toMatchObject({ state: 'claimed' });

    const applied = (await world.client.workflow.execute('ApplyRetention', {
      args: [{ image: 'left' }],
      taskQueue: world.config.taskQueue,
      workflowId: `retention:${randomUUID()}`,
    })) as RetentionResult;
    expect(applied).toEqual({ retired: ['left@1.0.0'], failed: [] });
    const tombstone = await world.deps.catalog.versions.get('left', '1.0.0');
    expect(tombstone?.status).toBe('retired');
    expect(tombstone?.retired?.by.runId).not.toBe(crashed.runId);
    expect(await exists('east-primary', published)).toBe(false);
    expect(await exists('west-replica', published)).toBe(false);
  });

  it('VerifyReplicas finds a replica altered in place, marks it stale and replicates it again', async () => {
    const published = await publish('checked', '1.0.0');
    const primaryBytes = await blobBytes('east-primary', published);
    // Same size and the same SHA-256 metadata, other bytes: only the block list tells.
    await world.deps.storage.store('west-replica').upload(published.location.blob, filler(published.sizeBytes, 99), {
      metadata: { sha256: published.sha256 },
    });

    const found = await verifyCommand.run({ image: 'checked', version: '1.0.0' }, deps);
    expect(found).toMatchObject({ versionsChecked: 1, replicasChecked: 1, findingsTotal: 1 });
    expect(found.findings[0]).toMatchObject({ image: 'checked', version: '1.0.0', location: 'west-replica', repaired: true });
    expect(found.findings[0].reason).toMatch(/committed blocks|committed block/);
    expect((await blobBytes('west-replica', published)).equals(primaryBytes)).toBe(true);
    const replica = (await world.deps.catalog.versions.get('checked', '1.0.0'))?.replicas.find(
      (r) => r.location === 'west-replica',
    );
    expect(replica?.status).toBe('verified');

    const clean = await verifyCommand.run({ image: 'checked' }, deps);
    expect(clean).toMatchObject({ versionsChecked: 1, findingsTotal: 0, findings: [] });
  });

  // One version for the checks of replicas by their bytes: each test leaves its replica right.
  let hashedVersion: Promise<PublishResult> | undefined;
  const publishedOnce = () => (hashedVersion ??= publish('hashed', '1.0.0'));
  const westReplica = async () =>
    (await world.deps.catalog.versions.get('hashed', '1.0.0'))?.replicas.find((r) => r.location === 'west-replica');

  it('VerifyReplicas hashes a replica whose bytes changed under the same block IDs and metadata, and copies it again', async () => {
    const published = await publishedOnce();
    const { blob } = published.location;
    const replica = world.deps.storage.store('west-replica');
    const hashedAt = (await westReplica())?.hashedAt;
    expect(hashedAt).toBeInstanceOf(Date);
    // Other bytes staged under the very IDs and committed with the same metadata: every label agrees.
    const blocks = await replica.committedBlocks(blob);
    for (const [i, b] of blocks.entries()) await replica.stageBlock(blob, b.name, filler(b.size, 50 + i));
    await replica.commitBlocks(
      blob,
      blocks.map((b) => b.name),
      { metadata: { sha256: published.sha256 } },
    );
    expect((await blobBytes('west-replica', published)).equals(await blobBytes('east-primary', published))).toBe(false);

    const found = await verifyCommand.run({ image: 'hashed', version: '1.0.0' }, deps);
    expect(found).toMatchObject({ replicasChecked: 1, findingsTotal: 1 });
    expect(found.findings[0]).toMatchObject({ location: 'west-replica', repaired: true });
    expect(found.findings[0].reason).toMatch(/its bytes hash to [0-9a-f]{64}, expected/);
    expect((await blobBytes('west-replica', published)).equals(await blobBytes('east-primary', published))).toBe(true);
    const after = await westReplica();
    expect(after?.status).toBe('verified');
    expect(after!.hashedAt!.getTime()).toBeGreaterThan(hashedAt!.getTime());
  });

  it('replication stages again what it finds staged under the right IDs, and trusts no blob for its metadata', async () => {
    const published = await publishedOnce();
    const { blob } = published.location;
    const replica = world.deps.storage.store('west-replica');
    const primaryBytes = await blobBytes('east-primary', published);
    // The replica gone, and wrong bytes staged under the primary's block IDs before it is copied again.
    await replica.deleteIfExists(blob);
    const blocks = await world.deps.storage.store('east-primary').committedBlocks(blob);
    for (const [i, b] of blocks.entries()) await replica.stageBlock(blob, b.name, filler(b.size, 70 + i));
    const repaired = await verifyCommand.run({ image: 'hashed', version: '1.0.0' }, deps);
    expect(repaired.findings[0]).toMatchObject({ location: 'west-replica', reason: 'blob is missing', repaired: true });
    expect((await blobBytes('west-replica', published)).equals(primaryBytes)).toBe(true);
    expect((await westReplica())?.status).toBe('verified');

    // A blob Put whole with the right SHA-256 metadata and size, other bytes: replication reads it and copies.
    await replica.upload(blob, filler(published.sizeBytes, 99), { metadata: { sha256: published.sha256 } });
    const copied = await replicateImage(
      { storage: world.deps.storage, catalog: world.deps.catalog, concurrency: 2, trusted: [] },
      { image: 'hashed', version: '1.0.0', location: 'west-replica' },
      {
        signal: new AbortController().signal,
        liveness: { beat: () => undefined, keepBeating: (fn) => fn() },
        log: { info: () => undefined, warn: () => undefined },
      },
    );
    expect(copied.status).toBe('verified');
    expect((await blobBytes('west-replica', published)).equals(primaryBytes)).toBe(true);
    expect((await westReplica())?.etag).toBe((await replica.getProperties(blob)).etag);
  });

  describe('incremental replication', () => {
    const BLOCK = 256 * 1024;
    const block = (seed: number) => filler(BLOCK, seed);
    /** Eight blocks; v2 changes block 5 and swaps blocks 1 and 2. */
    const v1 = Buffer.concat([0, 1, 2, 3, 4, 5, 6, 7].map((i) => block(200 + i)));
    const v2 = Buffer.concat([0, 2, 1, 3, 4].map((i) => block(200 + i)).concat([block(250), block(206), block(207)]));
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

    /** Commits `content` on the primary as the block IDs publish writes, and catalogs it available. */
    async function cataloged(version: string, content: Buffer, image = 'seeded') {
      const primary = world.deps.storage.store('east-primary');
      const blob = `${image}/${version}/${image}-${version}-${run}.iso`;
      const ids = await commitAsPublished(primary, blob, content, BLOCK);
      const owner = { workflowId: `test-${version}`, runId: randomUUID() };
      const location = {
        storage: 'east-primary',
        container: findLocation(world.deps.storage.topology, 'east-primary').container,
        blob,
      };
      const v = {
        image,
        version,
        format: 'iso' as const,
        sizeBytes: content.length,
        location,
        blockSize: BLOCK,
        blockCount: ids.length,
      };
      await world.deps.catalog.versions.claim(v, owner);
      await world.deps.catalog.versions.markAvailable(image, version, owner, sha(content), {
        kind: 'iso',
        volumeId: 'V',
        volumeSizeBytes: content.length,
        bootable: false,
        joliet: false,
        udf: false,
      });
      return blob;
    }
    const replicate = (version: string, { image = 'seeded', trusted = [] as TrustedKey[], storage = world.deps.storage } = {}) =>
      replicateImage(
        { storage, catalog: world.deps.catalog, concurrency: 2, trusted },
        { image, version, location: 'west-replica' },
        {
          signal: new AbortController().signal,
          liveness: { beat: () => undefined, keepBeating: (fn) => fn() },
          log: { info: () => undefined, warn: () => undefined },
        },
      );
    const westBytes = (blob: string) => readBlob(world.deps.storage.store('west-replica'), blob);

    it('a replica that holds v1 copies it within its account and fetches only the changed block; a moved block stays there', async () => {
      const first = await cataloged('1.0.0', v1);
      expect(await replicate('1.0.0')).toMatchObject({ status: 'verified', crossed: { bytes: v1.length } });
      expect(sha(await westBytes(first))).toBe(sha(v1));

      const blob = await cataloged('2.0.0', v2);
      const copied = await replicate('2.0.0');
      expect(copied).toMatchObject({ status: 'verified', sha256: sha(v2), crossed: { bytes: BLOCK, from: '1.0.0' } });
      expect(sha(await westBytes(blob))).toBe(sha(await readBlob(world.deps.storage.store('east-primary'), blob)));
      const recorded = (await world.deps.catalog.versions.get('seeded', '2.0.0'))?.replicas.find(
        (r) => r.location === 'west-replica',
      );
      expect(recorded).toMatchObject({ status: 'verified', crossed: { bytes: BLOCK, from: '1.0.0' } });

      // A verify that hashes it right rewrites the record and keeps what crossed for it, for `vmhub show`.
      expect(await verifyCommand.run({ image: 'seeded', version: '2.0.0' }, deps)).toMatchObject({ findingsTotal: 0 });
      const verified = (await world.deps.catalog.versions.get('seeded', '2.0.0'))?.replicas.find(
        (r) => r.location === 'west-replica',
      );
      expect(verified!.hashedAt!.getTime()).toBeGreaterThan(recorded!.hashedAt!.getTime());
      expect(verified).toMatchObject({ status: 'verified', crossed: { bytes: BLOCK, from: '1.0.0' } });
    });

    it('a base whose replica blob went (retired meanwhile) is copied from in full, and right', async () => {
      // 2.0.0 and 1.0.0 read verified in the catalog, but their blobs at the replica are gone, as a retire leaves them.
      const west = world.deps.storage.store('west-replica');
      for (const v of ['1.0.0', '2.0.0'])
        await west.deleteIfExists((await world.deps.catalog.versions.get('seeded', v))!.location.blob);
      const v3 = Buffer.concat([v2.subarray(0, 7 * BLOCK), block(260)]);
      const blob = await cataloged('3.0.0', v3);
      const copied = await replicate('3.0.0');
      expect(copied).toMatchObject({ status: 'verified', sha256: sha(v3), crossed: { bytes: v3.length } });
      expect(copied.crossed?.from).toBeUndefined();
      expect(sha(await westBytes(blob))).toBe(sha(v3));
    });

    it('a replica seeded from a signed earlier version is proven by its blocks: only staged ones are read back, and a block staged meanwhile under a kept ID is not taken', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const trusted = [{ keyid: keyIdOf(publicKey), publicKey }];
      const primary = world.deps.storage.store('east-primary');
      const west = world.deps.storage.store('west-replica');
      const signed = async (version: string, content: Buffer) => {
        const blob = await cataloged(version, content, 'signed');
        const ids = (await primary.committedBlocks(blob)).map((b) => b.name);
        const ref = { image: 'signed', version, sha256: sha(content), sizeBytes: content.length };
        await signAsPublished(primary, blob, ref, { ids, size: BLOCK }, privateKey);
        return { blob, ids };
      };
      await signed('1.0.0', v1);
      // Nothing to seed from: hashed whole.
      expect(await replicate('1.0.0', { image: 'signed', trusted })).toMatchObject({
        status: 'verified',
        hashedAt: expect.any(Date),
      });

      const next = await signed('2.0.0', v2);
      const reads = { whole: 0, blockBytes: 0 };
      let interloped = false;
      const counting: BlockStore = Object.create(west, {
        readStream: { value: (...args: Parameters<BlockStore['readStream']>) => (reads.whole++, west.readStream(...args)) },
        readInto: {
          value: (...args: Parameters<BlockStore['readInto']>) => ((reads.blockBytes += args[1].length), west.readInto(...args)),
        },
        stageBlock: {
          value: async (...args: Parameters<BlockStore['stageBlock']>) => {
            // Once the seed is copied, a writer of the replica stages other bytes under the ID of block 0,
            // which v2 keeps from v1's replica.
            if (!interloped) await west.stageBlock(next.blob, next.ids[0], block(99));
            interloped = true;
            return west.stageBlock(...args);
          },
        },
      });
      const storage = {
        topology: world.deps.storage.topology,
        store: (id: string) => (id === 'west-replica' ? counting : world.deps.storage.store(id)),
        ensureContainers: () => world.deps.storage.ensureContainers(),
      };
      const copied = await replicate('2.0.0', { image: 'signed', trusted, storage });
      expect(copied).toMatchObject({ status: 'verified', sha256: sha(v2), crossed: { bytes: BLOCK, from: '1.0.0' } });
      // Proven by its blocks, so not hashed whole: the next VerifyReplicas hashes it first.
      expect(copied.hashedAt).toBeUndefined();
      expect(sha(await westBytes(next.blob))).toBe(sha(v2));
      // Blocks 1 and 2 moved (read from the seed), 1, 2 and 5 read back after the commit; 0, 3, 4, 6 and 7 never read.
      expect(interloped).toBe(true);
      expect(reads).toEqual({ whole: 0, blockBytes: 5 * BLOCK });
    });
  });

  it('VerifySddcs finds a copy deleted, one emptied, one edited, a library file replaced and an extra descriptor, marks them drifted, and repairs them', async () => {
    // The retention test left kept@1.0.0 on dir-1 and kept@1.2.0 and 2.0.0 published: deploying them costs less than publishing.
    await Promise.all([
      deploy({ image: 'kept', version: '1.2.0', sddcs: ['dir-1', 'east-1'] }),
      deploy({ image: 'kept', version: '2.0.0', sddcs: ['dir-1', 'east-1'] }),
    ]);
    const file = (version: string) => deployedFile('dir-1', 'kept', version);
    fs.rmSync(file('1.0.0'));
    fs.truncateSync(file('1.2.0'), 0);
    // Other bytes, same size, the .sha256 sidecar left alone: only hashing tells.
    const fd = fs.openSync(file('2.0.0'), 'r+');
    fs.writeSync(fd, Buffer.from('edited outside vmhub'), 0, 20, 4096);
    fs.closeSync(fd);
    // Through the vSphere API, as anyone with the library's rights could: a second descriptor, and other bytes of the same size.
    const putFile = async (version: string, name: string, bytes: Buffer) => {
      const itemId = (await libraryItem('kept', version))!.id;
      await onVcenter(async (conn) => {
        const session = await conn.library.createUpdateSession(itemId);
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        const added = await conn.library.addFile(session, { name, offset: 0, size: bytes.length, sha256 });
        await conn.library.rest.upload(added.upload_endpoint!.uri, bytes.length, () => Readable.from([bytes]), name);
        await conn.library.complete(session);
      });
      return itemId;
    };
    await putFile('1.2.0', 'other.ovf', Buffer.from('<Envelope/>'));
    const replaced = await putFile('2.0.0', 'kept-2.0.0.iso', Buffer.alloc(fs.statSync(file('2.0.0')).size, 7));

    const result = await verifySddcsCommand.run({ sddcs: ['dir-1', 'east-1'], repair: true }, deps);
    // A finding not repaired shows why in place of `true`.
    expect(result.findings.map((f) => [f.sddc, f.image, f.version, f.kind, f.repaired || f.detail]).sort()).toEqual([
      ['dir-1', 'kept', '1.0.0', 'missing', true],
      ['dir-1', 'kept', '1.2.0', 'zero-byte', true],
      ['dir-1', 'kept', '2.0.0', 'edited', true],
      ['east-1', 'kept', '1.2.0', 'extra-descriptor', true],
      ['east-1', 'kept', '2.0.0', 'edited', true],
    ]);
    expect(verifySddcsCommand.renderText(result).join('\n')).toMatch(/kept@2\.0\.0 +dir-1 +edited +repaired: .*SHA-256/);
    // Each was marked drifted, saying how, before the repair's deploy made it whole again.
    const versions = ['1.0.0', '1.2.0', '2.0.0'];
    const records = (await Promise.all(versions.map((v) => world.deps.catalog.deployments.of('kept', v)))).flat();
    expect(records.map((d) => [d.sddc, d.version, d.status, d.attempts!.slice(-2).map((a) => a.status)])).toEqual([
      ['dir-1', '1.0.0', 'deployed', ['drifted', 'deployed']],
      ['dir-1', '1.2.0', 'deployed', ['drifted', 'deployed']],
      ['east-1', '1.2.0', 'deployed', ['drifted', 'deployed']],
      ['dir-1', '2.0.0', 'deployed', ['drifted', 'deployed']],
      ['east-1', '2.0.0', 'deployed', ['drifted', 'deployed']],
    ]);
    expect(records[2].attempts!.at(-2)!.reason).toMatch(/^extra-descriptor: .*other\.ovf is extra/);
    for (const v of versions) {
      const sha256 = (await world.deps.catalog.versions.get('kept', v))!.sha256;
      expect(
        createHash('sha256')
          .update(fs.readFileSync(file(v)))
          .digest('hex'),
      ).toBe(sha256);
    }
    // The item with a second descriptor was made anew; the one with a file replaced got its file again through an update session.
    const item = (await libraryItem('kept', '1.2.0'))!;
    const files = await onVcenter((conn) => conn.library.itemFiles(item.id));
    expect([...new Set(files.map((f) => f.name))]).toEqual(['kept-1.2.0.iso']);
    expect((await libraryItem('kept', '2.0.0'))!.id).toBe(replaced);
    const readBack = await onVcenter(async (conn) => {
      const { session, endpoints } = await conn.library.downloadEndpoints(replaced);
      const hash = createHash('sha256');
      for await (const chunk of await conn.library.rest.download(endpoints.get('kept-2.0.0.iso')!, 'iso'))
        hash.update(chunk as Buffer);
      await conn.library.endDownload(session);
      return hash.digest('hex');
    });
    expect(readBack).toBe((await world.deps.catalog.versions.get('kept', '2.0.0'))!.sha256);
  });

  it('`npm run services -- start` creates the schedules on the server, the Web UI lists them, and making sure of them again changes nothing', async () => {
    for (const id of [VERIFY_SCHEDULE_ID, VERIFY_SDDCS_SCHEDULE_ID, RETENTION_SCHEDULE_ID]) {
      await world.client.schedule
        .getHandle(id)
        .delete()
        .catch((err: unknown) => {
          if (!(err instanceof ScheduleNotFoundError)) throw err;
        });
    }
    expect((await schedulesCommand.run({}, deps)).schedules.map((s) => s.state)).toEqual(['missing', 'missing', 'missing']);
    // The services are running already: start leaves them as they are, and makes sure of the schedules.
    const started = await exec('npm', ['run', 'services', '--', 'start'], {
      cwd: ROOT,
      env: { ...process.env, VMHUB_TASK_QUEUE: world.config.taskQueue },
    });
    expect(started.stdout).toContain(
      `schedules              ${VERIFY_SCHEDULE_ID}, ${VERIFY_SDDCS_SCHEDULE_ID}, ${RETENTION_SCHEDULE_ID}`,
    );
    const afterStart = (await schedulesCommand.run({}, deps)).schedules;
    expect(afterStart.map((s) => [s.scheduleId, s.workflowType, s.state])).toEqual([
      [VERIFY_SCHEDULE_ID, 'VerifyReplicas', 'active'],
      [VERIFY_SDDCS_SCHEDULE_ID, 'VerifySddcs', 'active'],
      [RETENTION_SCHEDULE_ID, 'ApplyRetention', 'active'],
    ]);

    fs.mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
    const out = path.join(ROOT, 'test-output', 'web-ui-schedules.png');
    const shown = await screenshotSchedules({ webUi: webUiUrl(world.config), namespace: world.config.temporal.namespace, out });
    expect(shown).toEqual([VERIFY_SCHEDULE_ID, VERIFY_SDDCS_SCHEDULE_ID, RETENTION_SCHEDULE_ID]);
    expect(fs.statSync(out).size).toBeGreaterThan(10_000);

    // Only the control worker's setting changes the scheduled repair; another process keeps it.
    const repairArg = async () =>
      ((await world.client.schedule.getHandle(VERIFY_SDDCS_SCHEDULE_ID).describe()).action as { args: unknown[] }).args;
    await ensureSchedules(world.client, world.config, { VMHUB_REPAIR_DRIFT: '1' }, true);
    expect(await repairArg()).toEqual([{ repair: true }]);
    await ensureSchedules(world.client, world.config, {});
    expect(await repairArg()).toEqual([{ repair: true }]);
    await ensureSchedules(world.client, world.config, {}, true);
    expect(await repairArg()).toEqual([{ repair: false }]);
    const { schedules } = await schedulesCommand.run({}, deps);
    expect(schedules.map((s) => [s.scheduleId, s.workflowType, s.state, s.taskQueue])).toEqual([
      [VERIFY_SCHEDULE_ID, 'VerifyReplicas', 'active', world.config.taskQueue],
      [VERIFY_SDDCS_SCHEDULE_ID, 'VerifySddcs', 'active', world.config.taskQueue],
      [RETENTION_SCHEDULE_ID, 'ApplyRetention', 'active', world.config.taskQueue],
    ]);
    expect(schedules[0].everyMs).toBe(86_400_000);
    expect(schedules.every((s) => s.nextRun !== null)).toBe(true);
  });
});
